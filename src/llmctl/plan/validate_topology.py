"""Cross-command checks on a whole rendered deployment: roles pair up, ports do not collide, the router
points at exactly the prefill and decode endpoints that exist (LMCache's proxy: validate_lmcache), and the prefill
and decode engines obey their connector's topology rules as rendered (pd_rules: TP, PP, DP, block size, KV cache
dtype, page size)."""

from __future__ import annotations

import re
from collections import Counter

from llmctl.plan.memory import Shape
from llmctl.plan.pd_rules import EngineView, check_views
from llmctl.plan.validate_lmcache import check_deployment
from llmctl.plan.validate_vllm import (
    ROLE_OF_KV,
    SGLANG_BACKENDS,
    Cmd,
    check_kv_transfer_config,
    flag_value,
    flag_values,
    program,
)

_URL = re.compile(r"^https?://(?P<host>[^/]+):(?P<port>\d+)/?$")

PORT_ENVS = ("VLLM_NIXL_SIDE_CHANNEL_PORT", "VLLM_MOONCAKE_BOOTSTRAP_PORT")


def engine_role(cmd: Cmd) -> str:
    """serve | prefill | decode, from kv_role (vLLM) or --disaggregation-mode (sglang)."""
    if program(cmd.argv) == "vllm":
        text = flag_value(cmd.argv, "--kv-transfer-config")
        if text:
            cfg, _ = check_kv_transfer_config(text)
            return ROLE_OF_KV.get(cfg.get("kv_role", ""), "serve")
        return "serve"
    mode = flag_value(cmd.argv, "--disaggregation-mode")
    return mode if mode in ("prefill", "decode") else "serve"


def is_head(cmd: Cmd) -> bool:
    """The process of an instance that serves HTTP: not headless (vLLM), node rank 0 (sglang)."""
    if program(cmd.argv) == "vllm":
        return "--headless" not in cmd.argv
    rank = flag_value(cmd.argv, "--node-rank")
    return rank in (None, "0")


def _bootstrap(cmd: Cmd) -> str | None:
    if program(cmd.argv) == "vllm":
        return cmd.env_value("VLLM_MOONCAKE_BOOTSTRAP_PORT")
    return flag_value(cmd.argv, "--disaggregation-bootstrap-port") or "8998"


def check_topology(cmds: list[Cmd]) -> list[str]:
    problems: list[str] = []
    engines = [c for c in cmds if program(c.argv) in ("vllm", "sglang")]
    routers = [c for c in cmds if program(c.argv) in ("vllm-router", "sglang-router", "lmcache-proxy")]
    heads = [c for c in engines if is_head(c)]
    roles = Counter(engine_role(c) for c in heads)
    if roles["prefill"] and not roles["decode"]:
        problems.append("prefill instances (kv producers) have no decode instance (kv consumer) to feed")
    if roles["decode"] and not roles["prefill"]:
        problems.append("decode instances (kv consumers) have no prefill instance (kv producer)")
    connectors = set()
    for c in engines:
        text = flag_value(c.argv, "--kv-transfer-config")
        if text:
            connectors.add(check_kv_transfer_config(text)[0].get("kv_connector"))
    if len(connectors) > 1:
        problems.append(f"instances disagree on the KV connector: {', '.join(sorted(map(str, connectors)))}")

    # ports unique per host: HTTP ports, side-channel/bootstrap ports, torch.distributed master ports
    used: Counter[tuple[str, str, str]] = Counter()
    for c in engines + routers:
        if c in heads or c in routers:
            port = flag_value(c.argv, "--port")
            if port:
                used[(c.host, "port", port)] += 1
        for env in PORT_ENVS:
            value = c.env_value(env)
            if value:
                used[(c.host, env, value)] += 1
        if is_head(c):
            for flag in ("--master-port", "--disaggregation-bootstrap-port"):
                value = flag_value(c.argv, flag)
                if value:
                    used[(c.host, flag, value)] += 1
    problems += [f"{what} {port} is used twice on {host}" for (host, what, port), n in used.items() if n > 1]

    endpoints = {(c.host, flag_value(c.argv, "--port") or ""): c for c in heads}
    pd = roles["prefill"] or roles["decode"]
    if pd and len(routers) != 1 and not any(r.where.startswith("k8s:") for r in routers):
        problems.append(f"a P/D deployment needs exactly one router, found {len(routers)}")
    for r in routers:
        if "--service-discovery" in r.argv or r.where.startswith("k8s:") or program(r.argv) == "lmcache-proxy":
            continue  # Kubernetes endpoints are pod DNS names or label selectors: validate_k8s checks them
        problems += _check_router(r, endpoints, pd)
    views = [v for c in heads if (v := _pd_view(c)) is not None]
    return problems + check_deployment(cmds) + check_views(views)


