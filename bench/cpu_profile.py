"""Run a Python module under a CPU-time sampling profiler: `python bench/cpu_profile.py OUT -m llmctl serve ...`.

Samples are taken by SIGPROF (ITIMER_PROF: the process's user+system CPU time), so they measure where CPU goes
even on a machine whose other tenants keep this process waiting: a wall-clock sampler (py-spy) counts the
time a runnable process waits for a core against whatever it was doing, which here is most of its samples.
Python runs the handler at the next bytecode boundary of the main thread, so time spent in C (uvloop,
syscalls) is charged to the Python code that runs next; read the profile with that in mind.

With OUT ending in `.pstats`, cProfile runs instead (exact call counts, slower code, pstats output).

Sampling runs from SIGUSR1 (which also clears what was sampled before) to SIGUSR2, which writes the stacks to
OUT in the collapsed format (`frame;frame;frame count`) that flame-graph tools and
`bench/cpu_profile.py --top OUT` read; so a benchmark profiles only its measured phase, not start-up.
"""

from __future__ import annotations

import collections
import runpy
import signal
import sys
from types import FrameType

INTERVAL = 0.001  # one sample per ms of CPU time


def _label(frame: FrameType) -> str:
    code = frame.f_code
    return f"{getattr(code, 'co_qualname', code.co_name)} ({code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno})"


def install(out: str) -> None:
    counts: collections.Counter[str] = collections.Counter()

    def sample(signum: int, frame: FrameType | None) -> None:
        stack = []
        while frame is not None:
            stack.append(_label(frame))
            frame = frame.f_back
        counts[";".join(reversed(stack))] += 1

    def start(signum: int, frame: FrameType | None) -> None:
        counts.clear()
        signal.setitimer(signal.ITIMER_PROF, INTERVAL, INTERVAL)

    def stop(signum: int, frame: FrameType | None) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0)
        with open(out, "w") as f:
            for stack, n in counts.items():
                f.write(f"{stack} {n}\n")

    signal.signal(signal.SIGPROF, sample)
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def install_cprofile(out: str) -> None:
    """The same start/stop signals around cProfile: exact call counts per token, at a cost in speed."""
    import cProfile

    prof = cProfile.Profile()
    signal.signal(signal.SIGUSR1, lambda *_: prof.enable())
    signal.signal(signal.SIGUSR2, lambda *_: (prof.disable(), prof.dump_stats(out)))


def top(path: str, n: int = 30) -> None:
    """Self and inclusive shares by function (line numbers dropped) of a collapsed-stack file."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in open(path):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        k = int(count)
        total += k
        frames = [f.rsplit(":", 1)[0] + ")" for f in stack.split(";")]
        own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    print(f"{total} samples ({total * INTERVAL:.2f} s of CPU)\n-- self")
    for f, k in own.most_common(n):
        print(f"{100 * k / total:5.1f}%  {f}")
    print("-- inclusive")
    for f, k in incl.most_common(n + 15):
        print(f"{100 * k / total:5.1f}%  {f}")


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "--top":
        top(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 30)
        return
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        sys.exit("usage: cpu_profile.py OUT -m MODULE [ARGS...] | cpu_profile.py --top OUT [N]")
    out, module = sys.argv[1], sys.argv[3]
    sys.argv = [module, *sys.argv[4:]]
    install_cprofile(out) if out.endswith(".pstats") else install(out)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
