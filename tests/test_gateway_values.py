"""The gateway's value grammars, which Ollama users type: keep_alive durations, UNTIL wording, host:port.

The host grammar is `llmctl.names.parse_host`, the one parser of LLMCTL_HOST for `serve` (where to listen)
and for every client (where to connect); tests/test_names.py has the rest of the names module's tables."""

from __future__ import annotations

import pytest

from llmctl.cli.ps import human_until
from llmctl.errors import InvalidInput
from llmctl.names import parse_host, url_for
from llmctl.runtime.scheduler import parse_keep_alive


@pytest.mark.parametrize(("value", "seconds"), [
    ("5m", 300.0), ("1h30m", 5400.0), ("30s", 30.0), ("250ms", 0.25), ("1.5h", 5400.0), ("2m30s", 150.0),
    (300, 300.0), (2.5, 2.5), ("300", 300.0), (0, 0.0), ("0", 0.0), ("0s", 0.0),
    (-1, None), ("-1", None), ("-1m", None), (-0.5, None),
    ("2562047h", 2562047 * 3600.0), (9_000_000_000, 9e9), (-1e300, None), (-10**400, None),  # Go's range
])
def test_keep_alive_like_ollama(value: object, seconds: float | None) -> None:
    assert parse_keep_alive(value, 42.0) == seconds


@pytest.mark.parametrize("value", [None, ""])
def test_keep_alive_default(value: object) -> None:
    assert parse_keep_alive(value, 42.0) == 42.0


@pytest.mark.parametrize("value", ["soon", "5 m", "m5", "5x", True, [], {}, "1h-5m",
                                   # what would break every later `ps` (issue #11): not finite, or beyond Go's
                                   # ~292-year time.Duration
                                   float("nan"), "NaN", "nan", float("inf"), "Infinity", "-inf", float("-inf"),
                                   1e300, "1e300", 10**400, "99999999999h", 9_300_000_000])
def test_keep_alive_rejects(value: object) -> None:
    with pytest.raises(InvalidInput, match="keep_alive"):
        parse_keep_alive(value)


@pytest.mark.parametrize(("delta", "text"), [
    (0.5, "Less than a second from now"), (1.2, "1 second from now"), (42, "42 seconds from now"),
    (61, "About a minute from now"), (299, "4 minutes from now"), (3600, "About an hour from now"),
    (5 * 3600, "5 hours from now"), (3 * 86400, "3 days from now"), (-1, "Stopping..."),
])
def test_until_like_ollama_ps(delta: float, text: str) -> None:
    from datetime import datetime, timezone

    now = 1_800_000_000.0
    iso = datetime.fromtimestamp(now + delta, timezone.utc).isoformat().replace("+00:00", "Z")
    assert human_until(iso, False, now=now) == text


def test_until_forever() -> None:
    assert human_until("9999-12-31T23:59:59Z", True) == "Forever"


@pytest.mark.parametrize(("text", "host", "port", "url"), [
    ("127.0.0.1:11434", "127.0.0.1", 11434, "http://127.0.0.1:11434"),
    ("0.0.0.0", "0.0.0.0", 11434, "http://127.0.0.1:11434"),
    (":8080", "127.0.0.1", 8080, "http://127.0.0.1:8080"),
    ("", "127.0.0.1", 11434, "http://127.0.0.1:11434"),
    ("http://localhost:9000/", "localhost", 9000, "http://localhost:9000"),
    ("http://gw.example.com:9000/api", "gw.example.com", 9000, "http://gw.example.com:9000"),
    ("https://gw.example.com", "gw.example.com", 443, "https://gw.example.com:443"),
    ("[::1]:7000", "::1", 7000, "http://[::1]:7000"),
    ("::", "::", 11434, "http://[::1]:11434"),
    ("[::]:80", "::", 80, "http://[::1]:80"),
    ("  gpu-box  ", "gpu-box", 11434, "http://gpu-box:11434"),
])
def test_parse_host_like_ollama_host(text: str, host: str, port: int, url: str) -> None:
    address = parse_host(text)
    assert (address.host, address.port, address.url) == (host, port, url)


@pytest.mark.parametrize("text", ["host:port", "h:99999", "ftp://h:21", "h:-1"])
def test_parse_host_rejects(text: str) -> None:
    with pytest.raises(InvalidInput, match="not a host:port"):
        parse_host(text)


def test_url_for_wildcards() -> None:
    assert url_for("0.0.0.0", 11434) == "http://127.0.0.1:11434"
    assert url_for("::", 80) == "http://[::1]:80"
