"""Every address a rendered pod is handed must be a name a controller creates.

Addresses are router backends (`--prefill`, `--decode`, `--worker-urls`), rendezvous addresses
(`--master-addr`, `--dist-init-addr`, `--data-parallel-address`, Ray's `--ray_address`), LMCache proxy targets
(`--prefiller-host`, `--decoder-host`) and LMCACHE_PD_PROXY_HOST. A literal host must be a pod or Service name
of this plan's objects (k8s_names: the LWS and RBG controllers' rules); `$(LWS_LEADER_ADDRESS)` is allowed only
in pods of a LeaderWorkerSet (the LWS webhook sets it) and `$(RBG_LWP_LEADER_ADDRESS)` only in pods of an RBG
leader/worker role (RBG's lwp_env injector sets it), and each resolves to that controller's leader name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from llmctl.plan import k8s_names
from llmctl.plan.k8s_walk import containers, pod_templates
from llmctl.plan.validate_vllm import extract_shell_commands, flag_values

URL_FLAGS = ("--prefill", "--decode", "--worker-urls")
HOST_FLAGS = ("--master-addr", "--data-parallel-address", "--dist-init-addr", "--prefiller-host", "--decoder-host")
HOST_ENV = ("LMCACHE_PD_PROXY_HOST",)
_ENV_REF = re.compile(r"^\$\(([A-Z0-9_]+)\)$")
_RAY = re.compile(r"--ray_address=(\S+)")


def _host(value: str) -> str:
    """The host of `http://HOST:PORT`, `HOST:PORT` or `HOST` (IPv6 literals are not rendered)."""
    value = value.removeprefix("http://").removeprefix("https://").split("/", 1)[0]
    if value.startswith("$("):
        return value.split(")", 1)[0] + ")"
    return value.rsplit(":", 1)[0] if ":" in value else value


def handed_out(argv: list[str], env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(where in the command, host) for every address in one container's command and environment."""
    commands = [argv]
    if argv[:2] == ["sh", "-c"] and len(argv) > 2:
        commands += [list(c.argv) for c in extract_shell_commands(argv[2], "k8s", "k8s")]
        yield from (("--ray_address", _host(m.group(1))) for m in _RAY.finditer(argv[2]))
    for cmd in commands:
        for flag in URL_FLAGS:
            for vals in flag_values(cmd, flag):
                urls = vals if flag == "--worker-urls" else vals[:1]
                yield from ((flag, _host(u)) for u in urls)
        for flag in HOST_FLAGS:
            for vals in flag_values(cmd, flag):
                for v in vals[:1]:
                    yield from ((flag, _host(h)) for h in v.split(","))
    for name in HOST_ENV:
        if name in env:
            yield name, _host(env[name])


def _count(value: Any) -> int:
    """A replica count or group size as the controller would use it (the schema check reports bad ones)."""
    return value if isinstance(value, int) and 0 <= value <= 10_000 else 1


def controller_names(objs: list[dict[str, Any]]) -> set[str]:
    """The DNS names the objects make resolvable: LWS and RBG pods with a hostname, and Services."""
    out: set[str] = set()
    for obj in objs:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        name, ns = meta.get("name", ""), meta.get("namespace", "default")
        kind = obj.get("kind")
        if kind == "LeaderWorkerSet":
            lwt = spec.get("leaderWorkerTemplate") or {}
            out |= k8s_names.lws_names(name, _count(spec.get("replicas", 1)), _count(lwt.get("size", 1)), ns)
        elif kind == "RoleBasedGroup":
            for r in spec.get("roles") or []:
                out |= k8s_names.rbg_names(name, r["name"], _count(r.get("replicas", 1)), ns,
                                           leader_worker="leaderWorkerPattern" in r)
        elif kind == "Service":
            out |= k8s_names.service_forms(name, ns)
    return out


def _env_ref_problem(ref: str, obj: dict[str, Any], role: dict[str, Any] | None, names: set[str]) -> str | None:
    """A `$(VAR)` address: set by the pod's own controller, and resolving to a name it creates."""
    var = _ENV_REF.match(ref)
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace", "default")
    if var and var.group(1) == "LWS_LEADER_ADDRESS" and kind in ("LeaderWorkerSet", "DisaggregatedSet"):
        if kind == "DisaggregatedSet":  # its LeaderWorkerSets are named after a revision hash; LWS sets the value
            return None
        lws, groups = meta["name"], _count((obj.get("spec") or {}).get("replicas", 1))
        bad = [g for g in range(groups) if k8s_names.lws_leader_address(lws, g, ns) not in names]
        return f"LWS_LEADER_ADDRESS of group {bad[0]} is not a pod name of {lws}" if bad else None
    if var and var.group(1) == "RBG_LWP_LEADER_ADDRESS" and kind == "RoleBasedGroup":
        if role is None or "leaderWorkerPattern" not in role:
            return f"RBG sets RBG_LWP_LEADER_ADDRESS only in leader/worker roles, not in {role and role.get('name')}"
        rbg = meta["name"]
        bad = [i for i in range(_count(role.get("replicas", 1)))
               if k8s_names.rbg_leader_address(rbg, role["name"], i, ns) not in names]
        return f"RBG_LWP_LEADER_ADDRESS of instance {bad[0]} is not a pod name of {rbg}" if bad else None
    return f"{ref} is not an address the {kind} controller sets"


def check_addresses(objs: list[dict[str, Any]]) -> list[str]:
    names = controller_names(objs)
    problems = []
    for obj in objs:
        roles = {f"{obj['metadata']['name']}/{r['name']}": r for r in (obj.get("spec") or {}).get("roles") or []
                 if obj.get("kind") == "RoleBasedGroup"}
        for where, tpl in pod_templates(obj):
            role = roles.get(where.rsplit("/", 1)[0])
            for c in containers(tpl):
                argv = [str(a) for a in list(c.get("command") or []) + list(c.get("args") or [])]
                env = {e["name"]: str(e["value"]) for e in c.get("env") or [] if "value" in e}
                for flag, host in handed_out(argv, env):
                    if host.startswith("$("):
                        problem = _env_ref_problem(host, obj, role, names)
                    else:
                        problem = None if host in names else f"{host} is no pod or Service name of this plan"
                    if problem:
                        problems.append(f"{where}/{c.get('name')}: {flag}: {problem}")
    return problems
