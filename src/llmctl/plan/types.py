"""The planner's value types: what is asked (`PlanRequest`), what comes out (`Plan`), and the parts between.

Plain frozen dataclasses so plans compare, hash and serialise (`Plan.to_dict`) without surprises; renderers
and validators read them and never change them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from llmctl.plan.memory import MemoryBreakdown, Shape
from llmctl.plan.perf import DecodeStep, PerfModelFactory, Prefill
from llmctl.plan.perf_measured import MeasuredFactory
from llmctl.plan.profiles import GpuProfile, ModelProfile

ENGINES = ("vllm", "sglang")
DISAGGREGATE = ("auto", "on", "off")
EXECUTORS = ("mp", "ray")
DTYPES = ("bf16", "fp8")

ENGINE_VERSIONS = {"vllm": "0.33.0", "sglang": "0.5.23"}
"""The engine versions whose flag lists are pinned in data/plan; rendered images use the same tags."""

DEFAULT_IMAGES = {"vllm": "vllm/vllm-openai:v0.33.0", "sglang": "lmsysorg/sglang:v0.5.23"}
"""Engine images at the pinned versions (`--image` overrides). vllm/vllm-openai:v<version> is vLLM's release image
(the tag scheme of the LWS vLLM example, vllm/vllm-openai:v0.8.5); lmsysorg/sglang:v<version> is the multi-arch tag
sgl-project/sglang's release workflow publishes (tag_config "v{version}"; RBG's P/D example names
lmsysorg/sglang:v0.5.9-cu124). Tags follow those schemes; their presence on Docker Hub was not checked offline."""

ROUTER_VERSIONS = {"vllm": "0.1.17", "sglang": "0.3.2"}
"""vllm-router (vllm-project/router) and sglang-router versions whose flag lists are pinned."""


@dataclass(frozen=True)
class Workload:
    """Traffic the plan is sized for. SLOs in seconds; `rate` in requests per second."""

    isl: int = 2048
    osl: int = 256
    rate: float | None = None
    ttft_slo: float | None = None
    tpot_slo: float | None = None

    @property
    def decode_context(self) -> float:
        """Average context a decode step attends over: the prompt plus half the output."""
        return self.isl + self.osl / 2


@dataclass(frozen=True)
class PlanRequest:
    model: ModelProfile
    gpu: GpuProfile
    gpus_per_node: int
    workload: Workload
    nodes: int | None = None  # exactly this many nodes
    max_nodes: int = 8  # at most this many (ignored when nodes is set)
    dtype: str | None = None  # None: the checkpoint's own dtype
    disaggregate: str = "auto"
    engine: str = "vllm"
    kv_connector: str | None = None
    tp: int | None = None
    pp: int | None = None
    executor: str = "mp"
    prefill_tp: int | None = None  # P/D: the prefill pool's TP (attention TP of a DP group); None: --tp or searched
    decode_tp: int | None = None  # P/D: the decode pool's
    perf_model: PerfModelFactory | None = None  # a measured profile's speed model; None: the roofline

    @property
    def node_budget(self) -> int:
        return self.nodes if self.nodes is not None else self.max_nodes


@dataclass(frozen=True)
class OperatingPoint:
    """Where one instance of a role runs at the planned load (or at capacity when no rate was given)."""

    rate: float  # requests/s into one instance
    batch: float  # concurrent decoding sequences (Little's law)
    ttft: float
    tpot: float
    utilization: float  # prefill busy fraction


@dataclass(frozen=True)
class Role:
    """One pool of identical engine instances: `serve` (aggregated), `prefill` or `decode`."""

    name: str
    shape: Shape
    instances: int
    nodes_per_instance: int
    memory: MemoryBreakdown
    max_num_seqs: int
    capacity_rps: float  # per instance, within the SLOs
    batch_at_capacity: float  # average concurrent sequences at capacity (< 1 at light load)
    prefill: Prefill
    decode_capacity: DecodeStep  # decode step at batch_at_capacity
    decode_idle: DecodeStep  # decode step at batch 1
    op: OperatingPoint
    kv_transfer: float = 0.0  # prefill → decode hand-off (disaggregated)
    expert_parallel: bool = False
    stall: float = 0.0  # aggregated: inter-token gap of a decode step that carries a prefill chunk

    @property
    def gpus(self) -> int:
        return self.instances * self.shape.gpus


@dataclass(frozen=True)
class Placement:
    """One instance's GPUs on one node: instances spanning nodes have one placement per node."""

    node: int
    role: str
    instance: int
    node_rank: int  # 0 is the instance's head (serves HTTP)
    nnodes: int  # nodes this instance spans
    gpu_ids: tuple[int, ...]


