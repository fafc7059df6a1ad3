"""Measured speeds: what `llmctl plan --profile RESULT.json` reads from `llmctl bench` results.

As NVIDIA Dynamo's SLA planner reads its pre-deployment profiling, a plan with a profile takes prefill time
as a function of ISL and decode step time as a function of batch from measurements of one deployment shape
(TP x PP on one GPU type), and considers only the shapes that were measured (`perf_measured` is the speed
model built on these curves). Pure: the CLI reads the files and passes their parsed JSON here.

- prefill time(ISL): linear between measured ISLs (median TTFT of requests that ran alone); beyond the
  measured range, the tokens/s of the nearest measured point (Dynamo clamps to the range instead, which
  underestimates long prompts).
- decode step(batch): linear between measured (batch, median ITL) points; above the largest measured
  batch the plan does not go (a batch never measured is a speed never seen), below the smallest the step
  time of the smallest (decode steps do not get faster than one sequence's).
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmctl.errors import InvalidInput, PlanError
from llmctl.plan.memory import Shape
from llmctl.plan.profiles import GpuProfile, ModelProfile

SCHEMA = "llmctl.bench"
VERSIONS = (1,)


def _interp(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    k = bisect.bisect_left(xs, x)
    if k < len(xs) and xs[k] == x:
        return ys[k]
    lo, hi = k - 1, k
    return ys[lo] + (ys[hi] - ys[lo]) * (x - xs[lo]) / (xs[hi] - xs[lo])


@dataclass(frozen=True)
class PrefillCurve:
    isl: tuple[float, ...]  # ascending
    seconds: tuple[float, ...]

    def time(self, isl: float) -> float:
        if isl <= self.isl[0]:
            return self.seconds[0] * isl / self.isl[0]
        if isl >= self.isl[-1]:
            return self.seconds[-1] * isl / self.isl[-1]
        return _interp(self.isl, self.seconds, isl)

    def how(self, isl: float) -> str:
        if isl in self.isl:
            return f"measured at ISL {isl:g}"
        if isl < self.isl[0] or isl > self.isl[-1]:
            end = 0 if isl < self.isl[0] else -1
            speed = self.isl[end] / self.seconds[end]
            return f"extrapolated from ISL {self.isl[end]:g} at its {speed:,.0f} tokens/s (measured ISL {self.span})"
        k = bisect.bisect_left(self.isl, isl)
        return (f"interpolated between ISL {self.isl[k - 1]:g} ({self.seconds[k - 1] * 1000:.1f} ms) and "
                f"{self.isl[k]:g} ({self.seconds[k] * 1000:.1f} ms)")

    @property
    def span(self) -> str:
        return f"{self.isl[0]:g}" if len(self.isl) == 1 else f"{self.isl[0]:g}-{self.isl[-1]:g}"


@dataclass(frozen=True)
class DecodeCurve:
    batch: tuple[float, ...]  # ascending
    seconds: tuple[float, ...]
    context: float  # mean ISL + OSL/2 the steps were measured at

    @property
    def max_batch(self) -> float:
        return self.batch[-1]

    def step(self, batch: float) -> float:
        if batch <= self.batch[0]:
            return self.seconds[0]
        if batch >= self.batch[-1]:
            if len(self.batch) == 1:
                return self.seconds[0]
            b0, b1, s0, s1 = self.batch[-2], self.batch[-1], self.seconds[-2], self.seconds[-1]
            return s1 + max(0.0, (s1 - s0) / (b1 - b0)) * (batch - b1)
        return _interp(self.batch, self.seconds, batch)

    def how(self, batch: float) -> str:
        if len(self.batch) == 1 or batch <= self.batch[0]:
            return f"median ITL measured at batch {self.batch[0]:.2f}"
        if batch > self.batch[-1]:
            return (f"median ITL at batch {self.batch[-1]:.2f} ({self.seconds[-1] * 1000:.1f} ms), extended along the "
                    f"slope from batch {self.batch[-2]:.2f}")
        if batch == self.batch[-1]:
            return f"median ITL measured at batch {self.batch[-1]:.2f}"
        k = bisect.bisect_left(self.batch, batch)
        return (f"interpolated between batch {self.batch[k - 1]:.2f} ({self.seconds[k - 1] * 1000:.1f} ms) and "
                f"{self.batch[k]:.2f} ({self.seconds[k] * 1000:.1f} ms)")


@dataclass(frozen=True)
class ShapeSpeeds:
    """What was measured for one deployment shape, and from which files."""

    tp: int
    pp: int
    sources: tuple[str, ...]
    prefill: PrefillCurve | None
    decode: DecodeCurve | None

    @property
    def shape(self) -> Shape:
        return Shape(self.tp, self.pp)


@dataclass(frozen=True)
class MeasuredSpeeds:
    model: str  # the endpoint's model name
    gpu: str
    shapes: tuple[ShapeSpeeds, ...]

    def of(self, shape: Shape) -> ShapeSpeeds | None:
        """A measured engine is TP x PP, one DP rank: DP-attention shapes are other deployments."""
        if shape.dp != 1:
            return None
        return next((s for s in self.shapes if s.tp == shape.tp and s.pp == shape.pp), None)

    @property
    def shape_names(self) -> str:
        return ", ".join(str(s.shape) for s in self.shapes)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "gpu": self.gpu, "shapes": [
            {"tp": s.tp, "pp": s.pp, "sources": list(s.sources),
             "prefill_isl": list(s.prefill.isl) if s.prefill else [],
             "decode_batch": list(s.decode.batch) if s.decode else []} for s in self.shapes]}


# -- reading bench results --------------------------------------------------------------------------------


def _num(value: Any, what: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"{source}: {what} must be a positive number, got {value!r}")
    return float(value)


def _points(rows: Any, x: str, y: str, source: str, scale: float = 1.0) -> dict[float, list[float]]:
    if not isinstance(rows, list):
        raise InvalidInput(f"{source}: profile.{x} is not a list")
    out: dict[float, list[float]] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            raise InvalidInput(f"{source}: a profile point is not an object")
        out.setdefault(_num(row.get(x), x, source), []).append(_num(row.get(y), y, source) * scale)
    return out


def _head(doc: Any, source: str) -> tuple[str, str, int, int]:
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
        raise InvalidInput(f"{source} is not an `llmctl bench` result (schema {SCHEMA!r})")
    if doc.get("version") not in VERSIONS:
        raise InvalidInput(f"{source}: result version {doc.get('version')!r} is not one this llmctl reads "
                           f"({', '.join(map(str, VERSIONS))})")
    dep = doc.get("deployment") if isinstance(doc.get("deployment"), Mapping) else {}
    model = (doc.get("endpoint") or {}).get("model") if isinstance(doc.get("endpoint"), Mapping) else None
    if not isinstance(model, str) or not model:
        raise InvalidInput(f"{source}: the result names no model")
    gpu, tp, pp = dep.get("gpu"), dep.get("tp"), dep.get("pp") or 1
    if not isinstance(gpu, str) or not gpu:
        raise InvalidInput(f"{source} does not say which GPU it was measured on",
                           hint="run llmctl bench with --gpu NAME --tp N")
    if not isinstance(tp, int) or isinstance(tp, bool) or tp < 1 or not isinstance(pp, int) or pp < 1:
        raise InvalidInput(f"{source} does not say its deployment shape", hint="run llmctl bench with --tp N [--pp N]")
    return model, gpu, tp, pp


def from_results(docs: Iterable[tuple[str, Any]]) -> MeasuredSpeeds:
    """Parsed `llmctl bench` results (name, JSON) -> speeds per shape. All must measure one model on one
    GPU type; results for the same shape are pooled (one with a prefill sweep, another with decode)."""
    model = gpu = None
    pooled: dict[tuple[int, int], tuple[list[str], dict[float, list[float]], dict[float, list[float]], list[float]]] = {}
    for source, doc in docs:
        m, g, tp, pp = _head(doc, source)
        if model is not None and (_norm(m) != _norm(model) or g != gpu):
            raise InvalidInput(f"{source} measured {m} on {g}, another result {model} on {gpu}: one model on one "
                               "GPU type per plan")
        model, gpu = m, g
        prof = doc.get("profile")
        if not isinstance(prof, Mapping):
            raise InvalidInput(f"{source} has no profile section")
        names, pre, dec, ctx = pooled.setdefault((tp, pp), ([], {}, {}, []))
        names.append(source)
        for k, v in _points(prof.get("prefill", []), "isl", "ttft_ms", source, 1e-3).items():
            pre.setdefault(k, []).extend(v)
        for k, v in _points(prof.get("decode", []), "batch", "step_ms", source, 1e-3).items():
            dec.setdefault(k, []).extend(v)
        ctx += [_num(r.get("context"), "context", source) for r in prof.get("decode", [])]
    if model is None or gpu is None:
        raise InvalidInput("no profile given")
    shapes = []
    for (tp, pp), (names, pre, dec, ctx) in sorted(pooled.items()):
        prefill = _curve(pre)
        decode = _curve(dec)
        shapes.append(ShapeSpeeds(
            tp, pp, tuple(names),
            PrefillCurve(*prefill) if prefill else None,
            DecodeCurve(*decode, context=sum(ctx) / len(ctx)) if decode else None,
        ))
    return MeasuredSpeeds(model, gpu, tuple(shapes))


def _curve(points: dict[float, list[float]]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Median time per x, made non-decreasing: a longer prompt or a larger batch never takes less time, so a
    dip is measurement noise, and the solver's bisections need monotone times."""
    if not points:
        return None
    xs = sorted(points)
    ys = list(itertools.accumulate((statistics.median(points[x]) for x in xs), max))
    return tuple(xs), tuple(ys)


