"""Validate what a renderer produced, format by format, re-reading the rendered text itself (not the plan
that produced it), so what is printed is what was checked. (`bash -n` runs in the API layer, through
`render.TextCheck`: plan/ starts no process.)"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml

from llmctl.plan.k8s_walk import Report
from llmctl.plan.render_common import RenderedFile
from llmctl.plan.validate_topology import check_topology
from llmctl.plan.validate_vllm import Cmd, check_argv, extract_shell_commands, program


def _check_cmds(cmds: list[Cmd], report: Report, what: str) -> None:
    for c in cmds:
        report.problems += [f"{c.where}: {p}" for p in check_argv(c.argv)]
    report.problems += check_topology(cmds)
    report.checks.append(f"{len(cmds)} {what} commands: pinned flag lists, kv-transfer-config, roles, ports, router")


def validate_shell(files: list[RenderedFile]) -> Report:
    report = Report()
    cmds: list[Cmd] = []
    for f in files:
        node = f.path.removeprefix("node-").removesuffix(".sh")
        host = "${ROUTER_ADDR}" if f.path == "router.sh" else f"${{NODE{node}_ADDR}}"
        cmds += extract_shell_commands(f.content, f.path, host)
    _check_cmds(cmds, report, "shell")
    return report


def validate_compose(files: list[RenderedFile]) -> Report:
    report = Report()
    doc: dict[str, Any] = yaml.safe_load(files[0].content)
    services = doc.get("services", {})
    cmds: list[Cmd] = []
    devices: Counter[str] = Counter()
    for name, svc in services.items():
        if not svc.get("image"):
            report.problems.append(f"service {name} has no image")
        for dep in svc.get("depends_on") or []:  # a list, or a mapping of service -> condition
            if dep not in services:
                report.problems.append(f"service {name} depends on unknown service {dep}")
        for dev in (svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])):
            devices.update(dev.get("device_ids", []))
        argv = list(svc.get("entrypoint", [])) + list(svc.get("command", []))
        env = tuple((k, str(v)) for k, v in (svc.get("environment") or {}).items())
        if argv[:2] == ["sh", "-c"]:
            cmds += [Cmd(name, "127.0.0.1", c.argv, env + c.env) for c in extract_shell_commands(argv[2], name, name)]
        elif program(argv) != "other":
            cmds.append(Cmd(name, "127.0.0.1", tuple(argv), env))
    report.problems += [f"GPU {d} is reserved by {n} services" for d, n in devices.items() if n > 1]
    report.checks.append("compose: services, depends_on, GPU reservations disjoint")
    _check_cmds(cmds, report, "compose")
    return report
