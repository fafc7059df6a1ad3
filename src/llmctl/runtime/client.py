"""A small client for a running `llmctl serve` gateway (its Ollama API), used by `llmctl run`.

`gateway_url(settings)` answers quickly whether a gateway listens at `settings.host` (LLMCTL_HOST); `chat`
streams an /api/chat answer as the same Delta events the engine layer yields.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from llmctl.errors import EngineError, NotFound
from llmctl.runtime.prompt import Delta
from llmctl.settings import Settings

PROBE_TIMEOUT = 0.3


def host_url(host: str) -> str:
    """LLMCTL_HOST ("127.0.0.1:11434", "0.0.0.0:8080", ":11434", "http://h:p") as a URL to connect to."""
    import urllib.parse

    host = host.strip().rstrip("/") or "127.0.0.1:11434"
    u = urllib.parse.urlsplit(host if "://" in host else "http://" + host)
    name = u.hostname or "127.0.0.1"
    if name in ("0.0.0.0", "::"):
        name = "127.0.0.1"
    port = u.port or (443 if u.scheme == "https" else 11434)
    return f"{u.scheme}://{'[' + name + ']' if ':' in name else name}:{port}"


def gateway_url(settings: Settings, timeout: float = PROBE_TIMEOUT) -> str | None:
    """The gateway's base URL if one answers `GET /api/version`, else None.

    Where to ask: the gateway this LLMCTL_HOME started (its state file knows a `serve --port N`), else
    settings.host.
    """
    import httpx

    from llmctl.runtime.daemon import read_state

    state = read_state(settings)
    url = state.url.rstrip("/") if state is not None else host_url(settings.host)
    try:
        r = httpx.get(url + "/api/version", timeout=timeout)
        if r.status_code == 200 and "version" in r.json():
            return url
    except (httpx.HTTPError, ValueError):
        return None
    return None


def has_model(url: str, name: str, timeout: float = 5.0) -> bool:
    """Whether the gateway knows `name` (POST /api/show)."""
    import httpx

    try:
        r = httpx.post(url + "/api/show", json={"model": name}, timeout=timeout)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def chat(url: str, name: str, messages: list[dict[str, Any]], options: dict[str, Any] | None = None, *,
         keep_alive: Any = None, timeout: float | None = None) -> Iterator[Delta]:
    """Stream POST /api/chat; the final Delta carries Ollama's counts and durations as llama-server timings."""
    import httpx

    body: dict[str, Any] = {"model": name, "messages": messages, "stream": True, "options": options or {}}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=5.0)) as client:
            with client.stream("POST", url + "/api/chat", json=body) as r:
                if r.status_code != 200:
                    r.read()
                    message = _error(r.text)
                    if r.status_code == 404:
                        raise NotFound(f"gateway at {url}: {message}")
                    raise EngineError(f"gateway at {url} answered {r.status_code}: {message}")
                for line in r.iter_lines():
                    if not line.strip():
                        continue
                    obj = json.loads(line)
                    if "error" in obj:
                        raise EngineError(f"gateway at {url}: {obj['error']}")
                    text = (obj.get("message") or {}).get("content") or ""
                    if not obj.get("done"):
                        yield Delta(text=text)
                        continue
                    prompt_ns, eval_ns = obj.get("prompt_eval_duration") or 0, obj.get("eval_duration") or 0
                    timings = {
                        "prompt_n": obj.get("prompt_eval_count"), "prompt_ms": prompt_ns / 1e6,
                        "predicted_n": obj.get("eval_count"), "predicted_ms": eval_ns / 1e6,
                        "load_ms": (obj.get("load_duration") or 0) / 1e6,
                    }
                    if eval_ns and obj.get("eval_count"):
                        timings["predicted_per_second"] = obj["eval_count"] / (eval_ns / 1e9)
                    yield Delta(text=text, done=True, finish_reason=obj.get("done_reason"),
                                prompt_tokens=obj.get("prompt_eval_count"),
                                completion_tokens=obj.get("eval_count"), timings=timings)
    except (httpx.TransportError, ValueError) as exc:
        raise EngineError(f"lost the connection to the gateway at {url}: {exc}") from None


def _error(text: str) -> str:
    try:
        obj = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    err = obj.get("error", obj) if isinstance(obj, dict) else obj
    return str(err.get("message") if isinstance(err, dict) else err)
