"""Big and many: a 4 GiB single-file GGUF and a 64-shard split GGUF through a real registry.

    .venv/bin/python bench/big_models.py [--runs 3] [--only big|shards] [--write docs/benchmarks.md]

For each model: generate it (bench/gen_gguf.py: random F16 tensors), `llmctl package` it, then per run
push it to an empty registry, copy it with `cp` + `sync` + `sha256sum` (the local limit: the same bytes
copied on this disk, made durable and verified), and pull it into an empty store. Every command is a fresh
process; peak RSS comes from `getrusage(RUSAGE_CHILDREN)`; the registry's CPU from /proc. Then, once per
model, a `kill -9` in the middle of a pull and of a push, followed by the same command again: the registry's
request log says which blobs the second command fetched or sent, and how (200 whole, 206 resumed).

It needs about 4x the model's size free on the work directory's disk (store, registry, one copy or pulled
store at a time); it says so and stops otherwise, and deletes everything it wrote when it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_gguf import generate  # noqa: E402
from common import Registry, Sample, llmctl, measure, precompile, request_span, write_section  # noqa: E402

GOAL_RATE = 0.9  # of the verified-copy rate
GOAL_RSS_MB = 100
CASES = {"big": ("4 GiB single file", 4096, 1), "shards": ("64 shards", 2048, 64)}


@dataclass
class Row:
    model: str
    op: str
    samples: list[Sample] = field(default_factory=list)
    note: str = ""
    registry_cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)


@dataclass
class Resume:
    model: str
    op: str
    text: str
    ok: bool


def blob_digests(home: Path, name: str) -> dict[str, int]:
    env = {**os.environ, "LLMCTL_HOME": str(home)}
    out = subprocess.run(llmctl("inspect", name), env=env, capture_output=True, text=True, check=True).stdout
    manifest = json.loads(out)["manifest"]
    return {d["digest"]: d["size"] for d in [manifest["config"], *manifest["layers"]]}


def poll(condition, what: str, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def blob_requests(entries: list[dict], methods: tuple[str, ...], since: float = 0.0) -> list[tuple[str, str, int, int]]:
    """(method, digest or upload id, status, bytes written) of blob requests in a registry log slice that
    began after `since` (Unix time): the killed command's last requests are logged when they break, which
    can be after the second command started."""
    out = []
    for e in entries:
        method, uri = e.get("http.request.method"), e.get("http.request.uri", "")
        if method not in methods or "/blobs/" not in uri or request_span(e)[0] < since:
            continue
        key = uri.split("/blobs/", 1)[1].split("?", 1)[0]
        if "digest=" in uri:
            key = "sha256:" + uri.split("digest=sha256%3A", 1)[-1].split("&", 1)[0]
        out.append((method, key, int(e.get("http.response.status", 0)), int(e.get("http.response.written", 0))))
    return out


def kill_pull(registry: Registry, name: str, digests: dict[str, int], work: Path, shards: int) -> Resume:
    """Pull, SIGKILL once some blobs are complete (or the one blob is 40% in), pull again; check the log."""
    home = work / "kill-home"
    env = {**os.environ, "LLMCTL_HOME": str(home)}
    env.pop("LLMCTL_OFFLINE", None)
    blobs_dir, ingest = home / "store/blobs/sha256", home / "store/ingest"
    weights = {d: s for d, s in digests.items() if s > 1 << 20}

    def done() -> set[str]:
        return {d for d in weights if (blobs_dir / d[7:]).exists()}

    def partial_bytes() -> dict[str, int]:
        out = {}
        for p in ingest.glob("*.partial") if ingest.exists() else []:
            try:
                out["sha256:" + p.name.split(".")[0]] = p.stat().st_size
            except FileNotFoundError:
                pass
        return out

    proc = subprocess.Popen(llmctl("pull", "-q", name), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if shards > 1:
        poll(lambda: len(done()) >= len(weights) // 3 and any(partial_bytes().values()), "a third of the shards")
    else:
        big = next(iter(weights))
        poll(lambda: partial_bytes().get(big, 0) >= 0.4 * weights[big], "40% of the blob")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished, partial = done(), {d: n for d, n in partial_bytes().items() if n}
    offset, since = registry.log_offset(), time.time()
    again = measure(llmctl("pull", "-q", "--json", name), env=env)
    result = json.loads(again.out)
    gets = blob_requests(registry.requests(offset), ("GET",), since)
    refetched = [d for _, d, _, _ in gets if d in finished]
    resumed = [(d, st, w) for _, d, st, w in gets if d in partial]
    # a partial file already complete (killed between the last byte and the rename) needs no request at all
    wanted = {d: digests[d] - n for d, n in partial.items() if n < digests[d]}
    resumed_ok = sorted(d for d, _, _ in resumed) == sorted(wanted) and all(
        st == 206 and w == wanted[d] for d, st, w in resumed)
    shutil.rmtree(home, ignore_errors=True)
    ok = not refetched and resumed_ok and result["resumed_bytes"] == sum(partial.values())
    text = (f"killed with {len(finished)}/{len(weights)} weight blobs complete and {len(partial)} partial "
            f"({sum(partial.values()) / 1e6:.1f} MB); the second pull fetched {len(refetched)} of the complete ones "
            f"again, asked for the rest of {len(resumed)} partial one(s) with `Range` (answered "
            f"{', '.join(str(st) for _, st, _ in resumed) or '-'}; {len(partial) - len(wanted)} partial file(s) "
            f"already held every byte), downloaded {result['downloaded_bytes'] / 1e6:.0f} MB "
            f"of {result['total_bytes'] / 1e6:.0f} MB in {again.seconds:.1f} s")
    return Resume("", "pull, kill -9, pull", text, ok)


def kill_push(registry: Registry, name: str, digests: dict[str, int], env: dict[str, str], shards: int) -> Resume:
    """Push, SIGKILL once the registry holds some blobs (or has 40% of the one), push again; check the log."""
    weights = {d: s for d, s in digests.items() if s > 1 << 20}
    blobs = registry.storage / "docker/registry/v2/blobs/sha256"
    uploads = registry.storage / "docker/registry/v2/repositories"

    def done(among: dict[str, int] = weights) -> set[str]:
        return {d for d in among if (blobs / d[7:9] / d[7:] / "data").exists()}

    def uploading() -> int:
        return max((p.stat().st_size for p in uploads.glob("*/*/_uploads/*/data")), default=0) if uploads.exists() else 0

    proc = subprocess.Popen(llmctl("push", "-q", name), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if shards > 1:
        poll(lambda: len(done()) >= len(weights) // 3, "a third of the shards on the registry")
    else:
        poll(lambda: uploading() >= 0.4 * next(iter(weights.values())), "40% of the blob on the registry")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished, present = done(), done(digests)
    offset, since = registry.log_offset(), time.time()
    again = measure(llmctl("push", "-q", "--json", name), env=env)
    result = json.loads(again.out)
    sent = blob_requests(registry.requests(offset), ("PUT", "PATCH"), since)
    resent = [d for m, d, _, _ in sent if m == "PUT" and d in present]
    # what the second push says it sent is what the registry received: the blobs it lacked at the time
    # (an upload the killed push had fully sent can still have been committed after the kill)
    put = {d for m, d, st, _ in sent if m == "PUT" and st == 201}
    ok = not resent and result["uploaded_bytes"] == sum(digests[d] for d in put)
    text = (f"killed with {len(finished)}/{len(weights)} weight blobs on the registry; the second push sent "
            f"{len(resent)} of the {len(present)} blobs the registry held again (`HEAD` found them), uploaded "
            f"{result['uploaded_bytes'] / 1e6:.0f} MB of {result['total_bytes'] / 1e6:.0f} MB in {again.seconds:.1f} s")
    if shards == 1:
        text += "; the interrupted blob is sent again whole (distribution 2.8 cannot resume an upload session)"
    return Resume("", "push, kill -9, push", text, ok)


def run_case(key: str, runs: int, work: Path, scale: float = 1.0) -> tuple[list[Row], list[Resume], dict[str, str]]:
    label, size_mib, shards = CASES[key]
    if scale != 1.0:  # a smoke run of the benchmark itself
        size_mib = max(shards * 2, int(size_mib * scale))
        label += f" (scaled to {size_mib} MiB)"
    need = 4.5 * (size_mib << 20)
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(f"{label}: needs {need / 2**30:.1f} GiB free in {work}, has {free / 2**30:.1f} GiB")
    src_home = work / "src-home"
    base_env = {**os.environ, "LLMCTL_HOME": str(src_home), "DOCKER_CONFIG": str(work / "docker-config")}
    for var in ("LLMCTL_REGISTRY", "LLMCTL_OFFLINE", "LLMCTL_DEBUG"):
        base_env.pop(var, None)
    t = time.perf_counter()
    files = generate(work / "gen" / f"bench-{key}", size_mib, shards)
    gen_s = time.perf_counter() - t
    package = Row(label, "package (hash + copy + fsync into the store)")
    package.samples.append(measure(llmctl("package", "-q", "--gguf", str(files[0]), f"bench/{key}:1"), env=base_env))
    shutil.rmtree(work / "gen")
    digests = blob_digests(src_home, f"bench/{key}:1")
    total = sum(digests.values())
    weights = [src_home / "store/blobs/sha256" / d[7:] for d, s in digests.items() if s > 1 << 20]

    copy = Row(label, "`cp` + `sync` + `sha256sum` of the copy")
    push, pull = Row(label, "push"), Row(label, "pull")
    registry = Registry(work, log=True)
    name = ""
    for i in range(runs):
        registry.fresh()
        name = f"{registry.host}/bench/{key}:1"
        subprocess.run(llmctl("tag", f"bench/{key}:1", name), env=base_env, check=True, capture_output=True)
        cpu0 = registry.cpu_seconds()
        push.samples.append(measure(llmctl("push", "-q", name), env=base_env))
        push.registry_cpu.append(registry.cpu_seconds() - cpu0)
        dst = work / "copy"
        dst.mkdir()
        names = " ".join(str(dst / p.name) for p in weights)
        copy.samples.append(measure(["sh", "-c", f"cp {' '.join(map(str, weights))} {dst}/ && sync {names} && "
                                     f"sha256sum {names} > /dev/null"]))
        shutil.rmtree(dst)
        home = work / f"pull-home-{i}"
        cpu0 = registry.cpu_seconds()
        pull.samples.append(measure(llmctl("pull", "-q", name), env={**base_env, "LLMCTL_HOME": str(home)}))
        pull.registry_cpu.append(registry.cpu_seconds() - cpu0)
        shutil.rmtree(home)
    resumes = [kill_pull(registry, name, digests, work, shards)]
    registry.fresh()
    name = f"{registry.host}/bench/{key}:1"
    subprocess.run(llmctl("tag", f"bench/{key}:1", name), env=base_env, check=True, capture_output=True)
    resumes.append(kill_push(registry, name, digests, base_env, shards))
    registry.stop()
    shutil.rmtree(src_home)
    for r in resumes:
        r.model = label
    facts = {"size": str(total), "blobs": str(len(digests)), "gen_s": f"{gen_s:.0f}"}
    return [copy, push, pull, package], resumes, facts


def table(results: list[tuple[list[Row], list[Resume], dict[str, str]]], runs: int, load: tuple[float, float]) -> str:
    lines = [
        "## Big and many",
        "",
        f"`bench/big_models.py` ({runs} runs, median): generated GGUF models (random F16 tensors, "
        "`bench/gen_gguf.py`) through a loopback docker-registry (distribution 2.8.2) on this machine "
        f"({os.cpu_count()} cores, load average {load[0]:.1f} at the start, {load[1]:.1f} at the end; other work "
        "shares it). Each push goes to an empty registry, each pull to an empty store; the local limit is `cp` "
        "of the same blob files on this disk + `sync` of the copies + `sha256sum` of the copies. Peak RSS is the "
        "llmctl process's; registry CPU is what docker-registry used during the command.",
        "",
        "| model | operation | seconds | min-max | MB/s | vs verified copy | llmctl CPU s | registry CPU s | peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows, resumes, facts in results:
        size = int(facts["size"])
        base = next(r for r in rows if r.op.startswith("`cp`")).median
        for r in rows:
            times = [s.seconds for s in r.samples]
            rate = size / r.median / 1e6
            cpu = statistics.median(s.cpu for s in r.samples)
            reg = f"{statistics.median(r.registry_cpu):.1f}" if r.registry_cpu else "-"
            rss = max(s.rss_kb for s in r.samples) / 1024
            lines.append(f"| {r.model} ({size / 2**30:.2f} GiB, {facts['blobs']} blobs) | {r.op} | {r.median:.1f} | "
                         f"{min(times):.1f}-{max(times):.1f} | {rate:.0f} | {base / r.median:.2f}x | {cpu:.1f} | "
                         f"{reg} | {rss:.0f} MB |")
    lines += ["", "Interrupted and resumed (`kill -9` while the transfer runs, then the same command again; "
              "from the registry's request log):", ""]
    for _, resumes, _ in results:
        for r in resumes:
            lines.append(f"- {r.model}, {r.op}: {r.text}. {'As required.' if r.ok else '**Not as required.**'}")
    lines += ["", f"Regenerate with `.venv/bin/python bench/big_models.py --runs {runs} --write docs/benchmarks.md` "
              "(about 9 GiB free disk needed for the 4 GiB model)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=sorted(CASES), action="append")
    parser.add_argument("--work", type=Path, default=None, help="where to write (default: the temp dir)")
    parser.add_argument("--write", type=Path, help="replace the `## Big and many` section of this markdown file")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the models (a smoke run: --scale 0.05)")
    args = parser.parse_args()
    for tool in ("docker-registry", "sha256sum"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (scripts/install-system-deps.sh)")
    precompile()
    load_start = os.getloadavg()[0]
    results = []
    for key in args.only or list(CASES):
        with tempfile.TemporaryDirectory(prefix="llmctl-big-", dir=args.work) as tmp:
            results.append(run_case(key, args.runs, Path(tmp), args.scale))
    out = table(results, args.runs, (load_start, os.getloadavg()[0]))
    print(out)
    if args.write:
        write_section(args.write, out)


if __name__ == "__main__":
    main()
