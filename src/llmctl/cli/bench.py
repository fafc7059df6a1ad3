"""`llmctl bench [URL]`: a load generator for any OpenAI-compatible endpoint (flags and rendering)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import typer

if TYPE_CHECKING:  # imported for real inside the command: `llmctl --help` stays fast
    from pathlib import Path

    from llmctl.api.bench import BenchSpec


def bench(
    ctx: typer.Context,
    args: Optional[list[str]] = typer.Argument(
        None, metavar="URL", help="Endpoint base URL, e.g. http://127.0.0.1:8000 (default: the running llmctl serve)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name to request (default: the first of GET /v1/models)."),
    api_kind: str = typer.Option("completions", "--api", help="completions (/v1/completions) or chat (/v1/chat/completions)."),
    isl: int = typer.Option(1024, "--isl", help="Input (prompt) tokens per request."),
    osl: int = typer.Option(128, "--osl", help="Output tokens per request."),
    range_ratio: float = typer.Option(0.0, "--range-ratio", help="ISL/OSL drawn uniformly from L x [1 - r, 1 + r] (vLLM's random dataset)."),
    concurrency: Optional[str] = typer.Option(None, "--concurrency", "-c", help="Closed-loop sweep: clients in flight, e.g. 1,4,16 (the default)."),
    request_rate: Optional[str] = typer.Option(None, "--request-rate", "-r", help="Open-loop sweep: requests/s, e.g. 1,2,inf (Poisson arrivals)."),
    max_concurrency: Optional[int] = typer.Option(None, "--max-concurrency", help="With --request-rate: at most this many in flight."),
    burstiness: float = typer.Option(1.0, "--burstiness", help="Gamma shape of arrival gaps: 1 Poisson, < 1 burstier, > 1 steadier."),
    requests: Optional[int] = typer.Option(None, "--requests", "-n", help="Requests per point (default: 4 x concurrency, at least 16; rates: 64)."),
    prefill_isl: Optional[str] = typer.Option(None, "--prefill-isl", help="Also measure prefill alone at these ISLs, e.g. 128,512,2048."),
    prefill_requests: int = typer.Option(3, "--prefill-requests", help="Requests per --prefill-isl value."),
    goodput: Optional[list[str]] = typer.Option(None, "--goodput", help="SLOs for goodput in ms: --goodput ttft:500 tpot:50 (also e2el)."),
    percentiles: str = typer.Option("50,90,95,99", "--percentiles", help="Percentiles to report."),
    seed: int = typer.Option(0, "--seed", help="Seed for lengths, prompts and arrivals (same seed, same workload)."),
    ignore_eos: bool = typer.Option(True, "--ignore-eos/--no-ignore-eos", help="Ask the endpoint to ignore end-of-text so OSL is honoured."),
    tokenizer: str = typer.Option("auto", "--tokenizer", help="auto, endpoint (/tokenize) or usage (calibrate on usage.prompt_tokens)."),
    extra_body: Optional[str] = typer.Option(None, "--extra-body", help="JSON object merged into every request, e.g. '{\"temperature\":0}'."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Bearer token (default: LLMCTL_API_KEY)."),
    tp: Optional[int] = typer.Option(None, "--tp", help="Label: tensor-parallel size the endpoint runs (for plan --profile)."),
    pp: Optional[int] = typer.Option(None, "--pp", help="Label: pipeline-parallel size the endpoint runs."),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="Label: GPU profile it runs on (h100-80gb, h200, ...), for plan --profile."),
    label: Optional[str] = typer.Option(None, "--label", help="Free-form label stored in the result."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the result JSON here."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Write the latency-throughput curve here (SVG)."),
    json_: bool = typer.Option(False, "--json", help="Print the result JSON instead of the table."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress."),
) -> None:
    """Benchmark an OpenAI-compatible endpoint: TTFT, TPOT, ITL, E2E percentiles, throughput and goodput
    over a concurrency or request-rate sweep, as `vllm bench serve` reports them.

    Works against llmctl serve, llama-server, vLLM and SGLang. The result JSON's `profile` section
    (prefill and decode speeds measured here) feeds `llmctl plan --profile`.

    Examples:

      llmctl bench http://127.0.0.1:11434 -m gemma3:270m --isl 256 --osl 64 -c 1,2,4

      llmctl bench http://gpu-node:8000 --request-rate 1,4,16 --goodput ttft:500 tpot:50 -o r.json --plot r.svg

      llmctl bench http://gpu-node:8000 --tp 2 --gpu h100-80gb --prefill-isl 512,2048,8192 -o tp2.json
    """
    from llmctl.api import bench as api
    from llmctl.cli import render

    settings = ctx.obj
    url, slo_pairs = _split_args(args or [], goodput or [])
    spec = api.BenchSpec(
        url=url, model=model, api=api_kind, lengths=_lengths(isl, osl, range_ratio),
        concurrency=tuple(int(c) for c in _levels(concurrency, "--concurrency", integer=True)),
        rates=tuple(_levels(request_rate, "--request-rate", allow_inf=True)), max_concurrency=max_concurrency,
        burstiness=burstiness, requests=requests,
        prefill_isl=tuple(int(i) for i in _levels(prefill_isl, "--prefill-isl", integer=True)),
        prefill_requests=prefill_requests, slo=_slo(slo_pairs),
        percentiles=tuple(_levels(percentiles, "--percentiles")), seed=seed, ignore_eos=ignore_eos,
        tokenizer=tokenizer, extra_body=_extra(extra_body), api_key=api_key,
        deployment=api.Deployment(tp=tp, pp=pp, gpu=_gpu(gpu), label=label),
    )
    api.check(spec)
    out_path, plot_path = _output_path(output, "--output"), _output_path(plot, "--plot")
    with StepProgress(quiet=quiet or json_) as progress:
        result = api.bench(settings, spec, progress)
    _write_files(result, spec, out_path, plot_path)
    if json_:
        render.print_json(result)
        return
    _print_table(result)
    for p in (out_path, plot_path):
        if p is not None:
            render.stderr.print(f"wrote {p}")


def _output_path(name: Optional[str], flag: str) -> "Path | None":
    """`--output`/`--plot` as a Path, refused before the run (minutes of it) if its directory does not exist,
    or if it is a directory itself (Conflict, as `export` into a folder that is not empty)."""
    if name is None:
        return None
    from pathlib import Path

    from llmctl.errors import Conflict, InvalidInput

    path = Path(name)
    parent = path.expanduser().parent
    if path.expanduser().is_dir():
        raise Conflict(f"{flag} {name} is a directory, not a file", hint=f"name a file for {flag}, e.g. {name.rstrip('/')}/"
                       + ("result.json" if flag == "--output" else "curve.svg"))
    if parent.exists() and not parent.is_dir():
        raise Conflict(f"{flag} {name}: {parent} is a file, not a directory", hint="choose another path")
    if not parent.is_dir():
        raise InvalidInput(f"no such directory: {parent}")
    return path


def _write_files(result: dict[str, Any], spec: "BenchSpec", out_path: "Path | None", plot_path: "Path | None") -> None:
    """The result JSON (`--output`) and the latency-throughput curve (`--plot`), each written atomically."""
    import json

    from llmctl.api import bench as api

    if out_path is not None:
        api.write_file(out_path, json.dumps(result, indent=2) + "\n")
    if plot_path is not None:
        from llmctl.loadgen.svg import render as svg

        title = f"{result['endpoint']['model']} at {result['endpoint']['url']}: latency vs throughput"
        api.write_file(plot_path, svg(title, api.curve(result), upper=f"p{max(spec.percentiles):g}"))

def _split_args(args: list[str], goodput: list[str]) -> tuple[Optional[str], list[str]]:
    """The URL, and the goodput pairs: `--goodput ttft:500 tpot:50` (vLLM's form) leaves `tpot:50` among the
    positional arguments, so KEY:MS words there belong to --goodput."""
    import re

    from llmctl.errors import UsageError

    urls = [a for a in args if "://" in a]
    pairs = [a for a in args if "://" not in a and re.fullmatch(r"(?i)(ttft|tpot|e2el):\S*", a)]
    other = [a for a in args if a not in urls and a not in pairs]
    if other or len(urls) > 1:
        raise UsageError(f"unexpected argument {(other or urls[1:])[0]!r}", hint="one endpoint URL, like http://HOST:PORT")
    if pairs and not goodput:
        raise UsageError(f"{pairs[0]!r} is a goodput SLO: put it after --goodput")
    return (urls[0] if urls else None), goodput + pairs


def _lengths(isl: int, osl: int, ratio: float) -> Any:
    from llmctl.loadgen.workload import Lengths

    return Lengths(isl, osl, ratio)


def _levels(text: Optional[str], what: str, *, allow_inf: bool = False, integer: bool = False) -> list[float]:
    if text is None:
        return []
    from llmctl.errors import UsageError
    from llmctl.loadgen.workload import parse_levels

    values = parse_levels(text, what, allow_inf=allow_inf)
    if integer and any(v != int(v) for v in values):  # `-c 1.5` does not parse, as typer's `--isl 1.5`
        raise UsageError(f"{what}: whole numbers only")
    return values


def _slo(pairs: Optional[list[str]]) -> Any:
    from llmctl.loadgen.metrics import Slo, parse_goodput

    return parse_goodput(pairs) if pairs else Slo()


def _extra(text: Optional[str]) -> Optional[dict[str, Any]]:
    if text is None:
        return None
    import json

    from llmctl.errors import InvalidInput

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"--extra-body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("--extra-body must be a JSON object")
    return data


def _gpu(name: Optional[str]) -> Optional[str]:
    """The canonical GPU profile name, so `plan --gpu` matches it; unknown names are refused."""
    if name is None:
        return None
    from llmctl.plan import load_gpu

    return load_gpu(name).name


def _ms(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.1f}"


def _pair(r: dict[str, Any], name: str, top: str) -> str:
    return f"{_ms(r[f'median_{name}_ms'])} / {_ms(r[f'{top}_{name}_ms'])}"


def _point(r: dict[str, Any]) -> str:
    if "isl" in r:
        return f"prefill {r['isl']}"
    if r["mode"] == "concurrency":
        return f"c={r['concurrency']}"
    return f"r={r['request_rate']}" + (f" max {r['max_concurrency']}" if r["max_concurrency"] else "")


def _print_table(result: dict[str, Any]) -> None:
    from rich.table import Table

    from llmctl.cli import render

    ep, w = result["endpoint"], result["workload"]
    top = f"p{max(w['percentiles']):g}"
    spread = f" (range ratio {w['range_ratio']:g})" if w["range_ratio"] else ""
    render.stdout.print(f"{ep['model']} at {ep['url']}{ep['path']}: ISL {w['isl']}, OSL {w['osl']}{spread}, "
                        f"prompts sized by the {w['tokenizer']} tokenizer", markup=False)
    slo = result["goodput"]
    table = Table(box=None, pad_edge=False, header_style="bold", collapse_padding=True)
    cols = ["point", "ok", "req/s"] + (["good/s"] if slo else []) + [
        "tok/s", f"TTFT p50/{top}", f"TPOT p50/{top}", "ITL p50", "E2E p50", "batch"]
    for c in cols:
        table.add_column(c, justify="left" if c == "point" else "right", no_wrap=True)
    for r in result["prefill_runs"] + result["runs"]:
        row = [_point(r), f"{r['completed']}/{r['completed'] + r['failed']}", f"{r['request_throughput']:.2f}"]
        if slo:
            row.append(f"{r['request_goodput']:.2f}")
        row += [f"{r['output_throughput']:.1f}", _pair(r, "ttft", top), _pair(r, "tpot", top),
                _ms(r["median_itl_ms"]), _ms(r["median_e2el_ms"]),
                "-" if r["decode_batch"] is None else f"{r['decode_batch']:.2f}"]
        table.add_row(*row)
    # off a terminal rich assumes 80 columns; a log can take the whole row
    render.stdout.print(table, width=None if render.stdout.is_terminal else 200)
    slo_text = ", goodput within " + " ".join(f"{k} {v:g} ms" for k, v in slo.items()) if slo else ""
    render.stdout.print(f"latencies in ms; tok/s: output tokens; batch: requests decoding per token{slo_text}",
                        markup=False)
    c = result["client"]
    if c["cpu_us_per_token"] is not None:
        render.stdout.print(f"client: {c['cpu_s']:.2f} s CPU, {c['cpu_us_per_token']:.0f} µs per output token")
    ratio = w.get("received_vs_requested_osl")
    if ratio is not None and ratio < 0.95:
        render.stderr.print(f"warning: requests got {ratio:.0%} of the output tokens asked for: the endpoint "
                            "stops early (end-of-text without ignore_eos, or stop strings)", markup=False)
    for r in result["prefill_runs"] + result["runs"]:
        for err in r["errors"][:1]:
            render.stderr.print(f"{_point(r)}: {r['failed']} failed: {err}", markup=False)


class StepProgress:
    """Requests done per load point: a rich bar on a TTY, a line at start and end of each point otherwise."""

    def __init__(self, *, quiet: bool) -> None:
        from llmctl.cli import render

        self.quiet = quiet
        self.console = render.stderr
        self._rich: Any = None
        self._tasks: dict[str, tuple[Any, str]] = {}

    def __enter__(self) -> "StepProgress":
        if self.console.is_terminal and not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._rich = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=self.console)
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def start(self, key: str, description: str, total: int | None) -> None:
        if self.quiet:
            return
        task = None
        if self._rich is not None:
            task = self._rich.add_task(description.replace("[", "\\["), total=total)
        else:
            self.console.print(f"{description}: {f'{total} requests' if total else 'started'}", markup=False)
        self._tasks[key] = (task, description)

    def advance(self, key: str, amount: int) -> None:
        if self._rich is not None and key in self._tasks:
            self._rich.advance(self._tasks[key][0], amount)

    def finish(self, key: str, message: str | None = None) -> None:
        if self.quiet or key not in self._tasks:
            return
        task, description = self._tasks.pop(key)
        line = f"{description}: {message or 'done'}"
        if self._rich is not None:
            self._rich.update(task, description=line.replace("[", "\\["))
        else:
            self.console.print(line, markup=False)
