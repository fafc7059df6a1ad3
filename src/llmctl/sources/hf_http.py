"""The HTTP client llmctl gives huggingface_hub: transient failures retried quietly, for a bounded time.

huggingface_hub retries a failed request itself (5 more tries, 1 to 8 s apart: ~23 s) and logs two lines per
try ("'[Errno 111] Connection refused' thrown while requesting ...", "Retrying in 4s [Retry 3/5]."); a 429's
Retry-After is waited whatever it says. A failure of `llmctl pull hf.co/...` or `llmctl plan ORG/NAME` is one
line, soon. So llmctl installs (`huggingface_hub.set_client_factory`) a client that retries GET and HEAD
itself on the failures huggingface_hub would retry (network errors, timeouts, 408/429/5xx), quietly, with
backoff, for at most `Settings.hf_retry_seconds` (LLMCTL_HF_RETRY_SECONDS), then raises an error that
huggingface_hub does not retry: a `HubDown`. It is an `OfflineModeIsEnabled`, so hf_hub_download still
falls back to a cached file as it does when the network is down.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

import httpx2
from huggingface_hub import get_session, set_client_factory
from huggingface_hub.errors import OfflineModeIsEnabled

RETRY_EXCEPTIONS = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)  # huggingface_hub's
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # huggingface_hub's
# huggingface_hub's best-effort fetches, which it never retries: the AI-agent registry it reads once a day for
# its User-Agent (3 s timeout, any failure ignored) would otherwise add a whole retry time to an unreachable Hub
NOT_RETRIED_PATHS = frozenset({"/api/agent-harnesses"})
FIRST_DELAY, MAX_DELAY = 0.5, 4.0  # seconds between tries: 0.5, 1, 2, 4, 4, ...
_INSTALL = threading.Lock()  # two first pulls at once must not close each other's client


class HubDown(OfflineModeIsEnabled):
    """A Hub request that still failed when the retry time ran out."""


class HubUnreachable(HubDown):
    """No answer: connection refused, DNS, timeouts, a dropped connection."""


class HubUnavailable(HubDown):
    """An answer that says "later": 408, 429, 5xx."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class HubClient(httpx2.Client):
    """huggingface_hub's client, with llmctl's quiet, bounded retries around each GET and HEAD."""

    def __init__(self, retry_seconds: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_seconds = retry_seconds

    def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        if request.method not in ("GET", "HEAD") or request.url.path in NOT_RETRIED_PATHS:  # GET/HEAD: idempotent
            return super().send(request, **kwargs)
        deadline = time.monotonic() + self.retry_seconds
        delay = FIRST_DELAY
        while True:
            cause: Exception | None = None
            try:
                response = super().send(request, **kwargs)
            except RETRY_EXCEPTIONS as exc:
                cause, wait = exc, delay
                failure: HubDown = HubUnreachable(f"{_where(request)}: {_describe(exc)}")
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                response.close()
                wait = max(delay, _retry_after(response))
                failure = HubUnavailable(f"{_where(request)} answered {response.status_code}"
                                         f" {response.reason_phrase}".rstrip(), response.status_code)
            if time.monotonic() + wait > deadline:
                raise failure from cause
            time.sleep(wait)
            delay = min(delay * 2, MAX_DELAY)


def use_hub_client(retry_seconds: float) -> None:
    """Make huggingface_hub send through a `HubClient` (once per process and retry time), keeping its own
    request hooks (HF_HUB_OFFLINE, request ids); and keep its other warnings off a CLI's stderr unless
    HF_HUB_VERBOSITY asked for them."""
    library = logging.getLogger("huggingface_hub")
    if library.level in (logging.NOTSET, logging.WARNING):
        library.setLevel(logging.ERROR)
    with _INSTALL:
        current = get_session()
        if isinstance(current, HubClient) and current.retry_seconds == retry_seconds:
            return
        set_client_factory(functools.partial(HubClient, retry_seconds, event_hooks=current.event_hooks,
                                             follow_redirects=True, timeout=None))


# What a huggingface_hub error means, for the callers that word it (`pull hf.co/...`, `plan ORG/NAME`): one
# classification, so the two cannot disagree (LocalEntryNotFoundError is an EntryNotFoundError: it is tested
# first, which one of two copies of this chain once got wrong).
UNAVAILABLE, UNREACHABLE, NOT_CACHED, HUB_OFFLINE = "unavailable", "unreachable", "not-cached", "hub-offline"
GATED, NO_REPO, NO_FILE, REFUSED, OTHER = "gated", "no-repo", "no-file", "refused", "other"


def hub_failure(exc: BaseException) -> tuple[str, str]:
    """`(kind, detail)` of an error huggingface_hub raised: one of the kinds above, and the words to quote."""
    from huggingface_hub import errors as hf_errors

    down = hub_down(exc)  # llmctl's own retries ran out (a HubDown is an OfflineModeIsEnabled: test it first)
    if down is not None:
        return (UNAVAILABLE if isinstance(down, HubUnavailable) else UNREACHABLE), str(down)
    if isinstance(exc, hf_errors.GatedRepoError):  # a RepositoryNotFoundError too
        return GATED, ""
    if isinstance(exc, (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError)):
        return NO_REPO, ""
    if isinstance(exc, hf_errors.LocalEntryNotFoundError):  # an EntryNotFoundError too
        return NOT_CACHED, ""
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return HUB_OFFLINE, ""
    if isinstance(exc, hf_errors.EntryNotFoundError):
        return NO_FILE, str(exc)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return REFUSED, str(status)
    return OTHER, (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def hub_down(exc: BaseException | None) -> HubDown | None:
    """The `HubDown` behind an error huggingface_hub raised (hf_hub_download wraps it in a
    LocalEntryNotFoundError), if there is one."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, HubDown):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _where(request: httpx2.Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc.decode('ascii', 'replace')}"


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text[:200] or type(exc).__name__


def _retry_after(response: httpx2.Response) -> float:
    """Retry-After in seconds (0 when absent or a date): a wait longer than the time left ends the tries."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0
