"""Validate LMCache prefill/decode deployments from the rendered commands themselves.

Per engine: the LMCACHE_* variables are keys LMCache knows (data/plan/lmcache/config-keys.txt) with values of
the right type, the P/D settings its PDBackend asserts are present (sender: proxy host and port; receiver: peer
host and one init and one alloc port per TP rank), pd_role matches kv_role, and kv_connector_extra_config holds
known keys. Across the deployment: one PYTHONHASHSEED, per-host unique RPC names and receiver ports, and one
proxy whose arguments, paired the way disagg_proxy_server.py pairs them, name every prefill and decode instance
exactly once with the ports each decoder binds, while every prefiller reports to that proxy's ZMQ port.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from llmctl.plan import data, k8s_names, lmcache
from llmctl.plan.k8s_walk import pod_templates
from llmctl.plan.launch import ENGINE_PORT
from llmctl.plan.validate_vllm import Cmd, flag_value, lmcache_proxy_flags, program

BOOLS = ("true", "false", "1", "0")


def config_keys() -> dict[str, str]:
    """LMCache key -> type (bool, int, float, str, int_list, str_list), from the pinned list."""
    return dict(line.split() for line in data.read_lines("lmcache", "config-keys.txt"))


def extra_config_keys() -> frozenset[str]:
    return frozenset(data.read_lines("lmcache", "connector-extra-config.txt"))


def _convert(value: str, kind: str) -> Any:
    """The value as LMCache's env converters read it; ValueError when they would not."""
    if kind == "bool":
        if value.strip().lower() not in BOOLS:
            raise ValueError(f"{value!r} is not a boolean")
        return value.strip().lower() in ("true", "1")
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "int_list":
        return [int(x) for x in value.split(",") if x.strip()]
    if kind == "str_list":
        return [x.strip() for x in value.split(",") if x.strip()]
    return value


def _kv(cmd: Cmd) -> dict[str, Any]:
    text = flag_value(cmd.argv, "--kv-transfer-config")
    try:
        cfg = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}  # check_argv reports it
    return cfg if isinstance(cfg, dict) else {}


def is_pd_engine(cmd: Cmd) -> bool:
    cfg = _kv(cmd)
    return (program(cmd.argv) == "vllm" and cfg.get("kv_connector") == lmcache.CONNECTOR
            and cfg.get("kv_role") in ("kv_producer", "kv_consumer"))


def lmcache_env(cmd: Cmd) -> tuple[dict[str, Any], list[str]]:
    """(LMCache settings by key, problems) from the command's LMCACHE_* variables."""
    keys, out, problems = config_keys(), {}, []
    for name, value in cmd.env:
        if not name.startswith("LMCACHE_"):
            continue
        key = name.removeprefix("LMCACHE_").lower()
        if key == "config_file":
            problems.append(f"{cmd.where}: LMCACHE_CONFIG_FILE is set; llmctl checks LMCACHE_* variables, not files")
        elif key not in keys:
            problems.append(f"{cmd.where}: {name} is not an LMCache configuration key")
        else:
            try:
                out[key] = _convert(value, keys[key])
            except ValueError as exc:
                problems.append(f"{cmd.where}: {name}={value!r}: {exc}")
    return out, problems


def check_engine(cmd: Cmd) -> list[str]:
    """One LMCache P/D engine: its own settings, as PDBackend and LMCache's config validation require them."""
    cfg = _kv(cmd)
    w = cmd.where
    extra = cfg.get("kv_connector_extra_config") or {}
    problems = [f"{w}: kv_connector_extra_config key {k!r} is not one LMCacheConnectorV1 reads"
                for k in extra if k not in extra_config_keys()]
    env, bad = lmcache_env(cmd)
    problems += bad
    sender = cfg.get("kv_role") == "kv_producer"
    want = {"enable_pd": True, "pd_role": "sender" if sender else "receiver", "transfer_channel": "nixl"}
    for key, value in want.items():
        if env.get(key) != value:
            problems.append(f"{w}: LMCACHE_{key.upper()} must be {value} for kv_role {cfg.get('kv_role')}")
    if not isinstance(env.get("pd_buffer_size"), int) or env["pd_buffer_size"] <= 0:
        problems.append(f"{w}: LMCACHE_PD_BUFFER_SIZE must be a positive number of bytes")
    if env.get("pd_buffer_device") not in ("cuda", "cpu"):
        problems.append(f"{w}: LMCACHE_PD_BUFFER_DEVICE must be cuda or cpu")
    required = ("pd_proxy_host", "pd_proxy_port") if sender else ("pd_peer_host", "pd_peer_init_port",
                                                                  "pd_peer_alloc_port")
    problems += [f"{w}: a {want['pd_role']} needs LMCACHE_{k.upper()}" for k in required if env.get(k) in (None, "")]
    tp = int(flag_value(cmd.argv, "--tensor-parallel-size") or "1")
    for key in ("pd_peer_init_port", "pd_peer_alloc_port"):
        if not sender and key in env and len(env[key]) != tp:
            problems.append(f"{w}: LMCACHE_{key.upper()} lists {len(env[key])} ports for {tp} TP ranks")
    if not cmd.env_value("PYTHONHASHSEED"):
        problems.append(f"{w}: PYTHONHASHSEED must be set, the same on every LMCache engine (chunk keys)")
    return problems


