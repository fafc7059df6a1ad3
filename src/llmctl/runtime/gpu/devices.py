"""NVIDIA GPUs on this machine and which of them an engine gets.

Probing asks `nvidia-smi --query-gpu=index,name,memory.total,memory.free,compute_cap,driver_version,uuid`
rather than a CUDA library: no CUDA context is created, so probing costs no VRAM and works with a CPU-only
Python. Choosing devices turns `--gpus`, `--split-mode` and `--tensor-split` into CUDA_VISIBLE_DEVICES and
llama-server flags; the parsers raise `UsageError` so a bad value is one line at the command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Sequence

from llmctl.errors import UsageError

MiB = 1 << 20
GiB = 1 << 30
QUERY = "index,name,memory.total,memory.free,compute_cap,driver_version,uuid"
SPLIT_MODES = ("none", "layer", "row", "tensor")
# llama.cpp's own words when a build has no row split for a backend (CUDA in the pinned llama.cpp exports no
# split buffer type: ggml-org/llama.cpp#27465); engines turn it into ROW_UNSUPPORTED.
ROW_SPLIT_FAILURE = "does not support split buffers"
ROW_UNSUPPORTED = ("--split-mode row: this llama.cpp build cannot split rows across these GPUs "
                   "(ggml-org/llama.cpp#27465); use --split-mode layer (the default) or tensor")


def gib(n: int | float) -> str:
    return f"{n / GiB:.1f} GiB"


# -- probing ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    total: int  # bytes
    free: int  # bytes
    compute_cap: str = ""  # "9.0"
    driver: str = ""
    uuid: str = ""

    @property
    def arch(self) -> str:
        """CMAKE_CUDA_ARCHITECTURES value for this GPU: "9.0" -> "90"."""
        return self.compute_cap.replace(".", "")

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "total": self.total, "free": self.free,
                "compute_cap": self.compute_cap, "driver": self.driver, "uuid": self.uuid}


def parse_query(text: str) -> list[Gpu]:
    """Parse `nvidia-smi --query-gpu=<QUERY> --format=csv,noheader,nounits` output (memory in MiB)."""
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 4 or not cells[0].isdigit():
            continue
        cells += [""] * (7 - len(cells))

        def mib(v: str) -> int:
            try:
                return int(float(v)) * MiB
            except ValueError:
                return 0

        out.append(Gpu(int(cells[0]), cells[1], mib(cells[2]), mib(cells[3]), cells[4] if cells[4] != "[N/A]" else "",
                       cells[5], cells[6]))
    return out


def nvidia_smi() -> str | None:
    found = shutil.which("nvidia-smi")
    if found:
        return found
    for p in ("/usr/bin/nvidia-smi", "/usr/local/nvidia/bin/nvidia-smi"):
        if os.access(p, os.X_OK):
            return p
    return None


def query_gpus(timeout: float = 15) -> list[Gpu]:
    """The NVIDIA GPUs nvidia-smi reports, with free memory now; [] without a driver or GPU."""
    smi = nvidia_smi()
    if not smi:
        return []
    try:
        r = subprocess.run([smi, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_query(r.stdout) if r.returncode == 0 else []


def parse_apps(text: str) -> dict[int, int]:
    """Parse `nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits`: pid -> bytes.

    A process on several GPUs has one line per GPU; its uses add up."""
    out: dict[int, int] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == 2 and cells[0].isdigit():
            try:
                out[int(cells[0])] = out.get(int(cells[0]), 0) + int(float(cells[1])) * MiB
            except ValueError:
                continue
    return out


def vram_by_pid(timeout: float = 5) -> dict[int, int]:
    """GPU memory each process uses now (what `llmctl ps` shows as an engine's VRAM); {} without a driver."""
    smi = nvidia_smi()
    if not smi:
        return {}
    try:
        r = subprocess.run([smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_apps(r.stdout) if r.returncode == 0 else {}


def no_gpu_reason() -> str | None:
    """Why no GPU can be used here, or None when nvidia-smi lists one."""
    if not nvidia_smi():
        return "no NVIDIA driver (nvidia-smi not found)"
    if not query_gpus():
        return "nvidia-smi lists no GPU"
    return None


def cuda_archs(gpus: Sequence[Gpu]) -> str | None:
    """CMAKE_CUDA_ARCHITECTURES for these GPUs ("90", "86;90"), from nvidia-smi's compute_cap; None if unknown."""
    archs = sorted({g.arch for g in gpus if g.arch.isdigit()}, key=int)
    return ";".join(archs) or None


# -- choosing devices ------------------------------------------------------------------------------------------
def parse_gpus(spec: str | None) -> tuple[str, ...] | None:
    """`--gpus`: "all", "0,2", or GPU UUIDs. None/"all" means every GPU; "none"/"" means none (CPU)."""
    if spec is None or spec.strip().lower() == "all":
        return None
    s = spec.strip()
    if s.lower() in ("none", "-1", ""):
        return ()
    items = tuple(x.strip() for x in s.split(",") if x.strip())
    for x in items:
        if not (x.isdigit() or x.startswith(("GPU-", "MIG-"))):
            raise UsageError(f"--gpus {spec!r}: expected 'all', 'none', GPU indexes like 0,1 or GPU UUIDs")
    return items


def select(gpus: Sequence[Gpu], chosen: tuple[str, ...] | None) -> list[Gpu]:
    """The GPUs named by `parse_gpus`'s result (in that order); an unknown one is a UsageError."""
    if chosen is None:
        return list(gpus)
    out = []
    for x in chosen:
        g = next((g for g in gpus if (x.isdigit() and g.index == int(x)) or g.uuid == x), None)
        if g is None:
            have = ", ".join(f"{g.index} ({g.name})" for g in gpus) or "none"
            raise UsageError(f"--gpus: no GPU {x} on this machine (GPUs: {have})")
        out.append(g)
    return out


def visible_devices_env(chosen: tuple[str, ...] | None) -> dict[str, str]:
    """The engine's CUDA_VISIBLE_DEVICES for `--gpus` (empty: inherit)."""
    if chosen is None:
        return {}
    return {"CUDA_VISIBLE_DEVICES": ",".join(chosen) if chosen else "-1"}


def split_args(split_mode: str | None = None, tensor_split: Sequence[float] | None = None,
               main_gpu: int | None = None) -> list[str]:
    """llama-server flags for several GPUs."""
    args: list[str] = []
    if split_mode:
        if split_mode not in SPLIT_MODES:
            raise UsageError(f"--split-mode {split_mode!r}: expected one of {', '.join(SPLIT_MODES)}")
        args += ["--split-mode", split_mode]
    if tensor_split:
        if any(x < 0 for x in tensor_split) or not any(tensor_split):
            raise UsageError("--tensor-split: proportions must be non-negative and not all zero")
        args += ["--tensor-split", ",".join(f"{x:g}" for x in tensor_split)]
    if main_gpu is not None:
        args += ["--main-gpu", str(main_gpu)]
    return args


def parse_tensor_split(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(float(x) for x in re.split(r"[,/]", text) if x.strip())
    except ValueError:
        raise UsageError(f"--tensor-split {text!r}: expected proportions like 3,1") from None


def check_choice(gpus: str | None, split_mode: str | None, tensor_split: str | None) -> None:
    """Check `--gpus`, `--split-mode` and `--tensor-split` together before anything starts (UsageError)."""
    parse_gpus(gpus)
    split_args(split_mode, parse_tensor_split(tensor_split))
