"""Pull and push jobs that outlive the request that started them, so a page reload finds them still going.

Ollama's `/api/pull` reports progress only to the client that asked, on its open stream; a console that is
reloaded, or opened in a second tab, would lose sight of a pull that goes on. Here a job is started by one
request and runs on a thread of its own (the same library call as `llmctl pull` / `push`); its progress is
kept in a `JobProgress` that any request can read (`snapshot`): bytes done and total, per blob too, the rate
over the last few seconds and an ETA. A job ends as `succeeded`, `failed` (with the status and one-line
message that `/api/pull` would have answered, from the same error table) or `cancelled` (its transfers stop
at their next read; partial blobs stay for a resume, as after Ctrl-C).

The last `KEEP_FINISHED` finished jobs are kept for the console to show; older ones are forgotten.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from llmctl.oci.registry.transfer import TOTAL_KEY, Cancelled
from llmctl.server.errors import GatewayError
from llmctl.server.jobs import job_error

KEEP_FINISHED = 50  # finished jobs the console can still show; a bound on memory, not on what may run
RATE_WINDOW = 3.0  # seconds of progress the rate is measured over: steady, yet quick to show a stall
SAMPLE_EVERY = 0.2  # seconds between two rate samples
RUNNING, SUCCEEDED, FAILED, CANCELLED = "running", "succeeded", "failed", "cancelled"
KINDS = ("pull", "push")
AFTER_BLOBS = {"pull": "writing manifest", "push": "pushing manifest"}  # as Ollama's pull and push say it


class JobProgress:
    """A thread-safe `Progress`: the transfer threads report into it, requests read `snapshot()`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.phase = "pulling manifest" if kind == "pull" else "retrieving manifest"
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._blobs: dict[str, list[int]] = {}  # key -> [total, completed]
        self._overall: list[int] | None = None  # the transfer's own total bar, when it reports one
        self._samples: deque[tuple[float, int]] = deque(maxlen=int(RATE_WINDOW / SAMPLE_EVERY) + 2)

    # -- the Progress protocol (transfer threads) -----------------------------------------------------------
    def start(self, key: str, description: str, total: int | None) -> None:
        self._check()
        with self._lock:
            if key == TOTAL_KEY:
                self._overall = [int(total or 0), 0]
                return
            self._blobs[key] = [int(total or 0), 0]
            self.phase = description

    def advance(self, key: str, amount: int) -> None:
        self._check()
        with self._lock:
            bar = self._overall if key == TOTAL_KEY else self._blobs.get(key)
            if bar is None:
                return
            bar[1] += amount
            now = time.monotonic()
            if not self._samples or now - self._samples[-1][0] >= SAMPLE_EVERY:  # the rate starts with the bytes
                self._samples.append((now, self._totals()[1]))

    def finish(self, key: str, message: str | None = None) -> None:
        with self._lock:
            if key == TOTAL_KEY:
                if self._overall is not None:
                    self._overall[1] = max(self._overall[1], self._overall[0])
                self.phase = AFTER_BLOBS.get(self.kind, self.phase)
                return
            bar = self._blobs.get(key)
            if bar is not None:
                bar[1] = bar[0] or bar[1]

    def status(self, text: str) -> None:
        with self._lock:
            self.phase = text

    # -- readers -----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Bytes done/total, rate (bytes/s over the last RATE_WINDOW s, 0 when stalled), ETA (s or None)."""
        with self._lock:
            total, done = self._totals()
            now = time.monotonic()
            recent = [(t, n) for t, n in self._samples if now - t <= RATE_WINDOW]
            rate = 0.0
            if recent and now - recent[0][0] > 0.05:
                rate = max(0.0, (done - recent[0][1]) / (now - recent[0][0]))
            eta = (total - done) / rate if rate > 0 and total > done else None
            blobs = [{"key": k, "total": t, "completed": min(c, t) if t else c} for k, (t, c) in self._blobs.items()]
            return {"phase": self.phase, "total": total, "completed": min(done, total) if total else done,
                    "rate": round(rate), "eta": None if eta is None else round(eta, 1), "blobs": blobs}

    def cancel(self) -> None:
        self.cancelled.set()

    def _totals(self) -> tuple[int, int]:
        if self._overall is not None:
            return self._overall[0], self._overall[1]
        return sum(t for t, _ in self._blobs.values()), sum(c for _, c in self._blobs.values())

    def _check(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled()


@dataclass
class Transfer:
    """One pull or push: what was asked, how far it got, how it ended."""

    kind: str
    model: str
    insecure: bool
    progress: JobProgress
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: float = field(default_factory=time.time)
    state: str = RUNNING
    finished_at: float | None = None
    error: str | None = None
    status: int | None = None
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "model": self.model, "insecure": self.insecure,
                "state": self.state, "started_at": self.started_at, "finished_at": self.finished_at,
                "error": self.error, "status": self.status, "result": self.result,
                "progress": self.progress.snapshot()}


