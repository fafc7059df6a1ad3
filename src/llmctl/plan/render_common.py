"""What every renderer shares: options, the file type they return, names, images, and the router command."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from llmctl.plan.types import DEFAULT_IMAGES, ROUTER_VERSIONS, Plan

FORMATS = ("explain", "json", "shell", "compose", "lws", "disaggregatedset", "rbg")
FILE_FORMATS = ("shell", "compose", "lws", "disaggregatedset", "rbg")

DEFAULT_ROUTER_IMAGES = {"vllm": "python:3.12-slim", "sglang": "lmsysorg/sglang-router:v0.3.2"}
"""Where each default comes from (docs/plans.md lists them; --router-image overrides):
- vllm: vllm-project/router names no published image (its README installs `pip install vllm-router`), so the router
  runs from PyPI, pinned to ROUTER_VERSIONS, in the official python:3.12-slim image.
- sglang: sgl-project/sglang .github/workflows/release-docker-gateway.yml pushes lmsysorg/sglang-router:v<version of
  sglang_router> (ENTRYPOINT python3 -m sglang_router.launch_router, docker/gateway.Dockerfile), the repository RBG's
  P/D example uses (lmsysorg/sglang-router:v0.2.4); v0.3.2 is that scheme at the pinned router version. Whether
  Docker Hub still carries the tag (the gateway README now points at lmsysorg/sgl-model-gateway) was not checked.
- LMCache P/D: the proxy is a script inside the engine image (lmcache.PROXY_SCRIPT_IN_IMAGE), so the engine image."""


@dataclass(frozen=True)
class RenderOptions:
    image: str | None = None
    router_image: str | None = None
    name: str | None = None  # base name of Kubernetes objects and compose services
    namespace: str = "default"
    hash_seed: str | None = None  # PYTHONHASHSEED shared by LMCache P/D engines; None: a random one per rendering


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
    if opts.name:
        return dns_label(opts.name)
    return dns_label(plan.request.model.serve_id.rstrip("/").rsplit("/", 1)[-1])


def engine_image(plan: Plan, opts: RenderOptions) -> str:
    return opts.image or DEFAULT_IMAGES[plan.engine]


def router_image(plan: Plan, opts: RenderOptions) -> str:
    from llmctl.plan import lmcache

    if lmcache.is_pd(plan):
        return opts.router_image or engine_image(plan, opts)
    return opts.router_image or DEFAULT_ROUTER_IMAGES[plan.engine]


def router_command(plan: Plan, argv: list[str], image: str) -> list[str]:
    """The container command for the router: vllm-router installed at the pinned version when the image is
    the default slim Python image, else run as is (an image that ships the router, or LMCache's proxy script)."""
    if argv[:1] == ["vllm-router"] and image == DEFAULT_ROUTER_IMAGES["vllm"]:
        pin = f"vllm-router=={ROUTER_VERSIONS['vllm']}"
        return ["sh", "-c", f"pip install --no-cache-dir {pin} && exec {shlex.join(argv)}"]
    return list(argv)


def dump_yaml(doc: object) -> str:
    """YAML without anchors/aliases (shared sub-objects are written out in full, as kubectl users expect)."""
    import yaml

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: object) -> bool:
            return True

    return yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, width=120)


def header_lines(plan: Plan) -> list[str]:
    """A short provenance block for rendered files."""
    from llmctl import __version__

    req = plan.request
    roles = ", ".join(f"{r.instances}x {r.name} ({r.shape})" for r in plan.roles)
    return [
        (f"llmctl {__version__} launch plan: {req.model.serve_id} on {plan.nodes} node(s) of "
         f"{req.gpus_per_node}x {req.gpu.name}, {plan.mode}: {roles}"),
        f"{plan.engine} {plan.engine_version}; every flag checked against the pinned flag list before printing",
    ]
