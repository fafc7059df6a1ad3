"""Long store operations (pull, push, create) as Ollama progress streams.

The library calls in `llmctl.api` block and report through the `Progress` protocol, the same one the CLI
turns into bars. Here a `QueueProgress` turns those calls into Ollama's status objects
(`{"status": "pulling 8934d96d3f08", "digest": ..., "total": ..., "completed": ...}`) on an asyncio
queue, from whichever transfer thread makes them, and `respond` runs the blocking call in a worker thread
while the route streams the queue as NDJSON (or, with `"stream": false`, waits and answers the last
status alone, as Ollama's `waitForStream` does).

Status codes follow Ollama's `streamResponse`: an error that comes before any progress (a bad name, a
model the registry does not have, an unreachable registry) is answered with its HTTP status and
`{"error": ...}`; once the stream has started, an error is its last line. A client that goes away cancels
the operation at its next progress report, through the transfers' own cancellation (`Cancelled`): the
partial blob files stay for a resume, as after Ctrl-C in the CLI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmctl.errors import Busy, LlmctlError
from llmctl.oci.registry.transfer import TOTAL_KEY, Cancelled
from llmctl.progress import BYTES
from llmctl.server import errors
from llmctl.server.errors import GatewayError
from llmctl.server.gateway import Gateway
from llmctl.server.proxy import ClientGone, EventStream, until_disconnect

log = logging.getLogger("llmctl.gateway")
T = TypeVar("T")
NDJSON = "application/x-ndjson"
CLIENT_CLOSED = 499
BLOB_NAME = re.compile(r"\b([0-9a-f]{64})$")
REPORT_EVERY = 0.1  # seconds between two progress lines of one blob: enough for a bar, not a flood


class _Bar:
    __slots__ = ("status", "digest", "total", "completed", "reported_at")

    def __init__(self, status: str, digest: str | None, total: int) -> None:
        self.status, self.digest, self.total = status, digest, total
        self.completed = 0
        self.reported_at = 0.0

    def line(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.digest:
            out["digest"] = self.digest
        out["total"] = self.total
        out["completed"] = max(0, min(self.completed, self.total)) if self.total else self.completed
        return out


class QueueProgress:
    """A thread-safe `Progress` whose reports become Ollama status objects on an asyncio queue.

    Bars keyed by a blob digest (what `Tracker` uses) read `"<verb> <12 hex>"` as in Ollama; other bars
    (a file copied into the store, a Hugging Face download) keep their own description. The overall bar
    (`TOTAL_KEY`) is not shown: Ollama has none; its end emits `after_blobs` (for a pull, "verifying sha256
    digest" and "writing manifest", which is what the store does next). Once `cancel()` was called, the
    next report raises `Cancelled`, which stops the transfers like a failure elsewhere would.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, verb: str, after_blobs: tuple[str, ...] = ()) -> None:
        self.loop = loop
        self.verb = verb
        self.after_blobs = after_blobs
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.cancelled = threading.Event()
        self._bars: dict[str, _Bar] = {}
        self._lock = threading.Lock()

    # -- what the worker thread calls ----------------------------------------------------------------------
    def status(self, text: str) -> None:
        self._put("line", {"status": text})

    def start(self, key: str, description: str, total: int | None, unit: str = BYTES) -> None:
        self._check()
        if key == TOTAL_KEY:
            return
        digest = key if key.startswith("sha256:") else None
        status = f"{self.verb} {key[7:19]}" if digest else description
        blob = BLOB_NAME.search(description)
        if not digest and blob:  # an uploaded blob that create copies in: name it as Ollama does
            digest = f"sha256:{blob.group(1)}"
            status = f"{description[:blob.start()]}file {digest}"
        bar = _Bar(status, digest, int(total or 0))
        with self._lock:
            self._bars[key] = bar
            bar.reported_at = time.monotonic()
        self._put("line", bar.line())

    def advance(self, key: str, amount: int) -> None:
        self._check()
        if key == TOTAL_KEY:
            return
        now = time.monotonic()
        with self._lock:
            bar = self._bars.get(key)
            if bar is None:
                return
            bar.completed += amount
            if now - bar.reported_at < REPORT_EVERY:
                return
            bar.reported_at = now
            line = bar.line()
        self._put("line", line)

    def finish(self, key: str, message: str | None = None) -> None:
        if key == TOTAL_KEY:
            for text in self.after_blobs:
                self.status(text)
            return
        with self._lock:
            bar = self._bars.pop(key, None)
            if bar is None:
                return
            bar.completed = bar.total or bar.completed
            line = bar.line()
        self._put("line", line)

    # -- what the route calls ------------------------------------------------------------------------------
    def cancel(self) -> None:
        self.cancelled.set()

    def _check(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled()

    def _put(self, kind: str, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, item))
        except RuntimeError:  # the gateway stopped (its loop is closed): nobody listens, stop the work
            self.cancelled.set()

    def run(self, work: Callable[["QueueProgress"], Any]) -> None:
        """The worker thread's body: `work(self)`, then one ("done", result) or ("error", exc) item."""
        try:
            result = work(self)
        except BaseException as exc:  # noqa: BLE001 - every outcome must reach the route
            self._put("error", exc)
        else:
            self._put("done", result)