class Transfers:
    """The jobs of one gateway (`app.state.transfers`): start, list, cancel, forget the finished ones."""

    def __init__(self, keep: int = KEEP_FINISHED) -> None:
        self.keep = keep
        self._jobs: dict[str, Transfer] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, model: str, insecure: bool, work: Callable[[JobProgress], Any]) -> Transfer:
        """Run `work(progress)` on a thread as a new job; 409 while the same model is already in a job of that kind."""
        with self._lock:
            busy = [j for j in self._jobs.values() if j.state == RUNNING and j.kind == kind and j.model == model]
            if busy:
                raise GatewayError(409, f"a {kind} of {model} is already running (job {busy[0].id})")
            job = Transfer(kind, model, insecure, JobProgress(kind))
            self._jobs[job.id] = job
        # a thread of its own, not the loop's executor (a pull can take an hour); daemon, so it never holds up
        # `serve` stopping: a transfer cut short leaves only resumable partial blobs
        threading.Thread(target=self._run, args=(job, work), name=f"llmctl-console-{kind}", daemon=True).start()
        return job

    def _run(self, job: Transfer, work: Callable[[JobProgress], Any]) -> None:
        try:
            result = work(job.progress)
        except BaseException as exc:  # noqa: BLE001 - every outcome must reach the job's record
            cancelled = isinstance(exc, Cancelled) or job.progress.cancelled.is_set()
            err = GatewayError(499, "cancelled") if cancelled else job_error(exc)
            self._end(job, CANCELLED if cancelled else FAILED, error=err.message, status=err.status)
        else:
            to_json = getattr(result, "to_json", None)
            self._end(job, SUCCEEDED, result=to_json() if callable(to_json) else None, status=200)

    def _end(self, job: Transfer, state: str, **outcome: Any) -> None:
        with self._lock:
            job.state, job.finished_at = state, time.time()
            for key, value in outcome.items():
                setattr(job, key, value)
            job.progress.status({SUCCEEDED: "success", FAILED: "failed", CANCELLED: "cancelled"}[state])
            finished = [j for j in self._jobs.values() if j.state != RUNNING]
            for old in sorted(finished, key=lambda j: j.finished_at or 0)[:max(0, len(finished) - self.keep)]:
                del self._jobs[old.id]

    def list(self) -> list[Transfer]:
        """Newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.started_at, reverse=True)

    def get(self, job_id: str) -> Transfer:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise GatewayError(404, f"no transfer {job_id!r}")
        return job

    def cancel(self, job_id: str) -> Transfer:
        job = self.get(job_id)
        if job.state == RUNNING:
            job.progress.cancel()
        return job

    def forget_finished(self) -> int:
        with self._lock:
            gone = [k for k, j in self._jobs.items() if j.state != RUNNING]
            for k in gone:
                del self._jobs[k]
        return len(gone)

    def cancel_all(self) -> None:
        for job in self.list():
            job.progress.cancel()
