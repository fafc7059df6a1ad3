"""What this machine offers an engine: CPU features (and the AMX trap), and a CUDA compiler.

GPUs are `runtime.gpu`'s (`query_gpus`, the one GPU probe); `describe()` lists them from there.

The AMX trap: some machines advertise AMX in /proc/cpuinfo while AMX instructions raise SIGILL (a
hypervisor that does not enable the tile state). A `-march=native` llama.cpp build then dies at its first
inference. Builds made by `llmctl runtime install` pass `-mno-amx-tile -mno-amx-int8 -mno-amx-bf16`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CUDA_HOME = Path("/usr/local/cuda")  # where NVIDIA's packages install the toolkit
AMX_CFLAGS = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    logical_cores: int
    flags: frozenset[str]

    @property
    def amx(self) -> bool:
        return any(f.startswith("amx") for f in self.flags)

    @property
    def simd(self) -> list[str]:
        return [f for f in SIMD_FLAGS if f in self.flags]


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    model, flags = "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    return CpuInfo(model, cores, frozenset(flags))


def nvcc(cuda_home: Path | None) -> Path | None:
    """The CUDA compiler: on PATH, else in `cuda_home`/bin (CUDA_HOME, as Settings reads it), else in
    /usr/local/cuda/bin, where NVIDIA's packages put it without adding it to PATH."""
    found = shutil.which("nvcc")
    if found:
        return Path(found)
    for home in dict.fromkeys((cuda_home or DEFAULT_CUDA_HOME, DEFAULT_CUDA_HOME)):
        if (home / "bin" / "nvcc").exists():
            return home / "bin" / "nvcc"
    return None


@functools.lru_cache(maxsize=4)
def cuda_version(cuda_home: Path | None) -> str | None:
    path = nvcc(cuda_home)
    if path is None:
        return None
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release ([\d.]+)", out)
    return m.group(1) if m else "unknown"


def describe(cuda_home: Path | None) -> dict[str, object]:
    """A summary for `runtime list` and error messages."""
    from llmctl.runtime.gpu import query_gpus

    info = cpu_info()
    compiler = nvcc(cuda_home)
    return {
        "cpu": info.model,
        "cores": info.logical_cores,
        "simd": info.simd,
        "amx_advertised": info.amx,
        "gpus": [g.name for g in query_gpus()],
        "nvcc": str(compiler) if compiler else None,
        "cuda": cuda_version(cuda_home),
    }


def signal_name(returncode: int | None) -> str | None:
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def sigill_message(what: str = "llama-server") -> str:
    """What a SIGILL death means and how to fix it."""
    info = cpu_info()
    if info.amx:
        return (
            f"{what} died of SIGILL (illegal instruction): this CPU advertises AMX "
            f"({', '.join(sorted(f for f in info.flags if f.startswith('amx')))}) but faults on AMX instructions, and "
            f"this llama.cpp build uses them (built with -march=native). Fix: run `llmctl runtime install`, which "
            f"builds llama-server with AMX disabled ({AMX_CFLAGS}); or reinstall llama-cpp-python with "
            f"CMAKE_ARGS=\"-DCMAKE_C_FLAGS='{AMX_CFLAGS}' -DCMAKE_CXX_FLAGS='{AMX_CFLAGS}'\" (see docs/runtime.md)"
        )
    return (
        f"{what} died of SIGILL (illegal instruction): it was built for CPU features this machine lacks "
        f"(this CPU: {', '.join(info.simd) or 'no AVX'}). Fix: run `llmctl runtime install`, which builds "
        f"llama-server for this machine (see docs/runtime.md)"
    )
