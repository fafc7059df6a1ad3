"""`--format shell`: one bash script per node, plus router.sh for plans with a router.

Nodes find each other through NODE<n>_ADDR variables the operator sets (an address every node can reach,
e.g. the InfiniBand IP), and LMCache P/D scripts ROUTER_ADDR (where router.sh runs); each script refuses to
start without the ones it uses.
"""

from __future__ import annotations

import re
import shlex

from llmctl.errors import PlanError
from llmctl.plan import lmcache
from llmctl.plan.launch import Proc, processes
from llmctl.plan.render_common import (
    RenderedFile,
    RenderOptions,
    header_lines,
    model_weights,
    served_plan,
    with_hash_seed,
)
from llmctl.plan.types import ENGINE_VERSIONS, ROUTER_VERSIONS, Plan
from llmctl.plan.weights import Weights

_ADDR = re.compile(r"\$\{(NODE\d+_ADDR)\}")
ROUTER_ADDR = "${ROUTER_ADDR}"
"""Where router.sh runs, as the nodes reach it: LMCache prefillers report finished transfers to its proxy."""


MODELS_DIR = "${MODELS_DIR}"
MODELS_DIR_DEFAULT = "/var/lib/llmctl/models"
"""`oci:` weights on bare hosts: each node exports the model here (MODELS_DIR overrides) before its engines start."""

ENV_PER_LINE = 3
"""Up to this many VAR=value words stay on the command's first line; more get a line each."""


def node_addr(node: int) -> str:
    return f"${{NODE{node}_ADDR}}"


def quote(token: str) -> str:
    """shlex quoting, except that ${NODEn_ADDR} stays expandable (double quotes)."""
    if "${" in token:
        return '"' + token.replace('"', '\\"') + '"'
    return shlex.quote(token)


def command_text(
    argv: tuple[str, ...], env: tuple[tuple[str, str], ...] = (), *, suffix: str = "", exec_: bool = False
) -> str:
    """One command over several lines: env words and the program first, then one flag (and its values) per line."""
    words = [f"{k}={quote(v)}" for k, v in env]
    head_end = 3 if argv[:1] == ("vllm",) or argv[:2] == ("python3", "-m") else 2 if argv[0].startswith("python") else 1
    head = (["exec"] if exec_ else []) + [quote(a) for a in argv[:head_end]]
    if len(words) > ENV_PER_LINE:  # a long environment (LMCache P/D): one variable per line
        lines = [words[0]] + ["  " + w for w in words[1:]] + ["  " + " ".join(head)]
    else:
        lines = [" ".join(words + head)]
    current: list[str] = []
    for tok in argv[head_end:]:
        if tok.startswith("-") and current:
            lines.append("  " + " ".join(current))
            current = []
        current.append(quote(tok))
    if current:
        lines.append("  " + " ".join(current))
    text = " \\\n".join(lines)
    return text + suffix


def _addr_checks(texts: list[str]) -> list[str]:
    names = sorted({m.group(1) for t in texts for m in _ADDR.finditer(t)}, key=lambda s: int(s[4:-5]))
    checks = [f': "${{{n}:?set {n} to the address of node {n[4:-5]}}}"' for n in names]
    if any(ROUTER_ADDR in t for t in texts):
        checks.append(': "${ROUTER_ADDR:?set ROUTER_ADDR to the address of the host that runs router.sh}"')
    return checks


def _weights_lines(weights: Weights, opts: RenderOptions) -> list[str]:
    """`oci:` weights: the folder comes from the registry before the engines start (skipped when present:
    `llmctl export` renames only complete folders into place)."""
    if weights.kind != "oci":
        return []
    folder = f"{MODELS_DIR}/{weights.dir_name}"
    env = "".join(f"{k}={quote(v)} " for k, v in opts.export_env.items())
    return [f'MODELS_DIR="${{MODELS_DIR:-{MODELS_DIR_DEFAULT}}}"',
            f"test -d {quote(folder)} || {env}llmctl export {quote(weights.ref)} {quote(folder)}"]


