"""Prefill/decode disaggregation through LMCache (`--kv-connector LMCacheConnectorV1`): what each engine and the
proxy that joins them need, as vLLM's and LMCache's own P/D examples set it up.

Sources (read for this module; the flag and key lists are pinned in data/plan/lmcache/):
- vllm-project/vllm examples/others/lmcache/disagg_prefill_lmcache_v1/: disagg_vllm_launcher.sh (kv-transfer-config,
  PYTHONHASHSEED), configs/lmcache-prefiller-config.yaml and lmcache-decoder-config.yaml (enable_pd, pd_role,
  transfer_channel nixl, pd_proxy_*, pd_peer_*, pd_buffer_*, nixl_backends), disagg_example_nixl.sh and
  disagg_proxy_server.py (the proxy's flags and its ZMQ "prefill done" socket).
- LMCache/LMCache lmcache/v1/config.py and config_base.py (every key is also read from LMCACHE_<KEY> when
  LMCACHE_CONFIG_FILE is unset; lists are comma-separated), lmcache/v1/storage_backend/pd_backend.py (the sender
  indexes the receiver's port lists by its own TP rank; the receiver binds pd_peer_host:pd_peer_*_port[rank]),
  examples/disagg_prefill/1p1d/disagg_vllm_launcher.sh (skip_last_n_tokens 1 on the decoder) and
  examples/disagg_prefill/xpyd/README.md (one init/alloc port per decoder TP rank).

Why the plan looks the way it does:
- The configuration travels as LMCACHE_* environment variables (LMCache's documented alternative to a YAML file):
  the same mechanism works for shell scripts, compose services and pod specs, and needs no extra file or ConfigMap.
- A prefill rank writes its KV slice to the decode rank with the same TP index and the proxy waits for one
  notification per decode rank, so both pools use one shape, on one node each (PP 1): the lmcache-* rules of
  data/plan/pd-rules.yaml, which the solver applies like any connector's.
- The P/D buffers (sender one sequence, receiver two, at least vLLM's example 1 and 2 GiB) live outside the pool vLLM
  sizes, so each role's --gpu-memory-utilization leaves room for its own buffer and the CUDA context.
- The proxy gives every decode instance the same init/alloc port list, except when all decoders share one host
  (then it adds the decoder's index to each port). Decoders therefore get ports 7300 + rank x N + i (N decoders on
  the host, i this one's index), and bare-host plans with several decoders per host on several hosts are refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from llmctl.errors import PlanError
from llmctl.plan import kv, memory
from llmctl.plan.memory import MemoryBreakdown, Shape
from llmctl.plan.profiles import GpuProfile, ModelProfile
from llmctl.plan.types import Plan, Step
from llmctl.plan.units import GiB, MiB, fmt_bytes

CONNECTOR = "LMCacheConnectorV1"

PROXY_SCRIPT = "disagg_proxy_server.py"
PROXY_SCRIPT_IN_IMAGE = "/vllm-workspace/examples/others/lmcache/disagg_prefill_lmcache_v1/disagg_proxy_server.py"
"""vLLM's copy of the proxy, as the vllm/vllm-openai image ships it (the image copies examples/ to /vllm-workspace).
It imports lmcache, which vLLM's image build installs with INSTALL_KV_CONNECTORS (requirements/kv_connectors.txt)."""

PD_PROXY_PORT = 7500
"""ZMQ PULL port where the proxy hears "prefill done" from every prefill rank (the examples' pd_proxy_port)."""
PD_PEER_INIT_BASE = 7300
"""NIXL handshake ports of the decoders' ranks (the examples' pd_peer_init_port)."""
PD_PEER_ALLOC_BASE = 7400
"""Buffer allocation (ZMQ REP) ports of the decoders' ranks (the examples' pd_peer_alloc_port)."""

SENDER_BUFFER_FLOOR = 1 * GiB
"""vLLM's prefiller config uses pd_buffer_size 1 GiB; never less, more when one sequence's KV slice is larger."""
RECEIVER_BUFFER_FLOOR = 2 * GiB
"""vLLM's decoder config uses pd_buffer_size 2 GiB."""
RECEIVER_SEQUENCES = 2
"""The receiver buffer holds transferred KV until decode picks it up: room for two full-length sequences."""
BUFFER_ALIGN = 256 * MiB
CUDA_CONTEXT_BYTES = 1 * GiB
"""Device memory kept for the CUDA context next to LMCache's P/D buffer, both outside the pool vLLM sizes."""


def is_pd(plan: Plan) -> bool:
    return plan.mode == "disaggregated" and plan.kv_connector == CONNECTOR


@dataclass(frozen=True)
class Buffers:
    """Per-GPU LMCache P/D buffer sizes (pd_buffer_size), from one max-length sequence's KV slice on one GPU."""

    sequence: int
    sender: int
    receiver: int

    def of(self, role: str) -> int:
        return self.sender if role == "prefill" else self.receiver


def gib(n: float) -> str:
    """Buffer sizes in binary units, as LMCache's example configs state them (1073741824 # 1GB)."""
    return f"{n / GiB:.2f} GiB"


