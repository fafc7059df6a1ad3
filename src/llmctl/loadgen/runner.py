"""Driving one load point: N closed-loop clients (concurrency) or an open arrival process (request rate).

Everything runs on one asyncio loop. The loop's own cost is measured, not assumed: the CPU time of the
loop's thread per point (a progress bar's refresh thread is not the client's cost) and, at a request
rate, how late each request left against its scheduled arrival (`dispatch lag`), so an overloaded client
shows in the result instead of silently lowering the offered load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmctl.loadgen.client import Record, chunk_limit, stream
from llmctl.loadgen.http import Pool


@dataclass(frozen=True)
class Item:
    """One prepared request: its body and the lengths it was built for."""

    body: bytes
    isl: int
    osl: int


@dataclass(frozen=True)
class Point:
    """One load level: `concurrency` clients back to back, or arrivals at `rate` req/s (inf: all at once)
    with at most `max_concurrency` in flight (None: no cap)."""

    concurrency: int | None = None
    rate: float | None = None
    max_concurrency: int | None = None

    @property
    def label(self) -> str:
        if self.concurrency is not None:
            return f"concurrency {self.concurrency}"
        cap = f", max {self.max_concurrency} in flight" if self.max_concurrency else ""
        return f"rate {self.rate:g} req/s{cap}"


@dataclass
class PointRun:
    point: Point
    records: list[Record]
    duration: float
    cpu_s: float
    dispatch_lag: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    timeout: float
    max_event_bytes: int


async def run_point(pool: Pool, path: str, point: Point, items: Sequence[Item], offsets: Sequence[float] | None,
                    limits: Limits, on_done: Callable[[Record], None]) -> PointRun:
    """Send every item at this load level; returns the records in item order."""
    records = [Record(expected_isl=i.isl, expected_osl=i.osl) for i in items]
    cpu0 = time.thread_time()
    t0 = time.perf_counter()

    async def one(k: int) -> None:
        await stream(pool, path, items[k].body, records[k], timeout=limits.timeout,
                     max_event_bytes=limits.max_event_bytes, max_chunks=chunk_limit(items[k].osl))
        on_done(records[k])

    lag: list[float] = []
    if point.concurrency is not None:
        queue = iter(range(len(items)))

        async def worker() -> None:
            for k in queue:
                await one(k)

        await asyncio.gather(*(worker() for _ in range(min(point.concurrency, len(items)))))
    else:
        assert offsets is not None
        gate = asyncio.Semaphore(point.max_concurrency) if point.max_concurrency else None

        async def gated(k: int) -> None:
            if gate is None:
                await one(k)
                return
            async with gate:
                await one(k)

        tasks = []
        for k, offset in enumerate(offsets):
            due = t0 + offset
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            records[k].scheduled = due
            lag.append(max(0.0, time.perf_counter() - due))
            tasks.append(asyncio.create_task(gated(k)))
        await asyncio.gather(*tasks)
    duration = time.perf_counter() - t0
    return PointRun(point, records, duration, time.thread_time() - cpu0, lag)
