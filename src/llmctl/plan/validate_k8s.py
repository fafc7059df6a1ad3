"""Validate rendered Kubernetes objects offline, before they are printed.

- Custom resources (LeaderWorkerSet, DisaggregatedSet, RoleBasedGroup) against the openAPIV3Schema of the
  CRD copies pinned in data/plan/k8s (jsonschema), plus the CEL rules of those CRDs that matter here.
- Core kinds (Service, Deployment, ServiceAccount, Role, RoleBinding) and every pod template embedded in a
  custom resource (wrapped as a v1 PodTemplate) with kubernetes-validate in strict mode, which rejects
  unknown fields the CRD schemas would let through.
- Where kubectl exists, `kubectl annotate --local --dry-run=client -f -` decodes the YAML with kubectl's own
  decoder. (`kubectl apply --dry-run=client` would need an API server for discovery; this does not.)
- Router wiring: service-discovery selectors match the prefill/decode leader pods; static router URLs name
  every instance; LMCache's proxy names every leader pod by its DNS name (validate_lmcache).
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llmctl.plan import data
from llmctl.plan.validate_vllm import Cmd, check_argv, extract_shell_commands, flag_values, program

K8S_VERSION = "1.30"
"""Kubernetes API version core kinds are validated against (kubernetes-validate's schemas)."""

CRD_FILES = {
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): "leaderworkerset.x-k8s.io_leaderworkersets.yaml",
    ("disaggregatedset.x-k8s.io/v1", "DisaggregatedSet"): "disaggregatedset.x-k8s.io_disaggregatedsets.yaml",
    ("workloads.x-k8s.io/v1alpha2", "RoleBasedGroup"): "workloads.x-k8s.io_rolebasedgroups.yaml",
}


@dataclass
class Report:
    """What was checked, what failed, and what could not be checked here (and why)."""

    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@functools.cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    fname = CRD_FILES[(api_version, kind)]
    crd = data.read_yaml("k8s", fname)
    version = api_version.split("/", 1)[1]
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise KeyError(f"{fname} has no version {version}")


@functools.cache
def _crd_validator(api_version: str, kind: str) -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(crd_schema(api_version, kind))


def _path(err: Any) -> str:
    return ".".join(str(p) for p in err.absolute_path) or "<root>"


def validate_custom(obj: dict[str, Any]) -> list[str]:
    key = (obj.get("apiVersion"), obj.get("kind"))
    v = _crd_validator(*key)
    where = f"{obj['kind']}/{obj.get('metadata', {}).get('name')}"
    problems = [f"{where}: {_path(e)}: {e.message}" for e in sorted(v.iter_errors(obj), key=str)]
    return problems + [f"{where}: {p}" for p in _cel_rules(obj)]


def _cel_rules(obj: dict[str, Any]) -> list[str]:
    """The x-kubernetes-validations of the pinned CRDs, which jsonschema cannot evaluate."""
    spec = obj.get("spec", {})
    out = []
    if obj["kind"] == "DisaggregatedSet":
        static = [r for r in spec.get("roles", []) if (r.get("scaling") or {}).get("mode") != "External"]
        zero = [(r.get("spec") or {}).get("replicas", 1) == 0 for r in static]
        if any(zero) and not all(zero):
            out.append("replicas must be zero for all non-External roles or non-zero for all non-External roles")
    if obj["kind"] == "RoleBasedGroup":
        for r in spec.get("roles", []):
            if "standalonePattern" in r and "leaderWorkerPattern" in r:
                out.append(f"role {r.get('name')}: standalonePattern and leaderWorkerPattern are mutually exclusive")
            for pat in ("standalonePattern", "leaderWorkerPattern"):
                p = r.get(pat) or {}
                if "template" in p and "templateRef" in p:
                    out.append(f"role {r.get('name')}: template and templateRef are mutually exclusive")
        names = [r.get("name") for r in spec.get("roles", [])]
        for r in spec.get("roles", []):
            for dep in r.get("dependencies", []) or []:
                if dep not in names:
                    out.append(f"role {r.get('name')} depends on unknown role {dep}")
    return out


def _merge(base: Any, patch: Any) -> Any:
    """Strategic-merge enough for pod template patches: dicts merge, containers merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "name" in x for x in base + patch):
        out = [dict(x) for x in base]
        for item in patch:
            match = next((i for i, x in enumerate(out) if x["name"] == item["name"]), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = _merge(out[match], item)
        return out
    return copy.deepcopy(patch)


def pod_templates(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, pod template) for every pod the object will create, with RBG patches applied."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    name = (obj.get("metadata") or {}).get("name")
    if kind == "LeaderWorkerSet":
        yield from _lwt_templates(str(name), spec)
    elif kind == "DisaggregatedSet":
        for r in spec.get("roles") or []:
            yield from _lwt_templates(f"{name}/{r.get('name')}", r.get("spec") or {})
    elif kind == "RoleBasedGroup":
        for r in spec.get("roles") or []:
            where = f"{name}/{r.get('name')}"
            if "template" in (r.get("standalonePattern") or {}):
                yield f"{where}/standalone", r["standalonePattern"]["template"]
            lwp = r.get("leaderWorkerPattern") or {}
            if "template" in lwp:
                yield f"{where}/leader", _merge(lwp["template"], lwp.get("leaderTemplatePatch") or {})
                yield f"{where}/worker", _merge(lwp["template"], lwp.get("workerTemplatePatch") or {})
    elif kind == "Deployment" and "template" in spec:
        yield f"{name}/pod", spec["template"]


def _lwt_templates(where: str, spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    lwt = spec.get("leaderWorkerTemplate", {})
    if "leaderTemplate" in lwt:
        yield f"{where}/leader", lwt["leaderTemplate"]
    size = lwt.get("size", 1)
    if "workerTemplate" in lwt and (not isinstance(size, int) or size > 1 or "leaderTemplate" not in lwt):
        yield f"{where}/worker", lwt["workerTemplate"]


def validate_core(obj: dict[str, Any], report: Report) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        report.skipped.append(f"{obj['kind']}/{obj['metadata']['name']}: kubernetes-validate is not installed")
        return
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "<root>"
        report.problems.append(f"{obj['kind']}/{obj['metadata'].get('name')}: {path}: {e.message}")


def commands(objs: list[dict[str, Any]]) -> list[Cmd]:
    """Every engine/router command in the objects' pod templates, `sh -c` scripts included."""
    out = []
    for obj in objs:
        for where, tpl in pod_templates(obj):
            for c in tpl.get("spec", {}).get("containers", []):
                argv = list(c.get("command", [])) + list(c.get("args", []))
                env = tuple((e["name"], str(e["value"])) for e in c.get("env", []) if "value" in e)
                host = f"k8s:{where}"
                if argv[:2] == ["sh", "-c"] and len(argv) > 2:
                    out += [Cmd(host, host, x.argv, env + x.env) for x in extract_shell_commands(argv[2], host, host)]
                elif program(argv) != "other":
                    out.append(Cmd(host, host, tuple(argv), env))
    return out


