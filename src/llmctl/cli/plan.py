"""`llmctl plan`: size and render a multi-node vLLM/SGLang deployment, validated offline before printing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:  # imported for real inside the command: `llmctl --help` stays fast
    from llmctl.plan import Plan
    from llmctl.plan.perf_measured import MeasuredFactory
    from llmctl.plan.profiles import GpuProfile, ModelProfile
    from llmctl.plan.render_common import RenderOptions
    from llmctl.plan.types import Workload
    from llmctl.settings import Settings


def plan(
    ctx: typer.Context,
    model: str = typer.Argument(
        ..., help="Catalog name (llama3.1:405b), Hugging Face id, folder with config.json, or a stored or "
        "registry model (llmctl's safetensors artifacts: their config.json, never their weights)."
    ),
    gpu: str = typer.Option("h100-80gb", "--gpu", help="GPU profile: h100-80gb, h200, a100-80gb, l40s, b200."),
    gpus_per_node: Optional[int] = typer.Option(None, "--gpus-per-node", help="GPUs per node [default: the profile's, 8]."),
    nodes: Optional[int] = typer.Option(None, "--nodes", help="Use exactly this many nodes (extra replicas fill them)."),
    max_nodes: Optional[int] = typer.Option(None, "--max-nodes", help="Use at most this many nodes [default: 8]."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="bf16 or fp8 (FP8 weights and KV; a quantized checkpoint keeps its own weights) [default: checkpoint's]."),
    isl: int = typer.Option(2048, "--isl", help="Input (prompt) tokens per request."),
    osl: int = typer.Option(256, "--osl", help="Output tokens per request."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Requests per second to size the pools for."),
    ttft_slo: Optional[str] = typer.Option(None, "--ttft-slo", help="Time-to-first-token target, e.g. 500ms."),
    tpot_slo: Optional[str] = typer.Option(None, "--tpot-slo", help="Time-per-output-token target, e.g. 50ms."),
    disaggregate: str = typer.Option("auto", "--disaggregate", help="auto, on or off: separate prefill/decode pools."),
    engine: str = typer.Option("vllm", "--engine", help="vllm or sglang."),
    kv_connector: Optional[str] = typer.Option(
        None, "--kv-connector", help="P/D KV transfer: NixlConnector (default), MooncakeConnector, LMCacheConnectorV1."
    ),
    tp: Optional[int] = typer.Option(None, "--tp", help="Force the tensor-parallel size."),
    pp: Optional[int] = typer.Option(None, "--pp", help="Force the pipeline-parallel size."),
    prefill_tp: Optional[int] = typer.Option(
        None, "--prefill-tp", help="P/D: force the prefill pool's TP (checked against the KV connector's rules)."),
    decode_tp: Optional[int] = typer.Option(
        None, "--decode-tp", help="P/D: force the decode pool's TP (checked against the KV connector's rules)."),
    executor: str = typer.Option("mp", "--executor", help="Multi-node vLLM: mp (--nnodes/--node-rank) or ray."),
    image: Optional[str] = typer.Option(None, "--image", help="Engine image [default: vllm/vllm-openai:v0.33.0]."),
    router_image: Optional[str] = typer.Option(None, "--router-image", help="Router image for Kubernetes and compose."),
    name: Optional[str] = typer.Option(None, "--name", help="Base name of Kubernetes objects [default: from the model]."),
    namespace: str = typer.Option("default", "--namespace", help="Kubernetes namespace of the objects."),
    model_source: Optional[str] = typer.Option(
        None, "--model-source", help="Where pods find the weights: hf:ORG/NAME, oci:REF or pvc:CLAIM/PATH "
        "[default: the model's Hugging Face id, or its registry reference by digest]."),
    weights_mode: str = typer.Option(
        "init-container", "--weights", help="oci: weights via an init container running `llmctl export` "
        "(init-container) or a Kubernetes image volume (image-volume: Kubernetes >= 1.33, ImageVolume gate)."),
    weights_volume: str = typer.Option(
        "emptydir", "--weights-volume", help="Volume the weights are stored on: emptydir (sized from the "
        "weights) or pvc:CLAIM (a shared cache)."),
    pull_secret: Optional[str] = typer.Option(
        None, "--pull-secret", help="Registry credentials: a kubernetes.io/dockerconfigjson Secret."),
    init_image: Optional[str] = typer.Option(
        None, "--init-image", help="Init container image [default: ghcr.io/llmctl/llmctl-init:<llmctl version>]."),
    hf_token_secret: str = typer.Option(
        "hf-token", "--hf-token-secret", help="Secret (key `token`) for HF_TOKEN; required for gated models."),
    fmt: str = typer.Option(
        "explain", "--format", "-f", help="explain, json, shell, compose, lws, disaggregatedset or rbg."
    ),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the files into this directory."),
    profiles: Optional[list[str]] = typer.Option(
        None, "--profile", help="`llmctl bench` result JSON (repeatable, one per TP shape): measured speeds replace the roofline."
    ),
) -> None:
    """Plan a vLLM/SGLang deployment: parallelism, prefill/decode pools, launch files. Offline; no GPU needed.

    Every number in `--format explain` comes with its formula; every rendered file is validated (pinned
    vLLM flags, CRD schemas, Kubernetes schemas) before it is printed.

    Examples:

      llmctl plan llama3.1:405b --gpu h100-80gb

      llmctl plan meta-llama/Llama-3.1-70B-Instruct --rate 10 --ttft-slo 500ms --tpot-slo 50ms

      llmctl plan llama3.1:405b --format lws -o deploy/

      llmctl plan registry.example.com/team/qwen3:8b --format lws --pull-secret regcred

      llmctl plan deepseek-r1 --gpu h200 --rate 20 --disaggregate on --format disaggregatedset

      llmctl plan meta-llama/Llama-3.1-8B-Instruct --profile tp1.json --profile tp2.json --rate 5
    """
    from llmctl.api.plan import model_source as parse_source
    from llmctl.api.plan import resolve_model
    from llmctl.plan import load_gpu, solve
    from llmctl.plan.render_common import RenderOptions
    from llmctl.plan.types import PlanRequest

    settings = ctx.obj
    _check_flags(fmt, nodes=nodes, max_nodes=max_nodes, output=output, dtype=dtype, weights_mode=weights_mode,
                 weights_volume=weights_volume)

    gpu_profile = load_gpu(gpu)
    if gpus_per_node is None:
        gpus_per_node = gpu_profile.default_gpus_per_node
    _check_gpu_budget(settings, gpus_per_node, nodes or max_nodes or 8)
    resolved = resolve_model(settings, model)
    profile = resolved.profile
    weights = parse_source(settings, model_source, resolved) if model_source else resolved.weights
    perf_model = _measured_speeds(profiles, profile, model, gpu_profile) if profiles else None
    request = PlanRequest(
        model=profile, gpu=gpu_profile, gpus_per_node=gpus_per_node,
        workload=_workload(isl, osl, rate, ttft_slo, tpot_slo), nodes=nodes, max_nodes=max_nodes or 8,
        dtype=dtype, disaggregate=disaggregate, engine=engine, kv_connector=kv_connector, tp=tp, pp=pp,
        executor=executor, prefill_tp=prefill_tp, decode_tp=decode_tp, perf_model=perf_model,
    )
    result = solve(request)
    opts = RenderOptions(image=image, router_image=router_image, name=name, namespace=namespace, weights=weights,
                         weights_mode=weights_mode, weights_volume=weights_volume, pull_secret=pull_secret,
                         init_image=init_image, hf_token_secret=hf_token_secret)
    _show(settings, result, fmt, opts, output, resolved.notes if model_source is None else ())


def _workload(isl: int, osl: int, rate: float | None, ttft_slo: str | None, tpot_slo: str | None) -> "Workload":
    """The traffic to size for; the SLOs as seconds (`500ms`, `0.5s`)."""
    from llmctl.plan.types import Workload
    from llmctl.plan.units import parse_duration

    return Workload(
        isl=isl, osl=osl, rate=rate,
        ttft_slo=parse_duration(ttft_slo, what="--ttft-slo") if ttft_slo else None,
        tpot_slo=parse_duration(tpot_slo, what="--tpot-slo") if tpot_slo else None,
    )


def _check_flags(fmt: str, *, nodes: int | None, max_nodes: int | None, output: str | None, dtype: str | None,
                 weights_mode: str, weights_volume: str) -> None:
    """The flags that are wrong whatever the model: refused before anything is read or solved."""
    from llmctl.errors import InvalidInput, UsageError
    from llmctl.plan.render_common import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    if nodes is not None and max_nodes is not None:
        raise UsageError("pass --nodes or --max-nodes, not both")
    if output is not None and fmt == "explain":
        raise UsageError("--output writes files; use it with --format json or a file format")
    if output is not None:
        _check_output_dir(output)
    if dtype is not None and dtype not in ("bf16", "fp8"):
        raise InvalidInput("--dtype must be bf16 or fp8")
    if weights_mode not in ("init-container", "image-volume"):
        raise UsageError("--weights must be init-container or image-volume")
    if weights_volume != "emptydir" and not (weights_volume.startswith("pvc:") and len(weights_volume) > 4):
        raise UsageError("--weights-volume must be emptydir or pvc:CLAIM")


def _check_output_dir(output: str) -> None:
    """`--output` names a directory (made if missing): a file at that path or above it is a Conflict naming it,
    refused before anything is read or solved."""
    from pathlib import Path

    from llmctl.errors import Conflict

    path = Path(output).expanduser()
    for p in (path, *path.parents):
        if p.is_dir():
            return
        if p.exists() or p.is_symlink():
            where = f"--output {output}" + ("" if p == path else f": {p}")
            raise Conflict(f"{where} is a file, not a directory",
                           hint="plan writes its files into a directory: choose another path for --output")


def _check_gpu_budget(settings: "Settings", gpus_per_node: int, nodes: int) -> None:
    """At most LLMCTL_PLAN_MAX_GPUS GPUs: the shape search grows faster than the node budget (a typo would hang)."""
    from llmctl.errors import InvalidInput

    if gpus_per_node >= 1 and nodes >= 1 and gpus_per_node * nodes > settings.plan_max_gpus:
        raise InvalidInput(
            f"{nodes} node(s) x {gpus_per_node} GPUs is {gpus_per_node * nodes:,} GPUs, more than a plan weighs "
            f"({settings.plan_max_gpus:,}, LLMCTL_PLAN_MAX_GPUS)", hint="lower --nodes/--max-nodes or --gpus-per-node")


def _show(settings: "Settings", result: "Plan", fmt: str, opts: "RenderOptions", output: str | None,
          notes: tuple[str, ...]) -> None:
    """The plan as `--format` asks: explained on the terminal, as JSON, or rendered into launch files."""
    from llmctl.cli import render
    from llmctl.errors import UsageError
    from llmctl.plan.render_common import FILE_FORMATS

    if fmt == "explain":
        from llmctl.plan.explain import renderables

        for item in renderables(result):
            render.stdout.print(item)
        return
    if fmt == "json":
        if output is None:
            render.print_json(result.to_dict())
            return
        import json

        from llmctl.plan.render_common import RenderedFile

        _write(output, [RenderedFile("plan.json", json.dumps(result.to_dict(), indent=2) + "\n")])
        return

    assert fmt in FILE_FORMATS
    if opts.weights_mode == "image-volume" and (opts.weights is None or opts.weights.kind != "oci"):
        raise UsageError("--weights image-volume delivers oci: weights; this plan's come from "
                         f"{opts.weights or 'nowhere yet (pass --model-source oci:REF)'}")
    if opts.weights_mode == "image-volume" and opts.weights_volume != "emptydir":
        raise UsageError("--weights-volume stores exported or downloaded weights; an image volume is the kubelet's")
    _emit_files(settings, result, fmt, opts, output, notes)


def _emit_files(settings: "Settings", result: "Plan", fmt: str, opts: "RenderOptions", output: str | None,
                notes: tuple[str, ...]) -> None:
    """Render and validate, say what the user must do and what could not be checked, then write or print."""
    import sys

    from llmctl.api.plan import render_plan
    from llmctl.cli import render

    files, report = render_plan(settings, result, fmt, opts)
    for note in notes:
        render.stderr.print(f"[yellow]note:[/yellow] {note}")
    for note in report.skipped:
        render.stderr.print(f"[yellow]not checked:[/yellow] {note}")
    if output is not None:
        _write(output, files)
        return
    for i, f in enumerate(files):
        if len(files) > 1:
            sys.stdout.write(("" if i == 0 else "\n") + f"# ==> {f.path} <==\n")
        sys.stdout.write(f.content)
    sys.stdout.flush()


def _measured_speeds(paths: list[str], profile: "ModelProfile", model: str, gpu: "GpuProfile") -> "MeasuredFactory":
    """`--profile`: the measured speed model (`PlanRequest.perf_model`), checked against the model and GPU planned."""
    from llmctl.plan.measured import check_request
    from llmctl.plan.perf_measured import MeasuredFactory

    measured = _read_profiles(paths)
    check_request(measured, profile, model, gpu)
    return MeasuredFactory(measured)


def _read_profiles(paths: list[str]):  # type: ignore[no-untyped-def]
    """`--profile` files: parsed, then turned into measured speeds (llmctl.plan.measured, pure)."""
    import json
    from pathlib import Path

    from llmctl.errors import InvalidInput, NotFound
    from llmctl.plan.measured import from_results

    docs = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file():
            raise NotFound(f"no such profile: {p}")
        try:
            docs.append((path.name, json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{p} is not JSON: {exc}") from None
        except RecursionError:
            raise InvalidInput(f"{p} nests too deeply to be an `llmctl bench` result") from None
    return from_results(docs)


def _write(directory: str, files: list) -> None:  # type: ignore[type-arg]
    """Write each file atomically (temp file + rename) into `directory`, creating it; scripts get +x."""
    import os
    import tempfile
    from pathlib import Path

    from llmctl.cli import render
    from llmctl.errors import Conflict

    out = Path(directory).expanduser()
    _check_output_dir(directory)
    taken = [out / f.path for f in files if (out / f.path).is_dir()]
    if taken:  # checked for every file first: a refused plan writes none of them
        raise Conflict(f"{taken[0]} is a directory; plan would write its {taken[0].name} there",
                       hint="move it away, or choose another --output")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file appeared there since the check
        _check_output_dir(directory)
        raise
    for f in files:
        target = out / f.path
        fd, tmp = tempfile.mkstemp(prefix=f".{f.path}.", dir=out)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f.content)
            os.chmod(tmp, 0o755 if getattr(f, "executable", False) else 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        render.stderr.print(f"wrote {target}")
