"""Topology rules of the prefill/decode KV connectors: which prefill and decode shapes a connector can join.

The rules are data (data/plan/pd-rules.yaml: per engine version and connector, each with what it says and where
the engine enforces it); this module holds the checks they name, as pure functions of the two pools' shapes and
the model. The solver asks `allows` before it pairs a prefill shape with a decode shape, so it never proposes a
pair the connector cannot run; `violation` names the first rule a forced pair breaks, for a one-line error; and
`check_views` checks what validate_topology reads back from the rendered commands (TP, PP, DP, block size, KV cache
dtype, page size) against the rules that need no model facts, like every other validator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmctl.plan import data
from llmctl.plan.memory import Shape
from llmctl.plan.profiles import ModelProfile

RULES_FILE = "pd-rules.yaml"
ENGINE_NAMES = {"vllm": "vLLM", "sglang": "SGLang"}


@dataclass(frozen=True)
class Rule:
    """One topology rule of one connector: `check` names the function in CHECKS (or RENDERED_CHECKS)."""

    id: str
    check: str
    says: str
    source: str
    connector: str
    engine: str
    version: str

    def line(self, detail: str) -> str:
        """The one-line refusal: which pair, which rule, what it says, where it comes from."""
        engine = ENGINE_NAMES.get(self.engine, self.engine)
        return (f"{self.connector} ({engine} {self.version}) cannot join {detail}: rule {self.id}: {self.says} "
                f"(source: {self.source})")


@dataclass(frozen=True)
class Pair:
    """What a pool-pair check looks at: both shapes, the node size, and the model's KV layout."""

    prefill: Shape
    decode: Shape
    gpus_per_node: int
    kv_heads: int
    mla: bool

    def __str__(self) -> str:
        return f"prefill {self.prefill} to decode {self.decode}"


def _tp_multiple(p: Pair) -> bool:
    small, large = sorted((p.prefill.tp, p.decode.tp))
    return large % small == 0


def _gqa_prefill_tp(p: Pair) -> bool:
    return p.mla or p.prefill.tp <= p.decode.tp or p.prefill.tp <= p.kv_heads


CHECKS: dict[str, Callable[[Pair], bool]] = {
    "tp_multiple": _tp_multiple,
    "gqa_prefill_tp": _gqa_prefill_tp,
    "no_pp": lambda p: p.prefill.pp == 1 and p.decode.pp == 1,
    "decode_pp": lambda p: p.decode.pp in (1, p.prefill.pp),
    "same_tp": lambda p: p.prefill.tp == p.decode.tp,
    "no_dp": lambda p: p.prefill.dp == 1 and p.decode.dp == 1,
    "one_node": lambda p: p.prefill.gpus <= p.gpus_per_node and p.decode.gpus <= p.gpus_per_node,
}
"""Pool-pair checks: True when the pair is allowed."""

MODEL_CHECKS = frozenset({"gqa_prefill_tp", "one_node"})
"""Checks that need facts the rendered commands do not carry (KV heads, MLA, node size): the solver applies them."""


# -- the rules data -------------------------------------------------------------------------------------------


def _doc() -> dict[str, Any]:
    return data.read_yaml(RULES_FILE)


def _section(engine: str, connector: str | None) -> dict[str, Any]:
    return (_doc().get(engine, {}).get("connectors", {}).get(connector or "", {})) or {}


def _rules(engine: str, connector: str | None, key: str) -> tuple[Rule, ...]:
    version = str(_doc().get(engine, {}).get("version", ""))
    return tuple(Rule(r["id"], r["check"], r["says"], r["source"], str(connector), engine, version)
                 for r in _section(engine, connector).get(key) or [])


def rules_for(engine: str, connector: str | None) -> tuple[Rule, ...]:
    """The pool-pair rules of `connector` for `engine` (empty for an aggregated plan, connector None)."""
    return _rules(engine, connector, "rules")


def rendered_rules(engine: str, connector: str | None) -> tuple[Rule, ...]:
    """The rules checked on rendered settings (block size, KV cache dtype, page size)."""
    return _rules(engine, connector, "rendered")


