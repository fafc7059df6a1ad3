"""Serving benchmark: raw llama-server vs `llmctl serve` vs `python -m llama_cpp.server`, same model and settings.

Each target serves the same GGUF with the same engine flags: the raw llama-server is started by llmctl's
own engine layer (`EngineProcess`, the exact command line the gateway's engines get), so the only
difference between "raw" and "llmctl" is the gateway in front. Clients stream `/v1/completions` with a
fixed prompt and `ignore_eos`, so every request generates exactly `--max-tokens` tokens on every target.

Per target and concurrency (N streaming clients, each sending `--requests` requests back to back) we
report aggregate generated tokens/s (all tokens / wall time of the phase), time to first token p50/p95,
and failed requests. Failures are results, not crashes: llama_cpp.server is expected to fail at 4 streams.
Rounds alternate raw and llmctl (ABBA) so a noisy neighbour hits them alike; "vs raw" is the median of
same-round ratios. The peer runs after them (its failed requests may leave it computing for a while).

    .venv/bin/python bench/serve.py                       # CPU: 1 and 4 streams, writes docs/benchmarks.md
    .venv/bin/python bench/serve.py --gpu                 # CUDA engine: 1, 4, 16 streams, all layers on GPU
    .venv/bin/python bench/serve.py --gguf big.gguf --streams 1,8 --no-write --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from common import free_port, write_section  # noqa: E402
from relay_client import run_streams  # noqa: E402
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


@dataclass
class Phase:
    target: str
    streams: int
    requests: int = 0
    ok: int = 0
    failed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cpu: float = 0.0  # CPU seconds the gateway process used (llmctl only): its cost, whatever the noise
    all_tokens: int = 0
    ratio: float | None = None  # median over rounds of (this target's tok/s) / (raw's tok/s in the same round)
    ratios: list[float] = field(default_factory=list)  # the same-round ratios themselves

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


# -- clients ---------------------------------------------------------------------------------------------------
def _body(model: str, max_tokens: int) -> dict[str, Any]:
    return {"model": model, "prompt": PROMPT, "max_tokens": max_tokens, "stream": True, "temperature": 0.8,
            "ignore_eos": True, "seed": 42}


def _phase(target: str, res: Any) -> Phase:
    return Phase(target, res.streams, requests=res.requests, ok=res.ok, failed=res.failed, tokens=res.tokens,
                 seconds=res.seconds, ttft=list(res.ttft), errors=list(res.errors))


async def ttft_probe(urls: dict[str, str], model: str, count: int,
                     headers: dict[str, dict[str, str]]) -> dict[str, list[float]]:
    """Time to first token of single short requests, raw and llmctl strictly alternating, one at a time:
    the gateway's added latency without batching or queueing in the way."""
    out: dict[str, list[float]] = {"raw": [], "llmctl": []}
    for i in range(count + 1):
        for t in (("raw", "llmctl") if i % 2 == 0 else ("llmctl", "raw")):
            res = await run_streams(urls[t], "/v1/completions", _body(model, 1), 1, 1, headers=headers.get(t))
            if i and res.ttft:  # the first pair warms the connections up
                out[t] += res.ttft
    return out


async def run_phase(target: str, url: str, model: str, streams: int, requests: int, max_tokens: int,
                    headers: dict[str, str] | None = None) -> Phase:
    """`streams` clients, each sending `requests` requests back to back (bench/relay_client.py: raw sockets and
    a regex per answer, so the client costs a few µs per token where an httpx client parsing every event would
    need a core of its own at 64 streams)."""
    await run_streams(url, "/v1/completions", _body(model, 8), 1, 1, headers=headers)  # warm-up, not counted
    return _phase(target, await run_streams(url, "/v1/completions", _body(model, max_tokens), streams, requests,
                                            headers=headers))


