"""Walk rendered Kubernetes objects: every pod template a custom resource will stamp out, with RBG's
leader/worker patches applied, and the report validators fill in.

Below both the Kubernetes validators and the LMCache checks, so neither imports the other to share it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Report:
    """What was checked, what failed, and what could not be checked here (and why)."""

    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def merge(base: Any, patch: Any) -> Any:
    """Strategic-merge enough for pod template patches: dicts merge, containers merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "name" in x for x in base + patch):
        out = [dict(x) for x in base]
        for item in patch:
            match = next((i for i, x in enumerate(out) if x["name"] == item["name"]), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = merge(out[match], item)
        return out
    return copy.deepcopy(patch)


def pod_templates(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, pod template) for every pod the object will create, with RBG patches applied."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    name = (obj.get("metadata") or {}).get("name")
    if kind == "LeaderWorkerSet":
        yield from _lwt_templates(str(name), spec)
    elif kind == "DisaggregatedSet":
        for r in spec.get("roles") or []:
            yield from _lwt_templates(f"{name}/{r.get('name')}", r.get("spec") or {})
    elif kind == "RoleBasedGroup":
        for r in spec.get("roles") or []:
            where = f"{name}/{r.get('name')}"
            if "template" in (r.get("standalonePattern") or {}):
                yield f"{where}/standalone", r["standalonePattern"]["template"]
            lwp = r.get("leaderWorkerPattern") or {}
            if "template" in lwp:
                yield f"{where}/leader", merge(lwp["template"], lwp.get("leaderTemplatePatch") or {})
                yield f"{where}/worker", merge(lwp["template"], lwp.get("workerTemplatePatch") or {})
    elif kind == "Deployment" and "template" in spec:
        yield f"{name}/pod", spec["template"]


def _lwt_templates(where: str, spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    lwt = spec.get("leaderWorkerTemplate", {})
    if "leaderTemplate" in lwt:
        yield f"{where}/leader", lwt["leaderTemplate"]
    size = lwt.get("size", 1)
    if "workerTemplate" in lwt and (not isinstance(size, int) or size > 1 or "leaderTemplate" not in lwt):
        yield f"{where}/worker", lwt["workerTemplate"]


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The init containers and containers of a pod template, in start order."""
    spec = template.get("spec") or {}
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])
