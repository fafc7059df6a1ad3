"""Engine and router command lines for a plan, shared by every renderer.

`engine_argv` and `router_argv` build one argv from explicit arguments (addresses are strings the renderer
chooses: `${NODE0_ADDR}` for shell, `127.0.0.1` for compose, `$(LWS_LEADER_ADDRESS)` for Kubernetes).
`processes` lays a plan out as processes on numbered nodes for the bare-host renderers (shell, compose).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from llmctl.plan import lmcache, memory
from llmctl.plan.role_settings import role_settings
from llmctl.plan.types import Plan, Role
from llmctl.plan.validate_vllm import ROUTER_KV_MODES, SGLANG_BACKENDS

ROUTER_PORT = 8000
ENGINE_PORT = 8000  # a lone aggregated instance serves directly on 8000
PREFILL_PORT_BASE = 8100
DECODE_PORT_BASE = 8200
SERVE_PORT_BASE = 8300  # aggregated instances behind a router
MASTER_PORT = 29500  # torch.distributed rendezvous of a multi-node instance
DP_RPC_PORT = 13345  # vLLM data-parallel coordination
NIXL_SIDE_CHANNEL_BASE = 5600  # vLLM default VLLM_NIXL_SIDE_CHANNEL_PORT; + first GPU id per instance
MOONCAKE_BOOTSTRAP_BASE = 8998  # vLLM default VLLM_MOONCAKE_BOOTSTRAP_PORT; + first GPU id per instance
SGLANG_BOOTSTRAP_PORT = 8998  # sglang default --disaggregation-bootstrap-port
SGLANG_DIST_PORT = 5000
RAY_PORT = 6379


def served_name(plan: Plan) -> str:
    """The model name clients send: the Hugging Face id, or for a folder the model's own name."""
    sid = plan.request.model.serve_id
    return plan.request.model.name if sid.startswith(("/", ".", "$")) else sid


def kv_transfer_config(plan: Plan, role: str, instance: int = 0) -> dict | None:
    """The --kv-transfer-config JSON for a role, or None when the plan has no connector for it."""
    conn = plan.kv_connector
    if conn is None:
        return None
    if plan.mode != "disaggregated":
        return {"kv_connector": conn, "kv_role": "kv_both"}
    cfg: dict = {"kv_connector": conn, "kv_role": "kv_producer" if role == "prefill" else "kv_consumer"}
    if conn == "MooncakeConnector":
        cfg["kv_connector_extra_config"] = {"mooncake_protocol": "rdma"}
    if conn == lmcache.CONNECTOR:
        cfg["kv_connector_extra_config"] = lmcache.kv_extra_config(role, instance)
    return cfg


@dataclass(frozen=True)
class Rank:
    """Where one engine process sits in its instance and how it finds the others."""

    port: int = ENGINE_PORT
    nnodes: int = 1
    node_rank: int | str = 0  # a string for Kubernetes workers: "$(LWS_WORKER_INDEX)"
    head_addr: str | None = None  # address of the instance's rank-0 node
    dp_size: int = 1  # data-parallel replicas inside this process (aggregated, one node)
    dp: dict[str, str] = field(default_factory=dict)  # vLLM multi-node DP flags (--data-parallel-*)
    executor: str = "mp"
    bootstrap_port: int = SGLANG_BOOTSTRAP_PORT  # sglang prefill; unique per instance on a host
    instance: int = 0  # index in its role: names LMCache's per-instance RPC socket


def quant_flags(plan: Plan, engine: str) -> list[str]:
    """--dtype / --quantization for the weights the plan serves. A method the checkpoint declares is never
    passed: both engines read it from config.json, and vLLM refuses to start when --quantization names another
    (ModelConfig._verify_quantization). Online FP8 of a 16-bit checkpoint is --quantization fp8."""
    m = plan.request.model
    if m.quant.quantized:
        return []
    if plan.weight_dtype == "fp8":
        return ["--quantization", "fp8"]
    return ["--dtype", "bfloat16"]


def dp_group_flags(role: Role, node_rank: int, local: int, head_addr: str, start_rank: str | None = None) -> dict[str, str]:
    """vLLM data parallelism of one lockstep group: every node runs `vllm serve` with its local DP ranks; the
    head (node rank 0) serves the API, the others run --headless from their first DP rank on."""
    dp: dict[str, str] = {"--data-parallel-size": str(role.shape.dp)}
    if role.nodes_per_instance > 1:
        dp.update({"--data-parallel-size-local": str(local), "--data-parallel-address": head_addr,
                   "--data-parallel-rpc-port": str(DP_RPC_PORT)})
        if node_rank:
            dp["--data-parallel-start-rank"] = start_rank or str(node_rank * local)
            dp["--headless"] = "1"
    return dp


