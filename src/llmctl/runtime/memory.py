"""How much memory a running engine takes: what `llmctl ps` (and Ollama's /api/ps) call SIZE and SIZE_VRAM.

On the CPU that is the process's resident memory (the mmapped weights included). On a GPU the weights and
KV cache live in VRAM, which RSS does not count (a 4.4 GB model on an H100 shows ~0.5 GB resident), so SIZE
is the engine's VRAM, as nvidia-smi reports it per process, plus its anonymous resident memory (not the
file pages the weights were read through, which would count them twice); Ollama's SIZE is likewise RAM
and VRAM together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineMemory:
    size: int  # bytes in RAM and VRAM together
    vram: int  # bytes of that in GPU memory


def rss(pid: int | None, field: str = "VmRSS") -> int | None:
    """Resident memory of a process (Linux /proc; `field` "VmRSS" or "RssAnon"), or None."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def engine_memory(pid: int | None, fallback: int, *, on_gpu: bool) -> EngineMemory:
    """SIZE and SIZE_VRAM of the engine `pid`; `fallback` (the model's file size) when nothing is known."""
    vram = 0
    if on_gpu and pid:
        from llmctl.runtime.gpu import vram_by_pid

        vram = vram_by_pid().get(pid, 0)
    resident = (rss(pid, "RssAnon") if vram else rss(pid)) or 0
    size = resident + vram
    if not size:
        return EngineMemory(fallback, fallback if on_gpu else 0)
    return EngineMemory(size, vram)
