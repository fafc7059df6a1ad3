"""The one HTTP client for a running gateway: what `ps`, `load`, `unload`, `status`, `logs` and `run` send.

It speaks the public API any client uses (Ollama's `/api/...`), so it works against any gateway, local or
not. `Client(settings)` goes to the gateway of this LLMCTL_HOME (its state file), else to `LLMCTL_HOST`;
`find_gateway` answers quickly whether one is there at all (`run`'s automatic choice). Error answers become
the typed errors of `llmctl.errors` in `error_for`, the inverse of the server's status table.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterator

import httpx

from llmctl.api.gateway import gateway_url
from llmctl.errors import AuthError, EngineError, InvalidInput, LlmctlError, NotFound
from llmctl.settings import Settings

if TYPE_CHECKING:  # the prompt layer (12 ms) only matters once `run` streams an answer
    from llmctl.runtime.prompt import Delta

PROBE_TIMEOUT = 0.3  # `run` asks before every start: a missing gateway must cost next to nothing


class Client:
    """A small synchronous client for one gateway; use it as a context manager."""

    def __init__(self, settings: Settings, *, url: str | None = None, api_key: str | None = None,
                 timeout: float | None = 300.0) -> None:
        self.url = (url or gateway_url(settings)).rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=3.0),
                                  trust_env=False)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, json: Any = None) -> Any:
        """One call; its JSON answer, or the typed error its status means."""
        try:
            resp = self._http.request(method, path, json=json)
        except httpx.ConnectError:
            raise EngineError(f"no gateway is running at {self.url}", hint="start one with `llmctl serve`") from None
        except httpx.TimeoutException:
            raise EngineError(f"the gateway at {self.url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise EngineError(f"the gateway at {self.url} failed: {exc}") from None
        if resp.status_code >= 400:
            raise error_for(resp.status_code, message_of(resp.text) or f"HTTP {resp.status_code}")
        return resp.json()

    def has_model(self, name: str) -> bool:
        """Whether the gateway knows `name` (POST /api/show answers 200)."""
        try:
            return self._http.post("/api/show", json={"model": name}, timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False

    def chat(self, name: str, messages: list[dict[str, Any]], options: dict[str, Any] | None = None, *,
             keep_alive: Any = None) -> Iterator[Delta]:
        """Stream POST /api/chat; the final Delta carries Ollama's counts and durations as llama-server timings."""
        body: dict[str, Any] = {"model": name, "messages": messages, "stream": True, "options": options or {}}
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        try:
            with self._http.stream("POST", "/api/chat", json=body) as r:
                if r.status_code != 200:
                    r.read()
                    raise error_for(r.status_code, f"gateway at {self.url}: {message_of(r.text)}")
                for line in r.iter_lines():
                    if line.strip():
                        yield _delta(line, self.url)
        except (httpx.TransportError, ValueError) as exc:
            raise EngineError(f"lost the connection to the gateway at {self.url}: {exc}") from None


def find_gateway(settings: Settings, timeout: float = PROBE_TIMEOUT) -> str | None:
    """The base URL of the gateway if one answers `GET /api/version` where `Client(settings)` would go, else None."""
    url = gateway_url(settings)
    try:
        r = httpx.get(url + "/api/version", timeout=timeout, trust_env=False)
        if r.status_code == 200 and "version" in r.json():
            return url
    except (httpx.HTTPError, ValueError):
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
    from llmctl.runtime.prompt import Delta

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
