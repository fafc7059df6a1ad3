"""Settings read from the environment once, then passed down.

Modelled on Ollama's envconfig: one place that knows the variable names, so deep code never calls
`os.environ` and tests build a `Settings` for a temporary home instead of patching globals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

DEFAULT_REGISTRY = "docker.io"
DEFAULT_NAMESPACE = "library"


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
    # `plan`: run kubectl's decoder on rendered Kubernetes YAML when kubectl exists (LLMCTL_PLAN_KUBECTL=0 skips);
    # the most bytes of a registry model's config archive `plan` fetches to read its config.json
    # (LLMCTL_PLAN_CONFIG_MAX_BYTES; the weights are never fetched)
    plan_kubectl: bool = True
    plan_config_max_bytes: int = 256 * 1024 * 1024
    # GPUs for the engines this process starts (LLMCTL_GPUS, LLMCTL_SPLIT_MODE, LLMCTL_TENSOR_SPLIT; the
    # `run`/`serve` flags --gpus, --split-mode, --tensor-split replace them). Kept as text: llmctl.runtime.gpu
    # checks them where a command begins, so a bad value is one line there and never breaks other commands.
    gpus: str | None = None
    split_mode: str | None = None
    tensor_split: str | None = None
    # the gateway's API key (LLMCTL_API_KEY): `serve` requires it, `ps`/`load`/`unload`/`status` send it
    api_key: str | None = field(default=None, repr=False)  # a secret: never in a repr or a log line

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
            plan_kubectl=env.get("LLMCTL_PLAN_KUBECTL", "1").strip().lower() not in ("0", "false", "no", "off"),
            plan_config_max_bytes=_positive_int(env.get("LLMCTL_PLAN_CONFIG_MAX_BYTES"), 256 * 1024 * 1024),
            gpus=env.get("LLMCTL_GPUS") or None,
            split_mode=env.get("LLMCTL_SPLIT_MODE") or None,
            tensor_split=env.get("LLMCTL_TENSOR_SPLIT") or None,
            api_key=env.get("LLMCTL_API_KEY") or None,
        )


def _positive_int(text: str | None, default: int) -> int:
    """A positive integer setting; anything else keeps the default (settings never fail a command)."""
    return int(text) if text and text.strip().isdigit() and int(text) > 0 else default
