"""Validate rendered Kubernetes objects offline, before they are printed.

- Custom resources (LeaderWorkerSet, DisaggregatedSet, RoleBasedGroup) against the openAPIV3Schema of the
  CRD copies pinned in data/plan/k8s (jsonschema), plus the CEL rules of those CRDs that matter here.
- Core kinds (Service, Deployment, ServiceAccount, Role, RoleBinding) and every pod template embedded in a
  custom resource (wrapped as a v1 PodTemplate) with kubernetes-validate in strict mode, which rejects
  unknown fields the CRD schemas would let through, at the oldest Kubernetes version the objects need.
- Router wiring: service-discovery selectors match the prefill/decode leader pods; static router URLs name
  every instance; LMCache's proxy names every leader pod by its DNS name (validate_lmcache).
- Addresses: every host a pod is handed is a name the controllers create (validate_addresses).
kubectl's own decoder runs in the API layer (`render.TextCheck`): plan/ starts no process.
"""

from __future__ import annotations

import functools
from typing import Any

from llmctl.plan import data, k8s_names
from llmctl.plan.k8s_walk import Report, pod_templates
from llmctl.plan.validate_addresses import check_addresses
from llmctl.plan.validate_lmcache import check_k8s
from llmctl.plan.validate_topology import check_topology
from llmctl.plan.validate_vllm import Cmd, check_argv, extract_shell_commands, flag_values, program

K8S_VERSION = "1.30"
"""Kubernetes API version core kinds are validated against (kubernetes-validate's schemas): the oldest
release the rendered objects use nothing newer than."""
K8S_IMAGE_VOLUME_VERSION = "1.33"
"""Image-volume plans: `volumes[].image` exists from 1.31 (alpha); 1.33 is where it is beta and CRI-O mounts
OCI artifacts (cri-o/cri-o#9062), the oldest version such a plan can run on (with the ImageVolume gate)."""

CRD_FILES = {
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): "leaderworkerset.x-k8s.io_leaderworkersets.yaml",
    ("disaggregatedset.x-k8s.io/v1", "DisaggregatedSet"): "disaggregatedset.x-k8s.io_disaggregatedsets.yaml",
    ("workloads.x-k8s.io/v1alpha2", "RoleBasedGroup"): "workloads.x-k8s.io_rolebasedgroups.yaml",
}


@functools.cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    fname = CRD_FILES[(api_version, kind)]
    crd = data.read_yaml("k8s", fname)
    version = api_version.split("/", 1)[1]
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise KeyError(f"{fname} has no version {version}")


@functools.cache
def _crd_validator(api_version: str, kind: str) -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(crd_schema(api_version, kind))


def _path(err: Any) -> str:
    return ".".join(str(p) for p in err.absolute_path) or "<root>"


def validate_custom(obj: dict[str, Any]) -> list[str]:
    key = (obj.get("apiVersion"), obj.get("kind"))
    v = _crd_validator(*key)
    where = f"{obj['kind']}/{obj.get('metadata', {}).get('name')}"
    problems = [f"{where}: {_path(e)}: {e.message}" for e in sorted(v.iter_errors(obj), key=str)]
    return problems + [f"{where}: {p}" for p in _cel_rules(obj)]


def _cel_rules(obj: dict[str, Any]) -> list[str]:
    """The x-kubernetes-validations of the pinned CRDs, which jsonschema cannot evaluate."""
    spec = obj.get("spec", {})
    out = []
    if obj["kind"] == "DisaggregatedSet":
        static = [r for r in spec.get("roles", []) if (r.get("scaling") or {}).get("mode") != "External"]
        zero = [(r.get("spec") or {}).get("replicas", 1) == 0 for r in static]
        if any(zero) and not all(zero):
            out.append("replicas must be zero for all non-External roles or non-zero for all non-External roles")
    if obj["kind"] == "RoleBasedGroup":
        for r in spec.get("roles", []):
            if "standalonePattern" in r and "leaderWorkerPattern" in r:
                out.append(f"role {r.get('name')}: standalonePattern and leaderWorkerPattern are mutually exclusive")
            for pat in ("standalonePattern", "leaderWorkerPattern"):
                p = r.get(pat) or {}
                if "template" in p and "templateRef" in p:
                    out.append(f"role {r.get('name')}: template and templateRef are mutually exclusive")
        names = [r.get("name") for r in spec.get("roles", [])]
        for r in spec.get("roles", []):
            for dep in r.get("dependencies", []) or []:
                if dep not in names:
                    out.append(f"role {r.get('name')} depends on unknown role {dep}")
    return out


