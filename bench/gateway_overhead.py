"""Gateway relay capacity: how many streamed tokens per second one core of `llmctl serve` can relay.

The engine is `bench/stub_engine.py` (llama-server's events byte for byte, written as fast as a socket allows),
started by the gateway's own engine layer through `LLMCTL_LLAMA_SERVER`, so the product's code path is the one
measured. For each API and concurrency we run the same load against the gateway and, in the same run, against
the stub directly (the upstream request the gateway makes), and report:

- tok/s through the gateway and direct, and their ratio;
- the gateway's CPU µs per token: user+system time of the gateway process from /proc/<pid>/stat (all its
  threads, engines excluded: they are other processes) over the tokens relayed. On a shared machine this
  is the robust figure; 1e6 / µs-per-token is the tok/s one core can relay.

The gateway is pinned to one core (`taskset`), the stub and this load generator to others when there are any.

    .venv/bin/python bench/gateway_overhead.py                        # all APIs, 1/16/64 streams, writes docs
    .venv/bin/python bench/gateway_overhead.py --apis openai-chat --streams 64 --no-write
    .venv/bin/python bench/gateway_overhead.py --pacing 5             # paced only: a token per stream per 5 ms
    .venv/bin/python bench/gateway_overhead.py --profile /tmp/p.txt --apis ollama-chat --streams 64 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relay_client import Result, run_streams  # noqa: E402
from common import free_port, write_section  # noqa: E402
from serve import cpu_seconds, machine, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "bench" / "stub_engine.py"
CHAT_MODEL, BASE_MODEL = "stub-chat", "stub-base"
TEMPLATE = ("{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
            "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
MESSAGES = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]


@dataclass(frozen=True)
class Api:
    """One client-facing API: the gateway request, and the upstream request the stub gets for it."""

    name: str
    path: str
    body: dict[str, Any]
    upstream_path: str
    upstream_body: dict[str, Any]
    note: str


def apis(tokens: int) -> dict[str, Api]:
    chat_up = {"messages": MESSAGES, "max_tokens": tokens, "stream": True}
    chat_up_usage = {**chat_up, "stream_options": {"include_usage": True}}
    native_up = {"prompt": "Q: Write a short story.\nA:", "n_predict": tokens, "stream": True}
    return {a.name: a for a in [
        Api("openai-chat", "/v1/chat/completions", {"model": CHAT_MODEL, "messages": MESSAGES, "max_tokens": tokens,
                                                    "stream": True},
            "/v1/chat/completions", chat_up, "jinja-mode model: the engine's OpenAI stream relayed"),
        Api("openai-chat-usage", "/v1/chat/completions",
            {"model": CHAT_MODEL, "messages": MESSAGES, "max_tokens": tokens, "stream": True,
             "stream_options": {"include_usage": True}},
            "/v1/chat/completions", chat_up_usage, "the same with stream_options.include_usage"),
        Api("openai-completions", "/v1/completions", {"model": CHAT_MODEL, "prompt": "Once upon a time",
                                                      "max_tokens": tokens, "stream": True},
            "/v1/completions", {"prompt": "Once upon a time", "max_tokens": tokens, "stream": True},
            "raw prompt: the engine's OpenAI stream relayed"),
        Api("openai-chat-translated", "/v1/chat/completions",
            {"model": BASE_MODEL, "messages": MESSAGES, "max_tokens": tokens, "stream": True},
            "/completion", native_up, "completion-mode model: /completion events become OpenAI chunks"),
        Api("ollama-chat", "/api/chat", {"model": CHAT_MODEL, "messages": MESSAGES,
                                         "options": {"num_predict": tokens}},
            "/v1/chat/completions", chat_up_usage, "jinja-mode model: OpenAI events become Ollama NDJSON"),
        Api("ollama-generate", "/api/generate", {"model": CHAT_MODEL, "prompt": MESSAGES[0]["content"],
                                                 "options": {"num_predict": tokens}},
            "/v1/chat/completions", chat_up_usage, "jinja-mode model: OpenAI events become Ollama NDJSON"),
        Api("openai-chat-nostream", "/v1/chat/completions",
            {"model": CHAT_MODEL, "messages": MESSAGES, "max_tokens": tokens, "stream": False},
            "/v1/chat/completions", {**chat_up, "stream": False}, "one JSON answer (stream: false)"),
        Api("ollama-chat-nostream", "/api/chat", {"model": CHAT_MODEL, "messages": MESSAGES, "stream": False,
                                                  "options": {"num_predict": tokens}},
            "/v1/chat/completions", chat_up_usage, "the engine streams, the gateway collects one JSON answer"),
    ]}


# -- setup ---------------------------------------------------------------------------------------------------
def tiny_gguf(path: Path, chat_template: str | None) -> Path:
    """A llama-shaped GGUF of a few KB: the stub never reads weights, llmctl only reads the header."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("stub")
    w.add_context_length(4096)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(8)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>", "a"])
    w.add_token_scores([0.0] * 4)
    w.add_token_types([2, 3, 3, 1])
    if chat_template:
        w.add_chat_template(chat_template)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


