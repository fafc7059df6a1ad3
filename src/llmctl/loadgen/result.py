"""The result document of `llmctl bench` (schema `llmctl.bench`, version 1; docs/bench.md describes it).

Per load point it carries vLLM's metric keys (so tools written for `vllm bench serve` results read it),
the client's own cost, and one line per request; at the top, the endpoint, the deployment label, the
workload, and the `profile` section (measured prefill and decode speeds) that `llmctl plan --profile` reads.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from llmctl.loadgen.client import Record
from llmctl.loadgen.metrics import percentile
from llmctl.loadgen.runner import PointRun

SCHEMA = "llmctl.bench"
VERSION = 1


def rate_json(rate: float | None) -> float | str | None:
    """Rates as numbers, an infinite one as "inf" (vLLM's result files do the same)."""
    return "inf" if rate is not None and math.isinf(rate) else rate


def request_lines(run: PointRun) -> list[dict[str, Any]]:
    t0 = min((r.start for r in run.records), default=0.0)
    out = []
    for r in run.records:
        line: dict[str, Any] = {
            "start_s": r.start - t0,
            "expected_isl": r.expected_isl,
            "expected_osl": r.expected_osl,
            "isl": r.isl,
            "osl": r.osl,
            "chunks": len(r.chunk_times),
        }
        if r.ok:
            line |= {"ttft_ms": r.ttft * 1000, "e2el_ms": r.e2e * 1000,
                     "tpot_ms": None if r.tpot is None else r.tpot * 1000}
        else:
            line["error"] = r.error
        out.append(line)
    return out


def client_cost(cpu_s: float, records: Sequence[Record], lag: Sequence[float]) -> dict[str, Any]:
    """The load generator's own CPU per output token / per chunk, and how late it sent (rate mode)."""
    tokens = sum(r.osl or 0 for r in records if r.ok)
    chunks = sum(len(r.chunk_times) for r in records)
    ordered = sorted(lag)
    return {
        "cpu_s": cpu_s,
        "cpu_us_per_token": cpu_s / tokens * 1e6 if tokens else None,
        "cpu_us_per_chunk": cpu_s / chunks * 1e6 if chunks else None,
        "dispatch_lag_p99_ms": percentile(ordered, 99) * 1000 if ordered else None,
        "dispatch_lag_max_ms": ordered[-1] * 1000 if ordered else None,
    }


def run_entry(run: PointRun, summary: dict[str, Any], *, isl: int | None = None) -> dict[str, Any]:
    p = run.point
    head: dict[str, Any] = {
        "mode": "concurrency" if p.concurrency is not None else "rate",
        "concurrency": p.concurrency,
        "request_rate": rate_json(p.rate),
        "max_concurrency": p.max_concurrency,
        "requests": len(run.records),
    }
    if isl is not None:
        head["isl"] = isl
    errors = sorted({r.error for r in run.records if r.error})
    return head | summary | {"client": client_cost(run.cpu_s, run.records, run.dispatch_lag),
                             "errors": errors[:10], "records": request_lines(run)}


def total_client(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    cpu = math.fsum(r["client"]["cpu_s"] for r in runs)
    tokens = sum(r["total_output_tokens"] for r in runs)
    chunks = sum(line["chunks"] for r in runs for line in r["records"])
    return {"cpu_s": cpu, "output_tokens": tokens, "chunks": chunks,
            "cpu_us_per_token": cpu / tokens * 1e6 if tokens else None,
            "cpu_us_per_chunk": cpu / chunks * 1e6 if chunks else None}


def osl_shortfall(runs: Sequence[dict[str, Any]]) -> float | None:
    """Median ratio of received to requested output tokens: well under 1 means the endpoint stopped at
    end-of-text (no `ignore_eos`), so OSL was not honoured."""
    ratios = [line["osl"] / line["expected_osl"] for r in runs for line in r["records"]
              if line.get("osl") and line.get("expected_osl") and "error" not in line]
    return statistics.median(ratios) if ratios else None