def _proxy_values(cmd: Cmd) -> dict[str, str]:
    return {flag: value for flag in lmcache_proxy_flags() if (value := flag_value(cmd.argv, flag))}


def check_deployment(cmds: list[Cmd]) -> list[str]:
    """Cross-command checks of an LMCache P/D deployment; [] when there is none."""
    engines = [c for c in cmds if is_pd_engine(c)]
    proxies = [c for c in cmds if program(c.argv) == "lmcache-proxy"]
    if not engines:
        return [f"{p.where}: an LMCache proxy without LMCache P/D engines" for p in proxies]
    problems = [p for c in engines for p in check_engine(c)]
    if len({c.env_value("PYTHONHASHSEED") for c in engines}) > 1:
        problems.append("LMCache engines disagree on PYTHONHASHSEED: decoders would not find the prefillers' chunks")
    used: Counter[tuple[str, str]] = Counter()
    for c in engines:
        env, _ = lmcache_env(c)
        used[(c.host, f"LMCache RPC name {(_kv(c).get('kv_connector_extra_config') or {}).get('lmcache_rpc_port')}")] += 1
        for port in env.get("pd_peer_init_port", []) + env.get("pd_peer_alloc_port", []):
            used[(c.host, f"LMCache receiver port {port}")] += 1
    problems += [f"{what} is used twice on {host}" for (host, what), n in used.items() if n > 1]
    if len(proxies) != 1:
        return problems + [f"LMCache P/D needs exactly one disagg_proxy_server.py, found {len(proxies)}"]
    proxy = proxies[0]
    try:
        view = lmcache.proxy_view(_proxy_values(proxy))
    except ValueError as exc:
        return problems + [f"{proxy.where}: the proxy would reject its arguments: {exc}"]
    if str(view.proxy_port) == flag_value(proxy.argv, "--port"):
        problems.append(f"{proxy.where}: --proxy-port and --port are both {view.proxy_port}")
    if proxy.where.startswith("k8s:"):
        return problems  # pod DNS names: check_k8s compares them with the objects
    return problems + _wiring(proxy, view, engines)


def _wiring(proxy: Cmd, view: lmcache.ProxyView, engines: list[Cmd]) -> list[str]:
    """The proxy's prefill and decode lists against the engines that exist (bare hosts: host and HTTP port)."""
    problems = []
    heads = {(c.host, int(flag_value(c.argv, "--port") or 0)): c for c in engines}
    for role, listed in (("kv_producer", [(h, p) for h, p in view.prefill]),
                         ("kv_consumer", [(h, p) for h, p, _, _ in view.decode])):
        want = {k for k, c in heads.items() if _kv(c).get("kv_role") == role}
        for key, n in Counter(listed).items():
            if n > 1 or key not in want:
                problems.append(f"{proxy.where}: {'prefill' if role == 'kv_producer' else 'decode'} entry "
                                f"{key[0]}:{key[1]} {'is listed twice' if n > 1 else 'matches no instance of that role'}")
        if want - set(listed):
            problems.append(f"{proxy.where}: the proxy does not list {sorted(want - set(listed))}")
    for host, port, init, alloc in view.decode:
        target = heads.get((host, port))
        if target is None:
            continue
        env, _ = lmcache_env(target)
        if env.get("pd_peer_init_port") != init or env.get("pd_peer_alloc_port") != alloc:
            problems.append(f"{proxy.where}: sends decoder {host}:{port} to ports {init}/{alloc}, but it binds "
                            f"{env.get('pd_peer_init_port')}/{env.get('pd_peer_alloc_port')}")
    for c in engines:
        env, _ = lmcache_env(c)
        if _kv(c).get("kv_role") == "kv_producer" and (env.get("pd_proxy_host"), env.get("pd_proxy_port")) != (
                proxy.host, view.proxy_port):
            problems.append(f"{c.where}: reports to {env.get('pd_proxy_host')}:{env.get('pd_proxy_port')}, but the "
                            f"proxy listens at {proxy.host}:{view.proxy_port}")
    return problems


