"""Settings read from the environment once, then passed down.

Modelled on Ollama's envconfig: one place that knows the variable names, so deep code never calls
`os.environ` and tests build a `Settings` for a temporary home instead of patching globals.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

DEFAULT_REGISTRY = "docker.io"
DEFAULT_NAMESPACE = "library"
KIB, MIB, GIB = 1024, 1024**2, 1024**3
_SIZE_UNITS = {"": 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB, "g": GIB, "gb": GIB,
               "gib": GIB, "t": 1024 * GIB, "tb": 1024 * GIB, "tib": 1024 * GIB}


@dataclass(frozen=True)
class ServeLimits:
    """What `llmctl serve` accepts from a client, each bound an environment variable (docs/serve.md, Security).

    Browsers: `origins` (LLMCTL_ORIGINS, added to Ollama's defaults) may call the API cross-origin; `allowed_hosts`
    (LLMCTL_ALLOWED_HOSTS) are Host names accepted on loopback besides localhost and IP literals (DNS rebinding).
    Sizes are bytes, times seconds. Zero for `max_blob_size` means "no cap but the free disk".
    """

    origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_body: int = 32 * MIB  # LLMCTL_MAX_BODY: a JSON request body; larger is 413
    max_header_bytes: int = 64 * KIB  # LLMCTL_MAX_HEADER_SIZE: request line and headers; larger is 431
    header_timeout: float = 15.0  # LLMCTL_HEADER_TIMEOUT: from a request's first byte to its last header
    body_timeout: float = 60.0  # LLMCTL_BODY_TIMEOUT: the longest silence while a request body is sent
    max_blob_size: int = 0  # LLMCTL_MAX_BLOB_SIZE: one uploaded or pulled blob; 0 = only the free disk limits it
    disk_reserve: int = 1 * GIB  # LLMCTL_DISK_RESERVE: free space an upload or a pull must leave on the store's disk
    max_jobs: int = 4  # LLMCTL_MAX_JOBS: pulls, pushes and creates running at once; more is 503
    max_queue: int = 512  # LLMCTL_MAX_QUEUE: requests per model waiting beyond its --parallel slots (OLLAMA_MAX_QUEUE)
    template_max_output: int = 16 * MIB  # LLMCTL_TEMPLATE_MAX_OUTPUT: a rendered Go TEMPLATE (and any value in it)
    template_max_iterations: int = 100_000  # LLMCTL_TEMPLATE_MAX_ITERATIONS: `range` steps of one render
    template_max_width: int = 4096  # LLMCTL_TEMPLATE_MAX_WIDTH: printf width and precision
    template_max_depth: int = 100  # LLMCTL_TEMPLATE_MAX_DEPTH: nested blocks and parentheses


_LIMIT_ENV = {  # field -> (variable, parser)
    "max_body": ("LLMCTL_MAX_BODY", "size"),
    "max_header_bytes": ("LLMCTL_MAX_HEADER_SIZE", "size"),
    "header_timeout": ("LLMCTL_HEADER_TIMEOUT", "seconds"),
    "body_timeout": ("LLMCTL_BODY_TIMEOUT", "seconds"),
    "max_blob_size": ("LLMCTL_MAX_BLOB_SIZE", "size"),
    "disk_reserve": ("LLMCTL_DISK_RESERVE", "size"),
    "max_jobs": ("LLMCTL_MAX_JOBS", "count"),
    "max_queue": ("LLMCTL_MAX_QUEUE", "count"),
    "template_max_output": ("LLMCTL_TEMPLATE_MAX_OUTPUT", "size"),
    "template_max_iterations": ("LLMCTL_TEMPLATE_MAX_ITERATIONS", "count"),
    "template_max_width": ("LLMCTL_TEMPLATE_MAX_WIDTH", "count"),
    "template_max_depth": ("LLMCTL_TEMPLATE_MAX_DEPTH", "count"),
}


def parse_size(text: str) -> int:
    """`1048576`, `512k`, `32MiB`, `1.5G` -> bytes (binary units). ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (bytes, or a number with k, M, G, T)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def _limit_value(kind: str, text: str) -> float | int:
    if kind == "size":
        return parse_size(text)
    value = float(text) if kind == "seconds" else int(text)
    if value < 0 or value != value or value in (float("inf"),):
        raise ValueError(text)
    return value


def _split_list(text: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def limits_from_env(env: Mapping[str, str]) -> tuple[ServeLimits, tuple[str, ...]]:
    """The gateway's limits, and one line per variable that did not parse (its default is kept; `serve`
    logs the line, so a typo never silently lowers a limit without a word, nor breaks other commands)."""
    values: dict[str, object] = {"origins": _split_list(env.get("LLMCTL_ORIGINS")),
                                 "allowed_hosts": _split_list(env.get("LLMCTL_ALLOWED_HOSTS"))}
    problems: list[str] = []
    for name, (var, kind) in _LIMIT_ENV.items():
        text = (env.get(var) or "").strip()
        if not text:
            continue
        try:
            values[name] = _limit_value(kind, text)
        except ValueError:
            problems.append(f"{var}={text!r} is not a valid {kind}; using the default")
    return ServeLimits(**values), tuple(problems)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Settings:
    """Everything llmctl reads from its environment. Every path llmctl writes is under `home`."""

    home: Path
    registry: str = DEFAULT_REGISTRY
    namespace: str = DEFAULT_NAMESPACE
    debug: bool = False
    host: str = "127.0.0.1:11434"
    llama_server: str | None = None
    docker_config: Path = field(default_factory=lambda: Path.home() / ".docker")
    offline: bool = False  # LLMCTL_OFFLINE=1: never contact a registry other than loopback ones
    # registries: extra CA (LLMCTL_CA_CERT), registries allowed plain HTTP / unverified TLS
    # (LLMCTL_INSECURE_REGISTRIES=host:port,...), attempts per request (LLMCTL_REGISTRY_RETRIES)
    ca_cert: Path | None = None
    insecure_registries: tuple[str, ...] = ()
    registry_retries: int = 5
    # Hugging Face (HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE/HF_HOME): None lets huggingface_hub decide
    hf_endpoint: str | None = None
    hf_token: str | None = None
    hf_cache: Path | None = None
    hf_hub_offline: bool = False  # HF_HUB_OFFLINE=1: huggingface_hub's own switch; `plan` then reads the cache only
    # how long one Hugging Face request that failed transiently (network error, timeout, 408/429/5xx) is retried,
    # quietly, before the command fails (LLMCTL_HF_RETRY_SECONDS; 0: never retried). huggingface_hub's own
    # retries (~23 s, two log lines each) are replaced by these (llmctl.sources.hf_http)
    hf_retry_seconds: float = 10.0
    # `plan`: run kubectl's decoder on rendered Kubernetes YAML when kubectl exists (LLMCTL_PLAN_KUBECTL=0 skips);
    # the most bytes of a registry model's config archive `plan` fetches to read its config.json
    # (LLMCTL_PLAN_CONFIG_MAX_BYTES; the weights are never fetched)
    plan_kubectl: bool = True
    plan_config_max_bytes: int = 256 * 1024 * 1024
    # the most GPUs a plan may weigh (--gpus-per-node x --nodes/--max-nodes; LLMCTL_PLAN_MAX_GPUS): the shape
    # search grows faster than linearly with the node budget, so a typo like --max-nodes 100000 is refused, not a hang
    plan_max_gpus: int = 2048
    # GPUs for the engines this process starts (LLMCTL_GPUS, LLMCTL_SPLIT_MODE, LLMCTL_TENSOR_SPLIT; the
    # `run`/`serve` flags --gpus, --split-mode, --tensor-split replace them). Kept as text: llmctl.runtime.gpu
    # checks them where a command begins, so a bad value is one line there and never breaks other commands.
    gpus: str | None = None
    split_mode: str | None = None
    tensor_split: str | None = None
    # the gateway's API key (LLMCTL_API_KEY): `serve` requires it, `ps`/`load`/`unload`/`status` send it, and
    # `llmctl bench` sends it to the endpoint it measures
    api_key: str | None = field(default=None, repr=False)  # a secret: never in a repr or a log line
    # SOURCE_DATE_EPOCH (reproducible-builds.org): the creation time `package` and `create` write into configs,
    # so the same inputs give the same digests; None: the current time
    source_date_epoch: int | None = None
    # CUDA_HOME: the CUDA toolkit's folder, where nvcc is looked for when it is not on PATH (then in
    # /usr/local/cuda): `runtime install --cuda` builds with it, `runtime list`/`run --verbose` say if it exists
    cuda_home: Path | None = None
    # what `llmctl serve` accepts from clients (see ServeLimits); `problems`: variables that did not parse
    limits: ServeLimits = field(default_factory=ServeLimits)
    problems: tuple[str, ...] = ()
    # `llmctl bench`: how long one request may take (LLMCTL_BENCH_TIMEOUT, seconds) and the largest server-sent
    # event it accepts from an endpoint (LLMCTL_BENCH_MAX_EVENT_BYTES)
    bench_timeout: float = 600.0
    bench_max_event_bytes: int = 1024 * 1024
    # the most prompt tokens one `llmctl bench` run prepares, summed over its points (LLMCTL_BENCH_MAX_PROMPT_TOKENS;
    # ~7 bytes of text each, held twice: the text and the request body)
    bench_max_prompt_tokens: int = 1 << 25

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def runtimes_dir(self) -> Path:
        return self.home / "runtimes"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        home = Path(env.get("LLMCTL_HOME") or Path.home() / ".llmctl").expanduser()
        registry, namespace = DEFAULT_REGISTRY, DEFAULT_NAMESPACE
        configured = env.get("LLMCTL_REGISTRY", "").strip().strip("/")
        if configured:
            # LLMCTL_REGISTRY=host[:port][/namespace]: where short names resolve.
            head, _, rest = configured.partition("/")
            registry = head
            namespace = rest or ""
        docker_config = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else Path.home() / ".docker"
        limits, problems = limits_from_env(env)
        return cls(
            home=home,
            registry=registry,
            namespace=namespace,
            debug=env.get("LLMCTL_DEBUG", "") not in ("", "0", "false"),
            host=env.get("LLMCTL_HOST", "127.0.0.1:11434"),
            llama_server=env.get("LLMCTL_LLAMA_SERVER") or None,
            docker_config=docker_config,
            offline=env.get("LLMCTL_OFFLINE", "") not in ("", "0", "false"),
            ca_cert=Path(env["LLMCTL_CA_CERT"]).expanduser() if env.get("LLMCTL_CA_CERT") else None,
            insecure_registries=tuple(
                r.strip() for r in env.get("LLMCTL_INSECURE_REGISTRIES", "").split(",") if r.strip()
            ),
            registry_retries=int(env["LLMCTL_REGISTRY_RETRIES"]) if env.get("LLMCTL_REGISTRY_RETRIES", "").isdigit() else 5,
            hf_endpoint=(env.get("HF_ENDPOINT") or "").rstrip("/") or None,
            hf_token=env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or None,
            hf_cache=Path(env["HF_HUB_CACHE"]).expanduser() if env.get("HF_HUB_CACHE")
            else Path(env["HF_HOME"]).expanduser() / "hub" if env.get("HF_HOME") else None,
            hf_hub_offline=env.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"),
            hf_retry_seconds=_non_negative(env.get("LLMCTL_HF_RETRY_SECONDS"), 10.0),
            plan_kubectl=env.get("LLMCTL_PLAN_KUBECTL", "1").strip().lower() not in ("0", "false", "no", "off"),
            plan_config_max_bytes=_positive_int(env.get("LLMCTL_PLAN_CONFIG_MAX_BYTES"), 256 * 1024 * 1024),
            plan_max_gpus=_positive_int(env.get("LLMCTL_PLAN_MAX_GPUS"), 2048),
            gpus=env.get("LLMCTL_GPUS") or None,
            split_mode=env.get("LLMCTL_SPLIT_MODE") or None,
            tensor_split=env.get("LLMCTL_TENSOR_SPLIT") or None,
            api_key=env.get("LLMCTL_API_KEY") or None,
            source_date_epoch=int(epoch) if (epoch := env.get("SOURCE_DATE_EPOCH", "").strip()).isdigit() else None,
            cuda_home=Path(env["CUDA_HOME"]).expanduser() if env.get("CUDA_HOME") else None,
            limits=limits,
            problems=problems,
            bench_timeout=_positive(env.get("LLMCTL_BENCH_TIMEOUT"), 600.0),
            bench_max_event_bytes=_positive_int(env.get("LLMCTL_BENCH_MAX_EVENT_BYTES"), 1024 * 1024),
            bench_max_prompt_tokens=_positive_int(env.get("LLMCTL_BENCH_MAX_PROMPT_TOKENS"), 1 << 25),
        )


def _positive_int(text: str | None, default: int) -> int:
    """A positive integer setting; anything else keeps the default (settings never fail a command)."""
    return int(text) if text and text.strip().isdigit() and int(text) > 0 else default


def _positive(text: str | None, default: float) -> float:
    """A positive number setting (seconds); anything else keeps the default."""
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return value if 0 < value < float("inf") else default


def _non_negative(text: str | None, default: float) -> float:
    """A number of seconds, zero allowed; anything else keeps the default."""
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return value if 0 <= value < float("inf") else default
