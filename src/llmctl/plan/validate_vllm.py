"""Validate engine and router command lines against the pinned flag lists, before anything is printed.

Checks, for every rendered command: each flag exists in the pinned list of the program it is passed to
(`vllm serve` 0.33.0, sglang 0.5.23, vllm-router 0.1.17, sglang-router 0.3.2, LMCache's disagg_proxy_server.py);
`--kv-transfer-config` is
JSON with known fields, a registered connector and a known kv_role. Across a deployment (`check_topology`):
a producer for every consumer, one connector, ports unique per host, and a router that lists every prefill
and decode endpoint exactly once.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from llmctl.errors import InvalidInput, PlanError
from llmctl.plan import data
from llmctl.plan.pd_rules import removed as removed_connector

KV_ROLES = ("kv_producer", "kv_consumer", "kv_both")
ROLE_OF_KV = {"kv_producer": "prefill", "kv_consumer": "decode", "kv_both": "serve"}

ROUTER_KV_MODES = {"NixlConnector": "nixl", "MooncakeConnector": "mooncake", "MoRIIOConnector": "moriio"}
"""Connectors vllm-router 0.1.17 routes in P/D mode (its --kv-connector choices: nixl, mooncake, moriio)."""

SGLANG_BACKENDS = {"NixlConnector": "nixl", "MooncakeConnector": "mooncake"}
"""The llmctl --kv-connector names mapped to sglang's --disaggregation-transfer-backend."""

LMCACHE_CONNECTOR = "LMCacheConnectorV1"
"""Joins vLLM prefill and decode pools through LMCache's own proxy (plan/lmcache.py), not vllm-router."""

VLLM_NEGATABLE_FLAGS = frozenset({"--enable-prefix-caching", "--disable-hybrid-kv-cache-manager"})
"""Boolean `vllm serve` flags whose --no- form llmctl renders: argparse BooleanOptionalAction flags, documented by
vLLM's engine arguments as `--enable-prefix-caching, --no-enable-prefix-caching` and
`--disable-hybrid-kv-cache-manager, --no-disable-hybrid-kv-cache-manager` (the pinned list holds base names)."""

VLLM_ROUTER_POLICIES = ("random", "round_robin", "cache_aware", "kv_aware", "power_of_two", "consistent_hash", "sticky_least_loaded")
RAY_START_FLAGS = frozenset({"--head", "--port", "--address", "--block", "--node-ip-address", "--num-gpus"})


def vllm_flags() -> frozenset[str]:
    return frozenset(data.read_lines("vllm", "serve-flags-0.33.0.txt"))


def vllm_router_flags() -> frozenset[str]:
    return frozenset(data.read_lines("vllm", "router-flags-0.1.17.txt"))


def sglang_flags() -> frozenset[str]:
    return frozenset(data.read_lines("sglang", "launch-server-flags-0.5.23.txt"))


def sglang_router_flags() -> frozenset[str]:
    return frozenset(data.read_lines("sglang", "router-flags-0.3.2.txt"))


def lmcache_proxy_flags() -> frozenset[str]:
    return frozenset(data.read_lines("lmcache", "proxy-flags.txt"))


def sglang_transfer_backends() -> frozenset[str]:
    return frozenset(data.read_lines("sglang", "transfer-backends-0.5.23.txt"))


def _kv_file() -> tuple[str, ...]:
    return data.read_lines("vllm", "kv-transfer-config-0.33.0.txt")


def kv_connectors() -> frozenset[str]:
    """Registered connector names: the bare identifiers in the pinned kv-transfer-config file."""
    return frozenset(line for line in _kv_file() if re.fullmatch(r"[A-Za-z0-9_]+", line))


def kv_fields() -> frozenset[str]:
    """`--kv-transfer-config` JSON fields: the `name: type = default` lines of the pinned file."""
    return frozenset(m.group(1) for line in _kv_file() if (m := re.match(r"^([a-z_]+):\s", line)))


