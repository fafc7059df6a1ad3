"""Prefill/decode connector rules and per-role settings, from published config.json files (tests/data/hf-configs):
Llama 3.1 70B (GQA, 8 KV heads), DeepSeek-V3 (MLA), Qwen3-235B-A22B (MoE, 4 KV heads), gpt-oss-120b (sliding
windows, MXFP4 experts). The rules are data (data/plan/pd-rules.yaml); the solver only pairs shapes they allow, a
forced pair that breaks one is a one-line error naming the rule and its source, and the rendered commands carry
per-role values that pass the pinned vLLM / SGLang flag checks."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from llmctl.errors import InvalidInput, PlanError
from llmctl.plan import load_gpu, pd_rules, profile_from_config, render, solve
from llmctl.plan.explain import text_lines
from llmctl.plan.memory import Shape
from llmctl.plan.render_common import RenderOptions
from llmctl.plan.role_settings import role_settings
from llmctl.plan.types import ENGINE_VERSIONS, PlanRequest, Workload
from llmctl.plan.validate import validate_shell
from llmctl.plan.validate_vllm import ROUTER_KV_MODES, SGLANG_BACKENDS, check_argv, extract_shell_commands

CONFIGS = Path(__file__).parent / "data" / "hf-configs"
LLAMA, DEEPSEEK = "meta-llama--Llama-3.1-70B-Instruct", "deepseek-ai--DeepSeek-V3"
QWEN, GPT_OSS = "Qwen--Qwen3-235B-A22B", "openai--gpt-oss-120b"
MODELS = (LLAMA, DEEPSEEK, QWEN, GPT_OSS)
PD = Workload(isl=4096, osl=1024, rate=5, ttft_slo=2.0, tpot_slo=0.1)
SEED = RenderOptions(hash_seed="4242")


def model(name: str):
    return profile_from_config(json.loads((CONFIGS / f"{name}.json").read_text()), name=name,
                               serve_id=name.replace("--", "/"), source="hf")


def plan_for(name: str, **kw):
    kw.setdefault("disaggregate", "on")
    return solve(PlanRequest(model=model(name), gpu=load_gpu(kw.pop("gpu", "h100-80gb")), gpus_per_node=8,
                             workload=kw.pop("workload", PD), **kw))


def allowed(connector: str, name: str, pre: Shape, dec: Shape, engine: str = "vllm") -> pd_rules.Rule | None:
    return pd_rules.violation(pd_rules.rules_for(engine, connector), pd_rules.pair(model(name), pre, dec, 8))


def broken(connector: str, name: str, pre: Shape, dec: Shape, engine: str = "vllm") -> str | None:
    rule = allowed(connector, name, pre, dec, engine)
    return rule.id if rule else None


# -- the rules as data ------------------------------------------------------------------------------------------


def test_every_rendered_connector_has_sourced_documented_rules_for_the_pinned_version():
    doc = pd_rules._doc()
    planner = (Path(__file__).parent.parent / "docs" / "planner.md").read_text()
    for engine, connectors in (("vllm", [*ROUTER_KV_MODES, "LMCacheConnectorV1"]), ("sglang", list(SGLANG_BACKENDS))):
        assert doc[engine]["version"] == ENGINE_VERSIONS[engine]
        for conn in connectors:
            rules = pd_rules.rules_for(engine, conn) + pd_rules.rendered_rules(engine, conn)
            assert rules, f"{engine} {conn} has no rules"
            assert len({r.id for r in rules}) == len(rules)
            for r in rules:
                assert r.check in pd_rules.CHECKS or r.check in pd_rules.RENDERED_CHECKS, r
                assert r.source.startswith("https://") and r.says, r
                assert f"`{r.id}`" in planner, f"docs/planner.md's P/D rules do not list {r.id}"


# -- each rule, on real configs ---------------------------------------------------------------------------------


def test_nixl_tp_ratio_holds_both_ways_when_one_tp_divides_the_other():
    assert broken("NixlConnector", LLAMA, Shape(2, 1), Shape(8, 1)) is None  # D reads from 1 of 4 ranks
    assert broken("NixlConnector", LLAMA, Shape(8, 1), Shape(4, 1)) is None  # P TP 8 <= 8 KV heads
    assert broken("NixlConnector", LLAMA, Shape(16, 1), Shape(24, 1)) == "nixl-tp-ratio"
    assert broken("NixlConnector", DEEPSEEK, Shape(16, 1), Shape(24, 1)) == "nixl-tp-ratio"


def test_nixl_prefill_tp_over_the_kv_heads_cannot_feed_a_smaller_decode_tp_unless_mla():
    """vLLM asserts `not (tp_ratio < 0 and is_kv_replicated)` for non-MLA models: Qwen3-235B has 4 KV heads."""
    assert broken("NixlConnector", QWEN, Shape(8, 1), Shape(4, 1)) == "nixl-replicated-heads"
    assert broken("NixlConnector", QWEN, Shape(8, 1), Shape(1, 1, 16, True)) == "nixl-replicated-heads"
    assert broken("NixlConnector", QWEN, Shape(4, 1), Shape(1, 1, 16, True)) is None  # 4 <= 4 heads
    assert broken("NixlConnector", QWEN, Shape(4, 1), Shape(8, 1)) is None  # decode replicates, prefill does not
    assert broken("NixlConnector", LLAMA, Shape(16, 1), Shape(8, 1)) == "nixl-replicated-heads"
    assert broken("NixlConnector", DEEPSEEK, Shape(8, 1), Shape(1, 1, 8, True)) is None  # MLA latent: one read
    assert broken("NixlConnector", GPT_OSS, Shape(2, 1), Shape(1, 1)) is None


def test_nixl_refuses_pipeline_parallel_pools_mooncake_does_not():
    assert broken("NixlConnector", LLAMA, Shape(8, 2), Shape(8, 2)) == "nixl-no-pp"
    assert broken("NixlConnector", DEEPSEEK, Shape(8, 1), Shape(8, 2)) == "nixl-no-pp"
    assert broken("MooncakeConnector", LLAMA, Shape(8, 2), Shape(8, 2)) is None
    assert broken("MooncakeConnector", LLAMA, Shape(16, 1), Shape(24, 1)) == "mooncake-tp-ratio"


def test_lmcache_and_moriio_need_one_tp_lmcache_one_node_without_pp_or_dp():
    assert broken("LMCacheConnectorV1", LLAMA, Shape(2, 1), Shape(4, 1)) == "lmcache-same-tp"
    assert broken("LMCacheConnectorV1", LLAMA, Shape(8, 2), Shape(8, 2)) == "lmcache-no-pp"
    assert broken("LMCacheConnectorV1", QWEN, Shape(4, 1, 2, True), Shape(4, 1, 2, True)) == "lmcache-no-dp"
    assert broken("LMCacheConnectorV1", LLAMA, Shape(16, 1), Shape(16, 1)) == "lmcache-one-node"
    assert broken("LMCacheConnectorV1", LLAMA, Shape(4, 1), Shape(4, 1)) is None
    assert broken("MoRIIOConnector", DEEPSEEK, Shape(8, 1), Shape(4, 1)) == "moriio-same-tp"


def test_sglang_rules_use_the_attention_tp_and_allow_decode_pp_one():
    assert broken("NixlConnector", QWEN, Shape(8, 1), Shape(1, 1, 16, True), "sglang") is None
    assert broken("MooncakeConnector", LLAMA, Shape(4, 1), Shape(6, 1), "sglang") == "sglang-tp-ratio"
    assert broken("MooncakeConnector", LLAMA, Shape(8, 2), Shape(8, 1), "sglang") is None  # decode PP 1
    assert broken("MooncakeConnector", LLAMA, Shape(8, 1), Shape(8, 2), "sglang") == "sglang-pp"


# -- the solver only proposes what the connector supports --------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("engine, connector", [("vllm", "NixlConnector"), ("vllm", "MooncakeConnector"),
                                               ("sglang", "NixlConnector")])
def test_every_planned_pair_obeys_its_connector(name, engine, connector):
    plan = plan_for(name, engine=engine, kv_connector=connector)
    pre, dec = plan.role("prefill").shape, plan.role("decode").shape
    assert pd_rules.violation(pd_rules.rules_for(engine, connector), pd_rules.pair(plan.request.model, pre, dec, 8)) \
        is None
    text = "\n".join(line for _, line in text_lines(plan))
    assert "KV connector rules (prefill : decode)" in text and "broken" not in text


def test_the_search_is_constrained_not_validated_after():
    """Qwen3-235B: SGLang (any TP multiple) plans a TP 8 prefill pool; under vLLM's NixlConnector TP 8 exceeds the 4 KV
    heads, so the solver takes the best prefill shape the rule allows instead of failing or rendering TP 8."""
    sg = plan_for(QWEN, engine="sglang")
    vl = plan_for(QWEN)
    assert sg.role("prefill").shape.tp == 8 and sg.role("decode").shape.tp < 8
    assert vl.role("prefill").shape.tp <= 4 or vl.role("prefill").shape.tp <= vl.role("decode").shape.tp
    assert vl.expected.capacity_rps >= PD.rate and vl.expected.ttft <= PD.ttft_slo


def test_a_forced_pair_that_breaks_a_rule_is_one_line_naming_rule_and_source():
    with pytest.raises(PlanError) as exc:
        plan_for(QWEN, prefill_tp=8, decode_tp=4)
    msg = str(exc.value)
    assert "\n" not in msg and "rule nixl-replicated-heads" in msg and "base_worker.py#L1690" in msg
    assert "--prefill-tp/--decode-tp" in msg
    with pytest.raises(PlanError, match=r"rule nixl-no-pp: .*issues/52913"):
        plan_for(LLAMA, pp=2, workload=Workload(rate=2))
    with pytest.raises(PlanError, match="rule lmcache-same-tp"):
        plan_for(LLAMA, kv_connector="LMCacheConnectorV1", prefill_tp=2, decode_tp=4)
    ok = plan_for(QWEN, prefill_tp=4, decode_tp=1)  # allowed: 4 <= 4 KV heads
    assert ok.role("prefill").shape.tp == 4 and ok.role("decode").shape.tp == 1
    assert plan_for(LLAMA, pp=2, kv_connector="MooncakeConnector", workload=Workload(rate=2)).role("decode").shape.pp == 2


def test_pool_flags_are_checked_like_tp():
    with pytest.raises(InvalidInput, match="not both"):
        plan_for(LLAMA, tp=4, prefill_tp=2)
    with pytest.raises(InvalidInput, match="--disaggregate off plans one pool"):
        plan_for(LLAMA, disaggregate="off", decode_tp=4)
    with pytest.raises(PlanError, match="TP 3 cannot divide"):
        plan_for(LLAMA, decode_tp=3)


def test_p2pnccl_is_refused_with_the_pr_that_removed_it():
    with pytest.raises(InvalidInput, match=r"P2pNcclConnector was removed .*pull/44854"):
        plan_for(LLAMA, kv_connector="P2pNcclConnector")


def test_cli_flags_reach_the_rules_and_fail_with_exit_9(tmp_path):
    from test_plan_cli import run  # the plan command alone, with the Settings callback of the real app

    res = run(tmp_path, "qwen3:235b", "--disaggregate", "on", "--rate", "5", "--prefill-tp", "8", "--decode-tp", "4")
    assert isinstance(res.exception, PlanError) and res.exception.exit_code == 9
    assert "nixl-replicated-heads" in str(res.exception)
    res = run(tmp_path, "qwen3:235b", "--disaggregate", "on", "--rate", "5", "--prefill-tp", "4", "--decode-tp", "1",
              "--format", "shell")
    assert res.exit_code == 0, res.output
    assert "--tensor-parallel-size 4" in res.output and "--tensor-parallel-size 1" in res.output


# -- per-role settings ------------------------------------------------------------------------------------------


def _argv_of(files, role: str) -> list[tuple[str, ...]]:
    cmds = [c for f in files for c in extract_shell_commands(f.content, f.path, f.path)]
    out = []
    for c in cmds:
        text = " ".join(c.argv)
        if c.argv[:2] == ("vllm", "serve") and f'"kv_role":"kv_{"producer" if role == "prefill" else "consumer"}"' in text:
            out.append(c.argv)
        if "sglang.launch_server" in text and f"--disaggregation-mode {role}" in text:
            out.append(c.argv)
    return out


def _value(argv: tuple[str, ...], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_nixl_block_size_and_hybrid_cache_per_model():
    """Non-MLA NixlConnector pools render --block-size 128 on both roles (llm-d, Dynamo); MLA keeps vLLM's backend
    choice; gpt-oss's sliding windows keep the hybrid KV cache manager on, as llmctl sizes them by their window."""
    for name, size, hybrid in ((LLAMA, "128", False), (QWEN, "128", False), (GPT_OSS, "128", True),
                               (DEEPSEEK, None, False)):
        plan = plan_for(name)
        files, report = render(plan, "shell", SEED)
        assert not report.problems
        for role in ("prefill", "decode"):
            for argv in _argv_of(files, role):
                assert _value(argv, "--block-size") == size, (name, role)
                assert ("--no-disable-hybrid-kv-cache-manager" in argv) is hybrid, (name, role)
                assert not check_argv(argv)
    agg = plan_for(GPT_OSS, disaggregate="off")
    assert role_settings(agg, agg.roles[0]).block_size is None and not role_settings(agg, agg.roles[0]).hybrid_kv_cache


