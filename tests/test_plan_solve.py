"""The planner: sanity anchors from the arithmetic, pool sizing, SLOs, disaggregation, and clear errors."""

from __future__ import annotations

import math

import pytest

from llmctl.errors import InvalidInput, PlanError
from llmctl.plan import find_catalog, load_gpu, memory, perf, solve
from llmctl.plan.memory import Shape, weight_bytes_total
from llmctl.plan.shapes import candidate_shapes, valid_tps
from llmctl.plan.types import PlanRequest, Workload


def request(model: str, gpu: str = "h100-80gb", **kw) -> PlanRequest:
    w = kw.pop("workload", Workload())
    return PlanRequest(model=find_catalog(model).profile(), gpu=load_gpu(gpu), gpus_per_node=kw.pop("gpn", 8),
                       workload=w, **kw)


# -- sanity anchors -------------------------------------------------------------------------------------


def test_405b_bf16_on_h100_needs_two_nodes_tp8_pp2():
    """As LWS's own vLLM example deploys it, and because ~811 GB of weights exceed one node's budget."""
    req = request("llama3.1:405b")
    node_budget = 8 * load_gpu("h100-80gb").memory_bytes * memory.GPU_MEMORY_UTILIZATION
    assert weight_bytes_total(req.model, "bf16") > node_budget  # the reason, not a special case
    plan = solve(req)
    role = plan.roles[0]
    assert (role.shape.tp, role.shape.pp) == (8, 2)
    assert role.nodes_per_instance == 2 and plan.nodes == 2 and plan.gpus == 16
    assert any("PP across 2 nodes" in s.formula for s in plan.steps)


def test_405b_fits_one_h200_node():
    plan = solve(request("llama3.1:405b", "h200"))
    assert plan.nodes == 1 and plan.roles[0].shape == Shape(8, 1)


def test_8b_fits_one_gpu():
    plan = solve(request("llama3.1:8b"))
    assert plan.gpus == 1 and plan.roles[0].shape == Shape(1, 1)
    assert plan.roles[0].memory.fits


def test_deepseek_fp8_checkpoint_needs_two_h100_nodes_one_h200_node():
    assert solve(request("deepseek-r1")).nodes == 2
    plan = solve(request("deepseek-r1", "h200"))
    assert plan.nodes == 1 and plan.weight_dtype == "fp8" and plan.kv_dtype == "bf16"


@pytest.mark.parametrize("model", ["llama3.1:70b", "qwen3:235b", "qwen3:30b", "deepseek-v3"])
@pytest.mark.parametrize("gpu", ["h100-80gb", "l40s"])
def test_tp_always_divides_heads_and_divides_or_replicates_kv_heads(model, gpu):
    plan = solve(request(model, gpu))
    m = plan.request.model
    for r in plan.roles:
        tp = r.shape.tp
        assert m.num_attention_heads % tp == 0 and (m.num_kv_heads % tp == 0 or tp % m.num_kv_heads == 0)


def test_qwen3_235b_tp8_replicates_its_4_kv_heads():
    """vLLM and SGLang accept TP 8 for 4 KV heads by replicating each head on 2 ranks: every rank stores 1."""
    m = find_catalog("qwen3:235b").profile()
    assert valid_tps(m, 8) == [1, 2, 4, 8]
    from llmctl.plan import kv

    assert kv.kv_heads_per_rank(m, 8) == kv.kv_heads_per_rank(m, 4) == 1
    assert kv.bytes_per_token(m, 8, 1, "bf16") == kv.bytes_per_token(m, 4, 1, "bf16") == 94 * 2 * 1 * 128 * 2
    plan = solve(request("qwen3:235b", tp=8))
    assert plan.roles[0].shape.tp == 8 and plan.roles[0].expert_parallel
    assert any("replicated on 2 ranks" in s.formula for s in plan.steps)


def test_candidate_shapes_prefer_tp_and_span_whole_nodes():
    m = find_catalog("llama3.1:70b").profile()
    shapes = candidate_shapes(m, 8, 3)
    assert shapes == [Shape(1, 1), Shape(2, 1), Shape(4, 1), Shape(8, 1), Shape(8, 2), Shape(16, 1), Shape(8, 3)]
    assert all(s.dp == 1 for s in shapes)  # DP-attention groups are for MoE models only


# -- memory and speed arithmetic ------------------------------------------------------------------------


