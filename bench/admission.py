"""Gateway admission: when N requests arrive at once, how late does the last one reach the engine?

In a closed-loop benchmark at 64 streams every stream's next request arrives within a millisecond or two, and
the gateway admits them one after another on its event loop (route, body parse, lease, engine connection):
the engine's first batch forms only once the last one is through. This measures that directly. The engine is
`bench/stub_engine.py`, started by `llmctl serve` itself (`LLMCTL_LLAMA_SERVER`, as in `gateway_overhead.py`)
with `STUB_ENGINE_ARRIVALS=1`: it notes when it has read each generation request whole, by the tag `admit-N`
its prompt carries (CLOCK_MONOTONIC, which every process of the machine shares).

A round: N keep-alive connections are open; the client writes N requests back to back (one write each, the
send time of each noted), reads every answer, then asks the stub when each request arrived. Per request the
admission delay is arrival − send; per round the spread is last arrival − first arrival. Rounds alternate
between the stub direct (the upstream request the gateway would make) and through the gateway, so both see
the same machine load. The gateway's CPU per request is its CPU time (all threads, /proc schedstat) over the
round / N: admission plus relaying a short answer (`--tokens`, 1 by default).

    .venv/bin/python bench/admission.py                     # 3 APIs, 64 streams, 20 rounds, writes docs
    .venv/bin/python bench/admission.py --apis openai-completions --rounds 5 --no-write
    .venv/bin/python bench/admission.py --profile /tmp/adm.txt --no-write   # bench/cpu_profile.py --top ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead import CHAT_MODEL, Bench, start_profiles, stop_profiles  # noqa: E402
from relay_client import Conn, count_tokens  # noqa: E402
from common import write_section  # noqa: E402
from serve import cpu_seconds, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Gateway admission"
PROMPT = "Write a short story about a lighthouse keeper."


@dataclass(frozen=True)
class Api:
    """A client request (through the gateway) and the upstream request the stub gets for it, tagged."""

    name: str
    path: str
    upstream_path: str

    def bodies(self, tag: int, tokens: int) -> tuple[dict[str, Any], dict[str, Any]]:
        text = f"admit-{tag} {PROMPT}"
        messages = [{"role": "user", "content": text}]
        if self.name == "openai-completions":
            up = {"prompt": text, "max_tokens": tokens, "stream": True}
            return {"model": CHAT_MODEL, **up}, up
        if self.name == "openai-chat":
            up = {"messages": messages, "max_tokens": tokens, "stream": True}
            return {"model": CHAT_MODEL, **up}, up
        up = {"messages": messages, "max_tokens": tokens, "stream": True, "stream_options": {"include_usage": True}}
        return {"model": CHAT_MODEL, "messages": messages, "options": {"num_predict": tokens}}, up


APIS = {a.name: a for a in [
    Api("openai-completions", "/v1/completions", "/v1/completions"),
    Api("openai-chat", "/v1/chat/completions", "/v1/chat/completions"),
    Api("ollama-chat", "/api/chat", "/v1/chat/completions"),
]}


@dataclass
class Round:
    delays: list[float]  # per request: arrival at the engine − send by the client (s)
    spread: float  # last arrival − first arrival (s)
    last: float  # last arrival − first send (s)
    cpu_per_request: float  # of the gateway (s); 0 for the stub direct
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def request_bytes(url: str, path: str, body: dict[str, Any]) -> tuple[bytes, bytes]:
    netloc = urlsplit(url).netloc
    payload = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    return head, payload


def arrivals(stub_url: str) -> dict[int, float]:
    with urllib.request.urlopen(stub_url + "/stub/arrivals", timeout=30) as resp:
        return {tag: at for tag, at in json.loads(resp.read())}


async def burst(conns: list[Conn], requests: list[tuple[bytes, bytes]], tokens: int) -> tuple[list[float], list[str]]:
    """Send every request at once (each on its connection), read every answer; the send times."""
    sent = [0.0] * len(conns)
    errors: list[str] = []

    async def one(i: int) -> None:
        sent[i] = time.monotonic()
        try:
            status, answer, _ = await conns[i].request(*requests[i])
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {answer[:200]!r}")
            if count_tokens(answer, True) != tokens:
                raise RuntimeError(f"not {tokens} tokens: {answer[-300:]!r}")
        except Exception as exc:  # a failed request is a result
            conns[i].close()
            errors.append(f"{type(exc).__name__}: {exc}"[:300])

    await asyncio.gather(*(one(i) for i in range(len(conns))))
    return sent, errors


async def rounds(url: str, path: str, bodies: list[dict[str, Any]], stub_url: str, tokens: int, count: int,
                 gateway_pid: int | None, conns: list[Conn]) -> list[Round]:
    requests = [request_bytes(url, path, b) for b in bodies]
    out = []
    for _ in range(count):
        cpu0 = cpu_seconds(gateway_pid) if gateway_pid else 0.0
        sent, errors = await burst(conns, requests, tokens)
        cpu = cpu_seconds(gateway_pid) - cpu0 if gateway_pid else 0.0
        seen = await asyncio.to_thread(arrivals, stub_url)
        delays = [seen[i] - sent[i] for i in range(len(sent)) if i in seen]
        times = sorted(seen.values())
        out.append(Round(delays, times[-1] - times[0] if times else 0.0, times[-1] - min(sent) if times else 0.0,
                         cpu / len(bodies), len(bodies) - len(delays), errors))
    return out


async def open_conns(url: str, n: int) -> list[Conn]:
    parts = urlsplit(url)
    conns = [Conn(parts.hostname or "127.0.0.1", parts.port or 80) for _ in range(n)]
    await asyncio.gather(*(c.open() for c in conns))
    return conns


def stub_url_of(gateway: str) -> str:
    """The stub engine the gateway started for the chat model (its port from /api/ps)."""
    with urllib.request.urlopen(gateway + "/api/ps", timeout=30) as resp:
        rows = json.loads(resp.read())["models"]
    port = next(r["port"] for r in rows if CHAT_MODEL in r["name"] and r.get("mode", "generate") == "generate")
    return f"http://127.0.0.1:{port}"


async def measure(args: argparse.Namespace, bench: Bench, urls: dict[str, str], api: Api) -> dict[str, Any]:
    n = args.streams
    pairs = [api.bodies(i, args.tokens) for i in range(n)]
    direct_conns = await open_conns(urls["stub"], n)
    gateway_conns = await open_conns(urls["gateway"], n)
    try:
        direct: list[Round] = []
        gateway: list[Round] = []
        # warm-up: every connection used once both ways
        await rounds(urls["stub"], api.upstream_path, [p[1] for p in pairs], urls["stub"], args.tokens, 1, None,
                     direct_conns)
        await rounds(urls["gateway"], api.path, [p[0] for p in pairs], urls["engine"], args.tokens, 1,
                     bench.gateway_pid, gateway_conns)
        perf = start_profiles(args, bench.gateway_pid, f"admission-{api.name}")
        for _ in range(args.rounds):
            direct += await rounds(urls["stub"], api.upstream_path, [p[1] for p in pairs], urls["stub"], args.tokens,
                                   1, None, direct_conns)
            gateway += await rounds(urls["gateway"], api.path, [p[0] for p in pairs], urls["engine"], args.tokens,
                                    1, bench.gateway_pid, gateway_conns)
        stop_profiles(args, bench.gateway_pid, perf, f"admission-{api.name}")
    finally:
        for c in direct_conns + gateway_conns:
            c.close()
    row = summary(api.name, n, direct, gateway)
    print(f"{api.name:>20} x{n}: spread direct {row['direct_spread_ms']:6.1f} ms  gateway "
          f"{row['gateway_spread_ms']:6.1f} ms  last arrival {row['gateway_last_ms']:6.1f} ms  delay p50 "
          f"{row['gateway_delay_p50_ms']:5.1f} ms  CPU {row['cpu_us_per_request']:5.0f} µs/request  failed "
          f"{row['failed']}  load {os.getloadavg()[0]:.1f}" + (f"  {row['errors'][0]}" if row["errors"] else ""),
          file=sys.stderr, flush=True)
    return row


def summary(name: str, n: int, direct: list[Round], gateway: list[Round]) -> dict[str, Any]:
    """Medians over rounds of each round's figure (ms, µs)."""
    def med(rs: list[Round], f: Any) -> float:
        return statistics.median(f(r) for r in rs) * 1e3

    def pct(r: Round, q: float) -> float:
        d = sorted(r.delays)
        return d[min(len(d) - 1, int(q * len(d)))] if d else 0.0

    return {
        "api": name, "streams": n, "rounds": len(gateway),
        "direct_spread_ms": med(direct, lambda r: r.spread), "gateway_spread_ms": med(gateway, lambda r: r.spread),
        "direct_last_ms": med(direct, lambda r: r.last), "gateway_last_ms": med(gateway, lambda r: r.last),
        "direct_delay_p50_ms": med(direct, lambda r: pct(r, 0.5)),
        "gateway_delay_p50_ms": med(gateway, lambda r: pct(r, 0.5)),
        "gateway_delay_max_ms": med(gateway, lambda r: max(r.delays, default=0.0)),
        "cpu_us_per_request": med(gateway, lambda r: r.cpu_per_request) * 1e3,
        "failed": sum(r.failed for r in direct + gateway),
        "errors": [e for r in direct + gateway for e in r.errors][:3],
    }


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| API | streams | spread at the engine: stub direct | through the gateway | last arrival after first "
           "send: direct | gateway | delay p50 / max (gateway) | gateway CPU per request | failed |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| `{r['api']}` | {r['streams']} | {r['direct_spread_ms']:.1f} ms | {r['gateway_spread_ms']:.1f} ms "
                   f"| {r['direct_last_ms']:.1f} ms | {r['gateway_last_ms']:.1f} ms | {r['gateway_delay_p50_ms']:.1f} / "
                   f"{r['gateway_delay_max_ms']:.1f} ms | {r['cpu_us_per_request']:.0f} µs | {r['failed']} |")
    return "\n".join(out)