def setting(engine: str, connector: str | None, name: str) -> dict[str, Any] | None:
    """A per-role setting the connector's deployments use (`block_size`, `hybrid_kv_cache`), with its source."""
    return _section(engine, connector).get(name)


def removed(engine: str, connector: str) -> dict[str, str] | None:
    """What the data says about a connector the pinned engine no longer has (P2pNcclConnector), or None."""
    return (_doc().get(engine, {}).get("removed") or {}).get(connector)


def sources(entry: dict[str, Any]) -> str:
    src = entry.get("source", "")
    return ", ".join(src) if isinstance(src, list) else str(src)


# -- pool pairs ---------------------------------------------------------------------------------------------------


def pair(model: ModelProfile, prefill: Shape, decode: Shape, gpus_per_node: int) -> Pair:
    return Pair(prefill, decode, gpus_per_node, model.num_kv_heads, model.is_mla)


def violation(rules: Sequence[Rule], p: Pair) -> Rule | None:
    """The first rule the pair breaks, or None when every rule allows it."""
    for rule in rules:
        if not CHECKS[rule.check](p):
            return rule
    return None


def allows(rules: Sequence[Rule], p: Pair) -> bool:
    return violation(rules, p) is None


def explain(rules: Sequence[Rule], p: Pair) -> list[tuple[str, str, str]]:
    """(rule id, verdict, what it says and its source) for `--format explain`."""
    return [(r.id, "holds" if CHECKS[r.check](p) else "broken", f"{r.says} ({r.source})") for r in rules]


# -- rendered commands ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineView:
    """One rendered engine head as the connector sees it: its role, shape and transfer-relevant settings."""

    where: str
    role: str  # prefill | decode
    connector: str
    engine: str  # vllm | sglang
    shape: Shape
    block_size: str | None
    kv_cache_dtype: str | None
    page_size: str | None
    hybrid_kv_cache: bool


def _same_block_size(p: EngineView, d: EngineView) -> bool:
    if p.block_size == d.block_size:
        return True
    if p.block_size is None or d.block_size is None or p.hybrid_kv_cache or d.hybrid_kv_cache:
        return False
    return int(d.block_size) % int(p.block_size) == 0


RENDERED_CHECKS: dict[str, Callable[[EngineView, EngineView], bool]] = {
    "same_block_size": _same_block_size,
    "same_kv_cache_dtype": lambda p, d: p.kv_cache_dtype == d.kv_cache_dtype,
    "same_page_size": lambda p, d: p.page_size == d.page_size,
}

RENDERED_FLAGS = {"same_block_size": ("--block-size", "block_size"),
                  "same_kv_cache_dtype": ("--kv-cache-dtype", "kv_cache_dtype"),
                  "same_page_size": ("--page-size", "page_size")}
"""The flag each rendered check compares, and the EngineView field holding it (None: the engine's default)."""


def check_views(views: Sequence[EngineView]) -> list[str]:
    """Every prefill head against every decode head: the pool-pair rules that need no model facts, then the
    rendered-setting rules of their connector."""
    problems: list[str] = []
    pre = [v for v in views if v.role == "prefill"]
    dec = [v for v in views if v.role == "decode"]
    seen: set[tuple[str, str]] = set()
    for p in pre:
        for d in dec:
            if p.connector != d.connector or p.engine != d.engine:
                continue  # validate_topology reports mixed connectors
            for rule in rules_for(p.engine, p.connector):
                if rule.check in MODEL_CHECKS:
                    continue
                if not CHECKS[rule.check](Pair(p.shape, d.shape, 0, 0, False)):
                    seen.add((rule.id, f"{p.where}: {rule.line(f'prefill {p.shape} to decode {d.shape} ({d.where})')}"))
            for rule in rendered_rules(p.engine, p.connector):
                if not RENDERED_CHECKS[rule.check](p, d):
                    flag, field = RENDERED_FLAGS[rule.check]
                    pv, dv = (getattr(v, field) or "default" for v in (p, d))
                    detail = f"prefill {flag} {pv} to decode {flag} {dv} ({d.where})"
                    seen.add((rule.id, f"{p.where}: {rule.line(detail)}"))
    problems += [msg for _, msg in sorted(seen)]
    return problems
