"""What a checkpoint's `quantization_config` means for sizing and for the engine's command line.

A checkpoint that declares a method (FP8, compressed-tensors, MXFP4, AWQ, GPTQ, bitsandbytes, ModelOpt) is loaded
by vLLM and SGLang with that method: they read it from config.json, and vLLM refuses to start when
`--quantization` names another one. So a declared method is never rendered as a flag; `--quantization fp8`
appears only for online FP8 of a 16-bit checkpoint (`--dtype fp8`).

Bits per weight count the scales the format stores beside the weights (sources in each parser):
  FP8 block 128x128 + FP32 scale  8.002     MXFP4 (OCP MX: 32 x E2M1 + one E8M0 scale)   4.25
  AWQ/GPTQ int4, group g: 4 + 16/g (FP16 scale) + 4/g (packed zero point)                 4.156 at g=128
  NVFP4 (16 x E2M1 + one FP8 scale)   4.5   bitsandbytes NF4 (64-value blocks, double quant) 4.127
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmctl.errors import InvalidInput


@dataclass(frozen=True)
class Quant:
    """How the checkpoint's linear layers are stored and multiplied."""

    method: str = "none"  # the declared quant_method, "fp8" for online FP8, "none" for 16-bit
    weight_format: str = "bf16"  # bf16 | fp8 | int8 | int4 | mxfp4 | nvfp4 | nf4
    weight_bits: float = 16.0  # bits per quantized weight, scales and zero points included
    act: str = "bf16"  # what the matmuls multiply: bf16 (weight-only formats dequantize), fp8, int8, fp4
    scope: str = "linear"  # linear: every decoder linear layer; experts: routed experts only (gpt-oss MXFP4)
    declared: bool = False  # read from the checkpoint: the engine takes it from config.json
    group_size: int = 0
    detail: str = "16-bit weights"

    @property
    def quantized(self) -> bool:
        return self.method != "none"

    @property
    def label(self) -> str:
        """A short name for plan output: bf16, fp8, int4 (awq), mxfp4, nvfp4, nf4 (bitsandbytes)."""
        if not self.quantized:
            return "bf16"
        if self.weight_format in ("fp8", "mxfp4", "nvfp4"):
            return self.weight_format
        return f"{self.weight_format} ({self.method})"

    def bytes_for(self, role: str) -> float:
        """Bytes per parameter of a weight role: quantized roles take weight_bits / 8, the rest 2 bytes."""
        if not self.quantized or role not in ("attention", "mlp", "experts"):
            return 2.0
        if self.scope == "experts" and role != "experts":
            return 2.0
        return self.weight_bits / 8.0


NONE = Quant()
ONLINE_FP8 = Quant("fp8", "fp8", 8.0, "fp8", "linear", False, 0,
                   "online FP8: vLLM/SGLang --quantization fp8 quantizes every linear layer per tensor at load")


def _num(value: Any, default: int = 0) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _group_bits(bits: int, group: int, *, zero: bool) -> float:
    """Packed integer weights with one 16-bit scale (and a packed zero point) per group of `group` values."""
    if group <= 0:  # per-channel (group_size -1): the scales are negligible
        return float(bits)
    return bits + 16.0 / group + (bits / group if zero else 0.0)


def _fp8(q: Mapping[str, Any], method: str) -> Quant:
    block = q.get("weight_block_size")
    detail = "FP8 E4M3 weights" + (f", {block[0]}x{block[1]} blocks with FP32 scales" if isinstance(block, list)
                                   and len(block) == 2 else ", per-tensor/channel scales")
    bits = 8.0 + (32.0 / (block[0] * block[1]) if isinstance(block, list) and len(block) == 2 else 0.0)
    return Quant(method, "fp8", round(bits, 4), "fp8", "linear", True, 0, detail)


def _mxfp4(q: Mapping[str, Any]) -> Quant:
    skip = [str(m) for m in q.get("modules_to_not_convert") or []]
    attn_kept = any("self_attn" in m for m in skip)
    scope = "experts" if attn_kept or not skip else "linear"
    return Quant("mxfp4", "mxfp4", 4.25, "bf16", scope, True, 32,
                 "MXFP4 (OCP MX): 32 E2M1 values share one E8M0 scale = 4.25 bits"
                 + ("; attention, router, embeddings and lm_head stay BF16 (modules_to_not_convert)" if attn_kept else ""))


def _awq_gptq(q: Mapping[str, Any], method: str) -> Quant:
    bits = _num(q.get("bits") or q.get("w_bit"), 4)
    group = _num(q.get("group_size") or q.get("q_group_size"), 128)
    zero = bool(q.get("zero_point", True)) if method == "awq" else True  # GPTQ stores packed qzeros either way
    fmt = f"int{bits}"
    return Quant(method, fmt, round(_group_bits(bits, group, zero=zero), 4), "bf16", "linear", True, max(group, 0),
                 f"{method.upper()} {bits}-bit, group {group}: {bits} + 16/{group} (FP16 scale)"
                 + (f" + {bits}/{group} (packed zero)" if zero and group > 0 else "") + " bits; weight-only")