@dataclass(frozen=True)
class Decision:
    """Aggregated versus disaggregated: what each would cost and why one was chosen."""

    mode: str
    reason: str
    aggregated_gpus: int | None = None
    disaggregated_gpus: int | None = None


@dataclass(frozen=True)
class Expected:
    ttft: float
    tpot: float
    requests_per_s: float  # planned load, or capacity when no rate was given
    output_tokens_per_s: float
    capacity_rps: float  # the most the plan serves within its SLOs


@dataclass(frozen=True)
class Step:
    """One line of `--format explain`: a number, its value and the formula that produced it."""

    topic: str
    label: str
    value: str
    formula: str = ""


@dataclass(frozen=True)
class Plan:
    request: PlanRequest
    mode: str  # aggregated | disaggregated
    roles: tuple[Role, ...]
    placements: tuple[Placement, ...]
    nodes: int
    weight_dtype: str
    kv_dtype: str
    max_model_len: int
    kv_connector: str | None
    decision: Decision
    expected: Expected
    steps: tuple[Step, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def gpus(self) -> int:
        return sum(r.gpus for r in self.roles)

    @property
    def engine(self) -> str:
        return self.request.engine

    @property
    def engine_version(self) -> str:
        return ENGINE_VERSIONS[self.request.engine]

    def role(self, name: str) -> Role:
        for r in self.roles:
            if r.name == name:
                return r
        raise KeyError(name)

    def has_role(self, name: str) -> bool:
        return any(r.name == name for r in self.roles)

    def placements_of(self, role: str, instance: int) -> list[Placement]:
        return sorted(
            (p for p in self.placements if p.role == role and p.instance == instance), key=lambda p: p.node_rank
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the request, the chosen parallelism, per-role numbers and the reasoning steps."""
        req = self.request
        m = req.model

        def clean(x: Any) -> Any:
            if isinstance(x, float):
                return None if math.isinf(x) or math.isnan(x) else round(x, 6)
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            return x

        roles = []
        for r in self.roles:
            d = asdict(r)
            d["shape"] = {"tp": r.shape.tp, "pp": r.shape.pp, "dp": r.shape.dp, "ep": r.shape.ep_size,
                          "gpus": r.shape.gpus}
            d["gpus"] = r.gpus
            roles.append(d)
        out = {
            "model": _model_dict(m),
            "gpu": {"name": req.gpu.name, "memory_bytes": req.gpu.memory_bytes, "gpus_per_node": req.gpus_per_node},
            "workload": asdict(req.workload),
            "engine": {"name": req.engine, "version": self.engine_version, "executor": req.executor},
            "mode": self.mode,
            "decision": asdict(self.decision),
            "weight_dtype": self.weight_dtype,
            "kv_dtype": self.kv_dtype,
            "kv_connector": self.kv_connector,
            "max_model_len": self.max_model_len,
            "nodes": self.nodes,
            "gpus": self.gpus,
            "roles": roles,
            "placements": [asdict(p) for p in self.placements],
            "expected": asdict(self.expected),
            "steps": [asdict(s) for s in self.steps],
            "notes": list(self.notes),
        }
        if isinstance(req.perf_model, MeasuredFactory):  # only with --profile: other plans keep their exact JSON
            out["measured"] = req.perf_model.to_json()
        return clean(out)


def _model_dict(m: ModelProfile) -> dict[str, Any]:
    pc = m.params()
    return {
        "name": m.name,
        "serve_id": m.serve_id,
        "source": m.source,
        "architecture": m.architecture,
        "layers": m.num_layers,
        "hidden_size": m.hidden_size,
        "attention_heads": m.num_attention_heads,
        "kv_heads": m.num_kv_heads,
        "head_dim": m.head_dim,
        "vocab_size": m.vocab_size,
        "experts": m.num_experts,
        "experts_per_token": m.experts_per_token,
        "mla": m.is_mla,
        "parameters": pc.total,
        "active_parameters": pc.active,
        "native_dtype": m.native_dtype,
        "quantization": {"method": m.quant.method, "weight_bits": m.quant.weight_bits, "scope": m.quant.scope,
                         "activations": m.quant.act, "declared": m.quant.declared},
        "sliding_window": m.sliding_window,
        "sliding_layers": m.sliding_layers,
    }
