"""The speed model of `plan --profile`: a `perf.PerfModel` that answers from `llmctl bench` measurements.

Plugged in through `PlanRequest.perf_model` (a `MeasuredFactory`), it answers prefill latency and decode
step time of measured shapes from the curves of `measured`, and what a single-deployment benchmark cannot
measure (the KV hand-off between pools, FLOP counts for `--format explain`) from the roofline. The solver
plans only measured shapes (`restrict`) and no batch larger than one measured (`batch_limit`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from llmctl.plan.measured import MeasuredSpeeds, ShapeSpeeds, restrict
from llmctl.plan.memory import Shape
from llmctl.plan.perf import DecodeStep, PerfInputs, Prefill, Roofline


class MeasuredPerf:
    """prefill(shape, ISL) and decode_step(shape, batch) from measurements; kv_transfer from the roofline."""

    def __init__(self, speeds: MeasuredSpeeds, inputs: PerfInputs) -> None:
        self.speeds = speeds
        self.inputs = inputs
        self.roofline = Roofline(inputs)
        files = ", ".join(dict.fromkeys(f for s in speeds.shapes for f in s.sources))
        self.label = f"measured by llmctl bench ({files}: {speeds.shape_names} on {speeds.gpu})"

    def of(self, shape: Shape) -> ShapeSpeeds | None:
        return self.speeds.of(shape)

    def prefill(self, shape: Shape, isl: int) -> Prefill:
        """A request's TTFT alone is its latency; the instance is busy for it the same time (a measured
        engine is one DP rank; PP stages overlap requests)."""
        pre = self.roofline.prefill(shape, isl)  # FLOPs and peak, for explain
        s = self.of(shape)
        if s is None or s.prefill is None:
            return pre
        latency = s.prefill.time(isl)
        return replace(pre, latency=latency, service=latency / shape.pp, compute_s=latency, comm_s=0.0)

    def decode_step(self, shape: Shape, batch: float, context: float) -> DecodeStep:
        s = self.of(shape)
        if s is None or s.decode is None:
            return self.roofline.decode_step(shape, batch, context)
        return DecodeStep(batch=batch, time=s.decode.step(batch), weights_s=0.0, kv_s=0.0, comm_s=0.0, hops_s=0.0)

    def kv_transfer(self, decode_shape: Shape, isl: int) -> float:
        return self.roofline.kv_transfer(decode_shape, isl)

    def batch_limit(self, shape: Shape) -> int | None:
        """The largest batch measured for this shape, rounded to whole sequences."""
        s = self.of(shape)
        return None if s is None or s.decode is None else max(1, math.floor(s.decode.max_batch + 0.5))

    def restrict(self, fits: list[Any], tp: int | None, pp: int | None) -> list[Any]:
        return restrict(fits, self.speeds, tp, pp)


@dataclass(frozen=True)
class MeasuredFactory:
    """`PlanRequest.perf_model` for measured speeds: builds a MeasuredPerf for each mode's inputs."""

    speeds: MeasuredSpeeds

    def __call__(self, inputs: PerfInputs) -> MeasuredPerf:
        return MeasuredPerf(self.speeds, inputs)

    def to_json(self) -> dict[str, Any]:
        return self.speeds.to_json()
