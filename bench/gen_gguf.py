"""Write large GGUF models with random F16 tensors, streamed (constant memory), single-file or split.

    .venv/bin/python bench/gen_gguf.py OUT.gguf --size-mib 4096
    .venv/bin/python bench/gen_gguf.py OUT-DIR/name --shards 64 --size-mib 2048   # name-00001-of-00064.gguf ...

Splits follow llama.cpp's `gguf-split` layout: `name-0000i-of-0000N.gguf`, the first carrying the model's
keys, every one `split.no` / `split.count` / `split.tensors.count`, so `llmctl package --gguf` on the first
finds the rest. Transfer speed does not depend on the values, so tensors are random bytes (incompressible,
like real weights) from a seeded generator: the same arguments give the same files, hence the same digests.
"""

from __future__ import annotations

import argparse
import random
import struct
from pathlib import Path

ALIGN = 32
F16 = 1  # ggml type
STRING, UINT16, INT32, UINT32 = 8, 2, 5, 4  # GGUF value types
TENSOR_MIB = 32  # one tensor's size: big models are many tensors of this size


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def _kv(key: str, vtype: int, value: object) -> bytes:
    out = _string(key) + struct.pack("<I", vtype)
    if vtype == STRING:
        return out + _string(str(value))
    fmt = {UINT16: "<H", INT32: "<i", UINT32: "<I"}[vtype]
    return out + struct.pack(fmt, value)


def write_gguf(path: Path, tensors: list[tuple[str, int]], kvs: list[bytes], rng: random.Random) -> int:
    """One GGUF file: the header, then each (name, bytes) tensor filled with random bytes. Returns its size."""
    header = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for kv in kvs:
        header += kv
    offset = 0
    for name, nbytes in tensors:
        header += _string(name) + struct.pack("<IQ", 1, nbytes // 2) + struct.pack("<IQ", F16, offset)
        offset += (nbytes + ALIGN - 1) // ALIGN * ALIGN
    header += b"\0" * (-len(header) % ALIGN)
    with open(path, "wb") as f:
        f.write(header)
        for _, nbytes in tensors:
            left = nbytes
            while left:
                n = min(left, 8 << 20)
                f.write(rng.randbytes(n))
                left -= n
            f.write(b"\0" * (-nbytes % ALIGN))
        return f.tell()


def model_kvs(name: str, n_tensors: int) -> list[bytes]:
    return [
        _kv("general.architecture", STRING, "llama"),
        _kv("general.name", STRING, name),
        _kv("general.file_type", UINT32, 1),
        _kv("llama.context_length", UINT32, 4096),
        _kv("llama.block_count", UINT32, n_tensors),
        _kv("llama.embedding_length", UINT32, 4096),
        _kv("llama.attention.head_count", UINT32, 32),
    ]


def generate(out: Path, size_mib: int, shards: int = 1, seed: int = 0) -> list[Path]:
    """`size_mib` MiB of tensors in one file, or in `shards` split files; returns the files in order."""
    rng = random.Random(seed)
    total = size_mib << 20
    n_tensors = max(shards, -(-size_mib // TENSOR_MIB))
    per_tensor = total // n_tensors // 2 * 2  # F16: an even number of bytes
    names = [f"blk.{i}.ffn_up.weight" for i in range(n_tensors)]
    sizes = [per_tensor] * n_tensors
    sizes[-1] = total - per_tensor * (n_tensors - 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    if shards == 1:
        path = out if out.suffix == ".gguf" else out.with_suffix(".gguf")
        write_gguf(path, list(zip(names, sizes)), model_kvs(out.stem, n_tensors), rng)
        return [path]
    files = []
    per_shard = (n_tensors + shards - 1) // shards
    for s in range(shards):
        chunk = list(zip(names, sizes))[s * per_shard:(s + 1) * per_shard]
        kvs = model_kvs(out.name, n_tensors) if s == 0 else []
        kvs += [_kv("split.no", UINT16, s), _kv("split.count", UINT16, shards),
                _kv("split.tensors.count", INT32, n_tensors)]
        path = out.parent / f"{out.name}-{s + 1:05d}-of-{shards:05d}.gguf"
        write_gguf(path, chunk, kvs, rng)
        files.append(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size-mib", type=int, default=4096)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in generate(args.out, args.size_mib, args.shards, args.seed):
        print(path)


if __name__ == "__main__":
    main()
