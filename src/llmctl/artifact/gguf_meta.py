"""GGUF header metadata without loading tensors.

The `gguf` package supplies the format's constants (value types, file types, quantization block sizes);
the header walk is ours because `gguf.GGUFReader` materialises a numpy view per array element: 20+ s for
the 262k-token Gemma 3 vocabulary on this machine, against ~0.1 s here. Large arrays (token lists) are
skipped, not decoded; their lengths are kept. The tensor infos (name, shape, type, offset, bytes) are part
of the result, so callers that size a model (the GPU offload planner) never re-walk the header.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, LlamaFileType

from llmctl.errors import InvalidModel

MAGIC = b"GGUF"
_SCALARS: dict[int, tuple[str, int]] = {
    GGUFValueType.UINT8: ("<B", 1),
    GGUFValueType.INT8: ("<b", 1),
    GGUFValueType.UINT16: ("<H", 2),
    GGUFValueType.INT16: ("<h", 2),
    GGUFValueType.UINT32: ("<I", 4),
    GGUFValueType.INT32: ("<i", 4),
    GGUFValueType.FLOAT32: ("<f", 4),
    GGUFValueType.BOOL: ("<?", 1),
    GGUFValueType.UINT64: ("<Q", 8),
    GGUFValueType.INT64: ("<q", 8),
    GGUFValueType.FLOAT64: ("<d", 8),
}
MAX_ARRAY_KEPT = 64  # arrays longer than this are summarised, not decoded
DEFAULT_ALIGNMENT = 32  # the data section starts at a multiple of general.alignment, else of this


@dataclass(frozen=True)
class ArraySummary:
    """A skipped array: its element type and length."""

    type: str
    length: int

    def __str__(self) -> str:
        return f"[{self.length} x {self.type}]"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in the header: enough to size it without touching its data."""

    name: str
    shape: tuple[int, ...]  # GGUF order: the fastest-varying dimension first
    type: int  # a GGMLQuantizationType value
    offset: int  # from the start of the data section (GgufInfo.data_offset)
    nbytes: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def type_name(self) -> str:
        try:
            return GGMLQuantizationType(self.type).name
        except ValueError:
            return f"type{self.type}"


@dataclass(frozen=True)
class GgufInfo:
    version: int
    kv: dict[str, Any]
    tensor_count: int
    parameter_count: int
    general_type: str = field(default="model")
    tensors: tuple[TensorInfo, ...] = ()
    data_offset: int = 0  # file offset of the data section: a tensor's data starts at data_offset + offset

    @property
    def architecture(self) -> str | None:
        return self.kv.get("general.architecture")

    def arch_value(self, key: str) -> Any:
        return self.kv.get(f"{self.architecture}.{key}")

    @property
    def context_length(self) -> int | None:
        value = self.arch_value("context_length")
        return int(value) if value is not None else None

    @property
    def quantization(self) -> str | None:
        file_type = self.kv.get("general.file_type")
        if file_type is None:
            return None
        try:
            name = LlamaFileType(int(file_type)).name
        except ValueError:
            return f"type{file_type}"
        return name.removeprefix("MOSTLY_").removeprefix("ALL_")

    @property
    def chat_template(self) -> str | None:
        value = self.kv.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    @property
    def parameter_label(self) -> str:
        return format_parameters(self.parameter_count)

    def config_strings(self) -> dict[str, str]:
        """The string map Docker Model Runner puts under `config.gguf` (no big arrays, no template)."""
        out: dict[str, str] = {}
        for key, value in self.kv.items():
            if key.startswith("tokenizer.ggml.") and key not in ("tokenizer.ggml.model", "tokenizer.ggml.pre"):
                continue
            if key == "tokenizer.chat_template" or isinstance(value, ArraySummary):
                continue
            out[key] = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        return out


def format_parameters(count: int) -> str:
    """268098176 -> '268.10 M', as Docker Model Runner labels parameter counts."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return str(count)


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise InvalidModel(f"{self.path}: truncated GGUF header")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def unpack(self, fmt: str, n: int) -> Any:
        return struct.unpack(fmt, self.take(n))[0]

    def string(self) -> str:
        length = self.unpack("<Q", 8)
        return self.take(length).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.unpack("<Q", 8)
        self.pos += length

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            fmt, n = _SCALARS[vtype]
            return self.unpack(fmt, n)
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            etype = self.unpack("<I", 4)
            length = self.unpack("<Q", 8)
            if length > MAX_ARRAY_KEPT:
                self.skip_array(etype, length)
                return ArraySummary(_type_name(etype), length)
            return [self.value(etype) for _ in range(length)]
        raise InvalidModel(f"{self.path}: unknown GGUF value type {vtype}")

    def skip_array(self, etype: int, length: int) -> None:
        if etype in _SCALARS:
            self.pos += _SCALARS[etype][1] * length
        elif etype == GGUFValueType.STRING:
            for _ in range(length):
                self.skip_string()
        else:
            for _ in range(length):
                self.value(etype)
        if self.pos > len(self.buf):
            raise InvalidModel(f"{self.path}: truncated GGUF header")


def _type_name(vtype: int) -> str:
    try:
        return GGUFValueType(vtype).name.lower()
    except ValueError:
        return str(vtype)


def read_gguf(path: Path) -> GgufInfo:
    """Read a GGUF file's key/values and count its parameters from the tensor infos."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise InvalidModel(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidModel(f"{path}: is a directory, expected a GGUF file") from None
    with f:
        head = f.read(4)
        if head != MAGIC:
            raise InvalidModel(f"{path}: not a GGUF file (magic {head!r})")
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            raise InvalidModel(f"{path}: empty file") from None
        try:
            return _parse(_Cursor(buf, path))
        finally:
            buf.close()


def _parse(cur: _Cursor) -> GgufInfo:
    cur.take(4)
    version = cur.unpack("<I", 4)
    if version not in (2, 3):
        raise InvalidModel(f"{cur.path}: unsupported GGUF version {version}")
    tensor_count = cur.unpack("<Q", 8)
    kv_count = cur.unpack("<Q", 8)
    if tensor_count > 1 << 24 or kv_count > 1 << 20:
        raise InvalidModel(f"{cur.path}: implausible GGUF header (corrupt file?)")
    kv: dict[str, Any] = {}
    for _ in range(kv_count):
        key = cur.string()
        vtype = cur.unpack("<I", 4)
        kv[key] = cur.value(vtype)
    tensors = tuple(_tensor_info(cur) for _ in range(tensor_count))
    align = kv.get("general.alignment")
    align = int(align) if isinstance(align, int) and align > 0 else DEFAULT_ALIGNMENT
    data_offset = -(-cur.pos // align) * align
    return GgufInfo(version, kv, tensor_count, sum(t.elements for t in tensors), str(kv.get("general.type", "model")),
                    tensors, data_offset)


def _tensor_info(cur: _Cursor) -> TensorInfo:
    name = cur.string()
    n_dims = cur.unpack("<I", 4)
    shape = tuple(cur.unpack("<Q", 8) for _ in range(n_dims))
    ttype = cur.unpack("<I", 4)
    offset = cur.unpack("<Q", 8)
    block, size = GGML_QUANT_SIZES.get(ttype, (1, 4))  # an unknown type: sized as f32
    return TensorInfo(name, shape, ttype, offset, math.prod(shape) // block * size)
