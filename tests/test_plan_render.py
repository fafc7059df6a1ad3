"""Renderers and validators: every format validates, and the validators catch what they claim to catch."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import yaml

from llmctl.errors import PlanError
from llmctl.plan import find_catalog, load_gpu, render, solve
from llmctl.plan.render_common import RenderOptions
from llmctl.plan.render_k8s import render_k8s
from llmctl.plan.render_shell import render_shell
from llmctl.plan.types import PlanRequest, Workload
from llmctl.plan.validate import validate_compose, validate_shell
from llmctl.plan.validate_k8s import crd_schema, validate_k8s
from llmctl.plan.validate_topology import check_topology
from llmctl.plan.validate_vllm import (
    Cmd,
    check_argv,
    extract_shell_commands,
    kv_connectors,
    kv_fields,
    vllm_flags,
)

PD = Workload(isl=2048, osl=256, rate=10, ttft_slo=0.5, tpot_slo=0.05)


def plan_for(model: str, gpu: str = "h100-80gb", **kw):
    w = kw.pop("workload", Workload())
    return solve(PlanRequest(model=find_catalog(model).profile(), gpu=load_gpu(gpu), gpus_per_node=8, workload=w, **kw))


# -- pinned data ---------------------------------------------------------------------------------------


def test_flags_the_renderers_use_are_in_the_pinned_vllm_list():
    for flag in ("--nnodes", "--node-rank", "--master-addr", "--master-port", "--headless", "--data-parallel-size",
                 "--data-parallel-size-local", "--data-parallel-address", "--data-parallel-rpc-port",
                 "--data-parallel-start-rank", "--kv-transfer-config", "--tensor-parallel-size",
                 "--pipeline-parallel-size", "--enable-expert-parallel", "--distributed-executor-backend"):
        assert flag in vllm_flags(), flag


def test_pinned_connectors_and_fields():
    assert {"NixlConnector", "LMCacheConnectorV1", "MooncakeConnector"} <= kv_connectors()
    assert {"kv_connector", "kv_role", "kv_connector_extra_config", "engine_id"} <= kv_fields()


def test_crd_copies_are_the_shared_reference():
    assert crd_schema("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")["properties"]["spec"]["required"] == [
        "leaderWorkerTemplate"]
    assert "roles" in crd_schema("disaggregatedset.x-k8s.io/v1", "DisaggregatedSet")["properties"]["spec"]["properties"]
    assert "roles" in crd_schema("workloads.x-k8s.io/v1alpha2", "RoleBasedGroup")["properties"]["spec"]["properties"]


# -- flag validation ---------------------------------------------------------------------------------------


def test_check_argv_rejects_unknown_flags_and_bad_kv_config():
    assert check_argv(["vllm", "serve", "m", "--tensor-parallel-size", "8"]) == []
    assert "--tensor-parallel-sise is not a vllm 0.33.0 flag" in check_argv(["vllm", "serve", "m", "--tensor-parallel-sise", "8"])
    assert check_argv(["vllm", "serve", "m", "--port=8000"]) == []
    bad_json = check_argv(["vllm", "serve", "m", "--kv-transfer-config", "{kv_role: kv_producer}"])
    assert any("not JSON" in p for p in bad_json)
    bad = check_argv(["vllm", "serve", "m", "--kv-transfer-config",
                      json.dumps({"kv_connector": "FooConnector", "kv_role": "kv_sender", "kv_port2": 1})])
    assert any("FooConnector" in p for p in bad) and any("kv_sender" in p for p in bad) and any("kv_port2" in p for p in bad)
    assert check_argv(["python3", "-m", "sglang.launch_server", "--tp-size", "8", "--tensor-parallel-size", "8"]) == []
    assert check_argv(["python3", "-m", "sglang.launch_server", "--tp-sz", "8"]) == ["--tp-sz is not a sglang 0.5.23 flag"]
    assert check_argv(["vllm-router", "--kv-connector", "lmcache"])  # not a router P/D mode


def test_extract_shell_commands_reads_env_words_and_sh_c():
    text = 'export A=1\nB=2 exec vllm serve m \\\n  --port 8000\npip install x && exec vllm-router --port 9\n'
    cmds = extract_shell_commands(text, "f", "h")
    assert [c.argv[0] for c in cmds] == ["vllm", "vllm-router"]
    assert cmds[0].env_value("A") == "1" and cmds[0].env_value("B") == "2"
    assert cmds[0].argv[-2:] == ("--port", "8000")


def _cmd(host: str, role: str, port: int, conn: str = "NixlConnector") -> Cmd:
    kv = json.dumps({"kv_connector": conn, "kv_role": {"prefill": "kv_producer", "decode": "kv_consumer"}[role]})
    return Cmd(host, host, ("vllm", "serve", "m", "--port", str(port), "--kv-transfer-config", kv))


def test_topology_catches_unpaired_roles_port_clashes_and_router_mistakes():
    p, d = _cmd("a", "prefill", 8100), _cmd("b", "decode", 8200)
    router = Cmd("r", "r", ("vllm-router", "--vllm-pd-disaggregation", "--prefill", "http://a:8100",
                            "--decode", "http://b:8200", "--port", "8000"))
    assert check_topology([p, d, router]) == []
    assert any("no decode instance" in x for x in check_topology([p, router]))
    assert any("used twice" in x for x in check_topology([p, _cmd("a", "decode", 8100), router]))
    assert any("disagree on the KV connector" in x
               for x in check_topology([p, _cmd("b", "decode", 8200, "MooncakeConnector"), router]))
    wrong = Cmd("r", "r", ("vllm-router", "--vllm-pd-disaggregation", "--prefill", "http://b:8200",
                           "--decode", "http://a:8100", "--port", "8000"))
    assert any("listed as prefill" in x for x in check_topology([p, d, wrong]))
    missing = Cmd("r", "r", ("vllm-router", "--vllm-pd-disaggregation", "--prefill", "http://a:8100", "--port", "8000"))
    assert any("does not list decode" in x for x in check_topology([p, d, missing]))
    assert any("exactly one router" in x for x in check_topology([p, d]))


# -- every format validates -----------------------------------------------------------------------------------


CASES = {
    "405b-aggregated": dict(model="llama3.1:405b"),
    "405b-ray": dict(model="llama3.1:405b", executor="ray"),
    "70b-pd-nixl": dict(model="llama3.1:70b", workload=PD, disaggregate="on"),
    "70b-pd-mooncake": dict(model="llama3.1:70b", workload=PD, disaggregate="on", kv_connector="MooncakeConnector"),
    "70b-pd-lmcache": dict(model="llama3.1:70b", workload=PD, disaggregate="on", kv_connector="LMCacheConnectorV1"),
    "8b-dp-2-nodes": dict(model="llama3.1:8b", nodes=2),
    "qwen-moe-sglang-pd": dict(model="qwen3:235b", engine="sglang", disaggregate="on",
                               workload=Workload(isl=4096, osl=1024, rate=5, ttft_slo=2, tpot_slo=0.05)),
    "deepseek-sglang": dict(model="deepseek-r1", engine="sglang", gpu="h200"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
@pytest.mark.parametrize("fmt", ["shell", "lws", "disaggregatedset", "rbg"])
def test_every_format_validates(case, fmt):
    kw = dict(CASES[case])
    plan = plan_for(kw.pop("model"), kw.pop("gpu", "h100-80gb"), **kw)
    if fmt == "disaggregatedset" and plan.mode == "aggregated":
        with pytest.raises(PlanError, match="needs a disaggregated plan"):
            render(plan, fmt)
        return
    if fmt == "disaggregatedset" and plan.kv_connector == "LMCacheConnectorV1":
        with pytest.raises(PlanError, match="no stable address"):
            render(plan, fmt)
        return
    files, report = render(plan, fmt)
    assert files and not report.problems and report.checks


def test_compose_single_host_and_refusal_for_multi_node():
    plan = plan_for("llama3.1:70b", workload=Workload(rate=4, tpot_slo=0.1), disaggregate="on", max_nodes=1)
    files, _ = render(plan, "compose")
    doc = yaml.safe_load(files[0].content)
    engines = [s for s in doc["services"].values() if "deploy" in s]
    ids = [i for s in engines for i in s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]]
    assert len(ids) == len(set(ids)) == plan.gpus
    assert "router" in doc["services"] and doc["services"]["router"]["network_mode"] == "host"
    with pytest.raises(PlanError, match="compose describes one host"):
        render(plan_for("llama3.1:405b"), "compose")


def test_shell_scripts_per_node_with_address_guards():
    plan = plan_for("llama3.1:405b")
    files = {f.path: f for f in render(plan, "shell")[0]}
    assert set(files) == {"node-0.sh", "node-1.sh"} and all(f.executable for f in files.values())
    head, worker = files["node-0.sh"].content, files["node-1.sh"].content
    assert ': "${NODE0_ADDR:?' in head and "--node-rank 0" in head and "--headless" not in head
    assert "--node-rank 1" in worker and "--headless" in worker and '--master-addr "${NODE0_ADDR}"' in worker


def test_shell_pd_has_producer_consumer_and_router():
    files = {f.path: f.content for f in render(plan_for("llama3.1:70b", workload=PD, disaggregate="on"), "shell")[0]}
    text = "\n".join(files.values())
    assert '"kv_role":"kv_producer"' in text and '"kv_role":"kv_consumer"' in text
    assert "--vllm-pd-disaggregation" in files["router.sh"] and "--kv-connector nixl" in files["router.sh"]


def test_validate_shell_catches_a_tampered_script():
    files = render_shell(plan_for("llama3.1:405b"))
    assert not validate_shell(files).problems
    bad = [type(f)(f.path, f.content.replace("--tensor-parallel-size", "--tensor-paralel-size"), f.executable)
           for f in files]
    assert any("--tensor-paralel-size" in p for p in validate_shell(bad).problems)


def test_validate_compose_catches_shared_gpus():
    plan = plan_for("llama3.1:8b", nodes=1, engine="sglang")
    files, _ = render(plan, "compose")
    doc = yaml.safe_load(files[0].content)
    for svc in doc["services"].values():
        if "deploy" in svc:
            svc["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] = ["0"]
    tampered = [type(files[0])("compose.yaml", yaml.safe_dump(doc))]
    assert any("GPU 0 is reserved by" in p for p in validate_compose(tampered).problems)


# -- Kubernetes objects ---------------------------------------------------------------------------------------


def test_lws_close_to_the_upstream_example():
    plan = plan_for("llama3.1:405b")
    _, objs = render_k8s(plan, "lws")
    lws, svc = objs
    lwt = lws["spec"]["leaderWorkerTemplate"]
    assert lws["kind"] == "LeaderWorkerSet" and lwt["size"] == 2 and lwt["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader = lwt["leaderTemplate"]["spec"]["containers"][0]
    worker = lwt["workerTemplate"]["spec"]["containers"][0]
    assert "$(LWS_LEADER_ADDRESS)" in leader["command"] and "$(LWS_WORKER_INDEX)" in worker["command"]
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert leader["readinessProbe"]["httpGet"]["path"] == "/health"
    assert lwt["leaderTemplate"]["spec"]["volumes"][0]["emptyDir"]["medium"] == "Memory"
    assert svc["kind"] == "Service" and svc["spec"]["selector"]["role"] == "leader"


def test_disaggregatedset_roles_are_lws_templates_and_router_discovers_them():
    plan = plan_for("llama3.1:70b", workload=PD, disaggregate="on")
    _, objs = render_k8s(plan, "disaggregatedset")
    kinds = [o["kind"] for o in objs]
    assert kinds == ["DisaggregatedSet", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"]
    ds = objs[0]
    assert [r["name"] for r in ds["spec"]["roles"]] == ["prefill", "decode"]
    assert all("leaderWorkerTemplate" in r["spec"] for r in ds["spec"]["roles"])
    router = objs[4]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert router[0] == "vllm-router" and "--service-discovery" in router and "llmctl.dev/role=prefill" in router


def test_rbg_has_router_prefill_and_decode_roles():
    plan = plan_for("qwen3:235b", engine="sglang", disaggregate="on",
                    workload=Workload(isl=4096, osl=1024, rate=5, ttft_slo=2, tpot_slo=0.05))
    _, objs = render_k8s(plan, "rbg")
    rbg = objs[0]
    assert rbg["apiVersion"] == "workloads.x-k8s.io/v1alpha2"
    roles = {r["name"]: r for r in rbg["spec"]["roles"]}
    assert set(roles) == {"router", "prefill", "decode"}
    cmd = roles["router"]["standalonePattern"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[:4] == ["python3", "-m", "sglang_router.launch_router", "--pd-disaggregation"]
    assert cmd.count("--decode") == roles["decode"]["replicas"]


def test_validate_k8s_catches_schema_errors_in_crds_and_core_kinds():
    plan = plan_for("llama3.1:70b", workload=PD, disaggregate="on")
    files, objs = render_k8s(plan, "lws")
    assert not validate_k8s(objs).problems
    bad = copy.deepcopy(objs)
    bad[0]["spec"]["leaderWorkerTemplate"]["size"] = "two"  # CRD: integer
    bad[0]["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["imagePullPolicy2"] = "x"
    svc = next(o for o in bad if o["kind"] == "Service")
    svc["spec"]["ports"][0]["port"] = "eighty"  # core: integer
    problems = validate_k8s(bad).problems
    assert any("size" in p and "'two'" in p for p in problems)
    assert any("imagePullPolicy2" in p for p in problems)
    assert any("Service/" in p and "eighty" in p for p in problems)


def test_validate_k8s_catches_selectors_that_miss_the_leaders():
    plan = plan_for("llama3.1:70b", workload=PD, disaggregate="on")
    _, objs = render_k8s(plan, "disaggregatedset")
    bad = copy.deepcopy(objs)
    dep = next(o for o in bad if o["kind"] == "Deployment")
    cmd = dep["spec"]["template"]["spec"]["containers"][0]["command"]
    cmd[cmd.index("llmctl.dev/role=decode")] = "llmctl.dev/role=decoder"
    assert any("does not select exactly the decode leaders" in p
               for p in validate_k8s(bad).problems)


def test_validate_k8s_cel_rule_of_disaggregatedset():
    plan = plan_for("llama3.1:70b", workload=PD, disaggregate="on")
    _, objs = render_k8s(plan, "disaggregatedset")
    bad = copy.deepcopy(objs)
    bad[0]["spec"]["roles"][0]["spec"]["replicas"] = 0
    assert any("replicas must be zero for all" in p for p in validate_k8s(bad).problems)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_decodes_the_rendered_yaml(settings):
    """kubectl runs from the API layer (plan/ starts no process), on exactly the text that is printed."""
    from llmctl.api.plan import kubectl_decode, render_plan
    from llmctl.plan.render_common import RenderedFile

    files, report = render_plan(settings, plan_for("llama3.1:405b"), "lws", RenderOptions())
    assert any("kubectl" in c for c in report.checks)
    assert kubectl_decode(files[0]) is None
    assert kubectl_decode(RenderedFile("x.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: [\n")) is not None


def test_bash_parses_rendered_scripts_through_the_api(settings):
    from llmctl.api.plan import bash_syntax, render_plan
    from llmctl.plan.render_common import RenderedFile

    _, report = render_plan(settings, plan_for("llama3.1:405b"), "shell", RenderOptions())
    assert "bash -n parses every script" in report.checks
    assert "bash -n" in (bash_syntax(RenderedFile("x.sh", "if then fi (\n")) or "")


def test_render_options_name_namespace_and_images():
    opts = RenderOptions(image="registry.local/vllm:custom", router_image="registry.local/router:1", name="My Model",
                         namespace="llm")
    files, _ = render(plan_for("llama3.1:70b", workload=PD, disaggregate="on"), "lws", opts)
    docs = list(yaml.safe_load_all(files[0].content))
    assert all(d["metadata"]["namespace"] == "llm" for d in docs)
    assert docs[0]["metadata"]["name"] == "my-model-prefill"
    text = files[0].content
    assert "registry.local/vllm:custom" in text and "registry.local/router:1" in text and "pip install" not in text