def job_error(exc: BaseException) -> GatewayError:
    """How a job's failure is answered: typed errors by the one table (`errors.HTTP_STATUS`), a client that
    went away as 499, anything else as a logged 500."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, LlmctlError):
        return errors.from_llmctl(exc)
    if isinstance(exc, Cancelled):
        return GatewayError(CLIENT_CLOSED, "cancelled")
    log.error("unexpected error in a store operation", exc_info=exc)
    return GatewayError(500, f"internal error: {type(exc).__name__}: {exc}")


def start_job(gw: Gateway, progress: QueueProgress, work: Callable[[QueueProgress], Any], verb: str) -> None:
    """Run `work(progress)` on a thread of its own, counted against LLMCTL_MAX_JOBS (`counted`).

    A thread, not the loop's default executor: a pull can take an hour, and the executor's few threads also
    serve every request's store lookups. Daemon: it never holds up `serve` stopping (a cancelled transfer
    stops at its next read; the store is safe to leave at any point).
    """
    run = counted(gw, work)
    threading.Thread(target=progress.run, args=(run,), name=f"llmctl-{verb}", daemon=True).start()


def counted(gw: Gateway, work: Callable[[T], Any]) -> Callable[[T], Any]:
    """`work`, counted against LLMCTL_MAX_JOBS from now until it returns (Busy, a 503, when the limit is
    reached): Ollama's pull, push and create, and the console's transfers. A job stops counting when its
    thread is done, not when its client leaves (a cancelled transfer still runs to its next read). Call it on
    the event loop."""
    limit = gw.settings.limits.max_jobs
    if gw.jobs_running >= limit:
        raise Busy(f"server busy, please try again: {gw.jobs_running} pulls, pushes or creates are running "
                   f"(LLMCTL_MAX_JOBS {limit})")
    loop = asyncio.get_running_loop()
    gw.jobs_running += 1

    def run(p: T) -> Any:
        try:
            return work(p)
        finally:
            try:
                loop.call_soon_threadsafe(_job_done, gw)
            except RuntimeError:  # the loop is closed: the gateway stopped
                pass

    return run


def uncount(gw: Gateway) -> None:
    """A job `counted` but never started: it no longer counts against LLMCTL_MAX_JOBS."""
    _job_done(gw)


def _job_done(gw: Gateway) -> None:
    gw.jobs_running -= 1


def _line(item: dict[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":")).encode() + b"\n"


async def respond(gw: Gateway, request: Request, route: str, model: str, work: Callable[[QueueProgress], Any], *,
                  verb: str, first: tuple[str, ...] = (), after_blobs: tuple[str, ...] = (),
                  last: Callable[[Any], tuple[str, ...]] = lambda _: (), stream: bool = True) -> Response:
    """Run `work(progress)` in a thread and answer with its progress, Ollama style, ending in "success".

    `first` are the statuses shown before the work reports anything ("pulling manifest"); `last(result)`
    the ones after it returned, before "success". Metrics count the request like every other route.
    """
    progress = QueueProgress(asyncio.get_running_loop(), verb, after_blobs)
    for text in first:
        progress.status(text)
    start_job(gw, progress, work, verb)
    gw.metrics.in_flight.inc()
    job = _Job(gw, route, model, progress, first, last, stream)
    try:
        kind, item, head = await until_disconnect(request, job.first_news())
    except (ClientGone, asyncio.CancelledError) as exc:  # the client left, or the server is stopping
        progress.cancel()
        job.end(CLIENT_CLOSED, "cancelled")
        if isinstance(exc, asyncio.CancelledError):
            raise
        return Response(status_code=CLIENT_CLOSED)
    if kind == "error":
        err = job_error(item)
        job.end(err.status, _error_kind(err))
        return errors.response(err, False)
    if not stream:
        job.end(200)
        return JSONResponse(job.final(item)[-1])  # Ollama's waitForStream: the last status alone
    return EventStream(job.lines(head, (kind, item) if kind == "done" else None), media_type=NDJSON,
                       on_close=job.on_close)


def _error_kind(err: GatewayError) -> str:
    return "client" if err.status < 500 else "server"


@dataclass
class _Job:
    """One `respond`: its progress queue read as status lines, and its metrics closed once, however it ends."""

    gw: Gateway
    route: str
    model: str
    progress: QueueProgress
    first: tuple[str, ...]
    last: Callable[[Any], tuple[str, ...]]
    stream: bool
    error_kind: str | None = None  # of an error that ended a stream already answered 200

    def end(self, code: int, kind: str | None = None) -> None:
        self.gw.metrics.in_flight.dec()
        # no model label on 404s, as in `server.app._count_error`: names a client made up must not grow the label set
        self.gw.finish(self.route, "" if code == 404 else self.model, code, kind)

    def final(self, result: Any) -> list[dict[str, Any]]:
        return [{"status": text} for text in self.last(result)] + [{"status": "success"}]

    async def first_news(self) -> tuple[str, Any, list[dict[str, Any]]]:
        """Until the outcome, or (streamed) the work's first report: until then the status code is open,
        so an error before any progress still gets its own (Ollama's `streamResponse` does the same)."""
        held: list[dict[str, Any]] = []
        while True:
            kind, item = await self.progress.queue.get()
            if kind != "line":
                return kind, item, held
            if self.stream:
                held.append(item)
                if len(held) > len(self.first):
                    return kind, item, held

    async def lines(self, head: list[dict[str, Any]], done: tuple[str, Any] | None) -> AsyncIterator[bytes]:
        """The stream's body: what `first_news` held, then every report to the outcome, then the last lines."""
        for h in head:
            yield _line(h)
        outcome = done
        while outcome is None:
            k, it = await self.progress.queue.get()
            if k == "line":
                yield _line(it)
            else:
                outcome = (k, it)
        k, it = outcome
        if k == "error":
            err = job_error(it)
            self.error_kind = _error_kind(err)
            yield errors.stream_error_line(err, False)
            return
        for line in self.final(it):
            yield _line(line)

    def on_close(self, cancelled: bool) -> None:
        if cancelled:
            self.progress.cancel()
        self.end(CLIENT_CLOSED if cancelled else 200, "cancelled" if cancelled else self.error_kind)