def validate_core(obj: dict[str, Any], report: Report, version: str = K8S_VERSION) -> None:
    try:
        import kubernetes_validate  # heavy (its schemas): loaded when objects are validated, not with llmctl.plan
    except ImportError:
        report.skipped.append(f"{obj['kind']}/{obj['metadata']['name']}: kubernetes-validate is not installed")
        return
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "<root>"
        report.problems.append(f"{obj['kind']}/{obj['metadata'].get('name')}: {path}: {e.message}")


def commands(objs: list[dict[str, Any]]) -> list[Cmd]:
    """Every engine/router command in the objects' pod templates, `sh -c` scripts included."""
    out = []
    for obj in objs:
        for where, tpl in pod_templates(obj):
            for c in tpl.get("spec", {}).get("containers", []):
                argv = list(c.get("command", [])) + list(c.get("args", []))
                env = tuple((e["name"], str(e["value"])) for e in c.get("env", []) if "value" in e)
                host = f"k8s:{where}"
                if argv[:2] == ["sh", "-c"] and len(argv) > 2:
                    out += [Cmd(host, host, x.argv, env + x.env) for x in extract_shell_commands(argv[2], host, host)]
                elif program(argv) != "other":
                    out.append(Cmd(host, host, tuple(argv), env))
    return out


def _router_wiring(objs: list[dict[str, Any]], cmds: list[Cmd]) -> list[str]:
    """Selectors select exactly the leader pods of their role; static URLs name every instance."""
    problems = []
    leaders: dict[str, list[dict[str, str]]] = {}
    serving: dict[str, set[str]] = {}  # RBG role -> the serving pods' names, as the controller makes them
    for obj in objs:
        for where, tpl in pod_templates(obj):
            labels = tpl.get("metadata", {}).get("labels", {})
            if labels.get("llmctl.dev/role") in ("prefill", "decode"):
                leaders.setdefault(labels["llmctl.dev/role"], []).append(labels)
        if obj["kind"] == "RoleBasedGroup":
            rbg = obj["metadata"]["name"]
            for r in obj["spec"]["roles"]:
                lw = "leaderWorkerPattern" in r
                serving[r["name"]] = {k8s_names.rbg_host(rbg, r["name"], i, leader_worker=lw)
                                      for i in range(r["replicas"])}
    for r in (c for c in cmds if program(c.argv) in ("vllm-router", "sglang-router")):
        for flag, role in (("--prefill-selector", "prefill"), ("--decode-selector", "decode")):
            for vals in flag_values(r.argv, flag):
                want = dict(v.split("=", 1) for v in vals)
                hits = [lab for lab in leaders.get(role, []) if all(lab.get(k) == v for k, v in want.items())]
                if not hits or any(lab.get("role") != "leader" for lab in hits):
                    problems.append(f"{r.where}: {flag} {' '.join(vals)} does not select exactly the {role} leaders")
        for flag, role in (("--prefill", "prefill"), ("--decode", "decode")):
            urls = [vals[0] for vals in flag_values(r.argv, flag) if vals]
            if not urls or role not in serving:
                continue
            hosts = [u.removeprefix("http://").rsplit(":", 1)[0] for u in urls]
            if sorted(hosts) != sorted(serving[role]):
                problems.append(f"{r.where}: router {role} URLs {sorted(hosts)} are not the {role} instances' serving "
                                f"pods {sorted(serving[role])}")
    return problems


def validate_k8s(objs: list[dict[str, Any]], *, min_version: str = K8S_VERSION) -> Report:
    report = Report()
    for obj in objs:
        key = (obj.get("apiVersion"), obj.get("kind"))
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if key in CRD_FILES:
            report.problems += validate_custom(obj)
            report.checks.append(f"{name}: CRD openAPIV3Schema ({CRD_FILES[key]})")
            for where, tpl in pod_templates(obj):
                wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"}, "template": tpl}
                sub = Report()
                validate_core(wrapped, sub, min_version)
                report.problems += [p.replace("PodTemplate/x", f"{name} pod {where}") for p in sub.problems]
                report.skipped += sub.skipped[:1]
        else:
            validate_core(obj, report, min_version)
            report.checks.append(f"{name}: Kubernetes {min_version} schema (strict)")
    cmds = commands(objs)
    for c in cmds:
        report.problems += [f"{c.where}: {p}" for p in check_argv(c.argv)]
    report.checks.append(f"{len(cmds)} container commands: pinned flag lists")
    report.problems += check_topology(cmds)
    report.problems += _router_wiring(objs, cmds) + check_k8s(objs, cmds)
    addresses = check_addresses(objs)
    report.problems += addresses
    if not addresses:
        report.checks.append("every address a pod is handed is a name its controller creates")
    report.skipped = sorted(set(report.skipped))
    return report
