"""Engines over time: load on demand (once), keep-alive expiry and reload, two models, LRU, crash recovery."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from fixtures_gateway import MODEL, MODEL_B, MODEL_B_FULL, metric_value

pytestmark = pytest.mark.slow


def _generate(url: str, model: str, prompt: str = "Hello", n: int = 3, **extra: object) -> httpx.Response:
    return httpx.post(url + "/api/generate", json={"model": model, "prompt": prompt, "stream": False,
                                                   "options": {"num_predict": n}, **extra},
                      timeout=120, trust_env=False)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_concurrent_requests_wait_for_one_load(gateway_factory) -> None:
    gw = gateway_factory("--ctx-size", "1024")
    results: list[httpx.Response] = []

    def one() -> None:
        results.append(_generate(gw.url, MODEL))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [r.status_code for r in results] == [200, 200, 200], [r.text for r in results]
    assert metric_value(gw.metrics(), "llmctl_model_loads_total", model=MODEL) == 1
    assert len(gw.ps()) == 1
    # the requests that waited for the load report it; a later one does not
    assert max(r.json()["load_duration"] for r in results) > 0
    assert _generate(gw.url, MODEL).json()["load_duration"] == 0


def test_keep_alive_expiry_and_reload(gateway_factory) -> None:
    gw = gateway_factory("--keep-alive", "2s", "--ctx-size", "1024")
    assert _generate(gw.url, MODEL).status_code == 200
    first = gw.ps()
    assert [m["name"] for m in first] == [MODEL]
    pid = first[0]["pid"]
    _wait(lambda: gw.ps() == [], 10, "the model to expire")
    _wait(lambda: _gone(pid), 5, "the expired engine to exit")
    assert metric_value(gw.metrics(), "llmctl_model_unloads_total", reason="expired") == 1
    again = _generate(gw.url, MODEL)
    assert again.status_code == 200 and again.json()["load_duration"] > 0
    assert gw.ps()[0]["pid"] != pid


def test_two_models_at_once_and_lru_eviction(gateway_factory) -> None:
    gw = gateway_factory("--max-loaded", "2", "--ctx-size", "1024")
    out: dict[str, httpx.Response] = {}
    threads = [threading.Thread(target=lambda m=m: out.__setitem__(m, _generate(gw.url, m))) for m in (MODEL, MODEL_B)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert out[MODEL].status_code == 200 and out[MODEL_B].status_code == 200
    loaded = {m["name"]: m for m in gw.ps()}
    assert set(loaded) == {MODEL, MODEL_B_FULL}
    assert loaded[MODEL]["port"] != loaded[MODEL_B_FULL]["port"]
    # use MODEL again so tiny-b becomes the least recently used, then ask for a third engine
    assert _generate(gw.url, MODEL).status_code == 200
    r = httpx.post(gw.url + "/api/embed", json={"model": MODEL, "input": "x"}, timeout=120, trust_env=False)
    assert r.status_code == 200
    names = {(m["name"], m["mode"]) for m in gw.ps()}
    assert names == {(MODEL, "generate"), (MODEL, "embed")}
    assert _gone(loaded[MODEL_B_FULL]["pid"])
    assert metric_value(gw.metrics(), "llmctl_model_unloads_total", reason="evicted") == 1


def test_killed_engine_fails_in_flight_request_and_recovers(gateway_factory) -> None:
    gw = gateway_factory("--ctx-size", "1024")
    assert _generate(gw.url, MODEL).status_code == 200
    pid = gw.ps()[0]["pid"]
    lines: list[str] = []
    body = {"model": MODEL, "prompt": "Tell me a long story.", "stream": True, "max_tokens": 3000,
            "ignore_eos": True}
    with httpx.stream("POST", gw.url + "/v1/completions", json=body, timeout=60, trust_env=False) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                lines.append(line)
            if len(lines) == 3:
                os.kill(pid, signal.SIGKILL)
    assert len(lines) > 3, "the stream ended without saying why"
    last = lines[-1]
    assert '"error"' in last and "was killed by SIGKILL" in last and "restarts on the next request" in last
    _wait(lambda: gw.ps() == [], 5, "the dead engine to be dropped")
    again = _generate(gw.url, MODEL)
    assert again.status_code == 200, again.text
    assert again.json()["load_duration"] > 0
    assert gw.ps()[0]["pid"] != pid
    text = gw.metrics()
    assert metric_value(text, "llmctl_engine_crashes_total", model=MODEL) == 1
    assert metric_value(text, "llmctl_request_errors_total", kind="engine") >= 1


def test_idle_engine_death_is_noticed_and_restarted(gateway_factory) -> None:
    gw = gateway_factory("--ctx-size", "1024")
    assert _generate(gw.url, MODEL, keep_alive=-1).status_code == 200
    pid = gw.ps()[0]["pid"]
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: gw.ps() == [], 5, "the keep-alive pass to drop the dead engine")
    r = _generate(gw.url, MODEL)
    assert r.status_code == 200 and gw.ps()[0]["pid"] != pid


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); its state says it is dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")
    except OSError:
        return True
