"""`llmctl runtime install`: build llama-server from the llama.cpp that the pinned llama-cpp-python vendors.

Steps: get the sdist (`pip download llama-cpp-python==V --no-binary :all: --no-deps`, which pip answers from
its cache after the first time; or `--source` a local sdist / source tree), unpack `vendor/llama.cpp`,
configure with CMake (static, server only, no web UI download, AMX disabled, CUDA when asked), build the
`llama-server` target with a progress bar, and install the binary into
`$LLMCTL_HOME/runtimes/<version>-<cpu|cuda>/bin/` with a `build.json` that says how it was made. The whole
output goes to a log file, whose tail is in the error if a step fails. A failed build leaves nothing behind.

One build per runtime at a time: `install` holds `runtimes/.install-<version>-<kind>.lock` (flock, released
by the kernel even on kill -9), so a second `llmctl runtime install` in the same home waits for the first
(saying so, with its pid) and then reuses what it built instead of compiling the same thing beside it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from llmctl.errors import EngineError, NotFound, UsageError
from llmctl.progress import PERCENT, STEPS, NullProgress, Progress
from llmctl.runtime import cpu
from llmctl.runtime.engine import BINARY, BUILD_INFO, PINNED_VERSION
from llmctl.settings import Settings

CUDA_ARCHS_DEFAULT = "75;80;86;89;90"  # Turing .. Hopper, when no GPU is present to ask for "native"
_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")
_MAKE_PCT = re.compile(r"^\[\s*(\d+)%\]")


@dataclass(frozen=True)
class BuildResult:
    path: Path  # the llama-server binary
    version: str
    kind: str
    seconds: float
    log_path: Path
    reused: bool = False


def target_version() -> str:
    """The llama-cpp-python version whose llama.cpp we build: the installed one, else the pinned one."""
    try:
        from importlib.metadata import version

        return version("llama-cpp-python")
    except Exception:
        return PINNED_VERSION


def cmake_args(kind: str, install_prefix: Path | None = None, cuda_archs: str | None = None, *,
               cuda_home: Path | None) -> list[str]:
    flags = cpu.AMX_CFLAGS if _is_x86() else ""
    args = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=OFF",
        "-DLLAMA_BUILD_SERVER=ON",
        "-DLLAMA_BUILD_TOOLS=ON",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_APP=OFF",  # the unified `llama` binary: not needed, and pruned trees lack app/
        "-DLLAMA_BUILD_UI=OFF",
        "-DLLAMA_USE_PREBUILT_UI=OFF",  # never download the web UI at build time
        "-DLLAMA_OPENSSL=OFF",
        "-DLLAMA_CURL=OFF",
        "-DGGML_NATIVE=ON",
    ]
    if flags:
        args += [f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_CXX_FLAGS={flags}"]
    if kind == "cuda":
        nvcc = cpu.nvcc(cuda_home)
        args += ["-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={cuda_archs or detected_cuda_archs()}"]
        if nvcc:
            args.append(f"-DCMAKE_CUDA_COMPILER={nvcc}")
    if install_prefix:
        args.append(f"-DCMAKE_INSTALL_PREFIX={install_prefix}")
    return args


def detected_cuda_archs() -> str:
    """CMAKE_CUDA_ARCHITECTURES for this machine: nvidia-smi's compute_cap of each GPU ("90", "86;90"); with no
    GPU to ask, Turing to Hopper (a portable, slower build)."""
    from llmctl.runtime import gpu

    gpus = gpu.query_gpus()
    return gpu.cuda_archs(gpus) or ("native" if gpus else CUDA_ARCHS_DEFAULT)


def _is_x86() -> bool:
    import platform

    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def runtime_dir(settings: Settings, version: str, kind: str) -> Path:
    return settings.runtimes_dir / f"{version}-{kind}"


class _Log:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.f: IO[str] = open(path, "w", encoding="utf-8", errors="replace")

    def line(self, text: str) -> None:
        self.f.write(text.rstrip("\n") + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def _tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").rstrip().splitlines()[-n:])
    except OSError:
        return ""


def _run(cmd: list[str], log: _Log, step: str, *, cwd: Path | None = None, env: dict[str, str] | None = None,
         on_line=None) -> None:
    log.line(f"$ {' '.join(cmd)}")
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1)
    except OSError as exc:
        raise EngineError(f"runtime install: {step} failed: cannot run {cmd[0]}: {exc.strerror or exc}") from None
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            log.line(line)
            if on_line:
                on_line(line)
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if rc != 0:
        raise EngineError(f"runtime install: {step} failed (exit {rc}); full log: {log.path}\n"
                          f"--- last lines ---\n{_tail(log.path)}")


def _fetch_sdist(version: str, dest: Path, log: _Log, progress: Progress) -> Path:
    progress.start("sdist", f"llama-cpp-python {version} source (pip download)", None, unit=STEPS)
    cmd = [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={version}", "--no-binary", ":all:",
           "--no-deps", "-d", str(dest), "--disable-pip-version-check"]
    _run(cmd, log, "downloading the llama-cpp-python sdist (pip download)")
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz")) + sorted(dest.glob("llama-cpp-python-*.tar.gz"))
    if not found:
        raise EngineError(f"runtime install: pip downloaded no sdist; full log: {log.path}")
    progress.finish("sdist")
    return found[0]


def _source_tree(source: Path, work: Path, log: _Log, progress: Progress) -> Path:
    """A llama.cpp source tree from an sdist, a llama-cpp-python tree or a llama.cpp tree."""
    if source.is_dir():
        for candidate in (source, source / "vendor" / "llama.cpp"):
            if (candidate / "CMakeLists.txt").exists() and (candidate / "tools" / "server").is_dir():
                return candidate
        raise NotFound(f"{source}: neither a llama.cpp tree nor a llama-cpp-python tree (vendor/llama.cpp)")
    if not source.is_file():
        raise NotFound(f"{source}: no such file or folder")
    progress.start("extract", f"unpacking {source.name}", None, unit=STEPS)
    log.line(f"unpacking {source} into {work}")
    try:
        with tarfile.open(source) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name + "/"]
            if not members:
                raise EngineError(f"{source}: no vendor/llama.cpp in this archive")
            try:
                tar.extractall(work, members=members, filter="data")
            except TypeError:  # Python without tar filters
                tar.extractall(work, members=members)
    except tarfile.TarError as exc:
        raise EngineError(f"{source}: cannot unpack: {exc}") from None
    progress.finish("extract")
    roots = [p for p in work.glob("*/vendor/llama.cpp") if (p / "CMakeLists.txt").exists()]
    if not roots:
        raise EngineError(f"{source}: vendor/llama.cpp has no CMakeLists.txt")
    return roots[0]


def install(settings: Settings, *, cuda: bool = False, force: bool = False, jobs: int | None = None,
            source: Path | None = None, cuda_archs: str | None = None,
            progress: Progress | None = None) -> BuildResult:
    """Build and install llama-server into the runtimes folder; returns where it is.

    An installed build is reused unless `force`; a build that another `runtime install` finished while this
    one waited for its lock is reused even with `force` (it is as fresh as ours would be).
    """
    progress = progress or NullProgress()
    kind = "cuda" if cuda else "cpu"
    version = target_version()
    dest = runtime_dir(settings, version, kind)
    log_path = settings.logs_dir / f"runtime-install-{version}-{kind}.log"
    reused = BuildResult(dest / "bin" / BINARY, version, kind, 0.0, log_path, reused=True)
    if _complete(dest) and not force:
        return reused
    cmake = shutil.which("cmake")
    if not cmake:
        raise EngineError("runtime install needs cmake (apt-get install cmake, or pip install cmake)")
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        raise EngineError("runtime install needs a C++ compiler (apt-get install build-essential)")
    if cuda and not cpu.nvcc(settings.cuda_home):
        where = f"{settings.cuda_home}/bin or " if settings.cuda_home else ""
        raise UsageError(f"--cuda needs the CUDA toolkit (nvcc not found on PATH, in {where}/usr/local/cuda/bin; "
                         f"set CUDA_HOME to the toolkit's folder)")
    jobs = jobs or max(1, cpu.cpu_info().logical_cores)
    settings.runtimes_dir.mkdir(parents=True, exist_ok=True)
    with install_lock(settings.runtimes_dir / f".install-{dest.name}.lock", progress) as waited:
        if _complete(dest) and (waited or not force):
            return reused
        return _build(settings, cmake, dest, log_path, version=version, kind=kind, jobs=jobs, source=source,
                      cuda_archs=cuda_archs, progress=progress)


def _complete(dest: Path) -> bool:
    return (dest / "bin" / BINARY).exists() and (dest / BUILD_INFO).exists()


@contextmanager
def install_lock(path: Path, progress: Progress) -> Iterator[bool]:
    """Hold `path` locked for one build; yields True when another process held it and this one waited.

    The holder writes its pid into the file, so the one that waits can say whom it waits for.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waited = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f"pid {holder}" if holder.isdigit() else "another process"
            progress.start("wait", f"waiting for another `llmctl runtime install` ({who}) to finish", None, unit=STEPS)
            fcntl.flock(fd, fcntl.LOCK_EX)
            progress.finish("wait")
            waited = True
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield waited
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