def test_sglang_mem_fraction_static_is_weights_plus_kv_over_device_per_role():
    plan = plan_for(QWEN, engine="sglang")
    files, _ = render(plan, "rbg", SEED)
    text = files[0].content
    values = {}
    for r in plan.roles:
        mem = r.memory
        frac = role_settings(plan, r).mem_fraction_static
        assert frac == int((mem.weights + mem.kv_free) / mem.device_bytes * 100) / 100
        assert mem.weights < frac * mem.device_bytes <= mem.budget - mem.activations - mem.runtime
        values[r.name] = frac
        assert f"- '{frac:.2f}'" in text
    assert values["prefill"] != values["decode"] and max(values.values()) < 0.90  # no longer vLLM's share copied
    explain = "\n".join(line for _, line in text_lines(plan))
    assert re.search(r"\[prefill\] mem-fraction-static +0\.\d\d", explain) and "SGLang's share holds weights and KV" \
        in explain


def test_vllm_utilization_is_each_roles_own_and_rendered_per_role():
    plan = plan_for(GPT_OSS)
    files, _ = render(plan, "shell", SEED)
    for r in plan.roles:
        for argv in _argv_of(files, r.name):
            assert _value(argv, "--gpu-memory-utilization") == f"{r.memory.utilization:.2f}"
            assert _value(argv, "--max-num-seqs") == str(r.max_num_seqs)
    assert plan.role("prefill").max_num_seqs != plan.role("decode").max_num_seqs