def _bitsandbytes(q: Mapping[str, Any]) -> Quant:
    if q.get("load_in_8bit") or q.get("_load_in_8bit"):
        return Quant("bitsandbytes", "int8", 8.0, "bf16", "linear", True, 0, "bitsandbytes LLM.int8(): 8-bit weights")
    double = bool(q.get("bnb_4bit_use_double_quant"))
    bits = 4.0 + (8.0 / 64 + 32.0 / (64 * 256) if double else 32.0 / 64)
    kind = str(q.get("bnb_4bit_quant_type") or "nf4")
    return Quant("bitsandbytes", kind, round(bits, 4), "bf16", "linear", True, 64,
                 f"bitsandbytes {kind}: 64-value blocks, " + ("double-quantized absmax" if double else "FP32 absmax"))


def _compressed_tensors(q: Mapping[str, Any]) -> Quant:
    """compressed-tensors (llm-compressor): the first config group's weight scheme and format."""
    groups = q.get("config_groups") or {}
    group = next(iter(groups.values()), {}) if isinstance(groups, Mapping) else {}
    w = group.get("weights") or {}
    acts = group.get("input_activations")
    bits = _num(w.get("num_bits"), 16)
    wtype = str(w.get("type") or "int")
    fmt = str(q.get("format") or "")
    gsize = _num(w.get("group_size"), 0)
    if fmt.startswith("nvfp4") or (wtype == "float" and bits == 4):
        return Quant("compressed-tensors", "nvfp4", 4.5, "fp4" if acts else "bf16", "linear", True, 16,
                     "compressed-tensors NVFP4: 16 E2M1 values share one FP8 scale = 4.5 bits")
    if wtype == "float" and bits == 8:
        act = "fp8" if acts else "bf16"
        return Quant("compressed-tensors", "fp8", 8.0, act, "linear", True, 0,
                     f"compressed-tensors FP8 ({fmt or 'float-quantized'}), {w.get('strategy', 'tensor')} weight scales, "
                     + ("dynamic per-token FP8 activations" if acts and acts.get("dynamic") else
                        "static FP8 activations" if acts else "16-bit activations"))
    if wtype == "int" and bits == 8:
        act = "int8" if acts else "bf16"
        return Quant("compressed-tensors", "int8", 8.0, act, "linear", True, 0,
                     f"compressed-tensors INT8 ({fmt or 'int-quantized'}), " + ("W8A8" if acts else "W8A16"))
    if wtype == "int" and bits == 4:
        zero = not bool(w.get("symmetric", True))
        return Quant("compressed-tensors", "int4", round(_group_bits(4, gsize, zero=zero), 4), "bf16", "linear", True,
                     gsize, f"compressed-tensors W4A16 ({fmt or 'pack-quantized'}), group {gsize or 'channel'}")
    raise InvalidInput(f"compressed-tensors scheme {wtype}{bits} ({fmt or 'no format'}) is not one llmctl can size",
                       hint="supported: FP8 (float8), INT8, W4A16 (int4) and NVFP4 schemes")


def _modelopt(q: Mapping[str, Any]) -> Quant:
    algo = str(q.get("quant_algo") or (q.get("quantization") or {}).get("quant_algo") or "").upper()
    if "FP8" in algo:
        return Quant("modelopt", "fp8", 8.0, "fp8", "linear", True, 0, f"NVIDIA ModelOpt {algo}")
    if "FP4" in algo:
        return Quant("modelopt", "nvfp4", 4.5, "fp4", "linear", True, 16, f"NVIDIA ModelOpt {algo}: 4.5 bits")
    raise InvalidInput(f"ModelOpt quant_algo {algo or '(none)'} is not one llmctl can size", hint="FP8 and NVFP4 are")


def quant_from_config(config: Mapping[str, Any]) -> Quant:
    """The checkpoint's quantization from config.json (`quantization_config`), or NONE for a 16-bit checkpoint."""
    q = config.get("quantization_config")
    if not isinstance(q, Mapping) or not q:
        return NONE
    method = str(q.get("quant_method") or "").lower().replace("_", "-")
    if method in ("fp8", "fbgemm-fp8"):
        return _fp8(q, method.replace("-", "_"))
    if method == "mxfp4":
        return _mxfp4(q)
    if method in ("awq", "gptq"):
        return _awq_gptq(q, method)
    if method == "bitsandbytes":
        return _bitsandbytes(q)
    if method == "compressed-tensors":
        return _compressed_tensors(q)
    if method in ("modelopt", "modelopt-fp4"):
        return _modelopt(q)
    raise InvalidInput(
        f"quantization method {method or '(none)'!r} in config.json is not one llmctl can size",
        hint="supported: fp8, fbgemm_fp8, compressed-tensors, mxfp4, awq, gptq, bitsandbytes, modelopt",
    )