class Bench:
    """The stub direct, and `llmctl serve` in front of its own stub engines; stopped at the end."""

    def __init__(self, args: argparse.Namespace, home: Path, token_ms: float) -> None:
        self.args, self.home = args, home
        cpus = sorted(os.sched_getaffinity(0))
        self.gateway_cpus = str(cpus[0]) if len(cpus) > 1 else ""
        rest = cpus[1:] if len(cpus) > 1 else cpus
        self.client_cpus = set(rest)
        self.stub_cpus = ",".join(str(c) for c in rest)
        self.procs: list[subprocess.Popen[bytes]] = []
        wrapper = home / "llama-server"
        pin = f"taskset -c {self.stub_cpus} " if self.stub_cpus and shutil.which("taskset") else ""
        pin += "chrt -f 1 " if args.realtime else ""
        wrapper.write_text(f"#!/bin/sh\nexec {pin}{sys.executable} {STUB} \"$@\"\n")
        wrapper.chmod(0o755)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("LLMCTL_", "STUB_ENGINE_"))},
                    "LLMCTL_HOME": str(home), "LLMCTL_LLAMA_SERVER": str(wrapper),
                    "STUB_ENGINE_TOKEN_MS": str(token_ms)}
        self.wrapper = wrapper

    def models(self) -> None:
        from llmctl.api.package import PackageSpec, package
        from llmctl.settings import Settings

        settings = Settings.from_env(self.env)
        package(settings, CHAT_MODEL, PackageSpec(gguf=tiny_gguf(self.home / "chat.gguf", TEMPLATE)))
        package(settings, BASE_MODEL, PackageSpec(gguf=tiny_gguf(self.home / "base.gguf", None)))

    def stub(self) -> str:
        port = free_port()
        proc = subprocess.Popen([str(self.wrapper), "-m", "x", "--host", "127.0.0.1", "--port", str(port),
                                 "--alias", f"docker.io/library/{CHAT_MODEL}:latest"], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", proc)
        return url

    def gateway(self) -> str:
        port = free_port()
        prof = [str(ROOT / "bench" / "cpu_profile.py"), str(self.args.profile)] if self.args.profile else []
        cmd = [sys.executable, *prof, "-m", "llmctl", "serve", "--port", str(port), "--parallel", str(self.args.parallel),
               "--keep-alive", "-1"]
        if self.gateway_cpus and shutil.which("taskset"):
            cmd = ["taskset", "-c", self.gateway_cpus, *cmd]
        if self.args.realtime:
            cmd = ["chrt", "-f", "1", *cmd]
        log = open(self.home / "serve.log", "wb")
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.gateway_pid = proc.pid
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", proc)
        for model in (CHAT_MODEL, BASE_MODEL):
            asyncio.run(run_streams(url, "/api/generate", {"model": model, "stream": False}, 1, 1))
        return url

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()


# -- measuring -----------------------------------------------------------------------------------------------
@dataclass
class Row:
    api: str
    streams: int
    gateway: Result
    direct: Result
    cpu: float  # gateway CPU seconds during the gateway phase
    load: float

    @property
    def us_per_token(self) -> float:
        return 1e6 * self.cpu / self.gateway.tokens if self.gateway.tokens else 0.0


def measure(bench: Bench, urls: dict[str, str], api: Api, streams: int, args: argparse.Namespace,
            token_ms: float) -> Row:
    requests = max(1, args.tokens_per_phase // (streams * args.tokens))
    if token_ms > 0:  # paced phases last about as long as the answers take: at most ~6 s
        requests = max(1, min(requests, int(6000 / (args.tokens * token_ms))))
    direct = asyncio.run(run_streams(urls["stub"], api.upstream_path, api.upstream_body, streams, requests,
                                     expect=args.tokens))
    asyncio.run(run_streams(urls["gateway"], api.path, api.body, streams, 1, expect=args.tokens))  # warm-up
    perf = start_profiles(args, bench.gateway_pid, f"{api.name}-{streams}")
    cpu0 = cpu_seconds(bench.gateway_pid)
    res = asyncio.run(run_streams(urls["gateway"], api.path, api.body, streams, requests, expect=args.tokens))
    cpu = cpu_seconds(bench.gateway_pid) - cpu0
    stop_profiles(args, bench.gateway_pid, perf, f"{api.name}-{streams}")
    row = Row(api.name, streams, res, direct, cpu, os.getloadavg()[0])
    print(f"{api.name:>24} x{streams:<3} gateway {res.tok_s:9.0f} tok/s  direct {direct.tok_s:9.0f} tok/s  "
          f"{row.us_per_token:6.1f} µs/token  ok {res.ok} failed {res.failed}  load {row.load:.1f}"
          + (f"  {res.errors[0]}" if res.errors else ""), file=sys.stderr, flush=True)
    return row


def start_profiles(args: argparse.Namespace, pid: int, name: str) -> subprocess.Popen[bytes] | None:
    """--profile: the gateway's Python sampler starts (SIGUSR1); --perf: `perf record` of its CPU clock."""
    if args.profile:
        os.kill(pid, signal.SIGUSR1)
    if not args.perf:
        return None
    args.perf.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-g", "-p", str(pid), "-o",
                             str(args.perf / f"{name}.data")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiles(args: argparse.Namespace, pid: int, perf: subprocess.Popen[bytes] | None, name: str) -> None:
    if args.profile:
        os.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not args.profile.exists():
            time.sleep(0.05)
        time.sleep(0.2)
        if args.profile.exists():
            args.profile.rename(args.profile.with_name(f"{args.profile.stem}-{name}{args.profile.suffix}"))
    if perf is not None:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        data = str(args.perf / f"{name}.data")  # one per (api, streams): the last round's
        report = [subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "--sort", sort, "-g",
                                  "none", "--percent-limit", "0.7"], capture_output=True, text=True).stdout
                  for sort in ("dso", "dso,sym")]
        (args.perf / f"{name}.txt").write_text("\n".join(report))


