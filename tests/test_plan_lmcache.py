"""LMCache prefill/decode disaggregation: the plan's shape rule, the LMCache configuration each engine gets, the
proxy that joins them, and the validators that check all of it against the pinned LMCache data."""

from __future__ import annotations

import json

import pytest
import yaml

from llmctl.errors import PlanError
from llmctl.plan import find_catalog, lmcache, load_gpu, render, solve
from llmctl.plan.explain import text_lines
from llmctl.plan.render_common import RenderedFile, RenderOptions
from llmctl.plan.render_k8s import render_k8s
from llmctl.plan.render_shell import render_shell
from llmctl.plan.types import PlanRequest, Workload
from llmctl.plan.units import GiB
from llmctl.plan.validate import validate_shell
from llmctl.plan.validate_k8s import validate_k8s
from llmctl.plan.validate_lmcache import check_engine, config_keys, extra_config_keys
from llmctl.plan.validate_vllm import Cmd, check_argv, connector_for_engine, lmcache_proxy_flags

PD = Workload(isl=2048, osl=256, rate=10, ttft_slo=0.5, tpot_slo=0.05)
SEED = RenderOptions(hash_seed="4242")


def lm_plan(model: str = "llama3.1:70b", gpu: str = "h100-80gb", **kw):
    w = kw.pop("workload", PD)
    kw.setdefault("disaggregate", "on")
    return solve(PlanRequest(model=find_catalog(model).profile(), gpu=load_gpu(gpu), gpus_per_node=8, workload=w,
                             kv_connector="LMCacheConnectorV1", **kw))


# -- the plan ---------------------------------------------------------------------------------------------------


def test_pools_share_one_single_node_shape():
    plan = lm_plan()
    pre, dec = plan.role("prefill"), plan.role("decode")
    assert plan.kv_connector == "LMCacheConnectorV1" and lmcache.is_pd(plan)
    assert pre.shape == dec.shape and pre.shape.pp == 1
    assert plan.expected.capacity_rps >= 10 and plan.expected.tpot <= 0.05 and plan.expected.ttft <= 0.5


def test_lmcache_pd_refusals_are_clear():
    with pytest.raises(PlanError, match=r"rule lmcache-no-pp: .*pd_backend\.py"):
        lm_plan("llama3.1:405b", workload=Workload())  # needs PP 2 across nodes
    with pytest.raises(PlanError, match="cannot join prefill and decode pools for sglang"):
        connector_for_engine("sglang", "LMCacheConnectorV1", disaggregated=True)
    assert connector_for_engine("vllm", "LMCacheConnectorV1", disaggregated=True) == "LMCacheConnectorV1"


def test_buffers_follow_the_examples_and_each_role_keeps_its_own_outside_vllm():
    """Sender one sequence, receiver two (at least vLLM's example 1 and 2 GiB); each buffer lives outside vLLM's
    pool, so the role holding it gets its own --gpu-memory-utilization: the default while the CUDA context and the
    buffer fit in the 10% vLLM leaves, less (and different for prefill and decode) when they do not."""
    plan = lm_plan()
    b = lmcache.buffers(plan.role("decode").memory)
    assert b.sender == 1 * GiB and b.receiver == 2 * GiB  # vLLM's example configs, when a sequence is small
    assert {r.memory.utilization for r in plan.roles} == {0.90}
    long = lm_plan("llama3.1:8b", workload=Workload(isl=100_000, osl=1000), tp=1)
    pre, dec = long.role("prefill").memory, long.role("decode").memory
    lb = lmcache.buffers(dec)
    assert lb.sender == lb.sequence > 12 * GiB and lb.receiver == 2 * lb.sequence
    device = pre.device_bytes
    for mem, buf in ((pre, lb.sender), (dec, lb.receiver)):
        assert mem.utilization == int((device - GiB - buf) / device * 100) / 100  # rounded down
        assert mem.budget == int(device * mem.utilization) and mem.fits
    assert dec.utilization < pre.utilization < 0.90
    files, _ = render(long, "shell", SEED)  # the flag validators pass the per-role values
    text = "\n".join(f.content for f in files)
    assert f"--gpu-memory-utilization {pre.utilization:.2f}" in text
    assert f"--gpu-memory-utilization {dec.utilization:.2f}" in text


def test_explain_shows_the_hand_off_and_buffers():
    text = "\n".join(line for _, line in text_lines(lm_plan()))
    assert "LMCache (NIXL) via its P/D proxy" in text
    assert "[prefill] LMCache buffer  1.00 GiB per GPU" in text and "[decode] LMCache buffer   2.00 GiB per GPU" in text


# -- engine configuration -------------------------------------------------------------------------------------


