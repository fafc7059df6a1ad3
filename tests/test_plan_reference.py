"""The "published vs predicted" table in docs/planner.md is recomputed here from data/plan/references and the
perf data, so it cannot go stale; every row cites its source, meets the ±30% target or says why not, and every
constant of the speed model names its source.

Regenerate the doc's table after an intended change with `LLMCTL_UPDATE_DOCS=1 pytest tests/test_plan_reference.py`
and read the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from llmctl.plan import data, reference
from llmctl.plan.perfdata import perf_data

DOC = Path(__file__).parent.parent / "docs" / "planner.md"
START, END = "<!-- reference-table:start -->", "<!-- reference-table:end -->"
UPDATE = os.environ.get("LLMCTL_UPDATE_DOCS", "") not in ("", "0")


def _generated() -> str:
    rows = reference.rows()
    return (f"{START}\n{reference.table_markdown(rows)}\n(c): the row set a speed-model constant (see the notes); it is "
            f"not an independent check.\n\n{reference.notes_markdown(rows)}{END}")


def test_doc_table_matches_what_the_code_predicts():
    text = DOC.read_text()
    assert START in text and END in text, "docs/planner.md lost its reference-table markers"
    current = text[text.index(START):text.index(END) + len(END)]
    fresh = _generated()
    if UPDATE and current != fresh:
        DOC.write_text(text.replace(current, fresh))
        current = fresh
    assert current == fresh, "docs/planner.md's reference table is stale (LLMCTL_UPDATE_DOCS=1 regenerates it)"


def test_at_least_eight_public_deployments_each_with_a_source():
    refs = reference.references()
    assert len(refs) >= 8
    for ref in refs:
        assert ref.source.startswith("https://"), ref.key
        assert ref.published, ref.key
    assert {r.engine for r in refs} == {"vllm", "sglang"}
    assert any(r.shape.dp > 8 for r in refs) and any(r.model.quant.quantized for r in refs)


def test_every_miss_and_every_other_shape_says_why():
    for row in reference.rows():
        if not row.within_target:
            assert row.ref.miss_note, f"{row.ref.key} misses ±30% without a reason"
        if row.planned != reference.reference_shape(row.ref):
            assert row.ref.shape_note, f"{row.ref.key}: llmctl picks {row.planned} without a recorded reason"


def test_most_predictions_meet_the_target():
    """The issue's target is every prediction within ±30%; the rows that miss say why (above). Guard against the
    model drifting: at least 80% of the published metrics stay within target (23 of 28: the llm-d P/D row's two
    metrics miss together, its prefill pool past the modelled capacity, see its note)."""
    errors = [e for row in reference.rows() for e in row.errors.values()]
    inside = [e for e in errors if abs(e) <= reference.TARGET]
    assert len(inside) >= 0.80 * len(errors), errors


def test_calibration_rows_name_constants_that_exist():
    for ref in reference.references():
        for key in ref.calibrates:
            engine, _, rest = key.partition(".")
            d = perf_data("hopper", engine if engine in ("vllm", "sglang") else "vllm")
            assert d.entry(rest if engine in ("vllm", "sglang") else key).source.startswith("calibrated"), key


def test_every_speed_constant_names_its_source():
    for fname in data.list_dir("perf"):
        doc = data.read_yaml("perf", fname)
        text = data.read_text("perf", fname)
        assert "draft" not in text, fname

        def walk(node, path=""):
            if isinstance(node, dict) and "value" in node:
                assert len(str(node.get("source", ""))) > 20, f"{fname}: {path} has no source"
                return
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, f"{path}.{k}")
        walk(doc)
    for entry in perf_data("hopper", "vllm").entries.values():
        assert re.search(r"(https?://|arXiv|README|#\d+|calibrated|reference|as |Hopper|GPUStack|NCCL|nccl|vLLM|SGLang)",
                         entry.source), entry.source