# -- matching a plan ---------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    n = name.strip().lower()
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "hf.co/", "huggingface.co/"):
        n = n.removeprefix(prefix)
    return n.removesuffix(":latest")


def check_request(speeds: MeasuredSpeeds, model: ModelProfile, model_arg: str, gpu: GpuProfile) -> None:
    """The profile must be of this model on this GPU type, with prefill and decode measured for each shape."""
    names = {_norm(n) for n in (model_arg, model.name, model.serve_id, *model.aliases)}
    if _norm(speeds.model) not in names:
        raise InvalidInput(f"the profile measured {speeds.model}, not {model_arg}",
                           hint="plan the model the endpoint served, by the name it served it under")
    if speeds.gpu not in (gpu.name, *gpu.aliases):
        raise InvalidInput(f"the profile was measured on {speeds.gpu}, this plan is for {gpu.name}",
                           hint=f"pass --gpu {speeds.gpu}, or profile on {gpu.name}")
    for s in speeds.shapes:
        missing = [part for part, curve in (("prefill", s.prefill), ("decode", s.decode)) if curve is None]
        if missing:
            where = " and ".join(missing)
            raise InvalidInput(f"the profile for {s.shape} ({', '.join(s.sources)}) has no {where} measurements",
                               hint="llmctl bench measures prefill at concurrency 1 (or --prefill-isl) and decode at "
                                    "every point")


