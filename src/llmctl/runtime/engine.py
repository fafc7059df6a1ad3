"""Finding the llama-server binary to run.

Discovery order (the first that exists wins):

1. `LLMCTL_LLAMA_SERVER` (a path, or a name on PATH): an explicit choice; if it does not exist that is an
   error, not a reason to look elsewhere;
2. builds made by `llmctl runtime install` in `$LLMCTL_HOME/runtimes/<version>-<cpu|cuda>/` (a CUDA build
   only when an NVIDIA GPU is present, and then before a CPU build);
3. the `llama-server` that the llama-cpp-python wheel bundles (`<site-packages>/bin`, libraries in
   `<site-packages>/lib`), present when it was built with `scripts/install.sh`'s CMAKE_ARGS;
4. `llama-server` on PATH.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from llmctl.errors import EngineError
from llmctl.runtime import cpu
from llmctl.settings import Settings

BINARY = "llama-server"
PINNED_VERSION = "0.3.36"  # llama-cpp-python, whose sdist vendors the llama.cpp we build
BUILD_INFO = "build.json"
NO_ENGINE = "no llama-server found; run `llmctl runtime install`"


@dataclass(frozen=True)
class Engine:
    path: Path
    env: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    version: str = "unknown"
    kind: str = "cpu"  # "cpu" | "cuda"
    source: str = ""  # "LLMCTL_LLAMA_SERVER" | "runtime" | "llama-cpp-python" | "PATH"

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The full environment to start this engine with: `base` (default os.environ) plus `env`."""
        return {**(os.environ if base is None else base), **self.env}

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "version": self.version, "kind": self.kind, "source": self.source,
                "env": dict(self.env)}


def _lib_env(lib: Path) -> dict[str, str]:
    if not lib.is_dir():
        return {}
    current = os.environ.get("LD_LIBRARY_PATH", "")
    parts = [str(lib)] + [p for p in current.split(os.pathsep) if p and p != str(lib)]
    return {"LD_LIBRARY_PATH": os.pathsep.join(parts)}