def test_engine_env_uses_only_pinned_keys_and_per_rank_ports():
    plan = lm_plan()
    keys = config_keys()
    tp = plan.role("decode").shape.tp
    for role in ("prefill", "decode"):
        env = dict(lmcache.engine_env(plan, role, proxy_host="r", hash_seed="1", index=1, count=2))
        assert env["PYTHONHASHSEED"] == "1"
        assert all(k.removeprefix("LMCACHE_").lower() in keys for k in env if k.startswith("LMCACHE_"))
    env = dict(lmcache.engine_env(plan, "decode", proxy_host="r", hash_seed="1", index=1, count=2))
    assert env["LMCACHE_PD_PEER_INIT_PORT"] == ",".join(str(7300 + r * 2 + 1) for r in range(tp))
    assert env["LMCACHE_PD_ROLE"] == "receiver" and env["LMCACHE_PD_PEER_HOST"] == "0.0.0.0"
    env = dict(lmcache.engine_env(plan, "prefill", proxy_host="r", hash_seed="1"))
    assert (env["LMCACHE_PD_ROLE"], env["LMCACHE_PD_PROXY_HOST"], env["LMCACHE_PD_PROXY_PORT"]) == ("sender", "r", "7500")
    assert set(lmcache.kv_extra_config("decode", 3)) <= extra_config_keys()
    assert lmcache.kv_extra_config("decode", 3)["skip_last_n_tokens"] == 1
    assert lmcache.kv_extra_config("prefill", 3) == {"discard_partial_chunks": False, "lmcache_rpc_port": "producer3"}


def _engine(role: str, env: dict[str, str], tp: int = 2, extra: dict | None = None) -> Cmd:
    kv = {"kv_connector": "LMCacheConnectorV1", "kv_role": "kv_producer" if role == "prefill" else "kv_consumer",
          "kv_connector_extra_config": extra or {"lmcache_rpc_port": "x"}}
    argv = ("vllm", "serve", "m", "--port", "8100", "--tensor-parallel-size", str(tp), "--kv-transfer-config",
            json.dumps(kv))
    return Cmd("f", "h", argv, tuple(env.items()))


def test_check_engine_catches_unknown_keys_bad_values_and_missing_settings():
    plan = lm_plan()
    good = dict(lmcache.engine_env(plan, "decode", proxy_host="r", hash_seed="1"))
    tp = plan.role("decode").shape.tp
    assert check_engine(_engine("decode", good, tp)) == []
    bad = dict(good, LMCACHE_PD_BUFFER_SIZE="2GB", LMCACHE_PD_PEERHOST="0.0.0.0", LMCACHE_ENABLE_PD="yes")
    del bad["LMCACHE_PD_PEER_ALLOC_PORT"], bad["PYTHONHASHSEED"]
    problems = " | ".join(check_engine(_engine("decode", bad, tp, {"lmcache_rpc_port": "x", "skip_last": 1})))
    for text in ("LMCACHE_PD_BUFFER_SIZE='2GB'", "LMCACHE_PD_PEERHOST is not an LMCache", "'yes' is not a boolean",
                 "needs LMCACHE_PD_PEER_ALLOC_PORT", "PYTHONHASHSEED must be set", "'skip_last' is not one"):
        assert text in problems, text
    assert any("lists" in p and "TP ranks" in p for p in check_engine(_engine("decode", good, tp * 2)))
    assert any("must be sender" in p for p in check_engine(_engine("prefill", good, tp)))


def test_flags_of_the_proxy_and_the_negated_prefix_cache_flag():
    assert {"--decoder-init-port", "--decoder-alloc-port", "--proxy-port"} <= lmcache_proxy_flags()
    assert check_argv(["python3", "disagg_proxy_server.py", "--proxy-port", "7500", "--num-decoders", "2"]) == []
    assert check_argv(["python3", "/x/disagg_proxy_server.py", "--decoder-ports", "1"])
    assert check_argv(["vllm", "serve", "m", "--no-enable-prefix-caching"]) == []
    assert check_argv(["vllm", "serve", "m", "--no-max-model-len", "1"])


# -- the proxy --------------------------------------------------------------------------------------------------


def test_proxy_pairs_hosts_the_way_disagg_proxy_server_does():
    one_host = lmcache.proxy_argv([("a", 8100)], [("b", 8201), ("b", 8202)], tp=2)
    values = dict(zip(one_host[2::2], one_host[3::2], strict=False))
    view = lmcache.proxy_view(values)
    assert view.decode == [("b", 8201, [7300, 7302], [7400, 7402]), ("b", 8202, [7301, 7303], [7401, 7403])]
    assert [lmcache.decoder_ports(2, i, 2) for i in range(2)] == [([7300, 7302], [7400, 7402]),
                                                                 ([7301, 7303], [7401, 7403])]
    spread = lmcache.proxy_argv([("a", 8100), ("a", 8101)], [("b", 8200), ("c", 8200)], tp=1)
    view = lmcache.proxy_view(dict(zip(spread[2::2], spread[3::2], strict=False)))
    assert view.prefill == [("a", 8100), ("a", 8101)]
    assert view.decode == [("b", 8200, [7300], [7400]), ("c", 8200, [7300], [7400])]
    assert lmcache.decoder_slots(["b", "c"]) == [(0, 1), (0, 1)]
    assert lmcache.decoder_slots(["b", "b"]) == [(0, 2), (1, 2)]
    with pytest.raises(PlanError, match="cannot address 2 decode instances on one host"):
        lmcache.decoder_slots(["b", "b", "c"])