def connector_for_engine(engine: str, requested: str | None, *, disaggregated: bool) -> str | None:
    """The KV connector a plan uses, or None when it needs none; errors name the choices that work."""
    if requested is not None and requested not in kv_connectors():
        gone = removed_connector(engine, requested)
        if gone:
            raise InvalidInput(f"{requested}: {gone['says']} (source: {gone['source']})",
                               hint="use --kv-connector NixlConnector, MooncakeConnector or LMCacheConnectorV1")
        raise InvalidInput(
            f"{requested!r} is not a registered vLLM 0.33.0 KV connector",
            hint="e.g. NixlConnector, LMCacheConnectorV1, MooncakeConnector",
        )
    if not disaggregated:
        return requested if requested == "LMCacheConnectorV1" and engine == "vllm" else None
    conn = requested or "NixlConnector"
    table = list(SGLANG_BACKENDS) if engine == "sglang" else [*ROUTER_KV_MODES, LMCACHE_CONNECTOR]
    if conn not in table:
        raise PlanError(
            f"{conn} cannot join prefill and decode pools for {engine}: the "
            f"{'sglang transfer backends' if engine == 'sglang' else 'P/D connectors'} llmctl renders are "
            f"{', '.join(table)}",
            hint=f"use --kv-connector {table[0]}, or --disaggregate off for an aggregated plan",
        )
    return conn


# -- command lines ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cmd:
    """One rendered command as it will run: where (host), its environment and its argv."""

    where: str  # file / service / pod, for messages
    host: str  # address other processes reach it at ("${NODE0_ADDR}", a compose service, a pod)
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = field(default=())

    def env_value(self, name: str) -> str | None:
        return dict(self.env).get(name)


def program(argv: Sequence[str]) -> str:
    """vllm | sglang | vllm-router | sglang-router | lmcache-proxy | ray | other."""
    a = list(argv)
    if len(a) >= 2 and a[0] == "vllm" and a[1] == "serve":
        return "vllm"
    if len(a) >= 2 and a[0].startswith("python") and a[1].rsplit("/", 1)[-1] == "disagg_proxy_server.py":
        return "lmcache-proxy"
    if len(a) >= 3 and a[0].startswith("python") and a[1] == "-m":
        return {"sglang.launch_server": "sglang", "sglang_router.launch_router": "sglang-router"}.get(a[2], "other")
    if a and a[0] == "vllm-router":
        return "vllm-router"
    if len(a) >= 2 and a[0] == "ray" and a[1] == "start":
        return "ray"
    return "other"


def _flags(argv: Sequence[str]) -> list[str]:
    out = []
    for tok in argv:
        if tok.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", tok):
            out.append(tok.split("=", 1)[0])
    return out


def flag_values(argv: Sequence[str], flag: str) -> list[list[str]]:
    """Every occurrence of `flag` with the tokens that follow it up to the next flag."""
    out: list[list[str]] = []
    for i, tok in enumerate(argv):
        if tok == flag:
            vals = []
            for nxt in argv[i + 1 :]:
                if nxt.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", nxt):
                    break
                vals.append(nxt)
            out.append(vals)
        elif tok.startswith(flag + "="):
            out.append([tok.split("=", 1)[1]])
    return out


def flag_value(argv: Sequence[str], flag: str) -> str | None:
    vals = flag_values(argv, flag)
    return vals[-1][0] if vals and vals[-1] else None


def check_kv_transfer_config(text: str) -> tuple[dict, list[str]]:
    """Parse one --kv-transfer-config value; return it and what is wrong with it."""
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, [f"--kv-transfer-config is not JSON: {exc}"]
    if not isinstance(cfg, dict):
        return {}, ["--kv-transfer-config must be a JSON object"]
    problems = [f"--kv-transfer-config field {k!r} does not exist in vLLM 0.33.0" for k in cfg if k not in kv_fields()]
    if cfg.get("kv_connector") not in kv_connectors():
        problems.append(f"kv_connector {cfg.get('kv_connector')!r} is not registered in vLLM 0.33.0")
    if cfg.get("kv_role") not in KV_ROLES:
        problems.append(f"kv_role {cfg.get('kv_role')!r} is not one of {', '.join(KV_ROLES)}")
    return cfg, problems


