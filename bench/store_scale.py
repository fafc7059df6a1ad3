"""Store-scale benchmark: `list`, `show`, `rm`, `prune` and `df` on a store holding hundreds of models.

    .venv/bin/python bench/store_scale.py [--models 500] [--runs 5] [--write docs/benchmarks.md]

`populate()` builds the store through the real store API (`artifact.ingest.commit_model`, the path
`package` and `create` take): families of models that share weights, one license shared by all, a chat
template per family, and per-model parameters and system prompts, some models under two names. Every
command is timed twice: in-process (the `api.manage` call alone) and as users run it (`llmctl ...` in a
fresh process, start-up included), so the table says which part is start-up. `df` is checked against a
brute-force count of the same store. With `--write`, the table replaces the `## Store scale` section.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import instructions, precompile, realtime, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
LLMCTL = str(Path(PY).with_name("llmctl"))
GOAL_S = 0.3


@dataclass(frozen=True)
class Populated:
    names: list[str]  # every tag, short form
    families: int
    blobs: int


def populate(home: Path, models: int = 500, *, family_size: int = 10, weights_kb: int = 256,
             seed: int = 0) -> Populated:
    """`models` tagged models in `home`'s store, sharing blobs the way real stores do.

    Models come in families of `family_size` sharing one weights blob and one chat template (what
    `create` FROM a base model gives); all share one license; each has its own parameters and, every other
    one, a system prompt. Every tenth model gets a second name for the same manifest.
    """
    from llmctl.artifact.build import ConfigFacts
    from llmctl.artifact.ingest import commit_model, ingest_text
    from llmctl.oci import mediatypes as mt
    from llmctl.oci.reference import parse
    from llmctl.oci.layout import Store

    rng = random.Random(seed)
    store = Store(home / "store").init()
    license_layer = ingest_text(store, "Apache License 2.0 (bench)\n" * 40, mt.LICENSE)
    names: list[str] = []
    families = (models + family_size - 1) // family_size
    with store.writing():
        for fam in range(families):
            weights = ingest_text(store, rng.randbytes(weights_kb * 1024), mt.GGUF)
            template = ingest_text(store, f"{{{{ .System }}}} family {fam} {{{{ .Prompt }}}}", mt.TEMPLATE)
            for i in range(fam * family_size, min(models, (fam + 1) * family_size)):
                layers = [weights, license_layer, template,
                          ingest_text(store, json.dumps({"temperature": round(rng.random(), 3), "seed": i}),
                                      mt.PARAMS)]
                if i % 2:
                    layers.append(ingest_text(store, f"You are assistant number {i}.", mt.SYSTEM))
                facts = ConfigFacts(architecture="llama", parameters="8B", quantization="Q4_K_M",
                                    context_size=8192)
                name = f"team{fam % 7}/model-{i}:v{i % 3}"
                refs = [parse(name)]
                if i % 10 == 0:
                    refs.append(parse(f"alias/model-{i}:latest"))
                commit_model(store, refs, layers, facts, created="2026-01-01T00:00:00Z")
                names += [r.short() for r in refs]
    blobs = sum(1 for _ in store.blob_files())
    return Populated(names, families, blobs)


def brute_force_df(home: Path) -> dict[str, int]:
    """What `df` must say, counted the slow, obvious way: every tag's manifest and blobs, every file."""
    from llmctl.oci.descriptor import Manifest

    root = home / "store"
    index = json.loads((root / "index.json").read_bytes())
    users: dict[str, set[str]] = {}
    for entry in index["manifests"]:
        name = entry["annotations"]["org.opencontainers.image.ref.name"]
        manifest = Manifest.from_bytes((root / "blobs/sha256" / entry["digest"][7:]).read_bytes())
        for digest in {entry["digest"], *(b.digest for b in manifest.blobs())}:
            users.setdefault(digest, set()).add(name)
    sizes = {"sha256:" + p.name: p.stat().st_size for p in (root / "blobs/sha256").iterdir()}
    shared = sum(sizes[d] for d, u in users.items() if len(u) > 1)
    orphans = sum(s for d, s in sizes.items() if d not in users)
    return {"models": len(index["manifests"]), "total_bytes": sum(sizes.values()), "shared_bytes": shared,
            "unique_bytes": sum(sizes.values()) - shared - orphans, "reclaimable_bytes": orphans}


