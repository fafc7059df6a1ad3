"""Quantized checkpoints, sliding-window attention and architecture refusals, from published config.json files
(tests/data/hf-configs, the catalog): sizes from quantization_config, flags the engines accept, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmctl.errors import InvalidInput, PlanError
from llmctl.plan import find_catalog, kv, load_gpu, profile_from_config, profile_from_gguf, render, solve
from llmctl.plan.launch import Rank, engine_argv
from llmctl.plan.memory import weight_bytes_total
from llmctl.plan.types import PlanRequest, Workload

CONFIGS = Path(__file__).parent / "data" / "hf-configs"
GB = 1e9


def config_profile(name: str):
    return profile_from_config(json.loads((CONFIGS / f"{name}.json").read_text()), name=name,
                               serve_id=name.replace("--", "/"), source="hf")  # published Hugging Face configs


def request(model, gpu: str = "h100-80gb", **kw) -> PlanRequest:
    profile = find_catalog(model).profile() if isinstance(model, str) else model
    return PlanRequest(model=profile, gpu=load_gpu(gpu), gpus_per_node=kw.pop("gpn", 8),
                       workload=kw.pop("workload", Workload()), **kw)


def vllm_argv(plan) -> list[str]:
    return engine_argv(plan, plan.roles[0], Rank())


# -- sizes from quantization_config -----------------------------------------------------------------------


@pytest.mark.parametrize("name, method, bits, gb", [
    ("RedHatAI--Llama-3.3-70B-Instruct-FP8-dynamic", "compressed-tensors", 8.0, 72.7),
    ("hugging-quants--Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "awq", 4.156, 39.8),
    ("hugging-quants--Meta-Llama-3.1-8B-Instruct-GPTQ-INT4", "gptq", 4.156, 5.7),
    ("unsloth--Meta-Llama-3.1-8B-Instruct-bnb-4bit", "bitsandbytes", 4.127, 5.7),
    ("Qwen--Qwen3-8B-FP8", "fp8", 8.002, 9.4),
])
def test_weights_are_sized_from_the_declared_quantization(name, method, bits, gb):
    """Linear layers at the format's bits (scales and zero points counted), embeddings and norms in 16-bit."""
    m = config_profile(name)
    assert m.quant.declared and m.quant.method == method
    assert m.quant.weight_bits == pytest.approx(bits, abs=0.01)
    assert weight_bytes_total(m, m.native_dtype) / GB == pytest.approx(gb, rel=0.02)


def test_gpt_oss_mxfp4_quantizes_only_the_experts_and_fits_one_h100():
    """openai/gpt-oss-120b: MXFP4 experts (4.25 bits), BF16 attention/router/embeddings (modules_to_not_convert),
    about 65 GB — vLLM's recipe serves it on one H100; sized as BF16 it would need four."""
    m = find_catalog("gpt-oss:120b").profile()
    assert m.quant.method == "mxfp4" and m.quant.scope == "experts" and m.quant.weight_bits == 4.25
    assert 60 * GB < weight_bytes_total(m, m.native_dtype) < 68 * GB
    plan = solve(request("gpt-oss:120b"))
    assert plan.gpus == 1 and plan.weight_dtype == "mxfp4"
    argv = vllm_argv(plan)
    assert "--quantization" not in argv and "--dtype" not in argv  # vLLM reads mxfp4 from config.json


def test_compressed_tensors_fp8_is_half_of_bf16_and_takes_half_the_gpus():
    fp8 = config_profile("RedHatAI--Llama-3.3-70B-Instruct-FP8-dynamic")
    bf16 = find_catalog("llama3.3:70b").profile()
    assert weight_bytes_total(fp8, "fp8") < 0.52 * weight_bytes_total(bf16, "bf16")
    assert fp8.quant.act == "fp8"  # W8A8: dynamic per-token FP8 activations
    assert solve(request(fp8)).roles[0].shape.tp < solve(request(bf16)).roles[0].shape.tp


def test_declared_method_is_never_passed_as_quantization():
    """vLLM refuses a --quantization that differs from the checkpoint's method; both engines read it themselves."""
    for name in ("RedHatAI--Llama-3.3-70B-Instruct-FP8-dynamic", "hugging-quants--Meta-Llama-3.1-70B-Instruct-AWQ-INT4"):
        for engine in ("vllm", "sglang"):
            plan = solve(request(config_profile(name), engine=engine))
            argv = vllm_argv(plan)
            assert "--quantization" not in argv, (name, engine)
            files, report = render(plan, "shell")
            assert not report.problems


def test_dtype_fp8_on_a_quantized_checkpoint_makes_only_the_kv_cache_fp8():
    plan = solve(request("deepseek-r1", "h200", dtype="fp8"))
    argv = vllm_argv(plan)
    assert "--quantization" not in argv and argv[argv.index("--kv-cache-dtype") + 1] == "fp8"
    assert plan.weight_dtype == "fp8" and plan.kv_dtype == "fp8"
    assert any("declares fp8" in n for n in plan.notes)


def test_dtype_fp8_on_a_16_bit_checkpoint_is_online_fp8():
    plan = solve(request("llama3.1:70b", dtype="fp8"))
    argv = vllm_argv(plan)
    assert argv[argv.index("--quantization") + 1] == "fp8" and "--dtype" not in argv


def test_dtype_bf16_on_a_quantized_checkpoint_is_refused():
    with pytest.raises(InvalidInput, match=r"ships int4 \(awq\) weights"):
        solve(request(config_profile("hugging-quants--Meta-Llama-3.1-70B-Instruct-AWQ-INT4"), dtype="bf16"))