def merge(rows: list[Row]) -> dict[str, Any]:
    """Rounds of one (api, streams): medians of tok/s and of µs/token."""
    return {
        "api": rows[0].api, "streams": rows[0].streams,
        "gateway_tok_s": statistics.median(r.gateway.tok_s for r in rows),
        "direct_tok_s": statistics.median(r.direct.tok_s for r in rows),
        "ratio": statistics.median(r.gateway.tok_s / r.direct.tok_s for r in rows if r.direct.tok_s),
        "us_per_token": statistics.median(r.us_per_token for r in rows),
        "cpu_share": statistics.median(r.cpu / r.gateway.seconds for r in rows if r.gateway.seconds),
        "ok": sum(r.gateway.ok for r in rows), "failed": sum(r.gateway.failed for r in rows),
        "errors": [e for r in rows for e in r.gateway.errors][:3],
        "load": statistics.median(r.load for r in rows),
    }


def table(merged: list[dict[str, Any]], notes: dict[str, str]) -> str:
    out = ["| API | streams | gateway tok/s | stub direct tok/s | ratio | gateway CPU µs/token | tok/s per gateway core "
           "| gateway CPU busy | requests ok/failed |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in merged:
        per_core = 1e6 / m["us_per_token"] if m["us_per_token"] else 0
        out.append(f"| `{m['api']}` | {m['streams']} | {m['gateway_tok_s']:,.0f} | {m['direct_tok_s']:,.0f} | "
                   f"{m['ratio']:.2f} | {m['us_per_token']:.1f} | {per_core:,.0f} | {100 * m['cpu_share']:.0f}% | "
                   f"{m['ok']}/{m['failed']} |")
    out += [f"- `{k}`: {v}" for k, v in notes.items()]
    return "\n".join(out)


def run(args: argparse.Namespace, chosen: list[Api], streams: list[int], token_ms: float) -> list[dict[str, Any]]:
    """One gateway and one direct stub at this pacing; every (api, streams) phase `rounds` times."""
    home = Path(tempfile.mkdtemp(prefix="llmctl-relay-"))
    bench = Bench(args, home, token_ms)
    affinity = os.sched_getaffinity(0)
    try:
        bench.models()
        urls = {"stub": bench.stub(), "gateway": bench.gateway()}
        if bench.client_cpus:
            os.sched_setaffinity(0, bench.client_cpus)
        if args.realtime:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        rows: dict[tuple[str, int], list[Row]] = {}
        for _ in range(args.rounds):
            for api in chosen:
                for n in streams:
                    rows.setdefault((api.name, n), []).append(measure(bench, urls, api, n, args, token_ms))
    finally:
        os.sched_setaffinity(0, affinity)
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        bench.close()
        shutil.rmtree(home, ignore_errors=True)
    return [merge(v) for v in rows.values()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apis", help="comma-separated (default: all): " + ", ".join(apis(1)))
    ap.add_argument("--streams", default="1,16,64")
    ap.add_argument("--tokens", type=int, default=128, help="tokens per answer")
    ap.add_argument("--tokens-per-phase", type=int, default=40_000, help="tokens per measured phase (about)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pacing", default="0,4", help="stub decode step in ms, per table (0: as fast as the socket)")
    ap.add_argument("--parallel", type=int, default=64, help="serve --parallel")
    ap.add_argument("--profile", type=Path,
                    help="profile the gateway's CPU in each phase (bench/cpu_profile.py; .pstats: cProfile)")
    ap.add_argument("--perf", type=Path, help="`perf record` the gateway in each phase; reports in this folder")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--realtime", action="store_true",
                    help="run the gateway, the stub and this client under SCHED_FIFO (chrt -f 1, root): other work "
                         "on a shared machine cannot preempt them, so tok/s means something too")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    table_apis = apis(args.tokens)
    chosen = [table_apis[a] for a in (args.apis.split(",") if args.apis else table_apis)]
    streams = [int(s) for s in args.streams.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    load0 = os.getloadavg()[0]
    results = {float(ms): run(args, chosen, streams, float(ms)) for ms in args.pacing.split(",")}
    notes = {a.name: a.note for a in chosen}
    parts = [f"`bench/gateway_overhead.py` ({time.strftime('%Y-%m-%d')}): {machine()}; load average (1 min) "
             f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. {args.tokens} tokens per answer, "
             f"{args.rounds} rounds (medians), `serve --parallel {args.parallel}`; the gateway pinned to one core, "
             f"the stub and the load generator to the others"
             + ("; all three under SCHED_FIFO (`--realtime`)." if args.realtime else "."), ""]
    for ms, merged in results.items():
        parts += [f"**{'As fast as the socket allows' if ms <= 0 else f'Paced: a decode step every {ms:g} ms'}**"
                  f" (`--pacing {ms:g}`):", "", table(merged, {}), ""]
    parts += [f"- `{k}`: {v}" for k, v in notes.items()]
    body = "\n".join(parts)
    print(body)
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    if not args.no_write:
        write_section(args.doc, "## Gateway relay capacity\n\n" + body)


if __name__ == "__main__":
    main()
