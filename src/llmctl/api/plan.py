"""`llmctl plan` for the front doors: resolve MODEL (api/plan_model.py), complete `--model-source`, and render
with the checks that run programs, so plan/ itself stays pure.

- `bash -n` parses every rendered shell script;
- kubectl's own decoder reads the rendered Kubernetes YAML (`kubectl annotate --local --dry-run=client`, which
  needs no API server; `apply --dry-run=client` would need one for discovery), where kubectl exists and
  LLMCTL_PLAN_KUBECTL is not 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace

from llmctl.api.plan_artifact import folder_name
from llmctl.api.plan_model import ResolvedModel, resolve_model
from llmctl.errors import InvalidInput, PlanError
from llmctl.names import is_loopback
from llmctl.oci.reference import parse
from llmctl.plan import Plan, TextCheck, render
from llmctl.plan.k8s_walk import Report
from llmctl.plan.render_common import RenderedFile, RenderOptions
from llmctl.plan.weights import Weights, parse_model_source
from llmctl.settings import Settings

K8S_FORMATS = ("lws", "disaggregatedset", "rbg")

__all__ = ["ResolvedModel", "model_source", "render_plan", "resolve_model", "text_checks"]


def model_source(settings: Settings, text: str, resolved: ResolvedModel | None = None) -> Weights:
    """`--model-source` as Weights: OCI references completed with the configured default registry (as every
    other command names models), sizes and gating carried over when the source is the resolved model's own."""
    weights = parse_model_source(text)
    if weights.kind == "oci":
        try:
            ref = parse(weights.ref, registry=settings.registry, namespace=settings.namespace)
        except InvalidInput as exc:
            raise InvalidInput(f"--model-source {text!r}: {exc}") from None
        weights = replace(weights, ref=str(ref), name=folder_name(ref))
    own = resolved.weights if resolved is not None else None
    if own is not None and own.kind == weights.kind and _same_model(own, weights):
        return own  # the model's own source: keep its digest pin, size and gate
    if own is not None and own.size_bytes:
        weights = replace(weights, size_bytes=own.size_bytes)  # the same model, delivered another way
    return weights


def _same_model(own: Weights, given: Weights) -> bool:
    """`given` names the resolved model itself: the same Hugging Face id, or the same repository and tag
    (the resolved one is pinned by digest, which `given` may repeat)."""
    if own.kind != "oci":
        return own.ref == given.ref
    o, g = parse(own.ref), parse(given.ref)
    return o.name == g.name and own.name == given.name and g.digest in (None, o.digest)


def bash_syntax(f: RenderedFile) -> str | None:
    bash = shutil.which("bash")
    assert bash is not None
    proc = subprocess.run([bash, "-n"], input=f.content, capture_output=True, text=True, timeout=30, check=False)
    return f"bash -n: {proc.stderr.strip()}" if proc.returncode else None


def kubectl_decode(f: RenderedFile) -> str | None:
    """kubectl's own decoder, offline: no kubeconfig, no API server, nothing of the user's environment."""
    exe = shutil.which("kubectl")
    assert exe is not None
    proc = subprocess.run(
        [exe, "annotate", "--local", "--dry-run=client", "-o", "name", "-f", "-", "llmctl.dev/validated=true"],
        input=f.content, capture_output=True, text=True, timeout=60, env={"KUBECONFIG": os.devnull}, check=False,
    )
    return None if proc.returncode == 0 else f"kubectl could not decode the YAML: {proc.stderr.strip() or proc.stdout.strip()}"


def text_checks(settings: Settings) -> tuple[list[TextCheck], list[str]]:
    """(the program checks available here, notes on those that are not)."""
    checks, skipped = [], []
    if shutil.which("bash"):
        checks.append(TextCheck("bash -n parses every script", ("shell",), bash_syntax))
    else:
        skipped.append("bash not found: shell scripts were not parsed with bash -n")
    if not settings.plan_kubectl:
        skipped.append("LLMCTL_PLAN_KUBECTL=0: the kubectl decode check was skipped")
    elif shutil.which("kubectl"):
        checks.append(TextCheck("kubectl annotate --local --dry-run=client decodes every object", K8S_FORMATS,
                                kubectl_decode))
    else:
        skipped.append("kubectl not found: the kubectl decode check was skipped")
    return checks, skipped


def registry_reach(settings: Settings, fmt: str, opts: RenderOptions) -> RenderOptions:
    """The registry of `oci:` weights as the exporting step sees it. A loopback registry (`localhost:5000`) is
    this machine only to this machine: inside a pod or a compose container it is the container itself, so an
    export there cannot work (PlanError); an image volume is pulled by the node's runtime, whose mirrors may
    map it, and node scripts run on hosts. A registry the user allows plain HTTP or unverified TLS
    (LLMCTL_INSECURE_REGISTRIES) is allowed to the export step too, for that registry alone."""
    weights = opts.weights
    if weights is None or weights.kind != "oci":
        return opts
    registry = parse(weights.ref).registry
    in_container = fmt == "compose" or (fmt in K8S_FORMATS and opts.weights_mode == "init-container")
    if in_container and is_loopback(registry):
        raise PlanError(f"the pods would export {weights.ref} from {registry}, a loopback address: inside a "
                        "container that is the container itself",
                        hint="push the model to a registry the cluster reaches and plan that name (or --model-source "
                             "oci:HOST:PORT/REPO:TAG with an address the pods reach)")
    if registry in settings.insecure_registries:
        return replace(opts, insecure_registry=registry)
    return opts


def render_plan(settings: Settings, plan: Plan, fmt: str, opts: RenderOptions) -> tuple[list[RenderedFile], Report]:
    """Render and validate `plan` as `fmt`, with every check this machine can run."""
    opts = registry_reach(settings, fmt, opts)
    checks, skipped = text_checks(settings)
    files, report = render(plan, fmt, opts, checks=checks)
    relevant = [s for s in skipped if (fmt == "shell" and s.startswith("bash"))
                or (fmt in K8S_FORMATS and not s.startswith("bash"))]
    report.skipped = sorted(set(report.skipped + relevant))
    return files, report
