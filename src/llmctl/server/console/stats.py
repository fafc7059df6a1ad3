"""A JSON snapshot of the gateway's own metrics, per model, for the console's charts.

The numbers are the ones `/metrics` exposes (read through the registry's public `collect()`, so the two can
never disagree), summed over routes and status codes per model, plus what only the scheduler knows: each
loaded model's requests in flight and its queue. The console samples this every few seconds and draws rates
from the differences; Prometheus users get the same from `/metrics` with `rate()`.

Queue depth is what waits for a slot: requests in flight for a model beyond its `--parallel` slots (llama-server
queues them until a slot frees up).
"""

from __future__ import annotations

import time
from typing import Any

from llmctl.server.gateway import Gateway

# sample name -> the field of a model's row it adds to
COUNTERS = {
    "llmctl_requests_total": "requests",
    "llmctl_request_errors_total": "errors",
    "llmctl_generated_tokens_total": "generated_tokens",
    "llmctl_prompt_tokens_total": "prompt_tokens",
    "llmctl_time_to_first_token_seconds_sum": "ttft_sum",
    "llmctl_time_to_first_token_seconds_count": "ttft_count",
}
FIELDS = ("requests", "errors", "generated_tokens", "prompt_tokens", "ttft_sum", "ttft_count")


def snapshot(gw: Gateway) -> dict[str, Any]:
    """`{"time", "in_flight", "requests", "models": [{"model", "loaded", "active", "queued", "slots", ...}]}`"""
    rows: dict[str, dict[str, Any]] = {}
    totals = {"requests": 0.0, "in_flight": 0.0}

    def row(model: str) -> dict[str, Any]:
        if model not in rows:
            rows[model] = {"model": model, "loaded": False, "active": 0, "queued": 0, "slots": 0,
                           **{f: 0.0 for f in FIELDS}}
        return rows[model]

    for family in gw.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "llmctl_requests_in_flight":
                totals["in_flight"] = sample.value
            if sample.name == "llmctl_requests_total":
                totals["requests"] += sample.value
            key = COUNTERS.get(sample.name)
            model = sample.labels.get("model", "")
            if key and model:  # requests without a model (listings, 404s) count in the totals only
                row(model)[key] += sample.value
    slots = gw.options.parallel
    for runner in gw.scheduler.runners():
        r = row(runner.name)
        r["loaded"] = True
        r["active"] += runner.active
        r["slots"] += slots
    for r in rows.values():
        r["queued"] = max(0, r["active"] - r["slots"]) if r["loaded"] else 0
    return {"time": time.time(), "in_flight": totals["in_flight"], "requests": totals["requests"],
            "models": sorted(rows.values(), key=lambda r: r["model"])}