def _int_flag(cmd: Cmd, flag: str, default: int = 1) -> int:
    value = flag_value(cmd.argv, flag)
    return int(value) if value and value.isdigit() else default


def _pd_view(cmd: Cmd) -> EngineView | None:
    """A prefill or decode head as its connector sees it: attention TP, PP and DP ranks, transfer settings."""
    role = engine_role(cmd)
    if role not in ("prefill", "decode"):
        return None
    if program(cmd.argv) == "vllm":
        cfg, _ = check_kv_transfer_config(flag_value(cmd.argv, "--kv-transfer-config") or "{}")
        shape = Shape(_int_flag(cmd, "--tensor-parallel-size"), _int_flag(cmd, "--pipeline-parallel-size"),
                      _int_flag(cmd, "--data-parallel-size"))
        return EngineView(cmd.where, role, str(cfg.get("kv_connector")), "vllm", shape,
                          flag_value(cmd.argv, "--block-size"), flag_value(cmd.argv, "--kv-cache-dtype"), None,
                          "--no-disable-hybrid-kv-cache-manager" in cmd.argv)
    dp = _int_flag(cmd, "--dp-size") if "--enable-dp-attention" in cmd.argv else 1
    backend = flag_value(cmd.argv, "--disaggregation-transfer-backend") or "mooncake"
    connector = {b: c for c, b in SGLANG_BACKENDS.items()}.get(backend, backend)
    shape = Shape(_int_flag(cmd, "--tp-size") // dp, _int_flag(cmd, "--pp-size"), dp)
    return EngineView(cmd.where, role, connector, "sglang", shape, None, flag_value(cmd.argv, "--kv-cache-dtype"),
                      flag_value(cmd.argv, "--page-size"), False)


def _check_router(r: Cmd, endpoints: dict[tuple[str, str], Cmd], pd: bool) -> list[str]:
    problems: list[str] = []
    pd_flag = "--vllm-pd-disaggregation" if program(r.argv) == "vllm-router" else "--pd-disaggregation"
    if pd and pd_flag not in r.argv:
        problems.append(f"{r.where}: router lacks {pd_flag}")
    listed: dict[str, list[tuple[str, str, str | None]]] = {"prefill": [], "decode": [], "serve": []}
    for flag, role in (("--prefill", "prefill"), ("--decode", "decode"), ("--worker-urls", "serve")):
        for vals in flag_values(r.argv, flag):
            urls = vals if role == "serve" else vals[:1]
            boot = vals[1] if role == "prefill" and len(vals) > 1 else None
            for url in urls:
                m = _URL.match(url)
                if not m:
                    problems.append(f"{r.where}: router URL {url!r} is not http://HOST:PORT")
                    continue
                listed[role].append((m["host"], m["port"], boot))
    for role, entries in listed.items():
        keys = [(h, p) for h, p, _ in entries]
        for key, n in Counter(keys).items():
            if n > 1:
                problems.append(f"{r.where}: router lists {role} endpoint {key[0]}:{key[1]} {n} times")
        for host, port, boot in entries:
            target = endpoints.get((host, port))
            if target is None:
                problems.append(f"{r.where}: router {role} endpoint {host}:{port} matches no instance")
                continue
            if engine_role(target) != role:
                problems.append(f"{r.where}: {host}:{port} is a {engine_role(target)} instance, listed as {role}")
            if boot is not None and boot != "none" and boot != _bootstrap(target):
                problems.append(f"{r.where}: bootstrap port {boot} for {host}:{port} differs from the instance's")
        if (role != "serve" and not pd) or (role == "serve" and not keys):
            continue
        expected = {k for k, c in endpoints.items() if engine_role(c) == role}
        missing = expected - set(keys)
        if missing:
            problems.append(f"{r.where}: router does not list {role} endpoints {sorted(missing)}")
    return problems