def engine_argv(plan: Plan, role: Role, rank: Rank) -> list[str]:
    if plan.engine == "sglang":
        return _sglang_argv(plan, role, rank)
    return _vllm_argv(plan, role, rank)


def _vllm_argv(plan: Plan, role: Role, rank: Rank) -> list[str]:
    m = plan.request.model
    headless = str(rank.node_rank) != "0" or rank.dp.get("--headless") == "1"
    argv = ["vllm", "serve", m.serve_id]
    if not headless:
        argv += ["--host", "0.0.0.0", "--port", str(rank.port), "--served-model-name", served_name(plan)]
    argv += ["--tensor-parallel-size", str(role.shape.tp)]
    if role.shape.pp > 1:
        argv += ["--pipeline-parallel-size", str(role.shape.pp)]
    if rank.dp_size > 1 and not rank.dp:
        argv += ["--data-parallel-size", str(rank.dp_size)]
    for flag, value in rank.dp.items():
        if flag != "--headless":
            argv += [flag, value]
    if role.expert_parallel:
        argv += ["--enable-expert-parallel"]
    argv += quant_flags(plan, "vllm")
    if plan.kv_dtype == "fp8":
        argv += ["--kv-cache-dtype", "fp8"]
    rs = role_settings(plan, role)
    argv += [
        "--max-model-len", str(plan.max_model_len),
        "--max-num-seqs", str(role.max_num_seqs),
        "--max-num-batched-tokens", str(memory.MAX_NUM_BATCHED_TOKENS),
        "--gpu-memory-utilization", f"{rs.gpu_memory_utilization:.2f}",
    ]
    if rs.block_size is not None:
        argv += ["--block-size", str(rs.block_size)]
    if rs.hybrid_kv_cache:
        argv += ["--no-disable-hybrid-kv-cache-manager"]
    cfg = kv_transfer_config(plan, role.name, rank.instance)
    if cfg is not None:
        argv += ["--kv-transfer-config", json.dumps(cfg, separators=(",", ":"))]
    if lmcache.is_pd(plan):  # as vLLM's and LMCache's P/D launchers: KV comes from the prefiller, not vLLM's cache
        argv += ["--no-enable-prefix-caching"]
    if rank.executor == "ray" and rank.nnodes > 1 and role.shape.dp == 1:
        argv += ["--distributed-executor-backend", "ray"]
    elif rank.nnodes > 1 and role.shape.dp == 1:
        argv += [
            "--distributed-executor-backend", "mp",
            "--nnodes", str(rank.nnodes),
            "--node-rank", str(rank.node_rank),
            "--master-addr", str(rank.head_addr),
            "--master-port", str(MASTER_PORT),
        ]
    if headless:
        argv += ["--headless"]
    return argv


def _sglang_argv(plan: Plan, role: Role, rank: Rank) -> list[str]:
    m = plan.request.model
    argv = ["python3", "-m", "sglang.launch_server", "--model-path", m.serve_id,
            "--host", "0.0.0.0", "--port", str(rank.port), "--served-model-name", served_name(plan),
            "--tp-size", str(role.shape.tp * role.shape.dp)]
    if role.shape.pp > 1:
        argv += ["--pp-size", str(role.shape.pp)]
    if role.shape.dp > 1:  # DP attention: --tp-size counts every GPU of the group, --dp-size the attention ranks
        argv += ["--dp-size", str(role.shape.dp), "--enable-dp-attention"]
    elif rank.dp_size > 1:
        argv += ["--dp-size", str(rank.dp_size)]
    if role.expert_parallel:
        argv += ["--ep-size", str(role.shape.ep_size)]
    argv += quant_flags(plan, "sglang")
    if plan.kv_dtype == "fp8":
        argv += ["--kv-cache-dtype", "fp8_e4m3"]
    argv += [
        "--context-length", str(plan.max_model_len),
        "--max-running-requests", str(role.max_num_seqs * role.shape.dp),  # SGLang splits it over DP ranks
        "--chunked-prefill-size", str(memory.MAX_NUM_BATCHED_TOKENS),
        "--mem-fraction-static", f"{role_settings(plan, role).mem_fraction_static:.2f}",
    ]
    if plan.mode == "disaggregated":
        argv += ["--disaggregation-mode", role.name,
                 "--disaggregation-transfer-backend", SGLANG_BACKENDS[plan.kv_connector or "NixlConnector"]]
        if role.name == "prefill":
            argv += ["--disaggregation-bootstrap-port", str(rank.bootstrap_port)]
    if rank.nnodes > 1:
        argv += ["--dist-init-addr", f"{rank.head_addr}:{SGLANG_DIST_PORT}",
                 "--nnodes", str(rank.nnodes), "--node-rank", str(rank.node_rank)]
    return argv