def _script(title: str, procs: list[Proc], plan: Plan, notes: list[str], before: list[str] | None = None) -> str:
    body: list[str] = list(before or [])
    single = len(procs) == 1
    for p in procs:
        body.append(f"# {p.name}: {p.role}" + (f", GPUs {','.join(map(str, p.gpu_ids))}" if p.gpu_ids else "")
                    + (f", HTTP :{p.port}" if p.port else ""))
        for cmd in p.before:
            body.append(command_text(cmd))
        if single:
            body.append(command_text(p.argv, p.env, exec_=True))
        else:
            body.append(command_text(p.argv, p.env, suffix=" &"))
    if not single:
        body.append("wait")
    head = ["#!/usr/bin/env bash", f"# {title}"] + [f"# {line}" for line in header_lines(plan) + notes]
    checks = _addr_checks(body)
    return "\n".join(head + ["set -euo pipefail"] + checks + [""] + body) + "\n"


def shell_weights(plan: Plan, opts: RenderOptions) -> tuple[Weights, str]:
    """(the weights, what `vllm serve` loads on the nodes): a Hugging Face id, or an exported folder."""
    weights = model_weights(plan, opts)
    if weights.kind == "pvc":
        raise PlanError("pvc: weights are a Kubernetes volume; bare hosts cannot mount a PersistentVolumeClaim",
                        hint="use --model-source hf:ID or oci:REF, or --format lws, rbg or disaggregatedset")
    return weights, (f"{MODELS_DIR}/{weights.dir_name}" if weights.kind == "oci" else weights.folder)


def render_shell(plan: Plan, opts: RenderOptions | None = None) -> list[RenderedFile]:
    opts = with_hash_seed(plan, opts or RenderOptions())
    weights, model = shell_weights(plan, opts)
    plan = served_plan(plan, model)
    procs = processes(plan, node_addr, router_addr=ROUTER_ADDR, hash_seed=opts.hash_seed or "0")
    files = []
    for node in range(plan.nodes):
        mine = [p for p in procs if p.node == node and p.role != "router"]
        if not mine:
            continue
        title = f"node {node} of {plan.nodes}: run on the host whose address is NODE{node}_ADDR"
        notes = ["Export NODE<n>_ADDR for every node before running (addresses the nodes reach each other at)."]
        if lmcache.is_pd(plan):
            notes.append("Export ROUTER_ADDR too: LMCache prefillers notify the proxy in router.sh at that address.")
        if weights.kind == "oci":
            notes.append(f"Weights: llmctl exports {weights.ref} into $MODELS_DIR (default {MODELS_DIR_DEFAULT}) "
                         "first; `llmctl login` the registry on every node.")
        files.append(RenderedFile(f"node-{node}.sh", _script(title, mine, plan, notes, _weights_lines(weights, opts)),
                                  executable=True))
    routers = [p for p in procs if p.role == "router"]
    if routers:
        if lmcache.is_pd(plan):
            notes = [(f"LMCache's P/D proxy: needs {lmcache.PROXY_SCRIPT} from vLLM v{ENGINE_VERSIONS['vllm']} "
                      "(examples/others/lmcache/disagg_prefill_lmcache_v1/) in the working directory and `pip install "
                      f"lmcache`; clients connect to this host on port {routers[0].port}, prefillers report to port "
                      f"{lmcache.PD_PROXY_PORT}.")]
        else:
            pkg = "vllm-router" if plan.engine == "vllm" else "sglang-router"
            notes = [(f"Needs `pip install {pkg}=={ROUTER_VERSIONS[plan.engine]}`; clients connect to this host on "
                      f"port {routers[0].port}.")]
        files.append(RenderedFile("router.sh", _script("router: the one endpoint clients use", routers, plan, notes),
                                  executable=True))
    return files
