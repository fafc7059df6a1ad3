"""`--format compose`: the plan as one docker compose file for a single multi-GPU host.

Services use the host network (the engines' ports, NIXL side channels and the router all meet on
127.0.0.1, as on a bare host) and host IPC (NCCL needs shared memory); each engine reserves its GPU ids.
"""

from __future__ import annotations

from llmctl.errors import PlanError
from llmctl.plan import lmcache
from llmctl.plan.launch import processes
from llmctl.plan.render_common import (
    RenderedFile,
    RenderOptions,
    dump_yaml,
    engine_image,
    header_lines,
    router_command,
    router_image,
)
from llmctl.plan.types import Plan

LOCALHOST = "127.0.0.1"
HF_CACHE = "${HF_HOME:-~/.cache/huggingface}:/root/.cache/huggingface"


def render_compose(plan: Plan, opts: RenderOptions | None = None) -> list[RenderedFile]:
    opts = lmcache.with_hash_seed(plan, opts or RenderOptions())
    if plan.nodes > 1:
        raise PlanError(
            f"compose describes one host, and this plan needs {plan.nodes} nodes",
            hint="use --format shell or --format lws, or a plan that fits one node (--nodes 1)",
        )
    services: dict[str, dict] = {}
    engines = []
    procs = processes(plan, lambda node: LOCALHOST, router_addr=LOCALHOST, hash_seed=opts.hash_seed or "0",
                      proxy_script=lmcache.PROXY_SCRIPT_IN_IMAGE)
    for p in procs:
        if p.role == "router":
            image = router_image(plan, opts)
            command = router_command(plan, list(p.argv), image)
            services[p.name] = {
                "image": image,
                "entrypoint": command[:1],
                "command": command[1:],
                "network_mode": "host",
                "depends_on": list(engines),
                "restart": "unless-stopped",
            }
            continue
        env = {k: v for k, v in p.env if k != "CUDA_VISIBLE_DEVICES"}
        env["HF_TOKEN"] = "${HF_TOKEN:-}"
        svc = {
            "image": engine_image(plan, opts),
            "entrypoint": list(p.argv[:1]),
            "command": list(p.argv[1:]),
            "network_mode": "host",
            "ipc": "host",
            "environment": env,
            "volumes": [HF_CACHE],
            "deploy": {
                "resources": {
                    "reservations": {
                        "devices": [
                            {"driver": "nvidia", "device_ids": [str(g) for g in p.gpu_ids], "capabilities": ["gpu"]}
                        ]
                    }
                }
            },
            "restart": "unless-stopped",
        }
        if p.port:
            svc["healthcheck"] = {
                "test": ["CMD-SHELL", f"curl -sf http://{LOCALHOST}:{p.port}/health || exit 1"],
                "interval": "30s",
                "start_period": "30m",
            }
        services[p.name] = svc
        engines.append(p.name)
    doc = {"name": _project(plan, opts), "services": services}
    text = "".join(f"# {line}\n" for line in header_lines(plan)) + dump_yaml(doc)
    return [RenderedFile("compose.yaml", text)]


def _project(plan: Plan, opts: RenderOptions) -> str:
    from llmctl.plan.render_common import base_name

    return base_name(plan, opts)
