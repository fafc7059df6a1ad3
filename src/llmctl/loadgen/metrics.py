"""Request records -> the numbers `vllm bench serve` reports, under its key names.

Definitions (vLLM `benchmarks/serve.py: calculate_metrics`):
- request_throughput = completed / duration; output_throughput = sum(OSL) / duration;
  total_token_throughput = (sum(ISL) + sum(OSL)) / duration; duration = first send -> last completion.
- TPOT per request = (E2E - TTFT) / (OSL - 1), over requests with OSL > 1.
- ITL: every gap between text chunks, pooled over requests.
- goodput: completed requests whose TTFT, TPOT (0 when OSL <= 1) and E2E are all within the given SLOs,
  per second of duration.
- mean, median, std (population, numpy's default) and percentiles by linear interpolation between
  closest ranks (numpy's default), in milliseconds.
Added here: `decode_batch`, the mean number of requests decoding when a token arrives (the batch the
engine's decode steps ran at), which `llmctl plan --profile` needs alongside the step time.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmctl.errors import InvalidInput, UsageError
from llmctl.loadgen.client import Record

PERCENTILES: tuple[float, ...] = (50, 90, 95, 99)
GOODPUT_METRICS = ("ttft", "tpot", "e2el")


def percentile(ordered: Sequence[float], p: float) -> float:
    """numpy.percentile(values, p) with the default linear method; `ordered` sorted, non-empty."""
    rank = p / 100 * (len(ordered) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def stats_ms(values: Sequence[float], name: str, pcts: Sequence[float]) -> dict[str, float | None]:
    """`mean_<name>_ms`, `median_…`, `std_…`, `p<P>_…` for seconds `values` (None when there are none)."""
    keys = [f"mean_{name}_ms", f"median_{name}_ms", f"std_{name}_ms"] + [f"p{pword(p)}_{name}_ms" for p in pcts]
    if not values:
        return dict.fromkeys(keys, None)
    ordered = sorted(values)
    mean = math.fsum(ordered) / len(ordered)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in ordered) / len(ordered))
    out = [mean, percentile(ordered, 50), std] + [percentile(ordered, p) for p in pcts]
    return {k: v * 1000 for k, v in zip(keys, out)}


def pword(p: float) -> str:
    return str(int(p)) if float(p).is_integer() else str(p)


@dataclass(frozen=True)
class Slo:
    """Goodput thresholds in seconds (None: not constrained)."""

    ttft: float | None = None
    tpot: float | None = None
    e2el: float | None = None

    @property
    def empty(self) -> bool:
        return self.ttft is None and self.tpot is None and self.e2el is None

    def to_json(self) -> dict[str, float]:
        return {k: getattr(self, k) * 1000 for k in GOODPUT_METRICS if getattr(self, k) is not None}

    def good(self, rec: Record) -> bool:
        tpot = rec.tpot or 0.0
        return ((self.ttft is None or rec.ttft <= self.ttft) and (self.tpot is None or tpot <= self.tpot)
                and (self.e2el is None or rec.e2e <= self.e2el))


def parse_goodput(pairs: Sequence[str]) -> Slo:
    """vLLM's `--goodput ttft:500 tpot:50` (milliseconds); also accepts one comma-separated string.

    A pair that does not parse (no `:`, a value that is not a number) is a UsageError, as typer's own
    `--isl abc` is; an unknown metric or a negative or infinite value is InvalidInput.
    """
    values: dict[str, float] = {}
    for pair in (p for item in pairs for p in item.replace(",", " ").split()):
        name, sep, value = pair.partition(":")
        name = name.strip().lower()
        if not sep or name not in GOODPUT_METRICS:
            error = InvalidInput if sep else UsageError
            raise error(f"--goodput: {pair!r} is not KEY:MILLISECONDS with KEY one of {', '.join(GOODPUT_METRICS)}")
        try:
            ms = float(value)
        except ValueError as exc:
            raise UsageError(f"--goodput: {value!r} is not a number of milliseconds") from exc
        if not ms >= 0 or math.isinf(ms):
            raise InvalidInput(f"--goodput: {name} must be a non-negative number of milliseconds")
        values[name] = ms / 1000
    return Slo(**values)


def decode_batch(records: Sequence[Record]) -> float | None:
    """Mean over all inter-token gaps of how many requests were decoding (first token < t <= last token)
    when that token arrived: the batch size the engine's decode steps ran at, as the client saw it."""
    spans = [(r.chunk_times[0], r.chunk_times[-1]) for r in records if r.ok and len(r.chunk_times) > 1]
    if not spans:
        return None
    starts = sorted(s for s, _ in spans)
    ends = sorted(e for _, e in spans)
    total = count = 0
    for r in records:
        if not r.ok:
            continue
        for t in r.chunk_times[1:]:
            total += bisect.bisect_left(starts, t) - bisect.bisect_left(ends, t)
            count += 1
    return total / count if count else None


def peak_concurrency(records: Sequence[Record]) -> int:
    """Most requests in flight at once over [sent, completed), as vLLM's max_concurrent_requests."""
    events = sorted([(r.start, 1) for r in records if r.ok] + [(r.last or r.start, -1) for r in records if r.ok],
                    key=lambda e: (e[0], e[1]))
    peak = now = 0
    for _, delta in events:
        now += delta
        peak = max(peak, now)
    return peak


def summarize(records: Sequence[Record], duration: float, slo: Slo,
              pcts: Sequence[float] = PERCENTILES) -> dict[str, Any]:
    """One load point's metrics, vLLM's keys (ms for latencies, per second for throughputs)."""
    ok = [r for r in records if r.ok]
    isl = sum(r.isl or 0 for r in ok)
    osl = sum(r.osl or 0 for r in ok)
    out: dict[str, Any] = {
        "completed": len(ok),
        "failed": len(records) - len(ok),
        "duration": duration,
        "total_input_tokens": isl,
        "total_output_tokens": osl,
        "request_throughput": len(ok) / duration if duration else 0.0,
        "request_goodput": (sum(1 for r in ok if slo.good(r)) / duration if duration else 0.0) if not slo.empty else None,
        "output_throughput": osl / duration if duration else 0.0,
        "total_token_throughput": (isl + osl) / duration if duration else 0.0,
    }
    out |= stats_ms([r.ttft for r in ok], "ttft", pcts)
    out |= stats_ms([t for r in ok if (t := r.tpot) is not None], "tpot", pcts)
    out |= stats_ms([g for r in ok for g in r.itl], "itl", pcts)
    out |= stats_ms([r.e2e for r in ok], "e2el", pcts)
    out["max_concurrent_requests"] = peak_concurrency(records)
    out["decode_batch"] = decode_batch(records)
    out["mean_input_tokens"] = isl / len(ok) if ok else None
    out["mean_output_tokens"] = osl / len(ok) if ok else None
    return out
