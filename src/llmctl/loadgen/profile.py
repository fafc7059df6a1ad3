"""Measured prefill and decode speeds from load points: the `profile` section `llmctl plan --profile` reads.

As NVIDIA Dynamo's pre-deployment profiling does, prefill is measured alone (one request at a time, so
TTFT is the prefill time of that ISL: Dynamo's `prefill_isl` / `prefill_ttft` / `prefill_thpt_per_gpu`),
and decode as the time between tokens at a known number of requests in flight (Dynamo's ITL under a
controlled KV load). Here the batch is what the client observed (`metrics.decode_batch`), and the step
time is the median ITL, which leaves out the occasional step that also carries another request's prefill.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from llmctl.loadgen.client import Record

MAX_PREFILL_POINTS = 8
"""Prefill samples are grouped by ISL; more distinct ISLs than this are binned into this many quantiles."""


def prefill_points(records: Sequence[Record], gpus: int | None) -> list[dict[str, Any]]:
    """(ISL, TTFT) of requests that ran alone -> points with median TTFT per ISL (or ISL bin)."""
    samples = sorted((r.isl, r.ttft) for r in records if r.ok and r.isl)
    if not samples:
        return []
    distinct = sorted({isl for isl, _ in samples})
    if len(distinct) <= MAX_PREFILL_POINTS:
        groups = [[s for s in samples if s[0] == isl] for isl in distinct]
    else:
        size = len(samples) / MAX_PREFILL_POINTS
        groups = [samples[round(i * size):round((i + 1) * size)] for i in range(MAX_PREFILL_POINTS)]
    out = []
    for g in (g for g in groups if g):
        isl = round(statistics.median(s[0] for s in g))
        ttft = statistics.median(s[1] for s in g)
        out.append({
            "isl": isl,
            "ttft_ms": ttft * 1000,
            "tokens_per_s": isl / ttft,
            "tokens_per_s_per_gpu": isl / ttft / gpus if gpus else None,
            "requests": len(g),
        })
    return out


def decode_point(summary: dict[str, Any], concurrency: int | None, rate: float | str | None,
                 gpus: int | None) -> dict[str, Any] | None:
    """One load point's decode speed: step time (median ITL) at the batch observed."""
    batch, step = summary.get("decode_batch"), summary.get("median_itl_ms")
    if not batch or not step:
        return None
    isl, osl = summary.get("mean_input_tokens") or 0, summary.get("mean_output_tokens") or 0
    tokens = batch / (step / 1000)
    return {
        "concurrency": concurrency,
        "request_rate": rate,
        "batch": batch,
        "step_ms": step,
        "context": isl + osl / 2,
        "tokens_per_s": tokens,
        "tokens_per_s_per_gpu": tokens / gpus if gpus else None,
        "requests": summary.get("completed", 0),
    }