def _kind_from_libs(*dirs: Path) -> str:
    for d in dirs:
        if d.is_dir() and any(d.glob("libggml-cuda*")):
            return "cuda"
    return "cpu"


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def probe_version(path: Path, env: dict[str, str]) -> str:
    """`llama-server --version`'s version line, e.g. "b1-0c1e570"; "unknown" when it does not answer."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=15,
                             env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = out.stdout + out.stderr
    m = re.search(r"version:\s*(\S+)\s*\(build (\d+), commit (\w+)\)", text)
    if m:
        return f"b{m.group(2)}-{m.group(3)}"
    m = re.search(r"version:\s*(\S+)", text)
    return m.group(1) if m else "unknown"


def _from_file(path: Path, source: str) -> Engine:
    lib = path.parent.parent / "lib"
    return Engine(path, _lib_env(lib), probe_version(path, _lib_env(lib)), _kind_from_libs(lib, path.parent), source)


def override_engine(settings: Settings) -> Engine | None:
    value = settings.llama_server
    if not value:
        return None
    path = Path(value).expanduser()
    if os.sep not in value and not path.exists():
        found = shutil.which(value)
        path = Path(found) if found else path
    if not _executable(path):
        why = "does not exist" if not path.exists() else "is not an executable file"
        raise EngineError(f"LLMCTL_LLAMA_SERVER={value}: {why}",
                          hint="unset it to use the engine llmctl finds, or see `llmctl runtime list`")
    return _from_file(path, "LLMCTL_LLAMA_SERVER")


def runtime_engines(settings: Settings) -> list[Engine]:
    """Builds from `llmctl runtime install`, best first: CUDA (with a GPU), then newest version."""
    root = settings.runtimes_dir
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        binary = d / "bin" / BINARY
        if d.name.startswith(".") or not _executable(binary):
            continue
        info: dict[str, object] = {}
        try:
            info = json.loads((d / BUILD_INFO).read_text())
        except (OSError, ValueError):
            pass
        version, _, kind = d.name.rpartition("-")
        kind = str(info.get("kind") or (kind if kind in ("cpu", "cuda") else "cpu"))
        version = str(info.get("version") or version or "unknown")
        found.append(Engine(binary, _lib_env(d / "lib"), version, kind, "runtime"))

    def key(e: Engine) -> tuple[int, tuple[int, ...]]:
        nums = tuple(int(x) for x in re.findall(r"\d+", e.version))
        return (1 if e.kind == "cuda" else 0, nums)

    return sorted(found, key=key, reverse=True)


def wheel_engine() -> Engine | None:
    """The llama-server bundled in the installed llama-cpp-python wheel (found without importing it)."""
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    site = Path(spec.origin).resolve().parent.parent
    binary = site / "bin" / BINARY
    if not _executable(binary):
        return None
    try:
        from importlib.metadata import version

        v = version("llama-cpp-python")
    except Exception:
        v = "unknown"
    lib = site / "lib"
    return Engine(binary, _lib_env(lib), v, _kind_from_libs(lib, site / "llama_cpp" / "lib"), "llama-cpp-python")


def path_engine() -> Engine | None:
    found = shutil.which(BINARY)
    return _from_file(Path(found), "PATH") if found else None


def _usable(e: Engine, gpu: bool) -> bool:
    return e.kind != "cuda" or gpu


def list_engines(settings: Settings) -> list[Engine]:
    """Every engine llmctl can see, in discovery order (a broken LLMCTL_LLAMA_SERVER is left out)."""
    engines: list[Engine] = []
    try:
        o = override_engine(settings)
    except EngineError:
        o = None
    if o:
        engines.append(o)
    engines += runtime_engines(settings)
    for e in (wheel_engine(), path_engine()):
        if e and all(e.path.resolve() != x.path.resolve() for x in engines):
            engines.append(e)
    return engines


def find_engine(settings: Settings) -> Engine:
    """The engine to run, by the discovery order above. Raises EngineError when there is none."""
    from llmctl.runtime.gpu import query_gpus

    o = override_engine(settings)
    if o:
        return o
    has_gpu = bool(query_gpus())
    for e in runtime_engines(settings):
        if _usable(e, has_gpu):
            return e
    w = wheel_engine()
    if w and _usable(w, has_gpu):
        return w
    p = path_engine()
    if p:
        return p
    raise EngineError(NO_ENGINE)


def processor_note(engine: Engine, *, cuda_home: Path | None, verbose: bool = False) -> str | None:
    """The one line that says where models run and, on the CPU, why not on a GPU.

    Returned when it matters: a GPU (or a CUDA build) exists but the CPU is used; with `verbose`, always.
    `cuda_home` (Settings.cuda_home) is where nvcc may be, to say whether a CUDA build could be made.
    """
    from llmctl.runtime import gpu

    if engine.kind == "cuda":
        gpus = gpu.query_gpus()
        if not gpus:
            return f"CUDA build {engine.version} found but no NVIDIA GPU answers ({gpu.no_gpu_reason()}): it may not start"
        if not verbose:
            return None
        names = ", ".join(f"{g.index}: {g.name} ({gpu.gib(g.free)} free)" for g in gpus)
        return f"running on the GPU: llama-server {engine.version} (CUDA, {engine.path}) on {names}"
    names = ", ".join(g.name for g in gpu.query_gpus())
    if names:
        if cpu.nvcc(cuda_home) is None:
            return (f"running on the CPU: a GPU is present ({names}) but this llama-server is a CPU build "
                    f"and nvcc (the CUDA toolkit) is not on PATH or in CUDA_HOME to build a CUDA one")
        return (f"running on the CPU: a GPU is present ({names}) but this llama-server is a CPU build; "
                f"`llmctl runtime install --cuda` builds a CUDA one")
    if verbose:
        return f"running on the CPU: {gpu.no_gpu_reason()}"
    return None
