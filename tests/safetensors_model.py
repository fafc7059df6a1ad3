"""A tiny but real Hugging Face model folder for the safetensors tests.

Written with the libraries engines use: `safetensors` (numpy) for the weights, transformers' `LlamaConfig`,
`GenerationConfig` and `PreTrainedTokenizerFast` (over a `tokenizers` word-level model) for config.json,
generation_config.json and the tokenizer files. The tensors have a one-layer Llama's names and shapes, so the
folder is what `save_pretrained` of a (very small) Llama would give; no torch is involved.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HIDDEN, FFN, VOCAB = 16, 32, 32
WORDS = ["<unk>", "<s>", "</s>", "hello", "world", "the", "sky", "is", "blue", "why"]


def llama_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float16)

    layer = "model.layers.0."
    return {
        "model.embed_tokens.weight": w(VOCAB, HIDDEN),
        **{f"{layer}self_attn.{p}_proj.weight": w(HIDDEN, HIDDEN) for p in "qkvo"},
        f"{layer}mlp.gate_proj.weight": w(FFN, HIDDEN),
        f"{layer}mlp.up_proj.weight": w(FFN, HIDDEN),
        f"{layer}mlp.down_proj.weight": w(HIDDEN, FFN),
        f"{layer}input_layernorm.weight": np.ones(HIDDEN, dtype=np.float32),
        f"{layer}post_attention_layernorm.weight": np.ones(HIDDEN, dtype=np.float32),
        "model.norm.weight": np.ones(HIDDEN, dtype=np.float32),
        "lm_head.weight": w(VOCAB, HIDDEN),
    }


def parameter_count(tensors: dict[str, np.ndarray]) -> int:
    return sum(int(t.size) for t in tensors.values())


def make_model(folder: Path, *, shards: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Write the model into `folder` (sharded with an index when shards > 1); returns its tensors."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tensors = llama_tensors(seed)
    names = sorted(tensors)
    groups = [names[i::shards] for i in range(shards)]
    weight_map = {}
    for i, group in enumerate(groups, start=1):
        file = "model.safetensors" if shards == 1 else f"model-{i:05d}-of-{shards:05d}.safetensors"
        save_file({n: tensors[n] for n in group}, str(folder / file), metadata={"format": "pt"})
        weight_map.update({n: file for n in group})
    if shards > 1:
        total = sum(t.nbytes for t in tensors.values())
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                architectures=["LlamaForCausalLM"]).save_pretrained(folder)
    GenerationConfig(bos_token_id=1, eos_token_id=2, do_sample=False).save_pretrained(folder)
    vocab = {w: i for i, w in enumerate(WORDS)}
    vocab.update({f"tok{i}": i for i in range(len(WORDS), VOCAB)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>").save_pretrained(folder)
    (folder / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }}\n{% endfor %}")
    (folder / "LICENSE").write_text("Apache License 2.0 (test model)\n")
    return tensors


def load_folder(folder: Path) -> tuple[dict[str, np.ndarray], object, object]:
    """What an engine does with the folder: the tensors (by the index), AutoConfig, AutoTokenizer; offline."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    index = folder / "model.safetensors.index.json"
    shards = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    tensors = {}
    for shard in shards:
        with safe_open(str(folder / shard), framework="np") as f:
            tensors.update({k: f.get_tensor(k) for k in f.keys()})
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return tensors, config, tokenizer
