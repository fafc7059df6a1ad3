"""Model and GPU profiles: catalog data, parameter arithmetic, config.json and GGUF parsing. (Model resolution,
which reads folders, caches and registries, is the API layer's: tests/test_plan_resolve.py.)"""

from __future__ import annotations


import pytest

from llmctl.errors import InvalidInput, NotFound
from llmctl.plan import catalog, find_catalog, gpu_profiles, load_gpu, profile_from_config, profile_from_gguf
from llmctl.plan.memory import kv_bytes_per_token, weight_bytes_total


@pytest.mark.parametrize("entry", catalog(), ids=lambda e: e.name)
def test_catalog_parameter_count_matches_the_model_card(entry):
    """The count computed from config.json is within 1% of the size the model card states."""
    total = entry.profile().params().total / 1e9
    assert abs(total / entry.nominal_params_b - 1) < 0.01, (entry.name, total)


def test_catalog_covers_the_models_the_issue_names():
    names = {e.name for e in catalog()}
    assert {"llama-3.1-8b-instruct", "llama-3.1-70b-instruct", "llama-3.1-405b-instruct"} <= names
    assert {"qwen3-8b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b", "deepseek-v3", "deepseek-r1"} <= names


def test_catalog_entries_cite_their_source():
    for e in catalog():
        assert e.source.startswith("https://huggingface.co/") and e.hf_id in e.source


def test_moe_active_parameters():
    qwen = find_catalog("qwen3:235b").profile().params()
    assert 21e9 < qwen.active < 23e9  # "A22B"
    ds = find_catalog("deepseek-v3").profile().params()
    assert 36e9 < ds.active < 39e9  # DeepSeek-V3: 37B activated


def test_find_catalog_by_alias_hf_id_and_case():
    assert find_catalog("llama3.1:405b").hf_id == "meta-llama/Llama-3.1-405B-Instruct"
    assert find_catalog("META-LLAMA/LLAMA-3.1-405B-INSTRUCT").name == "llama-3.1-405b-instruct"
    assert find_catalog("meta-llama/Meta-Llama-3.1-8B-Instruct").name == "llama-3.1-8b-instruct"
    assert find_catalog("no-such-model") is None


def test_kv_bytes_per_token_formula():
    m = find_catalog("llama3.1:405b").profile()
    assert kv_bytes_per_token(m, "bf16") == 126 * 2 * 8 * 128 * 2
    assert kv_bytes_per_token(m, "fp8") == 126 * 2 * 8 * 128 * 1


def test_mla_kv_is_the_latent_not_heads():
    m = find_catalog("deepseek-r1").profile()
    assert m.is_mla and m.native_dtype == "fp8"
    assert kv_bytes_per_token(m, "bf16") == 61 * (512 + 64) * 2


def test_405b_weights_are_810_gb_in_bf16():
    m = find_catalog("llama3.1:405b").profile()
    assert 805e9 < weight_bytes_total(m, "bf16") < 815e9
    # FP8 halves the linear layers; embeddings stay 16-bit
    assert 405e9 < weight_bytes_total(m, "fp8") < 412e9


def test_gpu_profiles_load_with_sources():
    from llmctl.plan import data

    names = {g.name for g in gpu_profiles()}
    assert {"h100-80gb", "h200", "a100-80gb", "l40s"} <= names
    for fname in data.list_dir("gpus"):
        text = data.read_text("gpus", fname)
        assert "# sources:" in text and "https://" in text
    h100 = load_gpu("h100")
    assert h100.name == "h100-80gb" and h100.bf16_tflops == pytest.approx(989.5)
    assert load_gpu("a100-80gb").fp8_tflops is None
    assert load_gpu("a100-80gb").peak_flops("fp8") == load_gpu("a100-80gb").peak_flops("bf16")
    with pytest.raises(NotFound, match="known: "):
        load_gpu("tpu-v5")


def test_profile_from_config_handles_text_config_and_missing_fields():
    inner = find_catalog("llama3.1:8b").config
    wrapped = {"architectures": ["LlavaForConditionalGeneration"], "text_config": inner}
    p = profile_from_config(wrapped, name="x", serve_id="x", source="local")
    assert p.num_layers == 32 and p.num_kv_heads == 8 and p.head_dim == 128
    with pytest.raises(InvalidInput, match="lacks num_hidden_layers"):
        profile_from_config({"hidden_size": 8}, name="bad", serve_id="bad", source="local")


