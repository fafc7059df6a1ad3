"""Prometheus metrics of one gateway: requests, errors, TTFT and tokens/s histograms, loaded models.

Built on `prometheus_client` with a registry per app (no process-global state, so tests can run two
gateways in one process). The library is the reference implementation of the exposition format: label
escaping, histogram `_bucket`/`_sum`/`_count` series and `+Inf` come out right without us maintaining them.
"""

from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)
TPS_BUCKETS = (1, 2, 5, 10, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000, 2000)
LOAD_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


class _LoadedCollector(Collector):
    """Reads the scheduler at scrape time, so the gauge can never drift from what is really loaded."""

    def __init__(self, snapshot: Callable[[], Iterable[dict[str, str]]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[GaugeMetricFamily]:
        rows = list(self._snapshot())
        total = GaugeMetricFamily("llmctl_loaded_models", "Models with a running engine.")
        total.add_metric([], len(rows))
        info = GaugeMetricFamily(
            "llmctl_loaded_model_info", "One series per loaded engine.", labels=["model", "id", "port", "processor"]
        )
        for row in rows:
            info.add_metric([row["model"], row["id"], row["port"], row["processor"]], 1)
        return [total, info]


class Metrics:
    def __init__(self, loaded: Callable[[], Iterable[dict[str, str]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("llmctl_requests", "Requests served, by route and status.", ["route", "model", "code"], registry=r)
        self.errors = Counter("llmctl_request_errors", "Failed requests, by route and kind.", ["route", "model", "kind"], registry=r)
        self.refused = Counter("llmctl_requests_refused", "Requests turned away before any route ran, by reason "
                               "(host, origin, api_key, content_type, body_size).", ["reason"], registry=r)
        self.in_flight = Gauge("llmctl_requests_in_flight", "Requests being served now.", registry=r)
        self.ttft = Histogram("llmctl_time_to_first_token_seconds", "Time from request to first streamed token.",
                              ["model"], buckets=TTFT_BUCKETS, registry=r)
        self.tps = Histogram("llmctl_tokens_per_second", "Generation speed of each request (tokens after the first).",
                             ["model"], buckets=TPS_BUCKETS, registry=r)
        self.prompt_tokens = Counter("llmctl_prompt_tokens", "Prompt tokens evaluated.", ["model"], registry=r)
        self.generated_tokens = Counter("llmctl_generated_tokens", "Tokens generated.", ["model"], registry=r)
        self.loads = Counter("llmctl_model_loads", "Engine starts, by model.", ["model"], registry=r)
        self.load_seconds = Histogram("llmctl_model_load_seconds", "Time to start an engine and load weights.",
                                      ["model"], buckets=LOAD_BUCKETS, registry=r)
        self.unloads = Counter("llmctl_model_unloads", "Engine stops, by reason.", ["model", "reason"], registry=r)
        self.crashes = Counter("llmctl_engine_crashes", "Engines found dead.", ["model"], registry=r)
        r.register(_LoadedCollector(loaded))

    def observe_generation(self, model: str, *, ttft: float | None, prompt_tokens: int | None,
                           completion_tokens: int | None, generation_seconds: float | None) -> None:
        if ttft is not None:
            self.ttft.labels(model).observe(ttft)
        if prompt_tokens:
            self.prompt_tokens.labels(model).inc(prompt_tokens)
        if completion_tokens:
            self.generated_tokens.labels(model).inc(completion_tokens)
            if generation_seconds and generation_seconds > 0 and completion_tokens > 1:
                self.tps.labels(model).observe((completion_tokens - 1) / generation_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
