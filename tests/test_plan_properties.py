"""Properties: any catalog model on any GPU profile and node count (up to 64 GPUs) yields a plan that
validates in every format it supports, or a clear LlmctlError — never a crash or an invalid file."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmctl.errors import LlmctlError, PlanError
from llmctl.plan import catalog, gpu_profiles, render, solve
from llmctl.plan.types import PlanRequest, Workload

MODELS = [e.profile() for e in catalog()]
GPUS = gpu_profiles()


@st.composite
def requests(draw):
    gpn = draw(st.sampled_from([1, 2, 4, 8]))
    nodes = draw(st.integers(min_value=1, max_value=64 // gpn))
    engine = draw(st.sampled_from(["vllm", "sglang"]))
    workload = Workload(
        isl=draw(st.sampled_from([128, 1024, 2048, 8192])),
        osl=draw(st.sampled_from([16, 256, 1024])),
        rate=draw(st.one_of(st.none(), st.floats(min_value=0.1, max_value=100))),
        ttft_slo=draw(st.one_of(st.none(), st.sampled_from([0.1, 0.5, 2.0, 10.0]))),
        tpot_slo=draw(st.one_of(st.none(), st.sampled_from([0.01, 0.03, 0.1, 0.5]))),
    )
    return PlanRequest(
        model=draw(st.sampled_from(MODELS)),
        gpu=draw(st.sampled_from(GPUS)),
        gpus_per_node=gpn,
        workload=workload,
        nodes=nodes if draw(st.booleans()) else None,
        max_nodes=nodes,
        dtype=draw(st.sampled_from([None, "fp8"])),
        disaggregate=draw(st.sampled_from(["auto", "on", "off"])),
        engine=engine,
        kv_connector=draw(st.sampled_from([None, "NixlConnector", "MooncakeConnector", "LMCacheConnectorV1"])),
        executor=draw(st.sampled_from(["mp", "ray"])) if engine == "vllm" else "mp",
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_any_request_gives_a_valid_plan_or_a_clear_error(req):
    try:
        plan = solve(req)
    except LlmctlError as exc:
        assert str(exc) and "\n" not in str(exc)  # one line for the CLI
        return
    m = req.model
    assert plan.nodes <= req.node_budget
    if req.nodes is None:
        assert plan.gpus <= req.node_budget * req.gpus_per_node
    for r in plan.roles:
        tp = r.shape.tp
        assert m.num_attention_heads % tp == 0 and (m.is_mla or m.num_kv_heads % tp == 0 or tp % m.num_kv_heads == 0)
        assert (tp <= req.gpus_per_node or tp % req.gpus_per_node == 0) and r.memory.fits and r.instances >= 1
        assert r.shape.dp == 1 or (m.is_moe and r.shape.pp == 1 and r.shape.ep)
        assert r.memory.weights + r.memory.activations + r.memory.runtime < r.memory.budget
    w = req.workload
    if w.rate is not None:
        assert plan.expected.capacity_rps >= w.rate * (1 - 1e-6)
    if w.tpot_slo is not None:
        assert plan.expected.tpot <= w.tpot_slo * (1 + 1e-6)
    if w.ttft_slo is not None:
        assert plan.expected.ttft <= w.ttft_slo * (1 + 1e-6)
    assert not math.isnan(plan.expected.tpot)
    for fmt in ("shell", "lws", "rbg", "disaggregatedset", "compose"):
        try:
            files, report = render(plan, fmt)
        except PlanError as exc:
            # the only refusals: compose for several nodes, DisaggregatedSet for an aggregated plan; for LMCache
            # P/D, DisaggregatedSet (no stable pod names) and bare hosts with decoders the proxy cannot address
            assert "failed validation" not in str(exc), str(exc)
            lm = plan.mode == "disaggregated" and plan.kv_connector == "LMCacheConnectorV1"
            assert ((fmt == "compose" and plan.nodes > 1) or (fmt == "disaggregatedset" and plan.mode == "aggregated")
                    or (lm and fmt == "disaggregatedset") or (lm and fmt in ("shell", "compose")
                                                             and "LMCache's P/D proxy" in str(exc))), str(exc)
            continue
        assert files and not report.problems