def run(args: argparse.Namespace, chosen: list[Api]) -> list[dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="llmctl-admit-"))
    bench = Bench(args, home, args.pacing)
    bench.env["STUB_ENGINE_ARRIVALS"] = "1"
    affinity = os.sched_getaffinity(0)
    try:
        bench.models()
        urls = {"stub": bench.stub(), "gateway": bench.gateway()}
        urls["engine"] = stub_url_of(urls["gateway"])
        if bench.client_cpus:
            os.sched_setaffinity(0, bench.client_cpus)
        if args.realtime:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return [asyncio.run(measure(args, bench, urls, api)) for api in chosen]
    finally:
        os.sched_setaffinity(0, affinity)
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        bench.close()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apis", default=",".join(APIS), help="comma-separated: " + ", ".join(APIS))
    ap.add_argument("--streams", type=int, default=64, help="requests sent at once")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=1, help="tokens per answer")
    ap.add_argument("--pacing", type=float, default=0.0, help="stub decode step in ms (0: answer at once)")
    ap.add_argument("--parallel", type=int, default=64, help="serve --parallel")
    ap.add_argument("--profile", type=Path, help="profile the gateway's CPU (bench/cpu_profile.py; .pstats: cProfile)")
    ap.add_argument("--perf", type=Path, help="`perf record` the gateway; reports in this folder")
    ap.add_argument("--realtime", action="store_true",
                    help="gateway, stub and client under SCHED_FIFO (chrt -f 1, root): the spread is not the load's")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--label", default="", help="a name for this run in the docs section (e.g. 'before')")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    load0 = os.getloadavg()[0]
    rows = run(args, [APIS[a] for a in args.apis.split(",")])
    body = "\n".join([
        f"`bench/admission.py` ({time.strftime('%Y-%m-%d')}{', ' + args.label if args.label else ''}): {machine()}; "
        f"load average (1 min) {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. {args.streams} "
        f"requests at once, {args.rounds} rounds (medians), {args.tokens}-token answers, `serve --parallel "
        f"{args.parallel}`; the gateway pinned to one core, the stub and the client to the other"
        + ("; all three under SCHED_FIFO." if args.realtime else "."), "", table(rows)])
    print(body)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if not args.no_write:
        write_section(args.doc, f"{TITLE}\n\n{body}\n")


if __name__ == "__main__":
    main()