def _negated(flag: str) -> str:
    """--no-enable-x -> --enable-x (anything else unchanged)."""
    return "--" + flag[5:] if flag.startswith("--no-") else flag


def check_argv(argv: Sequence[str]) -> list[str]:
    """Problems with one command line: unknown flags for its program, bad JSON arguments."""
    prog = program(argv)
    allowed = {
        "vllm": vllm_flags,
        "sglang": sglang_flags,
        "vllm-router": vllm_router_flags,
        "sglang-router": sglang_router_flags,
        "lmcache-proxy": lmcache_proxy_flags,
        "ray": lambda: RAY_START_FLAGS,
    }.get(prog)
    if allowed is None:
        return []
    known = allowed()
    version = {"vllm": "vllm 0.33.0", "sglang": "sglang 0.5.23", "vllm-router": "vllm-router 0.1.17",
               "sglang-router": "sglang-router 0.3.2", "lmcache-proxy": "LMCache disagg_proxy_server.py",
               "ray": "ray start"}[prog]
    skip = {"vllm": 2, "sglang": 3, "sglang-router": 3, "vllm-router": 1, "lmcache-proxy": 2, "ray": 2}[prog]
    problems = [f"{flag} is not a {version} flag" for flag in _flags(argv[skip:])
                if flag not in known and not (prog == "vllm" and _negated(flag) in VLLM_NEGATABLE_FLAGS)]
    for vals in flag_values(argv, "--kv-transfer-config"):
        if len(vals) != 1:
            problems.append("--kv-transfer-config needs exactly one JSON value")
            continue
        problems += check_kv_transfer_config(vals[0])[1]
    if prog == "sglang":
        for vals in flag_values(argv, "--disaggregation-transfer-backend"):
            if not vals or vals[0] not in sglang_transfer_backends():
                problems.append(f"sglang transfer backend {vals[:1]} is not one of sglang 0.5.23's")
    if prog == "vllm-router":
        for vals in flag_values(argv, "--kv-connector"):
            if not vals or vals[0] not in ROUTER_KV_MODES.values():
                problems.append(f"vllm-router --kv-connector {vals[:1]} is not nixl, mooncake or moriio")
        for vals in flag_values(argv, "--policy"):
            if not vals or vals[0] not in VLLM_ROUTER_POLICIES:
                problems.append(f"vllm-router --policy {vals[:1]} is not a known policy")
    return problems


# -- shell text -------------------------------------------------------------------------------------


_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def extract_shell_commands(text: str, where: str, host: str) -> list[Cmd]:
    """The engine/router/ray commands in a rendered shell script, with their leading VAR=value words and
    the script's `export VAR=value` lines, so validation reads exactly what will run."""
    logical, buf = [], ""
    for line in text.splitlines():
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        logical.append(buf + stripped)
        buf = ""
    exported: dict[str, str] = {}
    cmds = []
    for line in logical:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        try:
            words = shlex.split(s, comments=True)
        except ValueError:
            continue
        for seg in _segments(words):
            if seg and seg[0] == "export":
                for w in seg[1:]:
                    if "=" in w:
                        k, v = w.split("=", 1)
                        exported[k] = v
                continue
            env = dict(exported)
            while seg and (seg[0] == "exec" or _ASSIGN.match(seg[0])):
                word = seg.pop(0)
                if word != "exec":
                    k, v = word.split("=", 1)
                    env[k] = v
            if seg and program(seg) != "other":
                cmds.append(Cmd(where, host, tuple(seg), tuple(env.items())))
    return cmds


def _segments(words: list[str]) -> list[list[str]]:
    """Split a shell word list at &&, ||, ; and & into simple commands."""
    out: list[list[str]] = [[]]
    for w in words:
        if w in ("&&", "||", ";", "&"):
            out.append([])
        elif w.endswith(";") and len(w) > 1:
            out[-1].append(w[:-1])
            out.append([])
        else:
            out[-1].append(w)
    return [seg for seg in out if seg]