def test_profile_from_gguf_llama_keys():
    kv = {
        "general.architecture": "llama",
        "general.name": "Llama 3.1 8B Instruct",
        "llama.block_count": 32,
        "llama.embedding_length": 4096,
        "llama.attention.head_count": 32,
        "llama.attention.head_count_kv": 8,
        "llama.feed_forward_length": 14336,
        "llama.context_length": 131072,
        "tokenizer.ggml.tokens": ["t"] * 128256,
    }
    p = profile_from_gguf(kv, 8_030_261_248)
    assert (p.num_layers, p.hidden_size, p.num_kv_heads, p.head_dim, p.vocab_size) == (32, 4096, 8, 128, 128256)
    assert p.params().total == 8_030_261_248 and p.source == "gguf"
    assert kv_bytes_per_token(p, "bf16") == 32 * 2 * 8 * 128 * 2


def test_profile_from_gguf_moe_and_per_layer_arrays():
    kv = {
        "general.architecture": "qwen3moe",
        "qwen3moe.block_count": 48,
        "qwen3moe.embedding_length": 2048,
        "qwen3moe.attention.head_count": 32,
        "qwen3moe.attention.head_count_kv": [4] * 48,
        "qwen3moe.attention.key_length": 128,
        "qwen3moe.feed_forward_length": 6144,
        "qwen3moe.expert_feed_forward_length": 768,
        "qwen3moe.expert_count": 128,
        "qwen3moe.expert_used_count": 8,
        "qwen3moe.vocab_size": 151936,
    }
    p = profile_from_gguf(kv, None)
    assert p.is_moe and p.num_kv_heads == 4 and p.experts_per_token == 8
    assert abs(p.params().total / 30.5e9 - 1) < 0.01
    with pytest.raises(InvalidInput):
        profile_from_gguf({"llama.block_count": 1}, None)


@pytest.mark.parametrize("change, field", [
    ({"num_hidden_layers": -3}, "num_hidden_layers"),
    ({"num_hidden_layers": 10**12, "model_type": "gemma2", "sliding_window": 4}, "num_hidden_layers"),  # no walk
    ({"hidden_size": "big"}, "hidden_size"),
    ({"max_position_embeddings": float("inf")}, "max_position_embeddings"),
    ({"max_position_embeddings": 1.5}, "max_position_embeddings"),
    ({"vocab_size": [1]}, "vocab_size"),
    ({"intermediate_size": -1}, "intermediate_size"),
    ({"sliding_window": -5, "layer_types": ["sliding_attention"] * 32}, "sliding_window"),
    ({"num_local_experts": 8, "num_experts_per_tok": 9}, "experts per token"),
    ({"num_local_experts": 8, "num_experts_per_tok": 0}, "experts per token"),
    ({"quantization_config": "fp8"}, "quantization_config"),
])
def test_hostile_config_json_is_one_clear_error(change, field):
    """config.json comes from registries and Hub repositories llmctl does not control: a value no arithmetic should
    run on is InvalidModel (exit 4) naming the field, never a crash (complex numbers, OverflowError) or a plan
    with negative parameters."""
    from llmctl.errors import InvalidModel

    config = {**find_catalog("llama3.1:8b").config, **change}
    with pytest.raises(InvalidModel, match=field) as exc:
        profile_from_config(config, name="hostile", serve_id="hostile", source="local")
    assert len(str(exc.value)) < 300  # a 300-digit count is cut, not printed


def test_architectures_as_a_bare_string_is_read_whole():
    config = {**find_catalog("llama3.1:8b").config, "architectures": "LlamaForCausalLM"}
    assert profile_from_config(config, name="x", serve_id="x", source="local").architecture == "LlamaForCausalLM"


def test_hostile_gguf_metadata_is_one_clear_error():
    from llmctl.errors import InvalidModel

    kv = {"general.architecture": "llama", "llama.block_count": 2, "llama.embedding_length": 64,
          "llama.attention.head_count": 4}
    with pytest.raises(InvalidModel, match="feed_forward_length"):
        profile_from_gguf({**kv, "llama.feed_forward_length": "wide"}, None)
    with pytest.raises(InvalidModel, match="block_count"):
        profile_from_gguf({**kv, "llama.block_count": 2**40, "general.architecture": "gemma2",
                           "gemma2.block_count": 2**40, "gemma2.embedding_length": 64,
                           "gemma2.attention.head_count": 4, "gemma2.attention.sliding_window": 8}, None)
