"""Golden files for a handful of plans: the explain text, the JSON and every rendered file.

Regenerate after an intended change with `LLMCTL_UPDATE_GOLDEN=1 pytest tests/test_plan_golden.py`, then
read the diff: every changed number should be explained by the change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmctl.plan import find_catalog, load_gpu, render, solve
from llmctl.plan.explain import text_lines
from llmctl.plan.render_common import RenderOptions
from llmctl.plan.types import PlanRequest, Workload

GOLDEN = Path(__file__).parent / "golden" / "plan"
UPDATE = os.environ.get("LLMCTL_UPDATE_GOLDEN", "") not in ("", "0")

CASES = {
    "llama-405b-h100": (dict(model="llama3.1:405b"), ["explain", "shell", "lws"]),
    "llama-8b-h100": (dict(model="llama3.1:8b"), ["explain", "compose", "json"]),
    "llama-70b-pd": (
        dict(model="llama3.1:70b", workload=Workload(isl=2048, osl=256, rate=10, ttft_slo=0.5, tpot_slo=0.05)),
        ["explain", "shell", "disaggregatedset"],
    ),
    "qwen3-235b-sglang-pd": (
        dict(model="qwen3:235b", engine="sglang", disaggregate="on",
             workload=Workload(isl=4096, osl=1024, rate=5, ttft_slo=2.0, tpot_slo=0.05)),
        ["explain", "rbg"],
    ),
    "deepseek-r1-h200": (dict(model="deepseek-r1", gpu="h200", workload=Workload(rate=20, tpot_slo=0.1)), ["json", "lws"]),
    "llama-70b-pd-lmcache": (
        dict(model="llama3.1:70b", disaggregate="on", kv_connector="LMCacheConnectorV1",
             workload=Workload(isl=2048, osl=256, rate=10, ttft_slo=0.5, tpot_slo=0.05)),
        ["explain", "shell", "lws"],
    ),
    "gpt-oss-120b-h100": (dict(model="gpt-oss:120b"), ["explain", "shell"]),
    "deepseek-r1-dp16-ep-2-nodes": (
        dict(model="deepseek-r1", tp=1, max_nodes=2, disaggregate="off",
             workload=Workload(isl=2000, osl=500, rate=10)),
        ["explain", "shell", "lws"],
    ),
    "qwen3-235b-vllm-pd-nixl": (  # NixlConnector's replicated-heads rule keeps the prefill TP at the 4 KV heads
        dict(model="qwen3:235b", disaggregate="on",
             workload=Workload(isl=4096, osl=1024, rate=5, ttft_slo=2.0, tpot_slo=0.05)),
        ["explain", "shell"],
    ),
    "gpt-oss-120b-pd-nixl": (  # --block-size 128 and the hybrid KV cache kept on for its sliding windows
        dict(model="gpt-oss:120b", disaggregate="on",
             workload=Workload(isl=4096, osl=1024, rate=5, ttft_slo=2.0, tpot_slo=0.1)),
        ["explain", "shell"],
    ),
    "llama-8b-pd-lmcache-1-node": (
        dict(model="llama3.1:8b", disaggregate="on", kv_connector="LMCacheConnectorV1", max_nodes=1,
             workload=Workload(isl=2048, osl=256, rate=40, ttft_slo=0.3, tpot_slo=0.02)),
        ["compose", "rbg"],
    ),
}

OPTIONS = RenderOptions(hash_seed="4242")
"""LMCache P/D renders a random PYTHONHASHSEED by default; the golden files pin one."""


def _plan(spec: dict):
    spec = dict(spec)
    w = spec.pop("workload", Workload())
    return solve(PlanRequest(model=find_catalog(spec.pop("model")).profile(), gpu=load_gpu(spec.pop("gpu", "h100-80gb")),
                             gpus_per_node=8, workload=w, **spec))


def _outputs(spec: dict, formats: list[str]) -> dict[str, str]:
    plan = _plan(spec)
    out: dict[str, str] = {}
    for fmt in formats:
        if fmt == "explain":
            out["explain.txt"] = "\n".join(line for _, line in text_lines(plan)) + "\n"
        elif fmt == "json":
            out["plan.json"] = json.dumps(plan.to_dict(), indent=2, sort_keys=True) + "\n"
        else:
            files, report = render(plan, fmt, OPTIONS)
            assert not report.problems
            for f in files:
                out[f.path] = f.content
    return out


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_golden(case):
    spec, formats = CASES[case]
    outputs = _outputs(spec, formats)
    folder = GOLDEN / case
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, text in outputs.items():
            (folder / name).write_text(text)
    expected = {p.name: p.read_text() for p in folder.iterdir()} if folder.is_dir() else {}
    assert sorted(outputs) == sorted(expected), f"golden files differ; set LLMCTL_UPDATE_GOLDEN=1 to regenerate {folder}"
    for name, text in outputs.items():
        assert text == expected[name], f"{case}/{name} differs from the golden file (LLMCTL_UPDATE_GOLDEN=1 regenerates)"


def test_golden_anchor_numbers_are_in_the_explain_text():
    text = (GOLDEN / "llama-405b-h100" / "explain.txt").read_text()
    assert "811.7 GB" in text and "TP 8 x PP 2 = 16 GPUs on 2 node(s)" in text
    assert "126 layers x 2 x 8 KV heads x 128 head dim x 2 B" in text