@dataclass(frozen=True)
class Endpoint:
    """One HTTP endpoint of an instance head, as the router reaches it."""

    role: str
    url: str
    bootstrap: str | None = None  # Mooncake / sglang bootstrap port on the prefill side


def router_argv(plan: Plan, endpoints: list[Endpoint] | None, *, port: int = ROUTER_PORT,
                selectors: dict[str, list[str]] | None = None, namespace: str | None = None,
                worker_port: int | None = None) -> list[str]:
    """vllm-router (vLLM) or sglang-router: P/D mode with --prefill/--decode, or --worker-urls for several
    aggregated instances; with `selectors`, Kubernetes service discovery instead of URLs."""
    pd = plan.mode == "disaggregated"
    if plan.engine == "sglang":
        argv = ["python3", "-m", "sglang_router.launch_router"]
        if pd:
            argv += ["--pd-disaggregation"]
    else:
        argv = ["vllm-router", "--policy", "consistent_hash" if pd else "cache_aware"]
        if pd:
            argv += ["--vllm-pd-disaggregation", "--kv-connector", ROUTER_KV_MODES[plan.kv_connector or "NixlConnector"]]
    if selectors is not None:
        argv += ["--service-discovery", "--service-discovery-port", str(worker_port)]
        if namespace:
            argv += ["--service-discovery-namespace", namespace]
        for key, labels in selectors.items():
            argv += [key, *labels]
    else:
        serve = [e.url for e in endpoints or [] if e.role == "serve"]
        if serve:
            argv += ["--worker-urls", *serve]
        for e in endpoints or []:
            if e.role == "prefill":
                argv += ["--prefill", e.url] + ([e.bootstrap] if e.bootstrap else [])
        for e in endpoints or []:
            if e.role == "decode":
                argv += ["--decode", e.url]
    argv += ["--host", "0.0.0.0", "--port", str(port)]
    return argv


# -- bare hosts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """One process on one node, for the shell and compose renderers."""

    name: str
    role: str  # serve | prefill | decode | router | ray-worker
    node: int
    gpu_ids: tuple[int, ...]
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    port: int | None = None
    before: tuple[tuple[str, ...], ...] = ()  # commands run first (ray start --head)


def processes(plan: Plan, addr: Callable[[int], str], *, router_addr: str | None = None, hash_seed: str = "0",
              proxy_script: str = lmcache.PROXY_SCRIPT) -> list[Proc]:
    """Every process of the plan on nodes 0..N-1, with `addr(n)` the address other nodes reach node n at.
    LMCache P/D only: `router_addr` is where prefillers reach the proxy (default: node 0), `hash_seed` the
    PYTHONHASHSEED every engine shares, `proxy_script` the proxy's path where the router runs."""
    req = plan.request
    procs: list[Proc] = []
    endpoints: list[Endpoint] = []
    if plan.mode == "aggregated":
        role = plan.roles[0]
        if role.nodes_per_instance == 1 and plan.engine == "vllm" and req.executor == "mp" and not req.model.is_moe:
            return _aggregated_dp(plan, role, addr)  # dense replicas are independent: one --data-parallel-size
        behind_router = role.instances > 1
        slot: dict[int, int] = {}
        for i in range(role.instances):
            procs += _instance(plan, role, i, addr, slot, SERVE_PORT_BASE if behind_router else ENGINE_PORT, endpoints)
        if behind_router:
            procs.append(Proc("router", "router", 0, (), tuple(router_argv(plan, endpoints)), port=ROUTER_PORT))
        return procs
    slot = {}
    lm = None
    if lmcache.is_pd(plan):
        dec = plan.role("decode")
        hosts = [addr(plan.placements_of("decode", i)[0].node) for i in range(dec.instances)]
        lm = _LMCache(router_addr or addr(0), hash_seed, lmcache.decoder_slots(hosts))
    for role in plan.roles:
        base = PREFILL_PORT_BASE if role.name == "prefill" else DECODE_PORT_BASE
        for i in range(role.instances):
            procs += _instance(plan, role, i, addr, slot, base, endpoints, lm)
    if lm is not None:
        argv = lmcache.proxy_argv([hostport(e) for e in endpoints if e.role == "prefill"],
                                  [hostport(e) for e in endpoints if e.role == "decode"], plan.role("decode").shape.tp,
                                  script=proxy_script)
    else:
        argv = router_argv(plan, endpoints)
    procs.append(Proc("router", "router", 0, (), tuple(argv), port=ROUTER_PORT))
    return procs


@dataclass(frozen=True)
class _LMCache:
    """What LMCache P/D engines on bare hosts share: where the proxy is, the hash seed, decoder port slots."""

    proxy_host: str
    hash_seed: str
    decoder_slots: list[tuple[int, int]]