def test_memory_breakdown_adds_up():
    m = find_catalog("llama3.1:70b").profile()
    mem = memory.memory_breakdown(m, load_gpu("h100-80gb"), Shape(4, 1), "bf16", "bf16", 3072)
    assert mem.kv_free == mem.budget - mem.weights - mem.activations - mem.runtime
    assert mem.kv_bytes_per_token == 80 * 2 * 8 * 128 * 2 / 4
    assert mem.kv_tokens == int(mem.kv_free // mem.kv_bytes_per_token)
    assert mem.max_seqs == mem.kv_tokens // 3072


def test_prefill_flops_formula():
    m = find_catalog("llama3.1:8b").profile()
    flops = perf.prefill_flops(m, 1000)
    expected = 2 * perf.matmul_params(m) * 1000 + 2 * 32 * 1000**2 * 4096 + 2 * 128256 * 4096
    assert flops == pytest.approx(expected)
    # ~2 x non-embedding params x tokens dominates for short prompts (8.03B - 2 x 0.53B embedding/lm_head)
    assert flops == pytest.approx(2 * 6.98e9 * 1000, rel=0.05)


def test_decode_step_is_bandwidth_bound_and_grows_with_batch():
    m, gpu = find_catalog("llama3.1:8b").profile(), load_gpu("h100-80gb")
    model = perf.Roofline(perf.PerfInputs(m, gpu, 8, "bf16", "bf16"))
    s1 = model.decode_step(Shape(1, 1), 1, 2048)
    s64 = model.decode_step(Shape(1, 1), 64, 2048)
    read = sum(memory.decode_read_bytes(m, Shape(1, 1), "bf16"))
    assert read == weight_bytes_total(m, "bf16") - 128256 * 4096 * 2  # the embedding table is gathered, not read
    assert s1.weights_s == pytest.approx(read / (gpu.hbm_bandwidth * model.data.get("memory.weights")), rel=1e-3)
    assert s1.comm_s == 0 and s64.time > s1.time and s64.weights_s == s1.weights_s
    assert s1.overhead_s > 0  # small kernels per layer and the engine step


def test_moe_decode_reads_only_touched_experts():
    m = find_catalog("qwen3:30b").profile()
    assert perf.experts_touched(m, 1) == pytest.approx(8 / 128)
    assert perf.experts_touched(m, 256) > 0.99


def test_md1_wait():
    assert perf.md1_wait(0.0, 1.0) == 0
    assert perf.md1_wait(0.5, 1.0) == pytest.approx(0.5)
    assert math.isinf(perf.md1_wait(1.0, 1.0))


# -- sizing to a rate and SLOs ---------------------------------------------------------------------------


def test_rate_sizes_the_pool_and_meets_the_slos():
    w = Workload(isl=2048, osl=256, rate=10, ttft_slo=0.5, tpot_slo=0.05)
    plan = solve(request("llama3.1:70b", workload=w, disaggregate="off"))
    r = plan.roles[0]
    assert r.instances == math.ceil(10 / r.capacity_rps)
    assert plan.expected.ttft <= 0.5 and plan.expected.tpot <= 0.05
    assert plan.expected.capacity_rps >= 10
    assert r.max_num_seqs >= r.op.batch


def test_more_traffic_never_needs_fewer_gpus():
    gpus = [solve(request("llama3.1:8b", workload=Workload(rate=r, tpot_slo=0.05), disaggregate="off")).gpus
            for r in (1, 10, 40, 80)]
    assert gpus == sorted(gpus)


def test_disaggregation_on_sizes_prefill_and_decode_pools():
    w = Workload(isl=8192, osl=1024, rate=5, ttft_slo=2.0, tpot_slo=0.04)
    plan = solve(request("llama3.1:70b", workload=w, disaggregate="on", max_nodes=16))
    assert plan.mode == "disaggregated" and plan.kv_connector == "NixlConnector"
    p, d = plan.role("prefill"), plan.role("decode")
    assert p.instances * p.capacity_rps >= 5 and d.instances * d.capacity_rps >= 5
    assert plan.expected.ttft <= 2.0 and plan.expected.tpot <= 0.04
    assert p.kv_transfer > 0
    assert any(s.label == "prefill : decode GPUs" for s in plan.steps)


def test_auto_without_rate_stays_aggregated_and_says_why():
    plan = solve(request("llama3.1:70b"))
    assert plan.mode == "aggregated" and "--rate" in plan.decision.reason


def test_auto_picks_disaggregation_when_it_pays():
    w = Workload(isl=8192, osl=1024, rate=5, ttft_slo=2.0, tpot_slo=0.04)
    plan = solve(request("llama3.1:70b", workload=w, max_nodes=16))
    d = plan.decision
    assert plan.mode == "disaggregated" and d.aggregated_gpus is not None and d.disaggregated_gpus is not None
    assert d.disaggregated_gpus <= d.aggregated_gpus and "pays" in d.reason


def test_fixed_nodes_fill_with_replicas():
    plan = solve(request("llama3.1:405b", nodes=4))
    assert plan.nodes == 4 and plan.roles[0].instances == 2
    plan = solve(request("llama3.1:8b", nodes=1))
    assert plan.roles[0].instances == 8


# -- clear errors that say what would fit ------------------------------------------------------------------


def test_model_that_does_not_fit_says_what_would():
    with pytest.raises(PlanError) as exc:
        solve(request("llama3.1:405b", max_nodes=1))
    text = str(exc.value)
    assert "does not fit 1 node(s) of 8x h100-80gb" in text
    assert "--max-nodes 2 (TP 8 x PP 2)" in text and "--dtype fp8" in text and "--gpu h200" in text


def test_tp_that_cannot_divide_heads():
    with pytest.raises(PlanError, match=r"TP 3 cannot divide.*TP sizes that fit: 1, 2, 4, 8"):
        solve(request("llama3.1:70b", tp=3))
    with pytest.raises(PlanError, match="8 KV heads"):
        solve(request("mixtral:8x22b", tp=6, gpn=12))


def test_slo_no_plan_meets_names_the_best_and_the_fix():
    w = Workload(rate=1, tpot_slo=0.005)
    with pytest.raises(PlanError) as exc:
        solve(request("llama3.1:405b", workload=w))
    text = str(exc.value)
    assert "TPOT 5.0 ms is below the" in text and "--tpot-slo" in text and "would fit" in text


def test_rate_beyond_the_node_budget():
    with pytest.raises(PlanError, match=r"--max-nodes 1 serves at most .* req/s.*--max-nodes \d+ would fit"):
        solve(request("llama3.1:8b", workload=Workload(rate=500, tpot_slo=0.05), max_nodes=1, disaggregate="off"))


def test_invalid_requests():
    with pytest.raises(InvalidInput, match="ships fp8 weights"):
        solve(request("deepseek-v3", dtype="bf16"))
    with pytest.raises(InvalidInput, match="exceeds"):
        solve(request("llama3.1:8b", workload=Workload(isl=200_000)))
    with pytest.raises(InvalidInput, match="--rate"):
        solve(request("llama3.1:8b", workload=Workload(rate=-1)))
    with pytest.raises(InvalidInput, match="not a registered"):
        solve(request("llama3.1:8b", kv_connector="NoSuchConnector"))
    with pytest.raises(PlanError, match="LMCacheConnectorV1 cannot join prefill and decode pools for sglang"):
        solve(request("llama3.1:8b", engine="sglang", kv_connector="LMCacheConnectorV1", disaggregate="on"))
    with pytest.raises(InvalidInput, match="executor ray"):
        solve(request("llama3.1:8b", engine="sglang", executor="ray"))


def test_lmcache_on_an_aggregated_plan_is_kv_both():
    plan = solve(request("llama3.1:8b", kv_connector="LMCacheConnectorV1", disaggregate="off"))
    assert plan.kv_connector == "LMCacheConnectorV1"
    from llmctl.plan.launch import kv_transfer_config

    assert kv_transfer_config(plan, "serve") == {"kv_connector": "LMCacheConnectorV1", "kv_role": "kv_both"}


def test_fp8_halves_weights_and_kv():
    bf16 = solve(request("llama3.1:70b", tp=4))
    fp8 = solve(request("llama3.1:70b", tp=4, dtype="fp8"))
    assert fp8.weight_dtype == fp8.kv_dtype == "fp8"
    assert fp8.roles[0].memory.weights < 0.52 * bf16.roles[0].memory.weights
    assert fp8.roles[0].memory.kv_tokens > 2 * bf16.roles[0].memory.kv_tokens


def test_plan_json_is_serialisable():
    import json

    plan = solve(request("llama3.1:405b", workload=Workload(rate=2, ttft_slo=3, tpot_slo=0.1)))
    doc = json.loads(json.dumps(plan.to_dict()))
    assert doc["roles"][0]["shape"] == {"tp": 8, "pp": 2, "dp": 1, "ep": 1, "gpus": 16}
    assert doc["model"]["parameters"] == plan.request.model.params().total
    assert doc["steps"] and doc["expected"]["ttft"] > 0
