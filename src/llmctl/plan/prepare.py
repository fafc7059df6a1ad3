"""Before any shape is chosen: check the request, choose the weight and KV dtypes, the context length, and
size the shapes each mode (aggregated, disaggregated) may use, each with its speed model.

vLLM's NixlConnector supports sliding-window (hybrid) KV caches in P/D (docs.vllm.ai, NixlConnector compatibility
matrix: SWA supported for dense, MoE and MLA models); for the other connectors (LMCache, Mooncake) llmctl sizes
sliding-window layers as full attention, so the aggregated and disaggregated shape sets can differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmctl.errors import InvalidInput
from llmctl.plan import lmcache, shapes
from llmctl.plan.memory import Shape
from llmctl.plan.perf import PerfInputs, perf_model_for
from llmctl.plan.perf_measured import MeasuredFactory, MeasuredPerf
from llmctl.plan.pools import Context
from llmctl.plan.measured import caution_notes
from llmctl.plan.profiles import ceil_div
from llmctl.plan.suggest import no_fit_error
from llmctl.plan.types import DISAGGREGATE, DTYPES, ENGINES, EXECUTORS, PlanRequest

CONTEXT_ROUND = 1024
"""`--max-model-len` is ISL + OSL rounded up to this, so prompts a little over the stated ISL still fit."""


def _check(req: PlanRequest) -> None:
    w = req.workload
    if req.engine not in ENGINES:
        raise InvalidInput(f"unknown engine {req.engine!r}", hint=f"one of {', '.join(ENGINES)}")
    if req.disaggregate not in DISAGGREGATE:
        raise InvalidInput(f"--disaggregate must be one of {', '.join(DISAGGREGATE)}")
    if req.executor not in EXECUTORS:
        raise InvalidInput(f"--executor must be one of {', '.join(EXECUTORS)}")
    if req.executor == "ray" and req.engine != "vllm":
        raise InvalidInput("--executor ray applies to vLLM; SGLang joins nodes with --dist-init-addr itself")
    if req.dtype is not None and req.dtype not in DTYPES:
        raise InvalidInput(f"--dtype must be one of {', '.join(DTYPES)}")
    if w.isl < 1 or w.osl < 1:
        raise InvalidInput("--isl and --osl must be at least 1 token")
    if w.rate is not None and not (0 < w.rate < math.inf):  # NaN compares false both ways
        raise InvalidInput("--rate must be a positive number of requests per second")
    if req.gpus_per_node < 1:
        raise InvalidInput("--gpus-per-node must be at least 1")
    if req.nodes is not None and req.nodes < 1 or req.max_nodes < 1:
        raise InvalidInput("--nodes and --max-nodes must be at least 1")
    if req.pp is not None and req.pp < 1:
        raise InvalidInput("--pp must be at least 1")
    for flag, tp in (("--tp", req.tp), ("--prefill-tp", req.prefill_tp), ("--decode-tp", req.decode_tp)):
        if tp is not None and tp < 1:
            raise InvalidInput(f"{flag} must be at least 1")
        if tp is not None:
            shapes.check_tp(req.model, tp, req.gpus_per_node)
    pools = [f for f, v in (("--prefill-tp", req.prefill_tp), ("--decode-tp", req.decode_tp)) if v is not None]
    if pools and req.tp is not None:
        raise InvalidInput(f"pass --tp (both pools) or {' and '.join(pools)}, not both")
    if pools and req.disaggregate == "off":
        raise InvalidInput(f"{' and '.join(pools)} size a prefill/decode pool; --disaggregate off plans one pool",
                           hint="use --tp, or --disaggregate on|auto")


def dtypes(req: PlanRequest) -> tuple[str, str, list[str]]:
    """(weight format, KV dtype, notes). Default: the checkpoint's own weights (its quantization_config) and a
    16-bit KV cache; `--dtype fp8` means FP8 weights (online quantization of a 16-bit checkpoint) and an FP8 KV
    cache. A checkpoint that declares a method keeps it: the engines load it from config.json."""
    q = req.model.quant
    if req.dtype is None:
        return req.model.native_dtype, "bf16", []
    if req.dtype == "bf16" and q.quantized:
        raise InvalidInput(
            f"{req.model.name} ships {q.label} weights; a BF16 plan needs a BF16 copy of the checkpoint",
            hint="leave --dtype out (or pass --dtype fp8 for an FP8 KV cache) to serve the quantized checkpoint",
        )
    if req.dtype == "fp8" and q.quantized:
        note = (f"--dtype fp8: {req.model.name} declares {q.method} ({q.label}) in its quantization_config, which "
                "vLLM and SGLang load as is; the plan keeps those weights and makes only the KV cache FP8")
        return req.model.native_dtype, "fp8", [note]
    return req.dtype, ("fp8" if req.dtype == "fp8" else "bf16"), []


def max_model_len(req: PlanRequest) -> int:
    w, limit = req.workload, req.model.max_position_embeddings
    if w.isl + w.osl > limit:
        raise InvalidInput(
            f"ISL {w.isl} + OSL {w.osl} exceeds {req.model.name}'s context of {limit:,} tokens",
            hint=f"keep --isl + --osl at or under {limit}",
        )
    return min(ceil_div(w.isl + w.osl, CONTEXT_ROUND) * CONTEXT_ROUND, limit)


@dataclass(frozen=True)
class Setup:
    """What the decisions share: dtypes, context length, and per mode the shapes that fit and a speed model.
    A vLLM KV connector turns the hybrid KV cache manager off, so sliding-window layers are then sized as full."""

    wdtype: str
    kvdtype: str
    max_len: int
    agg: tuple[Context, list[shapes.Fit]]
    dis: tuple[Context, list[shapes.Fit], list[shapes.Fit]]  # the speed model, prefill fits, decode fits
    notes: tuple[str, ...]


def _mode_setup(req: PlanRequest, wdtype: str, kvdtype: str, max_len: int, windowed: bool
                ) -> tuple[Context, list[shapes.Fit], list[shapes.Fit]]:
    fits, tried = shapes.fitting_shapes(req.model, req.gpu, req.gpus_per_node, req.node_budget, wdtype, kvdtype,
                                        max_len, req.tp, req.pp, windowed=windowed)
    inputs = PerfInputs(req.model, req.gpu, req.gpus_per_node, wdtype, kvdtype, req.engine, windowed)
    ctx = Context(perf_model_for(inputs, req.perf_model), req.workload)
    return ctx, _measured_only(ctx, fits, req.tp, req.pp), tried


def _measured_only(ctx: Context, fits: list[shapes.Fit], tp: int | None, pp: int | None) -> list[shapes.Fit]:
    """`--profile`: of the shapes that fit, only those measured (a PlanError names what was measured)."""
    return ctx.perf.restrict(fits, tp, pp) if isinstance(ctx.perf, MeasuredPerf) and fits else fits


def _pool_fits(req: PlanRequest, wdtype: str, kvdtype: str, max_len: int, windowed: bool,
               agg_fits: list[shapes.Fit]) -> tuple[list[shapes.Fit], list[shapes.Fit]]:
    """(prefill fits, decode fits): each pool at its own forced TP (--prefill-tp/--decode-tp, else --tp) and its own
    memory share (an LMCache role keeps its transfer buffer outside vLLM); the aggregated fits where neither differs."""
    lm = req.engine == "vllm" and req.kv_connector == lmcache.CONNECTOR
    out = []
    for role, tp in (("prefill", req.prefill_tp or req.tp), ("decode", req.decode_tp or req.tp)):
        if tp == req.tp and not lm:
            out.append(agg_fits)
            continue

        def util(s: Shape, role: str = role) -> float:
            return lmcache.role_utilization(req.model, req.gpu, s, kvdtype, max_len, role, windowed=windowed)

        fits, _ = shapes.fitting_shapes(req.model, req.gpu, req.gpus_per_node, req.node_budget, wdtype, kvdtype,
                                        max_len, tp, req.pp, windowed=windowed, utilization=util if lm else None)
        out.append(fits)
    return out[0], out[1]


def setup(req: PlanRequest) -> Setup:
    """Check the request, choose dtypes, and size the shapes each mode may use; PlanError if none fits."""
    _check(req)
    wdtype, kvdtype, notes = dtypes(req)
    max_len = max_model_len(req)
    no_swa = req.engine == "vllm" and req.kv_connector not in (None, "NixlConnector")
    agg_ctx, agg_fits, tried = _mode_setup(req, wdtype, kvdtype, max_len, windowed=not no_swa)
    pre_fits, dec_fits = _pool_fits(req, wdtype, kvdtype, max_len, not no_swa, agg_fits)
    if pre_fits is not agg_fits:
        pre_fits = _measured_only(agg_ctx, pre_fits, req.prefill_tp or req.tp, req.pp)
    if dec_fits is not agg_fits:
        dec_fits = _measured_only(agg_ctx, dec_fits, req.decode_tp or req.tp, req.pp)
    if not agg_fits and not (pre_fits and dec_fits):
        raise no_fit_error(req, wdtype, kvdtype, max_len, tried)
    if isinstance(req.perf_model, MeasuredFactory):
        w = req.workload
        notes += caution_notes(req.perf_model.speeds, w.isl, w.decode_context)
    if req.model.sliding_layers and no_swa:
        notes.append(f"{req.kv_connector} is not listed as supporting vLLM's hybrid (sliding-window) KV cache: "
                     "sliding-window layers are sized as full attention")
    return Setup(wdtype, kvdtype, max_len, (agg_ctx, agg_fits), (agg_ctx, pre_fits, dec_fits), tuple(notes))