# -- the rendered commands are checked too ------------------------------------------------------------------------


def _decode_edited(files, old: str, new: str):
    """The rendered files with one edit in node-1.sh, where this plan's decode instance runs."""
    out = []
    for f in files:
        if f.path == "node-1.sh":
            assert old in f.content
            f = dataclasses.replace(f, content=f.content.replace(old, new, 1))
        out.append(f)
    return out


@pytest.mark.parametrize("old, new, rule", [
    ("--block-size 128", "--block-size 48", "nixl-block-size"),  # decode's not a multiple of prefill's
    ("--block-size 128", "--block-size 128 \\\n  --kv-cache-dtype fp8", "nixl-kv-cache-dtype"),
    ("--tensor-parallel-size 4", "--tensor-parallel-size 3", "nixl-tp-ratio"),
])
def test_rendered_validator_catches_what_the_connector_would_refuse(old, new, rule):
    plan = plan_for(LLAMA, workload=Workload(isl=2048, osl=256, rate=10, ttft_slo=0.5, tpot_slo=0.05))
    files, _ = render(plan, "shell", SEED)
    assert not validate_shell(files).problems
    assert plan.role("decode").instances == 1 and "decode-0" in next(f for f in files if f.path == "node-1.sh").content
    problems = validate_shell(_decode_edited(files, old, new)).problems
    assert any(f"rule {rule}" in p for p in problems), problems
