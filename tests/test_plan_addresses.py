"""Every address a Kubernetes plan hands out (router backends, --master-addr, --dist-init-addr, Ray's address,
LMCache proxy targets) is a DNS name the LWS / RBG controllers create, for every format and for roles that
span one node or several. The names come from plan/k8s_names.py (the controllers' rules, sources cited)."""

from __future__ import annotations

import copy

import pytest
import yaml

from llmctl.plan import find_catalog, k8s_names, load_gpu, render, solve
from llmctl.plan.k8s_walk import containers, pod_templates
from llmctl.plan.render_common import RenderOptions
from llmctl.plan.types import PlanRequest, Workload
from llmctl.plan.validate_addresses import check_addresses, controller_names, handed_out

PD = Workload(isl=2048, osl=256, rate=10, ttft_slo=0.5, tpot_slo=0.05)

COMBOS = {
    "single-node": dict(model="llama3.1:8b"),
    "single-node-replicas": dict(model="llama3.1:8b", workload=Workload(rate=60)),
    "multi-node": dict(model="llama3.1:405b"),
    "multi-node-ray": dict(model="llama3.1:405b", executor="ray"),
    "multi-node-sglang": dict(model="llama3.1:405b", engine="sglang"),
    "pd-single-node": dict(model="llama3.1:70b", workload=PD, disaggregate="on"),
    "pd-multi-node": dict(model="llama3.1:405b", workload=Workload(rate=2), disaggregate="on"),
    "pd-multi-node-sglang": dict(model="llama3.1:405b", workload=Workload(rate=2), disaggregate="on", engine="sglang"),
    "pd-lmcache": dict(model="llama3.1:70b", workload=PD, disaggregate="on", kv_connector="LMCacheConnectorV1"),
}


def plan_for(spec: dict):
    spec = dict(spec)
    return solve(PlanRequest(model=find_catalog(spec.pop("model")).profile(), gpu=load_gpu("h100-80gb"),
                             gpus_per_node=8, workload=spec.pop("workload", Workload()), **spec))


def objects(plan, fmt: str) -> list[dict] | None:
    try:
        files, _ = render(plan, fmt, RenderOptions(namespace="llm", hash_seed="1"))
    except Exception as exc:  # a format the plan cannot use says so (DisaggregatedSet of an aggregated plan)
        assert "DisaggregatedSet" in str(exc)
        return None
    return list(yaml.safe_load_all(files[0].content))


def expected_names(objs: list[dict]) -> set[str]:
    """The controllers' names for these objects, straight from k8s_names (independent of the validator)."""
    out: set[str] = set()
    for o in objs:
        name, ns, spec = o["metadata"]["name"], o["metadata"]["namespace"], o["spec"] if "spec" in o else {}
        if o["kind"] == "LeaderWorkerSet":
            for g in range(spec["replicas"]):
                out.add(k8s_names.lws_leader_address(name, g, ns))
        elif o["kind"] == "RoleBasedGroup":
            for r in spec["roles"]:
                lw = "leaderWorkerPattern" in r
                for i in range(r["replicas"]):
                    out.add(k8s_names.rbg_host(name, r["name"], i, leader_worker=lw))
                    if lw:
                        out.add(k8s_names.rbg_leader_address(name, r["name"], i, ns))
        elif o["kind"] == "Service":
            out |= k8s_names.service_forms(name, ns)
    return out


@pytest.mark.parametrize("combo", COMBOS, ids=list(COMBOS))
@pytest.mark.parametrize("fmt", ["lws", "disaggregatedset", "rbg"])
def test_every_address_is_a_controller_made_name(combo, fmt):
    plan = plan_for(COMBOS[combo])
    objs = objects(plan, fmt)
    if objs is None:
        return
    assert check_addresses(objs) == []
    expected = expected_names(objs)
    assert expected <= controller_names(objs)
    literal = [h for o in objs for _, t in pod_templates(o) for c in containers(t)
               for _, h in handed_out(list(c.get("command", [])), {e["name"]: e["value"] for e in c.get("env", [])
                                                                   if "value" in e})
               if not h.startswith("$(")]
    assert all(h in expected for h in literal), [h for h in literal if h not in expected]


def test_multi_node_rbg_router_reaches_the_leader_pod_not_the_instance():
    objs = objects(plan_for(COMBOS["pd-multi-node"]), "rbg")
    router = next(c for o in objs for _, t in pod_templates(o) for c in containers(t) if c["name"] == "router")
    urls = [router["command"][i + 1] for i, a in enumerate(router["command"]) if a in ("--prefill", "--decode")]
    base = objs[0]["metadata"]["name"]
    assert f"http://{base}-prefill-0-0.s-{base}-prefill:8000" in urls  # the leader pod <rbg>-<role>-<i>-0
    bad = copy.deepcopy(objs)
    cmd = next(c for o in bad for _, t in pod_templates(o) for c in containers(t) if c["name"] == "router")["command"]
    i = cmd.index(f"http://{base}-prefill-0-0.s-{base}-prefill:8000")
    cmd[i] = f"http://{base}-prefill-0.s-{base}-prefill:8000"  # the instance name resolves to nothing
    assert any("is no pod or Service name" in p for p in check_addresses(bad))


def test_leader_address_variables_belong_to_their_controller():
    objs = objects(plan_for(COMBOS["multi-node"]), "lws")
    bad = copy.deepcopy(objs)
    cmd = bad[0]["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["command"]
    cmd[cmd.index("$(LWS_LEADER_ADDRESS)")] = "$(RBG_LWP_LEADER_ADDRESS)"
    assert any("not an address the LeaderWorkerSet controller sets" in p for p in check_addresses(bad))


def test_rbg_names_follow_the_controller_cut_at_63_characters():
    rbg, role = "a" * 40, "prefill-with-a-long-role-name"
    assert k8s_names.rbg_workload(rbg, role) == f"{rbg}-{role}"[:63].rstrip("-")
    assert len(k8s_names.rbg_service(rbg, role)) <= 63 and k8s_names.rbg_service(rbg, role).startswith("s-")
    assert k8s_names.rbg_pod("g", "decode", 3, leader_worker=True) == "g-decode-3-0"
    assert k8s_names.rbg_pod("g", "decode", 3, leader_worker=False) == "g-decode-3"
    assert k8s_names.lws_leader_address("vllm", 1, "default") == "vllm-1.vllm.default"
