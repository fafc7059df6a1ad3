"""What every renderer shares: options, the file type they return, names, images, and the router command."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace

import yaml

from llmctl import __version__
from llmctl.errors import InvalidInput, PlanError
from llmctl.plan import lmcache
from llmctl.plan.launch import served_name
from llmctl.plan.types import DEFAULT_IMAGES, ROUTER_VERSIONS, Plan
from llmctl.plan.weights import MODES, Weights, default_init_image

FORMATS = ("explain", "json", "shell", "compose", "lws", "disaggregatedset", "rbg")
FILE_FORMATS = ("shell", "compose", "lws", "disaggregatedset", "rbg")

DEFAULT_ROUTER_IMAGES = {"vllm": f"vllm/vllm-router:v{ROUTER_VERSIONS['vllm']}",
                         "sglang": f"lmsysorg/sglang-router:v{ROUTER_VERSIONS['sglang']}"}
"""Pinned router images; nothing is installed when a pod starts. Where each default comes from (docs/plans.md
lists them; --router-image overrides):
- vllm: vllm-project/router .buildkite/scripts/publish-release-images.sh pushes vllm/vllm-router:v<version> (multi-arch,
  plus latest) for every release; its Dockerfile.router puts the `vllm-router` binary on PATH. v0.1.17 is that
  scheme at the pinned router version; whether Docker Hub carries that exact tag was not checked offline.
- sglang: sgl-project/sglang .github/workflows/release-docker-gateway.yml pushes lmsysorg/sglang-router:v<version of
  sglang_router> (ENTRYPOINT python3 -m sglang_router.launch_router, docker/gateway.Dockerfile), the repository RBG's
  P/D example uses (lmsysorg/sglang-router:v0.2.4); v0.3.2 is that scheme at the pinned router version. Whether
  Docker Hub still carries the tag (the gateway README now points at lmsysorg/sgl-model-gateway) was not checked.
- LMCache P/D: the proxy is a script inside the engine image (lmcache.PROXY_SCRIPT_IN_IMAGE), so the engine image."""


WEIGHTS_VOLUMES = ("emptydir", "pvc")
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
DNS_LABEL = re.compile(rf"^{_DNS_LABEL}$")
"""A namespace name (RFC 1123 label)."""
DNS_SUBDOMAIN = re.compile(rf"^(?=.{{1,253}}$){_DNS_LABEL}(?:\.{_DNS_LABEL})*$")
"""Secret and PersistentVolumeClaim names (RFC 1123 subdomain)."""
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF = re.compile(rf"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
                       r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$")
"""A container image reference as distribution's grammar spells it (host[:port]/path[:tag][@digest])."""
HF_TOKEN_SECRET = "hf-token"
"""The Secret (key `token`) `hf:` pods read HF_TOKEN from; required for gated models (`--hf-token-secret`)."""


@dataclass(frozen=True)
class RenderOptions:
    """How to render a plan. `weights` is where the engines load the model from; None means the Hugging Face
    id the model came from (catalog and Hugging Face models), and is refused for other models."""

    image: str | None = None
    router_image: str | None = None
    name: str | None = None  # base name of Kubernetes objects and compose services
    namespace: str = "default"
    hash_seed: str | None = None  # PYTHONHASHSEED shared by LMCache P/D engines; None: a random one per rendering
    weights: Weights | None = None
    weights_mode: str = "init-container"  # oci: init-container (llmctl export) or image-volume
    weights_volume: str = "emptydir"  # emptydir (sized from the weights) or pvc:CLAIM (shared cache)
    pull_secret: str | None = None  # registry credentials: imagePullSecrets / the init container's docker config
    init_image: str | None = None  # the init container image [default: ghcr.io/llmctl/llmctl-init:<version>]
    hf_token_secret: str = HF_TOKEN_SECRET
    insecure_registry: str | None = None
    """`oci:` weights from a registry the user allows plain HTTP or unverified TLS (LLMCTL_INSECURE_REGISTRIES,
    set by the API layer): the export step gets the same allowance for that registry alone."""

    @property
    def export_env(self) -> dict[str, str]:
        """What the `llmctl export` step needs besides the reference: the insecure allowance, if any."""
        return {"LLMCTL_INSECURE_REGISTRIES": self.insecure_registry} if self.insecure_registry else {}

    def __post_init__(self) -> None:
        if self.weights_mode not in MODES:
            raise PlanError(f"--weights must be one of {', '.join(MODES)}, not {self.weights_mode!r}")
        kind, _, claim = self.weights_volume.partition(":")
        if kind not in WEIGHTS_VOLUMES or (kind == "pvc") != bool(claim):
            raise PlanError(f"--weights-volume must be emptydir or pvc:CLAIM, not {self.weights_volume!r}")
        self._check_names(claim)

    def _check_names(self, claim: str) -> None:
        """Names that go into the objects as they are: what the API server or the kubelet would refuse later
        (or a value that is not one name at all) is refused here, in one line."""
        if not DNS_LABEL.match(self.namespace):
            raise InvalidInput(f"--namespace {self.namespace!r} is not a Kubernetes namespace name "
                               "(lowercase letters, digits and '-', at most 63)")
        secrets_ = (("--pull-secret", self.pull_secret), ("--hf-token-secret", self.hf_token_secret),
                    ("--weights-volume pvc:", claim or None))
        for flag, value in secrets_:
            if value is not None and not DNS_SUBDOMAIN.match(value):
                raise InvalidInput(f"{flag} {value!r} is not a Kubernetes object name "
                                   "(lowercase letters, digits, '-' and '.', at most 253)")
        for flag, value in (("--image", self.image), ("--router-image", self.router_image),
                            ("--init-image", self.init_image)):
            if value is not None and not IMAGE_REF.match(value):
                raise InvalidInput(f"{flag} {value!r} is not an image reference (REGISTRY/REPOSITORY[:TAG][@DIGEST])")

    @property
    def weights_claim(self) -> str | None:
        """The PersistentVolumeClaim of `--weights-volume pvc:CLAIM`, else None (an emptyDir)."""
        return self.weights_volume.partition(":")[2] or None

    @property
    def init_image_ref(self) -> str:
        return self.init_image or default_init_image(__version__)