def test_tp_keeps_whole_quantization_groups():
    """AWQ group 128: every TP slice of the 28672-wide MLP must hold whole groups (28672 / 8 = 3584 = 28 x 128)."""
    from llmctl.plan.shapes import tp_problem

    m = config_profile("hugging-quants--Meta-Llama-3.1-70B-Instruct-AWQ-INT4")
    assert tp_problem(m, 8) is None
    odd = profile_from_config({**json.loads((CONFIGS / "hugging-quants--Meta-Llama-3.1-8B-Instruct-GPTQ-INT4.json")
                                            .read_text()), "intermediate_size": 14464}, name="x", serve_id="x",
                              source="local")
    assert "whole 128-wide quantization groups" in tp_problem(odd, 8)


def test_unknown_quant_method_is_refused():
    cfg = {**find_catalog("llama3.1:8b").config, "quantization_config": {"quant_method": "hqq"}}
    with pytest.raises(InvalidInput, match="'hqq'.*not one llmctl can size"):
        profile_from_config(cfg, name="x", serve_id="x", source="local")


# -- sliding windows -----------------------------------------------------------------------------------------


def test_gpt_oss_sliding_layers_keep_128_tokens():
    m = find_catalog("gpt-oss:120b").profile()
    assert (m.sliding_layers, m.sliding_window) == (18, 128)
    full = kv.bytes_per_token(m, 1, 1, "bf16") * 4096
    seq = kv.sequence_bytes(m, 1, 1, "bf16", 4096, windowed=True)
    assert seq == pytest.approx(full * (18 * 4096 + 18 * 128) / (36 * 4096))
    assert kv.sequence_bytes(m, 1, 1, "bf16", 4096, windowed=False) == full


def test_gemma3_five_local_layers_per_global_one():
    m = config_profile("google--gemma-3-27b-it")
    assert m.num_layers == 62 and m.sliding_window == 1024 and m.sliding_layers == 62 - 10
    assert m.layer_attention[5] == "full" and m.layer_attention[4] == "sliding"
    assert 27.0e9 < m.params().total < 27.6e9  # text 27.0B + the 0.4B SigLIP tower
    plan = solve(request(m, workload=Workload(isl=30000, osl=2000)))
    mem = plan.roles[0].memory
    assert mem.kv_seq_bytes < 0.25 * mem.kv_bytes_per_token * plan.max_model_len  # 10/62 full + 52/62 x 1024 tokens
    assert any("slide over a 1024-token window" in s.formula for s in plan.steps)


def test_lmcache_sizes_sliding_layers_as_full_attention():
    w = Workload(isl=8000, osl=500, rate=2, ttft_slo=5.0, tpot_slo=0.1)
    plan = solve(request("gpt-oss:20b", workload=w, disaggregate="on", kv_connector="LMCacheConnectorV1"))
    mem = plan.role("decode").memory
    assert mem.kv_seq_bytes == pytest.approx(mem.kv_bytes_per_token * plan.max_model_len)
    assert any("sized as full attention" in n for n in plan.notes)


# -- what cannot be sized is refused, not planned wrongly ----------------------------------------------------


def test_linear_attention_hybrid_is_refused():
    with pytest.raises(PlanError, match="Qwen3NextForCausalLM: Gated DeltaNet"):
        config_profile("Qwen--Qwen3-Next-80B-A3B-Instruct")


@pytest.mark.parametrize("arch, why", [("GPTNeoXForCausalLM", "non-gated MLP"), ("NemotronHForCausalLM", "Mamba-2"),
                                       ("SomeNewForCausalLM", "formulas are not modelled")])
def test_architectures_llmctl_cannot_size(arch, why):
    cfg = {**find_catalog("llama3.1:8b").config, "architectures": [arch]}
    with pytest.raises(PlanError, match=why):
        profile_from_config(cfg, name="x", serve_id="x", source="local")


def test_unknown_layer_types_and_gguf_architectures_are_refused():
    cfg = {**find_catalog("llama3.1:8b").config, "layer_types": ["linear_attention", "full_attention"] * 16}
    with pytest.raises(PlanError, match="linear_attention"):
        profile_from_config(cfg, name="x", serve_id="x", source="local")
    with pytest.raises(PlanError, match="GGUF architecture 'mamba'"):
        profile_from_gguf({"general.architecture": "mamba", "mamba.block_count": 2}, None)


def test_new_catalog_models_size_to_their_model_cards():
    expected = {"llama3.3:70b": 70.6, "gpt-oss:20b": 20.9, "gpt-oss:120b": 116.8, "mixtral:8x7b": 46.7,
                "mixtral:8x22b": 140.6, "qwen3:235b-a22b-instruct-2507": 235.1, "deepseek-v3.1": 671.0}
    for name, b in expected.items():
        assert find_catalog(name).profile().params().total / 1e9 == pytest.approx(b, rel=0.005), name
    assert find_catalog("qwen3:235b-2507").profile().max_position_embeddings == 262144
    assert find_catalog("deepseek-v3.1").profile().quant.weight_format == "fp8"


def test_mixtral_8x22b_tp_over_6_is_refused_with_the_sizes_that_fit():
    with pytest.raises(PlanError, match=r"8 KV heads .*TP sizes that fit: 1, 2, 4 "):
        solve(request("mixtral:8x22b", tp=6, gpn=12))
