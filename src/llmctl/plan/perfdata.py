"""The performance model's constants, read from data/plan/perf: efficiencies per GPU generation x dtype x phase,
per-layer and per-step overheads per engine, link efficiencies and latencies — each value with its source.

Kept as data so that a reader can check every number against its source, and so that a measured profile can
replace them (see perf.PerfModel). `value_of` returns (value, source) for `--format explain`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from llmctl.errors import PlanError
from llmctl.plan import data


@dataclass(frozen=True)
class Entry:
    value: float
    source: str


def _entries(doc: Any, prefix: str = "") -> dict[str, Entry]:
    """Flatten {a: {b: {value, source}}} into {"a.b": Entry}."""
    out: dict[str, Entry] = {}
    if isinstance(doc, dict) and "value" in doc:
        out[prefix] = Entry(float(doc["value"]), str(doc.get("source", "")))
        return out
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ("schema", "arch", "gpus", "description"):
                continue
            out.update(_entries(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


@dataclass(frozen=True)
class PerfData:
    """Efficiencies of one GPU generation and the overheads of one engine."""

    arch: str
    engine: str
    entries: dict[str, Entry]

    def get(self, key: str) -> float:
        return self.entry(key).value

    def entry(self, key: str) -> Entry:
        for k in (f"{self.engine}.{key}", key):
            if k in self.entries:
                return self.entries[k]
        raise PlanError(f"data/plan/perf has no {key!r} for {self.arch}/{self.engine}",
                        hint="this is an llmctl bug; please report it")

    def gemm(self, act: str) -> float:
        """Share of the matmul dtype's dense peak that whole-model prefill linears reach."""
        return self.get(f"compute.gemm.{act}")


@functools.cache
def perf_data(arch: str, engine: str) -> PerfData:
    names = data.list_dir("perf")
    if f"{arch}.yaml" not in names:
        raise PlanError(f"no performance data for GPU generation {arch!r}",
                        hint="known: " + ", ".join(n.removesuffix(".yaml") for n in names if n != "engines.yaml"))
    entries = _entries(data.read_yaml("perf", f"{arch}.yaml"))
    engines = data.read_yaml("perf", "engines.yaml")
    entries.update(_entries({engine: engines.get(engine, {})}))
    entries.update(_entries(engines.get("common", {})))
    return PerfData(arch, engine, entries)