def _router_wiring(objs: list[dict[str, Any]], cmds: list[Cmd]) -> list[str]:
    """Selectors select exactly the leader pods of their role; static URLs name every instance."""
    problems = []
    leaders: dict[str, list[dict[str, str]]] = {}
    replicas: dict[str, int] = {}
    for obj in objs:
        for where, tpl in pod_templates(obj):
            labels = tpl.get("metadata", {}).get("labels", {})
            if labels.get("llmctl.dev/role") in ("prefill", "decode"):
                leaders.setdefault(labels["llmctl.dev/role"], []).append(labels)
        if obj["kind"] == "RoleBasedGroup":
            for r in obj["spec"]["roles"]:
                replicas[r["name"]] = r["replicas"]
    for r in (c for c in cmds if program(c.argv) in ("vllm-router", "sglang-router")):
        for flag, role in (("--prefill-selector", "prefill"), ("--decode-selector", "decode")):
            for vals in flag_values(r.argv, flag):
                want = dict(v.split("=", 1) for v in vals)
                hits = [lab for lab in leaders.get(role, []) if all(lab.get(k) == v for k, v in want.items())]
                if not hits or any(lab.get("role") != "leader" for lab in hits):
                    problems.append(f"{r.where}: {flag} {' '.join(vals)} does not select exactly the {role} leaders")
        for flag, role in (("--prefill", "prefill"), ("--decode", "decode")):
            urls = [vals[0] for vals in flag_values(r.argv, flag) if vals]
            if urls and role in replicas and len(set(urls)) != replicas[role]:
                problems.append(f"{r.where}: router lists {len(set(urls))} {role} URLs for {replicas[role]} replicas")
            for url in urls:
                if not re.match(rf"^http://[a-z0-9-]+-{role}-\d+\.s-[a-z0-9-]+-{role}:\d+$", url):
                    problems.append(f"{r.where}: {url} is not an RBG {role} instance address")
    return problems


def kubectl_parse(text: str) -> str | None:
    """kubectl's own decoder, offline; None when it accepts the YAML (or kubectl is absent: see caller)."""
    exe = shutil.which("kubectl")
    assert exe
    env = dict(os.environ, KUBECONFIG=os.devnull)
    proc = subprocess.run(
        [exe, "annotate", "--local", "--dry-run=client", "-o", "name", "-f", "-", "llmctl.dev/validated=true"],
        input=text, capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    return None if proc.returncode == 0 else (proc.stderr.strip() or proc.stdout.strip())


def validate_k8s(objs: list[dict[str, Any]], text: str, *, use_kubectl: bool = True) -> Report:
    report = Report()
    for obj in objs:
        key = (obj.get("apiVersion"), obj.get("kind"))
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if key in CRD_FILES:
            report.problems += validate_custom(obj)
            report.checks.append(f"{name}: CRD openAPIV3Schema ({CRD_FILES[key]})")
            for where, tpl in pod_templates(obj):
                wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"}, "template": tpl}
                sub = Report()
                validate_core(wrapped, sub)
                report.problems += [p.replace("PodTemplate/x", f"{name} pod {where}") for p in sub.problems]
                report.skipped += sub.skipped[:1]
        else:
            validate_core(obj, report)
            report.checks.append(f"{name}: Kubernetes {K8S_VERSION} schema (strict)")
    cmds = commands(objs)
    for c in cmds:
        report.problems += [f"{c.where}: {p}" for p in check_argv(c.argv)]
    report.checks.append(f"{len(cmds)} container commands: pinned flag lists")
    from llmctl.plan.validate_lmcache import check_k8s
    from llmctl.plan.validate_topology import check_topology

    report.problems += check_topology(cmds)
    report.problems += _router_wiring(objs, cmds) + check_k8s(objs, cmds)
    if use_kubectl and shutil.which("kubectl") and os.environ.get("LLMCTL_PLAN_KUBECTL", "1") not in ("0", "false"):
        err = kubectl_parse(text)
        if err:
            report.problems.append(f"kubectl could not decode the YAML: {err}")
        else:
            report.checks.append("kubectl annotate --local --dry-run=client decodes every object")
    elif use_kubectl:
        report.skipped.append("kubectl not found: the kubectl decode check was skipped")
    report.skipped = sorted(set(report.skipped))
    return report