def restrict(fits: list[Any], speeds: MeasuredSpeeds, tp: int | None, pp: int | None) -> list[Any]:
    """Of the shapes that fit memory, those measured; a clear PlanError when none is."""
    measured = [f for f in fits if speeds.of(f.shape) is not None]
    if measured:
        return measured
    asked = " x ".join(f"{k} {v}" for k, v in (("TP", tp), ("PP", pp)) if v is not None)
    fitting = ", ".join(str(f.shape) for f in fits) or "none"
    raise PlanError(
        f"the profile measures {speeds.shape_names}, and no measured shape "
        + (f"matches {asked}" if asked else "fits this model and workload in memory")
        + f" (shapes that fit: {fitting})",
        hint="profile one of the shapes that fit with llmctl bench --tp N, or drop --profile",
    )


def caution_notes(speeds: MeasuredSpeeds, isl: int, decode_context: float) -> list[str]:
    """Where a plan reads a measurement beyond what was measured."""
    out = []
    for s in speeds.shapes:
        if s.decode is not None and not 0.5 <= decode_context / s.decode.context <= 2:
            out.append(f"decode of {s.shape} was measured at an average context of {s.decode.context:,.0f} tokens, "
                       f"this workload's is {decode_context:,.0f}: decode steps grow with context (KV reads)")
        if s.prefill is not None and not s.prefill.isl[0] <= isl <= s.prefill.isl[-1]:
            out.append(f"ISL {isl} is outside the prefill ISLs measured for {s.shape} ({s.prefill.span}): "
                       "extrapolated at the nearest point's tokens/s (llmctl bench --prefill-isl measures more)")
    return out
