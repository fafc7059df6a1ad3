"""`llmctl bench`: load an OpenAI-compatible endpoint at several levels and measure what it gives.

Order of work: pick the model, probe the endpoint (which also warms it up and calibrates prompt lengths),
prepare every request of every point up front (so building prompts never competes with the measurement),
then run the points one after another, lightest first. The result is one JSON document (schema in
docs/bench.md, `llmctl.loadgen.result`) whose `profile` section `llmctl plan --profile` reads.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmctl import __version__
from llmctl.api.client import error_for
from llmctl.api.gateway import gateway_url
from llmctl.errors import EngineError, InvalidInput, UsageError
from llmctl.loadgen import metrics as M
from llmctl.loadgen import prompts as P
from llmctl.loadgen import result as R
from llmctl.loadgen.client import APIS, Record
from llmctl.loadgen.http import Pool, parse_endpoint
from llmctl.loadgen.profile import decode_point, prefill_points
from llmctl.loadgen.runner import Item, Limits, Point, PointRun, run_point
from llmctl.loadgen.session import EndpointFailed, Session, first_model
from llmctl.loadgen.workload import Lengths, arrival_offsets
from llmctl.progress import NullProgress, Progress
from llmctl.settings import Settings

MIN_REQUESTS = 16
RATE_REQUESTS = 64


@dataclass(frozen=True)
class Deployment:
    """What the endpoint runs on, as the user states it: `plan --profile` matches on TP and GPU."""

    tp: int | None = None
    pp: int | None = None
    gpu: str | None = None
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        tp, pp = self.tp, self.pp
        return {"tp": tp, "pp": pp, "gpus": (tp or 1) * (pp or 1) if tp or pp else None, "gpu": self.gpu,
                "label": self.label}


@dataclass(frozen=True)
class BenchSpec:
    url: str | None  # None: the running llmctl serve (its state file), else LLMCTL_HOST
    model: str | None = None
    api: str = "completions"
    lengths: Lengths = Lengths(1024, 128)
    concurrency: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    max_concurrency: int | None = None
    burstiness: float = 1.0
    requests: int | None = None
    prefill_isl: tuple[int, ...] = ()
    prefill_requests: int = 3
    slo: M.Slo = M.Slo()
    percentiles: tuple[float, ...] = M.PERCENTILES
    seed: int = 0
    ignore_eos: bool = True
    tokenizer: str = "auto"
    extra_body: dict[str, Any] | None = None
    api_key: str | None = None
    deployment: Deployment = field(default_factory=Deployment)

    def points(self) -> list[Point]:
        if self.rates:
            return [Point(rate=r, max_concurrency=self.max_concurrency) for r in self.rates]
        return [Point(concurrency=c) for c in (self.concurrency or (1, 4, 16))]

    def requests_for(self, point: Point) -> int:
        if self.requests is not None:
            return self.requests
        if point.concurrency is not None:
            return max(MIN_REQUESTS, 4 * point.concurrency)
        return RATE_REQUESTS


def check(spec: BenchSpec) -> None:
    """Every flag combination that cannot run, refused before any request is sent."""
    spec.lengths.check()
    if spec.concurrency and spec.rates:
        raise UsageError("pass --concurrency or --request-rate, not both")
    if spec.api not in APIS:
        raise InvalidInput(f"--api must be one of {', '.join(APIS)}")
    if spec.tokenizer not in P.TOKENIZER_MODES:
        raise InvalidInput(f"--tokenizer must be one of {', '.join(P.TOKENIZER_MODES)}")
    if any(c < 1 for c in spec.concurrency) or (spec.max_concurrency is not None and spec.max_concurrency < 1):
        raise InvalidInput("concurrency must be at least 1")
    if spec.max_concurrency is not None and not spec.rates:
        raise UsageError("--max-concurrency caps a --request-rate sweep; with --concurrency it is the level itself")
    if spec.requests is not None and spec.requests < 1:
        raise InvalidInput("--requests must be at least 1")
    if spec.burstiness <= 0 or math.isinf(spec.burstiness):
        raise InvalidInput("--burstiness must be a positive number")
    if any(i < 1 for i in spec.prefill_isl) or spec.prefill_requests < 1:
        raise InvalidInput("--prefill-isl values and --prefill-requests must be at least 1")
    if any(not 0 < p < 100 for p in spec.percentiles):
        raise InvalidInput("--percentiles must be between 0 and 100 (exclusive)")
    for name, v in (("--tp", spec.deployment.tp), ("--pp", spec.deployment.pp)):
        if v is not None and v < 1:
            raise InvalidInput(f"{name} must be at least 1")
    if spec.extra_body and any(k in spec.extra_body for k in ("stream", "model", "prompt", "messages")):
        raise InvalidInput("--extra-body must not set stream, model, prompt or messages")


def _check_prompt_budget(spec: BenchSpec, limit: int) -> None:
    """Every prompt of the sweep is prepared before the first request (so preparing never delays a point):
    bound their tokens, or a typo (--isl 1000000000, -n 100000000) fills memory before anything is sent."""
    total = sum(spec.prefill_isl) * spec.prefill_requests + sum(
        spec.requests_for(p) * spec.lengths.bounds(spec.lengths.isl)[1] for p in spec.points())
    if total > limit:
        raise InvalidInput(f"the sweep's prompts hold up to {total:,} tokens, prepared before the first request: "
                           f"more than LLMCTL_BENCH_MAX_PROMPT_TOKENS ({limit:,})",
                           hint="lower --isl, --requests or --prefill-isl, or sweep fewer points per run")


def bench(settings: Settings, spec: BenchSpec, progress: Progress | None = None) -> dict[str, Any]:
    """Run the benchmark; the result document (see `llmctl.loadgen.result`)."""
    check(spec)
    _check_prompt_budget(spec, settings.bench_max_prompt_tokens)
    endpoint = parse_endpoint(spec.url or gateway_url(settings), api_key=spec.api_key or settings.api_key)
    limits = Limits(settings.bench_timeout, settings.bench_max_event_bytes)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        try:
            return runner.run(_bench(endpoint, spec, limits, progress or NullProgress()))
        except EndpointFailed as exc:
            raise (error_for(exc.status, str(exc)) if exc.status else EngineError(str(exc))) from None


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _bench(endpoint: Any, spec: BenchSpec, limits: Limits, progress: Progress) -> dict[str, Any]:
    pool = Pool(endpoint)
    try:
        await _connect(pool)
        model = spec.model or await first_model(pool)
        session = Session(pool, spec.api, model, spec.ignore_eos, spec.extra_body, limits)
        progress.start("setup", f"probing {endpoint.base_url} ({model})", None)
        source = await session.prompt_source(spec.tokenizer, P.corpus_words())
        plans = _plan_points(spec)
        prepared = [await session.items(source, lengths, spec.seed * 1000 + idx)
                    for idx, (_, lengths, _) in enumerate(plans)]
        progress.finish("setup", f"prompts sized by the {source.kind} tokenizer")
        gpus = spec.deployment.to_json()["gpus"]
        runs, prefill_runs, alone = [], [], []
        for idx, ((point, _, isl), items) in enumerate(zip(plans, prepared)):
            label = point.label if isl is None else f"prefill ISL {isl}"
            run = await _run(pool, session.path, point, items, spec, idx, label, limits, progress)
            summary = M.summarize(run.records, run.duration, spec.slo, spec.percentiles)
            (prefill_runs if isl is not None else runs).append(R.run_entry(run, summary, isl=isl))
            if point.concurrency == 1 or point.max_concurrency == 1:  # ran alone: their TTFT is prefill time
                alone += run.records
        decode = [d for r in runs if (d := decode_point(r, r["concurrency"], r["request_rate"], gpus)) is not None]
        doc = _document(endpoint, model, spec, source.kind, runs, prefill_runs,
                        {"prefill": prefill_points(alone, gpus), "decode": decode})
        doc["probes"] = {"requests": len(session.probes), "input_tokens": sum(r.isl or 0 for r in session.probes),
                         "output_tokens": sum(r.osl or 0 for r in session.probes)}
        return doc
    finally:
        await pool.close()


async def _connect(pool: Pool) -> None:
    url = pool.endpoint.base_url
    try:
        await pool.connect()
    except TimeoutError as exc:
        raise EndpointFailed(f"cannot reach {url}: no connection in {pool.connect_timeout:g}s") from exc
    except OSError as exc:
        raise EndpointFailed(f"cannot reach {url}: {exc.strerror or exc}") from exc


def _plan_points(spec: BenchSpec) -> list[tuple[Point, list[tuple[int, int]], int | None]]:
    """(point, (ISL, OSL) per request, prefill ISL or None): the prefill sweep first, then the load points."""
    rng = random.Random(spec.seed)
    out: list[tuple[Point, list[tuple[int, int]], int | None]] = []
    for isl in spec.prefill_isl:
        out.append((Point(concurrency=1), [(isl, 1)] * spec.prefill_requests, isl))
    for point in spec.points():
        out.append((point, spec.lengths.draw(spec.requests_for(point), rng), None))
    return out


async def _run(pool: Pool, path: str, point: Point, items: Sequence[Item], spec: BenchSpec, idx: int,
               label: str, limits: Limits, progress: Progress) -> PointRun:
    key = f"point{idx}"
    progress.start(key, label, len(items))
    offsets = None
    if point.rate is not None:
        offsets = arrival_offsets(len(items), point.rate, spec.burstiness, random.Random(spec.seed + idx))

    def done(rec: Record) -> None:
        progress.advance(key, 1)

    run = await run_point(pool, path, point, items, offsets, limits, done)
    failed = sum(1 for r in run.records if not r.ok)
    progress.finish(key, f"{len(items) - failed} ok, {failed} failed in {run.duration:.1f}s")
    return run


def _document(endpoint: Any, model: str, spec: BenchSpec, tokenizer: str, runs: list[dict[str, Any]],
              prefill_runs: list[dict[str, Any]], profile: dict[str, Any]) -> dict[str, Any]:
    lengths = spec.lengths
    return {
        "schema": R.SCHEMA,
        "version": R.VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "llmctl_version": __version__,
        "endpoint": {"url": endpoint.base_url, "api": spec.api, "path": APIS[spec.api], "model": model},
        "deployment": spec.deployment.to_json(),
        "workload": {
            "isl": lengths.isl, "osl": lengths.osl, "range_ratio": lengths.range_ratio,
            "ignore_eos": spec.ignore_eos, "seed": spec.seed, "tokenizer": tokenizer,
            "burstiness": spec.burstiness if spec.rates else None, "percentiles": list(spec.percentiles),
            "received_vs_requested_osl": R.osl_shortfall(runs),
        },
        "goodput": spec.slo.to_json() or None,
        "runs": runs,
        "prefill_runs": prefill_runs,
        "profile": profile,
        "client": R.total_client(runs + prefill_runs),
    }


def write_file(path: Path, text: str) -> None:
    """Atomically (temp file + rename): a reader never sees half a result, an error leaves nothing."""
    path = path.expanduser()
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InvalidInput(f"no such directory: {directory}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def curve(result: dict[str, Any]) -> list[Any]:
    """The load points as plot points (`llmctl.loadgen.svg`)."""
    from llmctl.loadgen.svg import CurvePoint

    top = M.pword(max(result["workload"]["percentiles"]))
    out = []
    for r in result["runs"]:
        label = f"c={r['concurrency']}" if r["mode"] == "concurrency" else f"r={r['request_rate']}"
        out.append(CurvePoint(label, r["output_throughput"], (r["median_ttft_ms"], r[f"p{top}_ttft_ms"]),
                              (r["median_tpot_ms"], r[f"p{top}_tpot_ms"])))
    return out
