"""`llmctl plan --profile`: measured speeds (llmctl bench results) in place of the roofline. Pure: profiles
are built here as bench would write them, for a catalog model on H100, and planned through the solver
and the real CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from llmctl.errors import InvalidInput, PlanError
from llmctl.plan import find_catalog, load_gpu, solve
from llmctl.plan.measured import DecodeCurve, PrefillCurve, check_request, from_results
from llmctl.plan.perf_measured import MeasuredFactory
from llmctl.plan.types import PlanRequest, Workload

MODEL = "llama3.1:8b"


def result(tp: int, *, model: str = "meta-llama/Llama-3.1-8B-Instruct", gpu: str | None = "h100-80gb",
           prefill: list[tuple[int, float]] | None = None, decode: list[tuple[float, float]] | None = None,
           version: int = 1) -> dict[str, Any]:
    """An `llmctl bench` result document, as far as plan reads it."""
    prefill = [(256, 20.0), (1024, 60.0), (4096, 300.0)] if prefill is None else prefill
    decode = [(1.0, 8.0), (16.0, 10.0), (64.0, 16.0)] if decode is None else decode
    return {
        "schema": "llmctl.bench", "version": version,
        "endpoint": {"url": "http://gpu:8000", "api": "completions", "path": "/v1/completions", "model": model},
        "deployment": {"tp": tp, "pp": None, "gpus": tp, "gpu": gpu, "label": None},
        "profile": {
            "prefill": [{"isl": i, "ttft_ms": t, "tokens_per_s": i / t * 1000, "requests": 3} for i, t in prefill],
            "decode": [{"concurrency": round(b), "batch": b, "step_ms": s, "context": 2176.0} for b, s in decode],
        },
    }


def request(speeds: Any, **kw: Any) -> PlanRequest:
    gpu = load_gpu("h100-80gb")
    model = find_catalog(MODEL).profile()
    check_request(speeds, model, MODEL, gpu)
    workload = Workload(isl=kw.pop("isl", 2048), osl=256, rate=kw.pop("rate", None),
                        ttft_slo=kw.pop("ttft_slo", None), tpot_slo=kw.pop("tpot_slo", None))
    return PlanRequest(model=model, gpu=gpu, gpus_per_node=8, workload=workload, perf_model=MeasuredFactory(speeds), **kw)


def test_curves_interpolate_and_extrapolate() -> None:
    p = PrefillCurve((256.0, 1024.0), (0.02, 0.06))
    assert p.time(256) == 0.02 and p.time(1024) == 0.06
    assert math.isclose(p.time(640), 0.04)
    assert math.isclose(p.time(2048), 0.12)  # the last point's tokens/s
    assert math.isclose(p.time(128), 0.01)
    assert "interpolated between ISL 256" in p.how(640) and "extrapolated" in p.how(2048)
    d = DecodeCurve((1.0, 16.0, 64.0), (0.008, 0.010, 0.016), context=2176)
    assert d.step(0.5) == 0.008 and d.step(16) == 0.010
    assert math.isclose(d.step(40), 0.013)
    assert math.isclose(d.step(80), 0.016 + 0.006 / 48 * 16)  # the last segment's slope
    assert d.max_batch == 64


def test_results_pool_per_shape_and_take_medians() -> None:
    a = result(1, decode=[(1.0, 8.0)], prefill=[(512, 40.0)])
    b = result(1, decode=[(1.0, 10.0), (4.0, 9.0)], prefill=[(512, 44.0), (512, 42.0)])
    speeds = from_results([("a.json", a), ("b.json", b), ("tp2.json", result(2))])
    assert [s.tp for s in speeds.shapes] == [1, 2]
    one = speeds.shapes[0]
    assert one.sources == ("a.json", "b.json")
    assert one.prefill is not None and one.prefill.seconds == pytest.approx((0.042,))
    assert one.decode is not None and one.decode.batch == (1.0, 4.0)
    assert one.decode.seconds == pytest.approx((0.009, 0.009))  # median of 8 and 10; never faster at a larger batch


def test_solver_uses_measured_speeds() -> None:
    speeds = from_results([("tp1.json", result(1)), ("tp2.json", result(2, prefill=[(2048, 80.0)],
                                                                                decode=[(1.0, 5.0), (64.0, 9.0)]))])
    plan = solve(request(speeds, rate=2.0, tpot_slo=0.012))
    role = plan.roles[0]
    s = speeds.of(role.shape)
    assert s is not None and s.prefill is not None and s.decode is not None
    assert math.isclose(role.prefill.latency, s.prefill.time(2048))
    assert math.isclose(role.decode_idle.time, s.decode.step(1))
    assert role.batch_at_capacity <= 64  # the largest batch measured
    assert role.shape.tp in (1, 2) and role.shape.pp == 1
    measured_lines = [st for st in plan.steps if st.value.endswith("(measured)")]
    labels = {st.label.split("] ", 1)[1] for st in measured_lines}
    assert {"latency (one request)", "TPOT at batch 1"} <= labels
    assert any(st.label == "speed model" and st.value.startswith("measured by llmctl bench (tp1.json, tp2.json")
               for st in plan.steps)
    assert any(st.label == "measured model" for st in plan.steps)
    assert plan.to_dict()["measured"]["gpu"] == "h100-80gb"
    assert not any("context" in n for n in plan.notes)  # measured at this workload's context (2176)


def test_roofline_plans_are_unchanged_without_a_profile() -> None:
    gpu, model = load_gpu("h100-80gb"), find_catalog(MODEL).profile()
    plan = solve(PlanRequest(model=model, gpu=gpu, gpus_per_node=8, workload=Workload()))
    assert "measured" not in plan.to_dict()
    assert not any("(measured)" in st.value for st in plan.steps)


def test_shapes_not_measured_are_a_plan_error() -> None:
    speeds = from_results([("tp1.json", result(1))])
    with pytest.raises(PlanError, match=r"measures TP 1 x PP 1.*matches TP 4"):
        solve(request(speeds, tp=4))


def test_profile_of_another_model_gpu_or_schema_is_refused() -> None:
    gpu, model = load_gpu("h100-80gb"), find_catalog(MODEL).profile()
    with pytest.raises(InvalidInput, match="measured Qwen/Qwen3-8B"):
        check_request(from_results([("x", result(1, model="Qwen/Qwen3-8B"))]), model, MODEL, gpu)
    with pytest.raises(InvalidInput, match="measured on h200"):
        check_request(from_results([("x", result(1, gpu="h200"))]), model, MODEL, gpu)
    with pytest.raises(InvalidInput, match="has no decode"):
        check_request(from_results([("x", result(1, decode=[]))]), model, MODEL, gpu)
    with pytest.raises(InvalidInput, match="version 2"):
        from_results([("x", result(1, version=2))])
    with pytest.raises(InvalidInput, match="not an `llmctl bench` result"):
        from_results([("x", {"schema": "other"})])
    with pytest.raises(InvalidInput, match="which GPU"):
        from_results([("x", result(1, gpu=None))])
    with pytest.raises(InvalidInput, match="one model on one GPU type"):
        from_results([("a", result(1)), ("b", result(2, gpu="h200"))])
    bad = result(1)
    bad["profile"]["decode"][0]["step_ms"] = -1
    with pytest.raises(InvalidInput, match="step_ms must be a positive number"):
        from_results([("x", bad)])


def test_cli_plan_profile(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "tp1.json").write_text(json.dumps(result(1)))
    (tmp_path / "tp2.json").write_text(json.dumps(result(2)))
    r = cli("plan", MODEL, "--profile", str(tmp_path / "tp1.json"), "--profile", str(tmp_path / "tp2.json"),
            "--rate", "4", "--isl", "8192")
    assert r.code == 0, r.stderr
    assert "(measured)" in r.stdout and "; profile tp1.json, TP 1 x PP 1" in r.stdout  # TP 1 serves 4 req/s
    assert "extrapolated from ISL 4096" in r.stdout and "note: ISL 8192 is outside" in r.stdout
    r = cli("plan", MODEL, "--profile", str(tmp_path / "tp1.json"), "--tp", "4")
    assert r.code == 9 and "measures TP 1 x PP 1" in r.stderr
    (tmp_path / "junk.json").write_text("{")
    r = cli("plan", MODEL, "--profile", str(tmp_path / "junk.json"))
    assert r.code == 4 and "is not JSON" in r.stderr and "Traceback" not in r.stderr