# -- timing -----------------------------------------------------------------------------------------
def cli_seconds(home: Path, *args: str, rt: bool = False) -> float:
    env = {**os.environ, "LLMCTL_HOME": str(home), "LLMCTL_OFFLINE": "1"}
    t = time.perf_counter()
    proc = subprocess.run(realtime([LLMCTL, *args], rt), env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"llmctl {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return dt


def api_code(home: Path, call: str | None, as_list: bool = False) -> str:
    """A script that imports api.manage, times `manage.CALL(settings, *argv)` and prints the seconds."""
    argv = "[sys.argv[1:]]" if as_list else "sys.argv[1:]"
    return (
        "import sys, time\n"
        "from llmctl.settings import Settings\n"
        "from llmctl.api import manage\n"
        f"s = Settings.from_env({{'LLMCTL_HOME': {str(home)!r}, 'LLMCTL_OFFLINE': '1'}})\n"
        "t = time.perf_counter()\n"
        + (f"r = manage.{call}(s, *{argv})\n" if call else "")
        + "print(time.perf_counter() - t)\n"
    )


def api_seconds(home: Path, call: str, *args: str, as_list: bool = False, rt: bool = False) -> float:
    """The api.manage call alone, in a fresh process (imports excluded, a cold Python object cache)."""
    proc = subprocess.run(realtime([PY, "-c", api_code(home, call, as_list), *args], rt), capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"manage.{call} failed: {proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def startup_seconds(rt: bool = False) -> float:
    t = time.perf_counter()
    subprocess.run(realtime([LLMCTL, "--version"], rt), capture_output=True, check=True)
    return time.perf_counter() - t


def api_instructions(home: Path, calls: dict[str, tuple[str, list[str], bool]]) -> dict[str, float]:
    """Instructions (millions) each api.manage call executes on this store, load-independent: the script
    under callgrind, minus the same script without the call (interpreter, imports, exit). `rm` runs on a
    copy of the store."""
    base = instructions([PY, "-c", api_code(home, None)])
    out: dict[str, float] = {}
    for label, (call, args, as_list) in calls.items():
        target = home
        if call == "remove":
            target = home.with_name(home.name + "-rm")
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(home, target)
        n = instructions([PY, "-c", api_code(target, call, as_list), *args])
        if target != home:
            shutil.rmtree(target)
        if n is None or base is None:
            return {}
        out[label] = (n - base) / 1e6
    return out


def cli_instructions(home: Path, work: Path, names: list[str]) -> dict[str, float]:
    """Instructions (millions) of each CLI command as users run it, and of `--version` and `python -c pass`:
    what the wall times above would be on an idle machine, whatever the load."""
    env = {**os.environ, "LLMCTL_HOME": str(home), "LLMCTL_OFFLINE": "1"}
    victim = next(n for n in names if not n.startswith("alias/"))
    copy = work / "home-cli-rm"
    shutil.copytree(home, copy)
    commands = {"python -c pass": [PY, "-c", "pass"], "--version": [LLMCTL, "--version"], "list": [LLMCTL, "list"],
                "show": [LLMCTL, "show", names[0]], "df": [LLMCTL, "df"], "prune": [LLMCTL, "prune"]}
    out = {k: instructions(cmd, env) for k, cmd in commands.items()}
    out["rm"] = instructions([LLMCTL, "rm", victim], {**env, "LLMCTL_HOME": str(copy)})
    shutil.rmtree(copy)
    return {k: v / 1e6 for k, v in out.items() if v is not None}


def scaling(work: Path, models: int, names: list[str]) -> dict[str, tuple[float, float]]:
    """Instructions of each call on this store and on one twice its size: linear growth doubles them, a
    models x blobs walk would quadruple them."""
    calls = {"list": ("list_models", [], False), "show": ("show", [names[0]], False),
             "df": ("disk_usage", [], False), "rm": ("remove", [names[1]], True), "prune": ("prune", [], False)}
    small = api_instructions(work / "home", calls)
    big_home = work / "home-2x"
    populate(big_home, 2 * models)
    big = api_instructions(big_home, calls)
    shutil.rmtree(big_home)
    return {k: (small[k], big[k]) for k in small if k in big}


@dataclass
class Row:
    command: str
    api: list[float]
    cli: list[float]
    note: str = ""


def run(models: int, runs: int, work: Path, rt: bool = False) -> tuple[list[Row], dict]:
    load_start = os.getloadavg()[0]
    home = work / "home"
    t = time.perf_counter()
    populated = populate(home, models)
    build_s = time.perf_counter() - t
    expected = brute_force_df(home)
    env = {**os.environ, "LLMCTL_HOME": str(home)}
    got = json.loads(subprocess.run([LLMCTL, "df", "--json"], env=env, capture_output=True, text=True,
                                    check=True).stdout)
    df_ok = all(got[k] == v for k, v in expected.items())
    if not df_ok:
        raise RuntimeError(f"df disagrees with the brute-force count: {got} vs {expected}")

    rows = [Row("list", [], []), Row("show", [], []), Row("df", [], []), Row("rm", [], []),
            Row("prune", [], [])]
    by = {r.command: r for r in rows}
    rng = random.Random(1)
    cli_seconds_, api_seconds_ = partial(cli_seconds, rt=rt), partial(api_seconds, rt=rt)
    start = [startup_seconds(rt) for _ in range(runs)]
    for _ in range(runs):
        by["list"].api.append(api_seconds_(home, "list_models"))
        by["list"].cli.append(cli_seconds_(home, "list"))
        name = rng.choice(populated.names)
        by["show"].api.append(api_seconds_(home, "show", name))
        by["show"].cli.append(cli_seconds_(home, "show", name))
        by["df"].api.append(api_seconds_(home, "disk_usage"))
        by["df"].cli.append(cli_seconds_(home, "df"))
        # rm one model (its unique blobs are collected), then put the store back for the next run
        victim = rng.choice([n for n in populated.names if not n.startswith("alias/")])
        snapshot = work / "snapshot"
        shutil.copytree(home, snapshot)
        by["rm"].api.append(api_seconds_(home, "remove", victim, as_list=True))
        shutil.rmtree(home)
        shutil.copytree(snapshot, home)
        by["rm"].cli.append(cli_seconds_(home, "rm", victim))
        shutil.rmtree(home)
        snapshot.rename(home)
        by["prune"].api.append(api_seconds_(home, "prune"))
        by["prune"].cli.append(cli_seconds_(home, "prune"))
    facts: dict = {
        "cli_instructions": cli_instructions(home, work, populated.names),
        "scaling": scaling(work, models, [n for n in populated.names if not n.startswith("alias/")]),
        "models": str(len(populated.names)), "manifests": str(models), "blobs": str(populated.blobs),
        "families": str(populated.families), "build_s": f"{build_s:.1f}",
        "startup": f"{statistics.median(start):.3f}", "df_ok": "yes" if df_ok else "NO",
        "realtime": rt, "load_start": f"{load_start:.1f}", "load": f"{os.getloadavg()[0]:.1f}", "cpus": str(os.cpu_count()),
        "index_kb": f"{(home / 'store/index.json').stat().st_size / 1024:.0f}",
    }
    return rows, facts


def table(rows: list[Row], facts: dict, runs: int) -> str:
    lines = [
        "## Store scale",
        "",
        f"`bench/store_scale.py` ({runs} runs, median): a store of {facts['models']} tags over {facts['manifests']} "
        f"manifests and {facts['blobs']} blobs ({facts['families']} families of models sharing weights and a chat "
        f"template, one license shared by all, every tenth model under two names; `index.json` "
        f"{facts['index_kb']} KB), built through the store API in {facts['build_s']} s. `api` is the `api.manage` "
        "call alone; `CLI` is `llmctl ...` in a fresh process as a user runs it; `llmctl --version` (start-up "
        f"alone) took {facts['startup']} s. `df --json` matched a brute-force count of the same store: "
        f"{facts['df_ok']}. {facts['cpus']} cores, load average {facts['load_start']} at the start and "
        f"{facts['load']} at the end (other work shares the machine"
        + ("; every timed command ran under SCHED_FIFO, `chrt -f 1`, so that load could not preempt it)."
           if facts.get("realtime") else ")."),
        "",
        f"| command | api (s) | CLI (s) | CLI − start-up (s) | CLI, M instructions | goal ≤ {GOAL_S} s (CLI) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    start = float(facts["startup"])
    counts = facts.get("cli_instructions") or {}
    for r in rows:
        api, cli = statistics.median(r.api), statistics.median(r.cli)
        n = f"{counts[r.command]:.0f}" if r.command in counts else "-"
        lines.append(f"| `{r.command}` | {api:.3f} | {cli:.3f} | {cli - start:.3f} | {n} | "
                     f"{'met' if cli <= GOAL_S else 'not met'} |")
    if counts.get("--version") and counts.get("python -c pass"):
        lines += ["", f"Instructions (valgrind's callgrind) do not move with the load: `python -c pass` executes "
                  f"{counts['python -c pass']:.0f} M, `llmctl --version` {counts['--version']:.0f} M. Commands the "
                  "CLI's fast dispatcher serves (`--version`, `list`, `show`) skip typer; the others build the typer "
                  "app, which is most of what separates their CLI time from their api time."]
    if facts.get("scaling"):
        lines += ["", f"No walk grows faster than the store: instructions each `api.manage` call executes "
                  f"(valgrind's callgrind, millions; imports and exit subtracted) on this store and on one of "
                  f"{2 * int(facts['manifests'])} manifests built the same way:", "",
                  "| command | this store | twice the models | ratio |", "|---|---:|---:|---:|"]
        for command, (one, two) in facts["scaling"].items():
            lines.append(f"| `{command}` | {one:.1f} | {two:.1f} | {two / one:.2f}x |")
    lines += ["", "Regenerate with `.venv/bin/python bench/store_scale.py --runs "
              f"{runs}{' --realtime' if facts.get('realtime') else ''} --write docs/benchmarks.md`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", type=Path, help="replace the `## Store scale` section of this markdown file")
    parser.add_argument("--realtime", action="store_true", help="time every command under chrt -f 1 (root)")
    args = parser.parse_args()
    precompile()
    with tempfile.TemporaryDirectory(prefix="llmctl-store-") as tmp:
        rows, facts = run(args.models, args.runs, Path(tmp), args.realtime)
    out = table(rows, facts, args.runs)
    print(out)
    if args.write:
        write_section(args.write, out)


if __name__ == "__main__":
    main()