# -- rendered files -----------------------------------------------------------------------------------------------


def test_shell_scripts_pass_the_router_address_and_one_seed():
    files = {f.path: f.content for f in render_shell(lm_plan())}
    assert 'ROUTER_ADDR:?set ROUTER_ADDR' in files["node-0.sh"]
    assert 'LMCACHE_PD_PROXY_HOST="${ROUTER_ADDR}"' in files["node-0.sh"]
    assert "exec python3 disagg_proxy_server.py" in files["router.sh"]
    seeds = {line.split("=")[1].rstrip(" \\") for f in files.values() for line in f.splitlines()
             if "PYTHONHASHSEED=" in line}
    assert len(seeds) == 1 and seeds != {"0"}
    again = {f.path: f.content for f in render_shell(lm_plan())}
    assert again["node-0.sh"] != files["node-0.sh"]  # a fresh random seed per rendering


def _tamper(files: list[RenderedFile], path: str, old: str, new: str) -> list[str]:
    out = [RenderedFile(f.path, f.content.replace(old, new) if f.path == path else f.content) for f in files]
    assert any(old in f.content for f in files if f.path == path), old
    return validate_shell(out).problems


def test_validate_shell_catches_lmcache_wiring_mistakes():
    files = render_shell(lm_plan(), SEED)
    assert validate_shell(files).problems == []
    dec = next(f for f in files if "LMCACHE_PD_ROLE=receiver" in f.content)
    init = next(line.strip(" \\") for line in dec.content.splitlines() if "PD_PEER_INIT_PORT" in line)
    assert any("binds" in p for p in _tamper(files, dec.path, init, init.replace("7300", "7310")))
    assert any("disagree on PYTHONHASHSEED" in p for p in _tamper(files, "node-0.sh", "PYTHONHASHSEED=4242 ", "PYTHONHASHSEED=1 "))
    assert any("proxy listens" in p for p in _tamper(files, "router.sh", "--proxy-port 7500", "--proxy-port 7600"))
    assert any("RPC name producer0 is used twice" in p
               for p in _tamper(files, "node-0.sh", '"lmcache_rpc_port":"producer1"', '"lmcache_rpc_port":"producer0"'))


def test_compose_puts_every_decoder_behind_the_incremental_proxy():
    plan = lm_plan("llama3.1:8b", workload=Workload(isl=2048, osl=256, rate=40, ttft_slo=0.3, tpot_slo=0.02),
                   max_nodes=1)
    assert plan.role("decode").instances >= 2 and plan.nodes == 1
    files, report = render(plan, "compose", SEED)
    assert not report.problems
    router = yaml.safe_load(files[0].content)["services"]["router"]
    args = router["command"]
    assert router["image"] == "vllm/vllm-openai:v0.33.0" and router["entrypoint"] == ["python3"]
    assert args[0] == lmcache.PROXY_SCRIPT_IN_IMAGE
    assert args[args.index("--decoder-host") + 1] == "127.0.0.1"
    assert args[args.index("--num-decoders") + 1] == str(plan.role("decode").instances)


def test_kubernetes_names_leader_pods_and_exposes_the_notify_port():
    plan = lm_plan()
    files, objs = render_k8s(plan, "lws", SEED)
    router = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    cmd = router["command"]
    hosts = cmd[cmd.index("--decoder-host") + 1].split(",")
    assert hosts == [f"llama-3-1-70b-instruct-decode-{i}.llama-3-1-70b-instruct-decode.default"
                     for i in range(plan.role("decode").instances)]
    svc = next(o for o in objs if o["kind"] == "Service")
    assert {"name": "pd-notify", "port": 7500, "protocol": "TCP", "targetPort": 7500} in svc["spec"]["ports"]
    assert not any(o["kind"] == "Role" for o in objs)  # static names: no pod discovery, no RBAC
    text = files[0].content.replace("-decode-0.llama-3-1-70b-instruct-decode.", "-decode-9.llama-3-1-70b-instruct-decode.")
    assert any("are not the decode leader pods" in p
               for p in validate_k8s(list(yaml.safe_load_all(text))).problems)
    _, rbg = render_k8s(plan, "rbg", SEED)
    roles = {r["name"]: r for r in next(o for o in rbg if o["kind"] == "RoleBasedGroup")["spec"]["roles"]}
    cmd = roles["router"]["standalonePattern"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--decoder-host") + 1].startswith("llama-3-1-70b-instruct-decode-0.s-llama-3-1-70b-instruct-decode")


def test_disaggregatedset_is_refused_with_the_formats_that_work():
    with pytest.raises(PlanError, match="revision hash.*--format lws or --format rbg"):
        render(lm_plan(), "disaggregatedset")