# -- targets ---------------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """CPU time of all threads of a process (Linux; ns resolution from schedstat, else 10 ms ticks), including
    the warm-up request of a phase."""
    try:
        return sum(int((t / "schedstat").read_text().split()[0]) for t in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_http(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


class Targets:
    """Starts each server once, on the same model and settings; stops them all at the end."""

    def __init__(self, args: argparse.Namespace, home: Path) -> None:
        from llmctl.api.models import get_model
        from llmctl.settings import Settings

        self.args = args
        self.home = home
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("LLMCTL_")}, "LLMCTL_HOME": str(home)}
        self.settings = Settings.from_env(self.env)
        if args.gguf:
            from llmctl.api.package import PackageSpec, package

            package(self.settings, args.model, PackageSpec(gguf=Path(args.gguf)))
        self.model = get_model(self.settings, args.model)
        self.procs: list[Any] = []
        self.headers: dict[str, dict[str, str]] = {}  # target -> headers its requests need

    def options(self) -> Any:
        from llmctl.runtime.process import EngineOptions

        return EngineOptions.for_model(self.model, ctx_size=self.args.ctx_size, parallel=self.args.parallel,
                                       threads=self.args.threads, gpu_layers=self.args.gpu_layers)

    def raw(self) -> str:
        from llmctl.runtime.process import EngineProcess

        ep = EngineProcess.start(self.settings, self.model, self.options(), timeout=300, die_with_parent=True)
        self.procs.append(ep)
        self.raw_command = " ".join(ep.command)
        self.headers["raw"] = ep.auth_headers  # the engine's own key: raw requests need it as the gateway does
        self.engine = ep.engine
        return ep.base_url

    def llmctl(self) -> str:
        port = free_port()
        cmd = [sys.executable, "-m", "llmctl", "serve", "--port", str(port), "--parallel", str(self.args.parallel),
               "--keep-alive", "-1", "--ctx-size", str(self.args.ctx_size)]
        if self.args.threads:
            cmd += ["--threads", str(self.args.threads)]
        if self.args.gpu_layers is not None:
            cmd += ["--gpu-layers", str(self.args.gpu_layers)]
        log = open(self.home / "bench-serve.log", "wb")
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.gateway_pid = proc.pid
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", proc)
        r = httpx.post(url + "/api/generate", json={"model": self.args.model}, timeout=300, trust_env=False)
        r.raise_for_status()
        return url

    def peer(self) -> str:
        port = free_port()
        threads = self.args.threads or os.cpu_count() or 2
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model.weights[0]), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", str(self.args.ctx_size), "--n_threads", str(threads),
               "--n_gpu_layers", str(-1 if self.args.gpu else 0)]
        log = open(self.home / "bench-llama-cpp-python.log", "wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/v1/models", proc)
        return url

    def close(self) -> None:
        for p in reversed(self.procs):
            if isinstance(p, subprocess.Popen):
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
                    try:
                        p.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        p.kill()
            else:
                p.stop()


# -- report ----------------------------------------------------------------------------------------------------
def merge(phases: list[Phase]) -> Phase:
    out = Phase(phases[0].target, phases[0].streams)
    for p in phases:
        out.requests += p.requests
        out.ok += p.ok
        out.failed += p.failed
        out.ttft += p.ttft
        out.errors += p.errors
        out.cpu += p.cpu
        out.all_tokens += p.tokens
    # throughput: the median round, so one noisy round does not decide it
    med = statistics.median_low([p.tok_s for p in phases])
    best = next(p for p in phases if p.tok_s == med)
    out.tokens, out.seconds = best.tokens, best.seconds
    return out


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def table(results: dict[tuple[str, int], Phase], streams: list[int], labels: dict[str, str]) -> str:
    rows = ["| target | streams | requests ok/failed | aggregate tok/s | vs raw | TTFT p50 | TTFT p95 |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for n in streams:
        for t in labels:
            p = results.get((t, n))
            if p is None:
                continue
            ratio = f"{p.ratio:.3f}x" if p.ratio is not None and p.ok else "-"
            tps = f"{p.tok_s:.1f}" if p.ok else "failed"
            rows.append(f"| {labels[t]} | {n} | {p.ok}/{p.failed} | {tps} | {ratio} | {ms(pct(p.ttft, .5))} | "
                        f"{ms(pct(p.ttft, .95))} |")
    return "\n".join(rows)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
        gpu = ", GPU: " + ", ".join(sorted(set(out.stdout.split("\n")) - {""})) if out.returncode == 0 else ""
    return f"{os.cpu_count()} cores ({cpu}){gpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gemma3:270m")
    ap.add_argument("--gguf", help="package this GGUF as --model first")
    ap.add_argument("--gpu", action="store_true", help="CUDA engine, all layers on GPU, 1/4/16 streams")
    ap.add_argument("--streams", help="comma-separated concurrency levels (default 1,4; --gpu: 1,4,16)")
    ap.add_argument("--requests", type=int, default=2, help="requests per stream per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--goal", type=float, default=0.97, help="the llmctl/raw ratio to meet (for the report)")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between phases")
    ap.add_argument("--ttft-probes", type=int, default=40, help="single 1-token requests per target for TTFT overhead")
    ap.add_argument("--parallel", type=int, help="engine slots (default: max streams)")
    ap.add_argument("--ctx-size", type=int, default=1024, help="context per slot")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--gpu-layers", type=int)
    ap.add_argument("--no-peer", action="store_true", help="skip python -m llama_cpp.server")
    ap.add_argument("--json", type=Path, help="also write raw results here")
    ap.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    streams = [int(s) for s in (args.streams or ("1,4,16" if args.gpu else "1,4")).split(",")]
    args.parallel = args.parallel or max(streams)
    if args.gpu and args.gpu_layers is None:
        args.gpu_layers = 999

    labels = {"raw": "llama-server (raw)", "llmctl": "llmctl serve", "peer": "llama_cpp.server"}
    if args.no_peer:
        del labels["peer"]
    # `timeout` and CI cancel with SIGTERM: turn it into an exception so every server is stopped
    signal.signal(signal.SIGTERM, _interrupt)
    home = Path(tempfile.mkdtemp(prefix="llmctl-bench-"))
    targets = Targets(args, home)
    try:
        urls = {"raw": targets.raw(), "llmctl": targets.llmctl()}
        if "peer" in labels:
            try:
                urls["peer"] = targets.peer()
            except Exception as exc:
                print(f"llama_cpp.server did not start: {exc}", file=sys.stderr)
                del labels["peer"]
        per: dict[tuple[str, int], list[Phase]] = {}

        def measure(rnd: int, t: str, n: int) -> None:
            time.sleep(args.pause)  # let the previous phase's stragglers finish
            cpu0 = cpu_seconds(targets.gateway_pid) if t == "llmctl" else 0.0
            p = asyncio.run(run_phase(t, urls[t], args.model, n, args.requests, args.max_tokens,
                                      targets.headers.get(t)))
            if t == "llmctl":
                p.cpu = cpu_seconds(targets.gateway_pid) - cpu0
            per.setdefault((t, n), []).append(p)
            cpu = f"  gateway {1e6 * p.cpu / p.tokens:.0f} µs/token" if t == "llmctl" and p.tokens else ""
            print(f"round {rnd + 1} {t:>6} x{n:<2} {p.tok_s:7.1f} tok/s  ok {p.ok} failed {p.failed}  "
                  f"TTFT p50 {ms(pct(p.ttft, .5))}{cpu}", file=sys.stderr, flush=True)
            if args.json:  # partial results as they come: a run cut short still leaves its rounds
                args.json.write_text(json.dumps({f"{k[0]}/{k[1]}": [asdict(x) for x in v] for k, v in per.items()}))

        # raw and llmctl alternate (ABBA) so drift in a shared machine's load favours neither; the peer
        # runs last, on its own (after failing requests it may keep computing for a while)
        done, ttft = 0, {}
        try:
            for rnd in range(args.rounds):
                for n in streams:
                    for t in (("raw", "llmctl") if rnd % 2 == 0 else ("llmctl", "raw")):
                        measure(rnd, t, n)
                done = rnd + 1
            if args.ttft_probes:
                ttft = asyncio.run(ttft_probe(urls, args.model, args.ttft_probes, targets.headers))
            if "peer" in labels:
                for rnd in range(min(args.rounds, 2)):
                    for n in streams:
                        measure(rnd, "peer", n)
        except KeyboardInterrupt:  # cut short (the GPU script's budget): report the complete rounds, if any
            if done == 0:
                raise
            print(f"cut short: reporting the {done} complete rounds", file=sys.stderr, flush=True)
            per = {k: v[:done] for k, v in per.items() if k[0] != "peer" and v[:done]}
            args.rounds = done
        merged = {k: merge(v) for k, v in per.items()}
        for (t, n), phases in per.items():
            raws = per.get(("raw", n), [])
            if t == "peer":  # not measured in the same rounds: against raw's median round
                raw_med = merged[("raw", n)].tok_s if ("raw", n) in merged else 0
                merged[(t, n)].ratio = merged[(t, n)].tok_s / raw_med if raw_med and merged[(t, n)].ok else None
                continue
            pairs = [p.tok_s / r.tok_s for p, r in zip(phases, raws) if r.tok_s and p.ok]
            merged[(t, n)].ratio = statistics.median(pairs) if pairs else None
            merged[(t, n)].ratios = pairs
    finally:
        targets.close()
        shutil.rmtree(home, ignore_errors=True)

    md = table(merged, streams, labels)
    notes = []
    for n in streams:
        raw, gw = merged.get(("raw", n)), merged.get(("llmctl", n))
        raw_p50, gw_p50 = pct(raw.ttft, .5) if raw else None, pct(gw.ttft, .5) if gw else None
        if raw and gw and raw_p50 is not None and gw_p50 is not None and raw.tok_s:
            cpu = f", gateway CPU {1e6 * gw.cpu / gw.all_tokens:.0f} µs per token" if gw.all_tokens else ""
            spread = f"{min(gw.ratios):.3f}-{max(gw.ratios):.3f}" if gw.ratios else "-"
            notes.append(f"{n} stream{'s' if n > 1 else ''}: llmctl/raw throughput {gw.ratio or 0:.3f}x "
                         f"(median of per-round ratios; rounds {spread}), "
                         f"TTFT p50 overhead {1000 * (gw_p50 - raw_p50):+.1f} ms{cpu}")
        peer = merged.get(("peer", n))
        if peer and peer.failed:
            notes.append(f"llama_cpp.server at {n} stream{'s' if n > 1 else ''}: {peer.failed} of {peer.requests} "
                         f"requests failed ({(peer.errors or ['?'])[0]})")
    if ttft.get("raw") and ttft.get("llmctl"):
        r50, g50 = statistics.median(ttft["raw"]), statistics.median(ttft["llmctl"])
        notes.insert(0, f"TTFT of single 1-token requests, raw and llmctl alternating ({len(ttft['raw'])} each): "
                        f"raw p50 {1000 * r50:.1f} ms, llmctl p50 {1000 * g50:.1f} ms: gateway overhead "
                        f"{1000 * (g50 - r50):+.1f} ms")
    settings = (f"model {args.model} ({targets.model.facts.quantization}), {args.max_tokens} generated tokens per "
                f"request (ignore_eos), {args.requests} requests per stream per round, {args.rounds} rounds "
                f"(tok/s: median round; vs raw: median of same-round ratios, raw and llmctl alternating; TTFT: all requests), --parallel {args.parallel}, ctx {args.ctx_size} "
                f"per slot, threads {args.threads or 'default'}, gpu layers {args.gpu_layers if args.gpu_layers is not None else 'none'}")
    section = "\n".join([
        "## Serving", "",
        f"`bench/serve.py{' --gpu' if args.gpu else ''}` ({time.strftime('%Y-%m-%d')}): streaming `/v1/completions` "
        "clients against each server.", "",
        f"- machine: {machine()}",
        f"- engine: llama-server {getattr(targets, 'engine', None) and targets.engine.version} "
        f"({getattr(targets, 'engine', None) and targets.engine.kind}); raw command: `{getattr(targets, 'raw_command', '?')}`",
        f"- settings: {settings}", "", md, "", *[f"- {n}" for n in notes], "",
        "TTFT under concurrency includes waiting behind the other streams' prompts in the engine's batch, so it "
        "moves by tens of ms from round to round; the gateway's own latency is the single-request probe above.",
        "",
        f"Goal: llmctl serve at least {args.goal}x raw llama-server throughput, TTFT overhead under 5 ms.",
    ])
    print(section)
    if args.json:
        args.json.write_text(json.dumps({
            "merged": {f"{t}/{n}": {**asdict(p), "tok_s": p.tok_s} for (t, n), p in merged.items()},
            "rounds": {f"{t}/{n}": [{**asdict(p), "tok_s": p.tok_s} for p in v] for (t, n), v in per.items()},
            "ttft_probe": ttft, "raw_command": getattr(targets, "raw_command", None)}, indent=1))
    if not args.no_write:
        write_section(args.doc, section)


if __name__ == "__main__":
    main()
