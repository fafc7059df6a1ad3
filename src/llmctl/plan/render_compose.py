"""`--format compose`: the plan as one docker compose file for a single multi-GPU host.

Services use the host network (the engines' ports, NIXL side channels and the router all meet on
127.0.0.1, as on a bare host) and host IPC (NCCL needs shared memory); each engine reserves its GPU ids.
"""

from __future__ import annotations

from typing import Any

from llmctl.errors import PlanError
from llmctl.plan import lmcache
from llmctl.plan.launch import Proc, processes
from llmctl.plan.render_common import (
    RenderedFile,
    RenderOptions,
    base_name,
    dump_yaml,
    engine_image,
    header_lines,
    model_weights,
    router_image,
    served_plan,
    with_hash_seed,
)
from llmctl.plan.types import Plan
from llmctl.plan.weights import (
    EXPORT_SCRIPT,
    HF_HOME,
    INIT_CONTAINER,
    MODELS_DIR,
    REGISTRY_AUTH_DIR,
    STORE_DIR,
    Weights,
)

LOCALHOST = "127.0.0.1"
HF_CACHE = f"${{HF_HOME:-~/.cache/huggingface}}:{HF_HOME}"
"""`hf:` weights: the host's Hugging Face cache, where the engine containers keep theirs (HF_HOME)."""
DOCKER_CONFIG = "${DOCKER_CONFIG:-~/.docker}"
"""`oci:` weights: the exporting service reads the registry credentials of the user who runs compose."""
MODELS_VOLUME = "models"


def _weights_service(opts: RenderOptions, weights: Weights) -> dict[str, Any]:
    """`oci:` weights: a one-shot service exports the model into a named volume; engines wait for it to
    complete and mount the volume read-only."""
    return {
        "image": opts.init_image_ref,
        "entrypoint": ["sh", "-c"],
        "command": [EXPORT_SCRIPT],
        "environment": {"MODEL_REF": weights.ref, "MODEL_DIR": weights.folder, "LLMCTL_HOME": STORE_DIR,
                        "DOCKER_CONFIG": REGISTRY_AUTH_DIR, **opts.export_env},
        "volumes": [f"{MODELS_VOLUME}:{MODELS_DIR}", f"{DOCKER_CONFIG}:{REGISTRY_AUTH_DIR}:ro"],
        "user": "0:0",  # reads the host user's docker config (mode 0600) and writes a root-owned named volume
        "restart": "no",
    }


def _engine_service(plan: Plan, opts: RenderOptions, weights: Weights, p: Proc) -> dict[str, Any]:
    env = {k: v for k, v in p.env if k != "CUDA_VISIBLE_DEVICES"}
    if weights.kind == "hf":
        env["HF_HOME"] = HF_HOME
        env["HF_TOKEN"] = "${HF_TOKEN:-}"
    else:
        env["HF_HUB_OFFLINE"] = "1"
    devices = [{"driver": "nvidia", "device_ids": [str(g) for g in p.gpu_ids], "capabilities": ["gpu"]}]
    svc: dict[str, Any] = {
        "image": engine_image(plan, opts),
        "entrypoint": list(p.argv[:1]),
        "command": list(p.argv[1:]),
        "network_mode": "host",
        "ipc": "host",
        "environment": env,
        "volumes": [HF_CACHE] if weights.kind == "hf" else [f"{MODELS_VOLUME}:{MODELS_DIR}:ro"],
        "deploy": {"resources": {"reservations": {"devices": devices}}},
        "restart": "unless-stopped",
    }
    if weights.kind == "oci":
        svc["depends_on"] = {INIT_CONTAINER: {"condition": "service_completed_successfully"}}
    if p.port:
        svc["healthcheck"] = {
            "test": ["CMD-SHELL", f"curl -sf http://{LOCALHOST}:{p.port}/health || exit 1"],
            "interval": "30s",
            "start_period": "30m",
        }
    return svc


def render_compose(plan: Plan, opts: RenderOptions | None = None) -> list[RenderedFile]:
    opts = with_hash_seed(plan, opts or RenderOptions())
    weights = model_weights(plan, opts)
    if weights.kind == "pvc":
        raise PlanError("pvc: weights are a Kubernetes volume; compose cannot mount a PersistentVolumeClaim",
                        hint="use --model-source hf:ID or oci:REF, or a Kubernetes format")
    plan = served_plan(plan, weights.folder)
    if plan.nodes > 1:
        raise PlanError(
            f"compose describes one host, and this plan needs {plan.nodes} nodes",
            hint="use --format shell or --format lws, or a plan that fits one node (--nodes 1)",
        )
    services: dict[str, dict] = {}
    if weights.kind == "oci":
        services[INIT_CONTAINER] = _weights_service(opts, weights)
    engines = []
    procs = processes(plan, lambda node: LOCALHOST, router_addr=LOCALHOST, hash_seed=opts.hash_seed or "0",
                      proxy_script=lmcache.PROXY_SCRIPT_IN_IMAGE)
    for p in procs:
        if p.role == "router":
            services[p.name] = {
                "image": router_image(plan, opts),
                "entrypoint": list(p.argv[:1]),
                "command": list(p.argv[1:]),
                "network_mode": "host",
                "depends_on": list(engines),
                "restart": "unless-stopped",
            }
            continue
        services[p.name] = _engine_service(plan, opts, weights, p)
        engines.append(p.name)
    doc: dict[str, Any] = {"name": base_name(plan, opts), "services": services}
    if weights.kind == "oci":
        doc["volumes"] = {MODELS_VOLUME: {}}
    text = "".join(f"# {line}\n" for line in header_lines(plan)) + dump_yaml(doc)
    return [RenderedFile("compose.yaml", text)]
