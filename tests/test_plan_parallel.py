"""The parallelism search: DP-attention + EP groups for MoE models (one lockstep instance, priced as one),
TP across nodes, KV-head replication, each engine's real flags, and the PerfModel seam."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from llmctl.plan import find_catalog, load_gpu, memory, perf, render, solve
from llmctl.plan.launch import processes
from llmctl.plan.memory import Shape
from llmctl.plan.shapes import candidate_shapes
from llmctl.plan.types import PlanRequest, Workload
from llmctl.plan.validate_vllm import flag_value


def request(model: str, gpu: str = "h100-80gb", **kw) -> PlanRequest:
    return PlanRequest(model=find_catalog(model).profile(), gpu=load_gpu(gpu), gpus_per_node=kw.pop("gpn", 8),
                       workload=kw.pop("workload", Workload()), **kw)


def test_moe_models_get_dp_attention_groups_dense_models_do_not():
    ds = find_catalog("deepseek-r1").profile()
    groups = [s for s in candidate_shapes(ds, 8, 2) if s.dp > 1]
    assert Shape(1, 1, 8, True) in groups and Shape(1, 1, 16, True) in groups and Shape(2, 1, 4, True) in groups
    assert all(s.pp == 1 and s.ep for s in groups)
    assert not [s for s in candidate_shapes(find_catalog("llama3.1:70b").profile(), 8, 2) if s.dp > 1]


def test_dp_group_spreads_experts_and_keeps_each_ranks_mla_cache():
    """DP 8 x TP 1: experts over 8 GPUs, attention whole on each rank; MLA's latent is not split by TP, so each
    DP rank holding its own sequences gives 8x the sequences of TP 8 for the same KV memory per GPU."""
    ds, gpu = find_catalog("deepseek-r1").profile(), load_gpu("h200")
    tp8 = memory.memory_breakdown(ds, gpu, Shape(8, 1, 1, True), "fp8", "bf16", 4096)
    dp8 = memory.memory_breakdown(ds, gpu, Shape(1, 1, 8, True), "fp8", "bf16", 4096)
    assert dp8.expert_weights == tp8.expert_weights  # experts / 8 either way
    assert dp8.weights > tp8.weights  # attention and dense layers replicated on every DP rank
    assert dp8.kv_bytes_per_token == tp8.kv_bytes_per_token  # the whole latent per GPU
    assert dp8.max_seqs > 4 * tp8.max_seqs


def test_lockstep_group_is_priced_as_one_instance():
    """A DP group's decode step is set by its busiest rank and pays the all-to-all; it is not DP independent
    replicas (which would each read all experts alone)."""
    ds = find_catalog("deepseek-r1").profile()
    model = perf.Roofline(perf.PerfInputs(ds, load_gpu("h200"), 8, "fp8", "bf16"))
    group = model.decode_step(Shape(1, 1, 8, True), 64, 2048)
    assert group.comm_s > 0  # dispatch + combine every MoE layer
    one_rank = model.decode_step(Shape(1, 1, 8, True), 8, 2048)
    assert group.time > one_rank.time  # more tokens route to more experts: the group is one instance


def test_moe_replicas_are_separate_engines_not_one_data_parallel_command():
    """Several TP x EP replicas of a MoE model must not be rendered as one `--data-parallel-size N` (that would be
    a lockstep group with experts spread over all N, which is not what was sized)."""
    plan = solve(request("qwen3:30b", nodes=1, disaggregate="off"))
    role = plan.roles[0]
    assert role.instances > 1 and role.shape.dp == 1
    procs = [p for p in processes(plan, lambda n: f"${{NODE{n}_ADDR}}") if p.role == "serve"]
    assert len(procs) == role.instances
    assert all(flag_value(p.argv, "--data-parallel-size") is None for p in procs)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_multi_node_dp_group_renders_and_validates(engine):
    req = request("deepseek-r1", engine=engine, disaggregate="off", tp=1,
                  workload=Workload(isl=2000, osl=500, rate=40))
    plan = solve(req)
    role = plan.roles[0]
    assert role.shape.dp > 8 and role.nodes_per_instance > 1 and role.instances == 1
    for fmt in ("shell", "lws", "rbg"):
        files, report = render(plan, fmt)
        assert not report.problems, (fmt, report.problems)
    files, _ = render(plan, "shell")
    head, worker = files[0].content, files[1].content
    if engine == "vllm":
        assert f"--data-parallel-size {role.shape.dp}" in head and "--data-parallel-size-local 8" in head
        assert "--data-parallel-start-rank 8" in worker and "--headless" in worker and "--nnodes" not in worker
        assert "--enable-expert-parallel" in head
    else:
        assert f"--tp-size {role.shape.dp}" in head and f"--dp-size {role.shape.dp}" in head
        assert "--enable-dp-attention" in head and f"--ep-size {role.shape.dp}" in head and "--node-rank 1" in worker
    lws, _ = render(plan, "lws")
    docs = list(yaml.safe_load_all(lws[0].content))
    command = docs[0]["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["command"]
    if engine == "vllm":  # a worker's first DP rank is its LWS index x local ranks
        assert command[:2] == ["sh", "-c"] and "--data-parallel-start-rank $((LWS_WORKER_INDEX * 8))" in command[2]


def test_single_node_dp_group_is_one_vllm_serve():
    plan = solve(request("deepseek-r1", "h200", disaggregate="off", tp=1, workload=Workload(rate=5)))
    role = plan.roles[0]
    assert role.shape == Shape(1, 1, 8, True)
    files, report = render(plan, "shell")
    assert not report.problems
    text = files[0].content
    assert "--data-parallel-size 8" in text and "--data-parallel-size-local" not in text
    assert f"--max-num-seqs {role.max_num_seqs}" in text  # per DP rank, as vLLM counts it


def test_tp_can_span_nodes_priced_over_the_nic():
    plan = solve(request("llama3.1:405b", tp=16))
    role = plan.roles[0]
    assert role.shape == Shape(16, 1) and role.nodes_per_instance == 2
    inter = perf.Roofline(perf.PerfInputs(plan.request.model, plan.request.gpu, 8, "bf16", "bf16"))
    assert inter.allreduce(16, 1e6) > inter.allreduce(8, 1e6)  # the NIC, not NVLink
    files, report = render(plan, "shell")
    assert not report.problems and "--tensor-parallel-size 16" in files[0].content and "--nnodes 2" in files[0].content


def test_405b_still_pipelines_across_nodes_by_default():
    """TP 16 over InfiniBand costs an all-reduce per layer on the NIC; PP 2 one hop per stage: the default stays
    the shape the LWS vLLM example deploys."""
    assert solve(request("llama3.1:405b")).roles[0].shape == Shape(8, 2)


def test_a_measured_profile_replaces_the_roofline():
    """PlanRequest.perf_model: the seam `plan --profile` plugs a measured speed model into."""

    class Measured:
        def __init__(self, inputs: perf.PerfInputs) -> None:
            self.inputs, self.label = inputs, "measured on this cluster"

        def prefill(self, shape: Shape, isl: int) -> perf.Prefill:
            t = isl / 20000.0
            return perf.Prefill(flops=0.0, latency=t, service=t / shape.gpus, peak_flops=1.0, compute_s=t)

        def decode_step(self, shape: Shape, batch: float, context: float) -> perf.DecodeStep:
            t = 0.010 + 0.0001 * batch
            return perf.DecodeStep(batch=batch, time=t, weights_s=t, kv_s=0.0, comm_s=0.0, hops_s=0.0)

        def kv_transfer(self, decode_shape: Shape, isl: int) -> float:
            return 0.001

    req = replace(request("llama3.1:8b", workload=Workload(rate=5)), perf_model=Measured)
    plan = solve(req)
    assert plan.roles[0].decode_idle.time == pytest.approx(0.0101)
    assert any(s.value == "measured on this cluster" for s in plan.steps)