def with_hash_seed(plan: Plan, opts: RenderOptions) -> RenderOptions:
    """A fresh random PYTHONHASHSEED per rendering for LMCache P/D (a fixed, published seed invites
    hash-flooding, as vLLM's launcher warns), shared by every file of that rendering."""
    if not lmcache.is_pd(plan) or opts.hash_seed is not None:
        return opts
    return replace(opts, hash_seed=str(secrets.randbelow(2**32 - 1) + 1))


HF_SOURCES = ("catalog", "hf-cache", "hf")
"""Model profiles whose serve_id is a Hugging Face id the engines can download themselves."""


def model_weights(plan: Plan, opts: RenderOptions) -> Weights:
    """Where this rendering's engines load the model: the explicit source, else the Hugging Face id of a
    catalog or Hugging Face model. Anything else (a local folder, a GGUF model) must say where the pods
    find it: its path on this machine means nothing inside a pod."""
    if opts.weights is not None:
        return opts.weights
    m = plan.request.model
    if m.source in HF_SOURCES:
        return Weights("hf", m.serve_id)
    what = {"local": "a local folder", "gguf": "a GGUF model from the llmctl store"}.get(m.source, f"a {m.source} model")
    raise PlanError(
        f"{m.name} is {what}: say where the pods find its weights",
        hint="--model-source hf:ORG/NAME, oci:REGISTRY/REPO:TAG (push it first: llmctl push) or pvc:CLAIM/PATH",
    )


def served_plan(plan: Plan, model: str) -> Plan:
    """The plan with the engines pointed at `model` (what `vllm serve` / `--model-path` receive)."""
    if plan.request.model.serve_id == model:
        return plan
    return replace(plan, request=replace(plan.request, model=replace(plan.request.model, serve_id=model)))


@dataclass(frozen=True)
class RenderedFile:
    path: str
    content: str
    executable: bool = False


def dns_label(text: str, limit: int = 40) -> str:
    """A DNS-1035 label (lowercase, digits, '-', starts with a letter) no longer than `limit`."""
    s = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    s = re.sub(r"-+", "-", s)
    if not s or not s[0].isalpha():
        s = "m-" + s
    return s[:limit].rstrip("-") or "model"


def base_name(plan: Plan, opts: RenderOptions) -> str:
    """--name, else the model's own name: its Hugging Face id's last part, or for a folder the model name."""
    if opts.name:
        return dns_label(opts.name)
    m = plan.request.model
    sid = m.name if m.serve_id.startswith(("/", "$")) else m.serve_id
    return dns_label(sid.rstrip("/").rsplit("/", 1)[-1])


def engine_image(plan: Plan, opts: RenderOptions) -> str:
    return opts.image or DEFAULT_IMAGES[plan.engine]


def router_image(plan: Plan, opts: RenderOptions) -> str:
    if lmcache.is_pd(plan):
        return opts.router_image or engine_image(plan, opts)
    return opts.router_image or DEFAULT_ROUTER_IMAGES[plan.engine]


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True


def dump_yaml(doc: object) -> str:
    """YAML without anchors/aliases (shared sub-objects are written out in full, as kubectl users expect)."""
    return yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, width=120)


def header_lines(plan: Plan) -> list[str]:
    """A short provenance block for rendered files."""
    req = plan.request
    roles = ", ".join(f"{r.instances}x {r.name} ({r.shape})" for r in plan.roles)
    return [
        (f"llmctl {__version__} launch plan: {served_name(plan)} on {plan.nodes} node(s) of "
         f"{req.gpus_per_node}x {req.gpu.name}, {plan.mode}: {roles}"),
        f"{plan.engine} {plan.engine_version}; every flag checked against the pinned flag list before printing",
    ]