def check_k8s(objs: list[dict[str, Any]], cmds: list[Cmd]) -> list[str]:
    """Kubernetes: the proxy names each prefill/decode leader pod by its stable DNS name (LWS headless service
    or RBG instance service), decoders bind the ports it sends, prefillers report to the router Service."""

    engines = [c for c in cmds if is_pd_engine(c)]
    proxies = [c for c in cmds if program(c.argv) == "lmcache-proxy"]
    if not engines or len(proxies) != 1:
        return []  # check_deployment reports these
    try:
        view = lmcache.proxy_view(_proxy_values(proxies[0]))
    except ValueError:
        return []
    expected: dict[str, set[tuple[str, int]]] = {"prefill": set(), "decode": set()}
    services: dict[str, dict[str, Any]] = {}
    proxy_labels: dict[str, str] = {}
    for obj in objs:
        meta = obj.get("metadata") or {}
        name, ns, spec = meta.get("name"), meta.get("namespace", "default"), obj.get("spec") or {}
        if obj.get("kind") == "LeaderWorkerSet":
            role = ((spec.get("leaderWorkerTemplate") or {}).get("leaderTemplate") or {}).get("metadata", {}).get(
                "labels", {}).get("llmctl.dev/role")
            if role in expected:
                expected[role] |= {(k8s_names.lws_leader_address(name, i, ns), ENGINE_PORT)
                                   for i in range(spec.get("replicas", 1))}
        elif obj.get("kind") == "RoleBasedGroup":
            for r in spec.get("roles", []):
                if r.get("name") in expected:
                    lw = "leaderWorkerPattern" in r
                    expected[r["name"]] |= {(k8s_names.rbg_host(name, r["name"], i, leader_worker=lw), ENGINE_PORT)
                                            for i in range(r.get("replicas", 1))}
        elif obj.get("kind") == "Service":
            services[f"{name}.{ns}"] = spec
        for _, tpl in pod_templates(obj):
            for c in (tpl.get("spec") or {}).get("containers", []):
                if program(list(c.get("command", []))) == "lmcache-proxy":
                    proxy_labels = (tpl.get("metadata") or {}).get("labels", {})
    listed = {"prefill": view.prefill, "decode": [(h, p) for h, p, _, _ in view.decode]}
    problems = [f"{proxies[0].where}: the proxy's {role} hosts {sorted(listed[role])} are not the {role} leader pods "
                f"{sorted(expected[role])}" for role in expected
                if sorted(listed[role]) != sorted(expected[role]) or len(set(listed[role])) != len(listed[role])]
    for c in engines:
        env, _ = lmcache_env(c)
        if _kv(c).get("kv_role") == "kv_consumer":
            if any((env.get("pd_peer_init_port"), env.get("pd_peer_alloc_port")) != (i, a) for _, _, i, a in view.decode):
                problems.append(f"{c.where}: binds ports the proxy does not send prefillers to")
            continue
        svc = services.get(str(env.get("pd_proxy_host")))
        ports = [p.get("port") for p in (svc or {}).get("ports", [])]
        selects = svc is not None and all(proxy_labels.get(k) == v for k, v in (svc.get("selector") or {}).items())
        if not selects or env.get("pd_proxy_port") != view.proxy_port or view.proxy_port not in ports:
            problems.append(f"{c.where}: LMCACHE_PD_PROXY_HOST/PORT {env.get('pd_proxy_host')}:"
                            f"{env.get('pd_proxy_port')} is not a Service port of the proxy pod")
    return problems
