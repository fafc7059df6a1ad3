"""The one HTTP client for a running gateway: what `ps`, `load`, `unload`, `status`, `logs` and `run` send.

It speaks the public API any client uses (Ollama's `/api/...`), so it works against any gateway, local or
not. `Client(settings)` goes to the gateway of this LLMCTL_HOME (its state file), else to `LLMCTL_HOST`;
`find_gateway` answers quickly whether one is there at all (`run`'s automatic choice). Error answers become
the typed errors of `llmctl.errors` in `error_for`, the inverse of the server's status table.

It is built on the standard library's `http.client`, one connection per call: `llmctl ps` runs in scripts'
loops, and importing httpx alone takes ~80 ms here (it loads click, rich and pygments for its own CLI),
more than all of `ps` otherwise costs. A call to a gateway on loopback gains nothing from a kept-alive pool.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from typing import TYPE_CHECKING, Any, Iterator

from llmctl.api.gateway import gateway_url
from llmctl.errors import AuthError, EngineError, InvalidInput, LlmctlError, NotFound
from llmctl.settings import Settings

if TYPE_CHECKING:  # the prompt layer (12 ms) only matters once `run` streams an answer
    from llmctl.runtime.events import Delta

PROBE_TIMEOUT = 0.3  # `run` asks before every start: a missing gateway must cost next to nothing
CONNECT_TIMEOUT = 3.0


class Client:
    """A small synchronous client for one gateway; use it as a context manager."""

    def __init__(self, settings: Settings, *, url: str | None = None, api_key: str | None = None,
                 timeout: float | None = 300.0) -> None:
        self.url = (url or gateway_url(settings)).rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing stays open between calls; kept for callers that close what they open."""

    def request(self, method: str, path: str, json: Any = None) -> Any:
        """One call; its JSON answer, or the typed error its status means."""
        try:
            status, text = _call(self.url, method, path, json, self._headers, self._timeout)
        except socket.timeout:
            raise EngineError(f"the gateway at {self.url} did not answer in time") from None
        except _Unreachable:
            raise EngineError(f"no gateway is running at {self.url}", hint="start one with `llmctl serve`") from None
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError(f"the gateway at {self.url} failed: {exc}") from None
        if status >= 400:
            raise error_for(status, message_of(text) or f"HTTP {status}")
        try:
            return _json.loads(text)
        except ValueError:
            raise EngineError(f"the gateway at {self.url} answered {status} with no JSON: {text[:200]!r}") from None

    def has_model(self, name: str) -> bool:
        """Whether the gateway knows `name` (POST /api/show answers 200)."""
        try:
            return _call(self.url, "POST", "/api/show", {"model": name}, self._headers, 5.0)[0] == 200
        except (OSError, http.client.HTTPException, _Unreachable):
            return False

    def chat(self, name: str, messages: list[dict[str, Any]], options: dict[str, Any] | None = None, *,
             keep_alive: Any = None) -> Iterator[Delta]:
        """Stream POST /api/chat; the final Delta carries Ollama's counts and durations as llama-server timings."""
        body: dict[str, Any] = {"model": name, "messages": messages, "stream": True, "options": options or {}}
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        try:
            conn, resp = _open(self.url, "POST", "/api/chat", body, self._headers, self._timeout)
        except (OSError, http.client.HTTPException, _Unreachable) as exc:
            raise EngineError(f"lost the connection to the gateway at {self.url}: {exc}") from None
        try:
            if resp.status != 200:
                text = resp.read().decode("utf-8", "replace")
                raise error_for(resp.status, f"gateway at {self.url}: {message_of(text)}")
            for raw in resp:  # http.client undoes the chunked encoding; each line is one JSON object
                line = raw.decode("utf-8", "replace")
                if line.strip():
                    yield _delta(line, self.url)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise EngineError(f"lost the connection to the gateway at {self.url}: {exc}") from None
        finally:
            conn.close()


class _Unreachable(Exception):
    """Nothing accepted the connection (refused, unknown host, no route): no gateway there."""


_json = json  # `request`'s parameter is named json, as httpx's is


def _open(url: str, method: str, path: str, body: Any, headers: dict[str, str],
          timeout: float | None) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Connect (within CONNECT_TIMEOUT) and send one request; the response's body is left to read."""
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=min(CONNECT_TIMEOUT, timeout or CONNECT_TIMEOUT))
    try:
        conn.connect()
    except socket.timeout:
        conn.close()
        raise
    except OSError as exc:  # refused, unknown host, unreachable network
        conn.close()
        raise _Unreachable(str(exc)) from None
    assert conn.sock is not None
    conn.sock.settimeout(timeout)
    data = None if body is None else _json.dumps(body).encode()
    sent = {**headers, "Accept": "application/json", **({"Content-Type": "application/json"} if data else {})}
    try:
        conn.request(method, parts.path.rstrip("/") + path, body=data, headers=sent)
        return conn, conn.getresponse()
    except BaseException:
        conn.close()
        raise


def _call(url: str, method: str, path: str, body: Any, headers: dict[str, str],
          timeout: float | None) -> tuple[int, str]:
    """One request, read to the end: (status, body text)."""
    conn, resp = _open(url, method, path, body, headers, timeout)
    try:
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def find_gateway(settings: Settings, timeout: float = PROBE_TIMEOUT) -> str | None:
    """The base URL of the gateway if one answers `GET /api/version` where `Client(settings)` would go, else None."""
    url = gateway_url(settings)
    try:
        status, text = _call(url, "GET", "/api/version", None, {}, timeout)
        if status == 200 and "version" in _json.loads(text):
            return url
    except (OSError, http.client.HTTPException, _Unreachable, ValueError, TypeError):
        return None
    return None


def error_for(status: int, message: str) -> LlmctlError:
    """An HTTP error status from a gateway as the typed error it stands for."""
    if status == 404:
        return NotFound(message)
    if status in (401, 403):
        return AuthError(message, hint="pass --api-key or set LLMCTL_API_KEY")
    if status < 500:
        return InvalidInput(message)
    return EngineError(message)


def message_of(text: str) -> str:
    """The message of an error body in either dialect: Ollama's `{"error": "..."}` or OpenAI's
    `{"error": {"message": ...}}`; else the body's start."""
    try:
        obj = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    err = obj.get("error", obj) if isinstance(obj, dict) else obj
    return str(err.get("message") if isinstance(err, dict) else err)


def _delta(line: str, url: str) -> Delta:
    from llmctl.runtime.events import Delta

    obj = json.loads(line)
    if "error" in obj:
        raise EngineError(f"gateway at {url}: {obj['error']}")
    text = (obj.get("message") or {}).get("content") or ""
    if not obj.get("done"):
        return Delta(text=text)
    prompt_ns, eval_ns = obj.get("prompt_eval_duration") or 0, obj.get("eval_duration") or 0
    timings = {
        "prompt_n": obj.get("prompt_eval_count"), "prompt_ms": prompt_ns / 1e6,
        "predicted_n": obj.get("eval_count"), "predicted_ms": eval_ns / 1e6,
        "load_ms": (obj.get("load_duration") or 0) / 1e6,
    }
    if eval_ns and obj.get("eval_count"):
        timings["predicted_per_second"] = obj["eval_count"] / (eval_ns / 1e9)
    return Delta(text=text, done=True, finish_reason=obj.get("done_reason"), prompt_tokens=obj.get("prompt_eval_count"),
                 completion_tokens=obj.get("eval_count"), timings=timings)