def hostport(e: Endpoint) -> tuple[str, int]:
    """(host, port) of an endpoint URL http://HOST:PORT."""
    host, port = e.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _aggregated_dp(plan: Plan, role: Role, addr: Callable[[int], str]) -> list[Proc]:
    """Single-node instances: one `vllm serve` per node with --data-parallel-size; across nodes vLLM's own
    multi-node data parallelism (head serves the API, the other nodes run --headless)."""
    per_node: dict[int, list[tuple[int, ...]]] = {}
    for p in plan.placements:
        per_node.setdefault(p.node, []).append(p.gpu_ids)
    total = role.instances
    procs, start = [], 0
    for node in sorted(per_node):
        gpus = tuple(g for ids in per_node[node] for g in ids)
        local = len(per_node[node])
        dp: dict[str, str] = {}
        if len(per_node) > 1:
            dp = {"--data-parallel-size": str(total), "--data-parallel-size-local": str(local),
                  "--data-parallel-address": addr(0), "--data-parallel-rpc-port": str(DP_RPC_PORT)}
            if node > 0:
                dp["--data-parallel-start-rank"] = str(start)
                dp["--headless"] = "1"
        rank = Rank(port=ENGINE_PORT, dp_size=local, dp=dp, executor="mp")
        argv = engine_argv(plan, role, rank)
        env = (("CUDA_VISIBLE_DEVICES", ",".join(map(str, gpus))),)
        procs.append(Proc(f"serve-node{node}", "serve", node, gpus, tuple(argv), env,
                          ENGINE_PORT if node == 0 else None))
        start += local
    return procs


def _instance(plan: Plan, role: Role, i: int, addr: Callable[[int], str], slot: dict[int, int],
              port_base: int, endpoints: list[Endpoint], lm: _LMCache | None = None) -> list[Proc]:
    places = plan.placements_of(role.name, i)
    head = places[0]
    local = slot.get(head.node, 0)
    slot[head.node] = local + 1
    port = port_base if port_base == ENGINE_PORT else port_base + local
    out = []
    ray = plan.request.executor == "ray" and role.shape.dp == 1
    for p in places:
        dp = (dp_group_flags(role, p.node_rank, len(p.gpu_ids) // role.shape.tp, addr(head.node))
              if plan.engine == "vllm" and role.shape.dp > 1 else {})
        rank = Rank(port=port, nnodes=p.nnodes, node_rank=p.node_rank, head_addr=addr(head.node), dp=dp,
                    executor=plan.request.executor, bootstrap_port=SGLANG_BOOTSTRAP_PORT + head.gpu_ids[0], instance=i)
        env = [("CUDA_VISIBLE_DEVICES", ",".join(map(str, p.gpu_ids)))]
        boot = None
        if lm is not None:
            index, count = lm.decoder_slots[i] if role.name == "decode" else (0, 1)
            env += lmcache.engine_env(plan, role.name, proxy_host=lm.proxy_host, hash_seed=lm.hash_seed,
                                      index=index, count=count)
        elif plan.mode == "disaggregated" and plan.engine == "vllm":
            env.append(("VLLM_NIXL_SIDE_CHANNEL_HOST", addr(p.node)))
            if plan.kv_connector == "MooncakeConnector":
                boot = str(MOONCAKE_BOOTSTRAP_BASE + p.gpu_ids[0])
                env.append(("VLLM_MOONCAKE_BOOTSTRAP_PORT", boot))
            else:
                env.append(("VLLM_NIXL_SIDE_CHANNEL_PORT", str(NIXL_SIDE_CHANNEL_BASE + p.gpu_ids[0])))
        if plan.mode == "disaggregated" and plan.engine == "sglang" and role.name == "prefill":
            boot = str(rank.bootstrap_port)
        name = f"{role.name}-{i}" + (f"-rank{p.node_rank}" if p.nnodes > 1 else "")
        if ray and p.nnodes > 1 and p.node_rank > 0:
            argv = ("ray", "start", "--address", f"{addr(head.node)}:{RAY_PORT}", "--block")
            out.append(Proc(name, "ray-worker", p.node, p.gpu_ids, argv, tuple(env)))
            continue
        before: tuple[tuple[str, ...], ...] = ()
        if ray and p.nnodes > 1:
            before = (("ray", "start", "--head", "--port", str(RAY_PORT)),)
        argv = tuple(engine_argv(plan, role, rank))
        out.append(Proc(name, role.name, p.node, p.gpu_ids, argv, tuple(env),
                        port if p.node_rank == 0 else None, before))
        if p.node_rank == 0:
            endpoints.append(Endpoint(role.name, f"http://{addr(p.node)}:{port}", boot))
    return out