def _align(n: float) -> int:
    return int(-(-n // BUFFER_ALIGN) * BUFFER_ALIGN)


def buffers_for(sequence_bytes: float) -> Buffers:
    """Sender: one sequence (at least 1 GiB); receiver: RECEIVER_SEQUENCES sequences (at least 2 GiB)."""
    seq = _align(sequence_bytes)
    return Buffers(seq, max(SENDER_BUFFER_FLOOR, seq), max(RECEIVER_BUFFER_FLOOR, RECEIVER_SEQUENCES * seq))


def buffers(mem: MemoryBreakdown) -> Buffers:
    return buffers_for(mem.kv_seq_bytes or mem.max_model_len * mem.kv_bytes_per_token)


def utilization(device_bytes: int, buffer: int) -> float:
    """A role's --gpu-memory-utilization: vLLM's default, unless the CUDA context and this role's buffer need more
    than the default leaves outside vLLM; then 1 - (context + buffer) / device, rounded down to 0.01. LMCache
    allocates the buffer outside the KV pool vLLM sizes, so the role that holds the larger buffer (the receiver)
    may get the smaller share."""
    share = math.floor((device_bytes - CUDA_CONTEXT_BYTES - buffer) / device_bytes * 100) / 100
    return min(memory.GPU_MEMORY_UTILIZATION, share)


def role_utilization(model: ModelProfile, gpu: GpuProfile, shape: Shape, kvdtype: str, max_len: int, role: str,
                     *, windowed: bool) -> float:
    """The share of device memory vLLM may use in a `role` instance of `shape`, its buffer kept outside."""
    seq = kv.sequence_bytes(model, shape.tp, shape.pp, kvdtype, max_len, windowed=windowed)
    return utilization(gpu.memory_bytes, buffers_for(seq).of(role))


def explain_steps(plan: Plan) -> list[Step]:
    """The hand-off, the buffer sizes and what each role keeps outside vLLM, for `--format explain`."""
    steps = [Step("pools", "KV hand-off", "LMCache (NIXL) via its P/D proxy",
                  "prefill rank r writes to decode rank r: both pools use one TP size, PP 1")]
    for role, floor, what in (("prefill", "1 GiB", "one sequence"),
                              ("decode", "2 GiB", f"{RECEIVER_SEQUENCES} sequences")):
        mem = plan.role(role).memory
        b = buffers(mem)
        seq = f"{mem.max_model_len:,} tokens x {fmt_bytes(mem.kv_bytes_per_token)} = {gib(b.sequence)}"
        steps.append(Step("pools", f"[{role}] LMCache buffer", f"{gib(b.of(role))} per GPU",
                          f"max({floor}, {what}; a sequence is {seq}); outside vLLM's pool: this role runs at "
                          f"gpu-memory-utilization {mem.utilization:.2f} (Memory per GPU)"))
    return steps


# -- engine side ------------------------------------------------------------------------------------------


def rpc_name(role: str, instance: int) -> str:
    """kv_connector_extra_config.lmcache_rpc_port: names LMCache's lookup socket, unique per instance on a host."""
    return f"{'producer' if role == 'prefill' else 'consumer'}{instance}"


def kv_extra_config(role: str, instance: int) -> dict[str, object]:
    """The decoder skips the last token in lookups: the proxy appends the prefiller's first token to the prompt."""
    extra: dict[str, object] = {"discard_partial_chunks": False, "lmcache_rpc_port": rpc_name(role, instance)}
    if role == "decode":
        extra["skip_last_n_tokens"] = 1
    return extra


def decoder_ports(tp: int, index: int = 0, count: int = 1) -> tuple[list[int], list[int]]:
    """(init ports, alloc ports), one per TP rank, of decoder `index` of `count` on one host."""
    init = [PD_PEER_INIT_BASE + r * count + index for r in range(tp)]
    alloc = [PD_PEER_ALLOC_BASE + r * count + index for r in range(tp)]
    return init, alloc


def _csv(values: Sequence[object]) -> str:
    return ",".join(str(v) for v in values)


def engine_env(plan: Plan, role: str, *, proxy_host: str, hash_seed: str, index: int = 0,
               count: int = 1) -> list[tuple[str, str]]:
    """LMCACHE_* variables (and PYTHONHASHSEED, which every LMCache process must share so chunk keys match) for
    one prefill (sender) or decode (receiver) instance."""
    b = buffers(plan.role(role).memory)
    env = [
        ("PYTHONHASHSEED", hash_seed),
        ("LMCACHE_LOCAL_CPU", "False"),
        ("LMCACHE_MAX_LOCAL_CPU_SIZE", "0"),
        ("LMCACHE_ENABLE_PD", "True"),
        ("LMCACHE_TRANSFER_CHANNEL", "nixl"),
        ("LMCACHE_NIXL_BACKENDS", "UCX"),
        ("LMCACHE_PD_BUFFER_DEVICE", "cuda"),
    ]
    if role == "prefill":
        return env + [("LMCACHE_PD_ROLE", "sender"), ("LMCACHE_PD_BUFFER_SIZE", str(b.sender)),
                      ("LMCACHE_PD_PROXY_HOST", proxy_host), ("LMCACHE_PD_PROXY_PORT", str(PD_PROXY_PORT))]
    init, alloc = decoder_ports(plan.role("decode").shape.tp, index, count)
    return env + [("LMCACHE_PD_ROLE", "receiver"), ("LMCACHE_PD_BUFFER_SIZE", str(b.receiver)),
                  ("LMCACHE_PD_PEER_HOST", "0.0.0.0"), ("LMCACHE_PD_PEER_INIT_PORT", _csv(init)),
                  ("LMCACHE_PD_PEER_ALLOC_PORT", _csv(alloc))]


def decoder_slots(hosts: Sequence[str]) -> list[tuple[int, int]]:
    """(index on its host, decoders on that host) for decoders on `hosts`, refusing what the proxy cannot address:
    several decoders per host when decoders also span hosts."""
    counts = {h: hosts.count(h) for h in hosts}
    if len(counts) > 1 and max(counts.values()) > 1:
        raise PlanError(
            "LMCache's P/D proxy gives decoders on different hosts the same ports, so it cannot address "
            f"{max(counts.values())} decode instances on one host when decoders span {len(counts)} hosts",
            hint="use --format lws or rbg (one pod per instance), a plan whose decoders fit one node, "
                 "or --kv-connector NixlConnector",
        )
    seen: dict[str, int] = {}
    out = []
    for h in hosts:
        out.append((seen.get(h, 0), counts[h]))
        seen[h] = seen.get(h, 0) + 1
    return out


# -- the proxy ---------------------------------------------------------------------------------------------


def proxy_argv(prefill: Sequence[tuple[str, int]], decode: Sequence[tuple[str, int]], tp: int, *,
               script: str = PROXY_SCRIPT, port: int = 8000) -> list[str]:
    """The proxy for these (host, HTTP port) instances. All decoders on one host: the proxy's incremental mode
    (one host, the first port, --num-decoders N; it adds i to the ports). Otherwise one entry per decoder."""
    dec_hosts = [h for h, _ in decode]
    if len(decode) > 1 and len(set(dec_hosts)) == 1:
        hosts, ports = [dec_hosts[0]], [decode[0][1]]
        init, alloc = decoder_ports(tp, 0, len(decode))
    else:
        hosts, ports = dec_hosts, [p for _, p in decode]
        init, alloc = decoder_ports(tp)
    return [
        "python3", script, "--host", "0.0.0.0", "--port", str(port),
        "--prefiller-host", _csv([h for h, _ in prefill]), "--prefiller-port", _csv([p for _, p in prefill]),
        "--num-prefillers", str(len(prefill)),
        "--decoder-host", _csv(hosts), "--decoder-port", _csv(ports), "--num-decoders", str(len(decode)),
        "--decoder-init-port", _csv(init), "--decoder-alloc-port", _csv(alloc),
        "--proxy-host", "0.0.0.0", "--proxy-port", str(PD_PROXY_PORT),
    ]


@dataclass(frozen=True)
class ProxyView:
    """What the proxy will do with its arguments, re-derived the way its lifespan() pairs hosts and ports."""

    prefill: list[tuple[str, int]]
    decode: list[tuple[str, int, list[int], list[int]]]  # host, HTTP port, init ports, alloc ports
    proxy_port: int | None


def _pair(hosts: list[str], ports: list[int], count: int) -> list[tuple[str, int]]:
    """disagg_proxy_server.py pair_hosts_and_ports."""
    if len(hosts) == 1 and len(ports) == 1:
        return [(hosts[0], ports[0] + i) for i in range(max(count, 1))]
    if len(hosts) == 1:
        return [(hosts[0], p) for p in ports]
    if len(ports) == 1:
        return [(h, ports[0]) for h in hosts]
    if len(hosts) != len(ports):
        raise ValueError("--prefiller/--decoder host and port lists differ in length")
    return list(zip(hosts, ports, strict=True))


def proxy_view(values: dict[str, str]) -> ProxyView:
    """`values` maps proxy flags to their (single) argument; ValueError when the proxy would reject them."""
    def ints(flag: str, default: str) -> list[int]:
        return [int(x) for x in values.get(flag, default).split(",")]

    def strs(flag: str) -> list[str]:
        return [x.strip() for x in values.get(flag, "localhost").split(",")]

    n_pre, n_dec = int(values.get("--num-prefillers", "1")), int(values.get("--num-decoders", "1"))
    prefill = _pair(strs("--prefiller-host"), ints("--prefiller-port", "8100"), n_pre)
    dec_hosts, dec_ports = strs("--decoder-host"), ints("--decoder-port", "8200")
    init, alloc = ints("--decoder-init-port", "8300"), ints("--decoder-alloc-port", "8400")
    incremental = len(dec_hosts) == 1 and len(dec_ports) == 1 and n_dec > 1
    decode = [(h, p, [x + i for x in init] if incremental else init, [x + i for x in alloc] if incremental else alloc)
              for i, (h, p) in enumerate(_pair(dec_hosts, dec_ports, n_dec))]
    port = values.get("--proxy-port")
    return ProxyView(prefill, decode, int(port) if port else None)