class _CompileSteps:
    """Feeds the build tool's output to `progress`: ninja's "[12/48]" as steps, make's "[ 25%]" as percent."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress = progress
        self.description = description
        self.total: int | None = None
        self.done = 0

    def __call__(self, line: str) -> None:
        m = _NINJA_STEP.match(line)
        if m:
            self._at(int(m.group(1)), int(m.group(2)), STEPS)
            return
        m = _MAKE_PCT.match(line)
        if m:
            self._at(int(m.group(1)), 100, PERCENT)

    def _at(self, done: int, total: int, unit: str) -> None:
        if self.total is None:
            self.total = total
            self.progress.start("compile", self.description, total, unit=unit)
        if done > self.done:
            self.progress.advance("compile", done - self.done)
            self.done = done

    def finish(self) -> None:
        if self.total is not None:
            self.progress.finish("compile")


def _build(settings: Settings, cmake: str, dest: Path, log_path: Path, *, version: str, kind: str, jobs: int,
           source: Path | None, cuda_archs: str | None, progress: Progress) -> BuildResult:
    """Configure, compile and smoke-test in a temp folder, then move the result to `dest` in one rename."""
    t0 = time.monotonic()
    log = _Log(log_path)
    work = Path(tempfile.mkdtemp(prefix=f".build-{kind}-", dir=settings.runtimes_dir))
    try:
        log.line(f"llmctl runtime install: llama-cpp-python {version}, {kind}, {jobs} jobs")
        log.line(f"machine: {json.dumps(cpu.describe(settings.cuda_home))}")
        sdist = source or _fetch_sdist(version, work / "sdist", log, progress)
        tree = _source_tree(Path(sdist), work / "src", log, progress)
        build = work / "build"
        args = cmake_args(kind, cuda_archs=cuda_archs, cuda_home=settings.cuda_home)
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(jobs)}
        progress.start("configure", "configuring (cmake)", None, unit=STEPS)
        _run([cmake, "-S", str(tree), "-B", str(build), *generator, *args], log, "configure (cmake)", env=env)
        progress.finish("configure")
        steps = _CompileSteps(progress, f"compiling llama-server ({kind})")
        _run([cmake, "--build", str(build), "--target", BINARY, "-j", str(jobs)], log, "build", env=env,
             on_line=steps)
        steps.finish()
        built = next((p for p in (build / "bin" / BINARY, build / BINARY) if p.exists()), None)
        if built is None:
            raise EngineError(f"runtime install: the build made no {BINARY}; full log: {log.path}")
        staging = _stage(built, build, work / "install")
        seconds = time.monotonic() - t0
        info = {"version": version, "kind": kind, "llama_cpp_dir": str(tree.relative_to(work)) if tree.is_relative_to(work) else str(tree),
                "cmake_args": args, "jobs": jobs, "seconds": round(seconds, 1),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": cpu.describe(settings.cuda_home),
                "cuda": cpu.cuda_version(settings.cuda_home) if kind == "cuda" else None}
        (staging / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
        smoke = subprocess.run([str(staging / "bin" / BINARY), "--version"], capture_output=True, text=True,
                               env={**os.environ, "LD_LIBRARY_PATH": str(staging / "lib")}, timeout=30)
        log.line(smoke.stdout + smoke.stderr)
        if smoke.returncode != 0 and kind != "cuda":
            raise EngineError(f"runtime install: the new llama-server does not run (exit {smoke.returncode}); "
                              f"full log: {log.path}")
        if dest.exists():
            old = dest.with_name(f".old-{dest.name}-{os.getpid()}")
            dest.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        staging.rename(dest)
        log.line(f"installed {dest} in {seconds:.0f}s")
        return BuildResult(dest / "bin" / BINARY, version, kind, seconds, log_path)
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def _stage(built: Path, build: Path, staging: Path) -> Path:
    """The binary and the shared libraries beside it, laid out as the runtime folder will be."""
    (staging / "bin").mkdir(parents=True)
    shutil.copy2(built, staging / "bin" / BINARY)
    libs = [p for p in (build / "bin").glob("*.so*")] if (build / "bin").is_dir() else []
    if libs:
        (staging / "lib").mkdir()
        for lib in libs:
            shutil.copy2(lib, staging / "lib" / lib.name, follow_symlinks=True)
    return staging


def installed(settings: Settings) -> list[dict[str, object]]:
    """Builds in the runtimes folder with their build.json."""
    out = []
    root = settings.runtimes_dir
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if d.name.startswith(".") or not (d / "bin" / BINARY).exists():
            continue
        try:
            info = json.loads((d / BUILD_INFO).read_text())
        except (OSError, ValueError):
            info = {}
        out.append({"name": d.name, "path": str(d / "bin" / BINARY), **info})
    return out
