"""Weights in Kubernetes pods: the volume they live on, the init container that puts them there, the engine's
mounts and environment, and how long a pod may take to load them before its start-up probe gives up.

- `hf:`  the engine downloads into a volume (emptyDir sized from the weights, or a shared PVC) used as its
  Hugging Face cache; `HF_TOKEN` comes from a Secret, required when the model is gated.
- `oci:` init-container mode: `llmctl export REF DIR` (the llmctl-init image) fills the volume before the
  engine starts, with registry credentials from `--pull-secret` mounted as a docker config. Image-volume mode:
  the kubelet pulls the artifact as a read-only image volume (imagePullSecrets), and a small init step links
  its files into the folder layout the engine loads (one file per layer, as CRI-O mounts artifacts, named by
  `org.opencontainers.image.title`; the config archive is unpacked).
- `pvc:` the claim is mounted read-only; the folder must already hold the model.
As llm-d's ModelService does (`hf://` into an emptyDir with HF_HOME on it, `pvc://` mounted read-only), and
with the export in an init container so the engine container starts only once the folder is complete.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from llmctl.plan.memory import role_bytes
from llmctl.plan.render_common import RenderOptions
from llmctl.plan.types import Plan
from llmctl.plan.units import GiB
from llmctl.plan.weights import (
    ARTIFACT_DIR,
    EXPORT_SCRIPT,
    HF_HOME,
    INIT_CONTAINER,
    MODELS_DIR,
    REGISTRY_AUTH_DIR,
    STORE_DIR,
    Weights,
)

VOLUME = "models"
ARTIFACT_VOLUME = "model-artifact"
REGISTRY_AUTH_VOLUME = "registry-auth"
LINK_SCRIPT = (
    'test -f "$MODEL_DIR/config.json" && exit 0; '
    'tmp="$MODEL_DIR.partial"; rm -rf "$tmp"; mkdir -p "$tmp"; '
    'for f in "$ARTIFACT_DIR"/*; do '
    'if tar -tf "$f" >/dev/null 2>&1; then tar -xf "$f" -C "$tmp" --no-same-owner; '
    'else ln -s "$f" "$tmp/"; fi; done; '
    'test -f "$tmp/config.json" || { echo "no config.json in the artifact mounted at $ARTIFACT_DIR" >&2; exit 1; }; '
    'mv "$tmp" "$MODEL_DIR"'
)
"""Image-volume mode: the artifact is mounted one file per layer. Weights are linked (no copy), the config
archive (a tar of config.json and the tokenizer files) is unpacked, and the folder is renamed into place."""

INIT_UID = 65532
"""The llmctl-init image runs as this user (images/llmctl-init/Dockerfile). An emptyDir is writable by anyone;
a PVC the init container fills gets the pod's fsGroup, changed only when its root does not match (a filled
800 GB claim is not re-chowned on every start)."""

SMALL_VOLUME = 2 * GiB
"""Image-volume mode: the folder holds links and the unpacked config/tokenizer files; an artifact whose tar
layers hold more (modctl's default tars the weights too) gets a volume sized from them, as `_models_volume`
sizes one for an export."""
SIZE_MARGIN = 1.05
"""emptyDir sizeLimit: the weights plus 5% and 1 GiB (the export's store metadata, the Hugging Face cache's
bookkeeping, the lock file)."""

PROBE_PERIOD_S = 10
ENGINE_INIT_S = 900
"""Start-up time of a vLLM/SGLang server apart from reading weights: process group and NCCL set-up, memory
profiling, CUDA graph capture and torch.compile take minutes on large models (vLLM logs them per stage)."""
DISK_READ_BPS = 1_000_000_000
"""Reading the weights from a local volume into GPU memory: ~1 GB/s is a conservative NVMe/network-volume
figure; each pod reads every shard (TP ranks slice tensors out of every file)."""
DOWNLOAD_BPS = 200_000_000
"""`hf:` weights are downloaded by the engine itself before it serves: ~200 MB/s from the Hub per pod."""
READY_FAILURES = 3


@dataclass
class PodWeights:
    """What the weights add to a pod spec."""

    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)  # the engine container's
    env: list[dict[str, Any]] = field(default_factory=list)  # the engine container's
    init_containers: list[dict[str, Any]] = field(default_factory=list)
    image_pull_secrets: list[dict[str, str]] = field(default_factory=list)
    security_context: dict[str, Any] = field(default_factory=dict)  # the pod's
    startup_s: int = ENGINE_INIT_S


def weight_bytes(plan: Plan, weights: Weights) -> int:
    """What a pod stores: the source's own size, else the checkpoint's weights as the planner counts them (at
    the checkpoint's own quantization: what is on disk, whatever the plan converts them to)."""
    if weights.size_bytes:
        return weights.size_bytes
    model = plan.request.model
    return int(role_bytes(model, model.quant).total)


def gib_quantity(n: int) -> str:
    return f"{max(1, math.ceil(n / GiB))}Gi"


def _models_volume(opts: RenderOptions, size: int) -> dict[str, Any]:
    claim = opts.weights_claim
    if claim:
        return {"name": VOLUME, "persistentVolumeClaim": {"claimName": claim}}
    return {"name": VOLUME, "emptyDir": {"sizeLimit": gib_quantity(_room_for(size))}}


def _room_for(size: int) -> int:
    """An emptyDir's bytes for `size` bytes of files (see SIZE_MARGIN)."""
    return int(size * SIZE_MARGIN) + GiB


def startup_seconds(size: int, *, downloads: bool) -> int:
    return ENGINE_INIT_S + math.ceil(size / DISK_READ_BPS) + (math.ceil(size / DOWNLOAD_BPS) if downloads else 0)


def pod_weights(plan: Plan, weights: Weights, opts: RenderOptions) -> PodWeights:
    size = weight_bytes(plan, weights)
    out = PodWeights(startup_s=startup_seconds(size, downloads=weights.kind == "hf"))
    if weights.kind == "hf":
        out.volumes.append(_models_volume(opts, size))
        out.mounts.append({"name": VOLUME, "mountPath": MODELS_DIR})
        out.env += [{"name": "HF_HOME", "value": HF_HOME}, hf_token_env(opts.hf_token_secret, required=weights.gated)]
        return out
    out.env.append({"name": "HF_HUB_OFFLINE", "value": "1"})  # the folder is complete: never reach the Hub
    if weights.kind == "pvc":
        out.volumes.append({"name": VOLUME, "persistentVolumeClaim": {"claimName": weights.ref, "readOnly": True}})
        out.mounts.append({"name": VOLUME, "mountPath": MODELS_DIR, "readOnly": True})
    elif opts.weights_mode == "image-volume":
        _image_volume(out, weights, opts)
    else:
        _export(out, weights, opts, size)
    return out


def _image_volume(out: PodWeights, weights: Weights, opts: RenderOptions) -> None:
    """The kubelet mounts the artifact; the init step links its files into the folder the engine loads."""
    folder = max(SMALL_VOLUME, _room_for(weights.unpacked_bytes))  # tarred weights are unpacked into it
    out.volumes += [
        {"name": ARTIFACT_VOLUME, "image": {"reference": weights.ref, "pullPolicy": "IfNotPresent"}},
        {"name": VOLUME, "emptyDir": {"sizeLimit": gib_quantity(folder)}},
    ]
    if opts.pull_secret:
        out.image_pull_secrets.append({"name": opts.pull_secret})
    artifact_mount = {"name": ARTIFACT_VOLUME, "mountPath": ARTIFACT_DIR, "readOnly": True}
    env = [{"name": "MODEL_DIR", "value": weights.folder}, {"name": "ARTIFACT_DIR", "value": ARTIFACT_DIR}]
    out.init_containers.append(init_container(opts, LINK_SCRIPT, env,
                                              [{"name": VOLUME, "mountPath": MODELS_DIR}, artifact_mount]))
    out.mounts += [{"name": VOLUME, "mountPath": MODELS_DIR, "readOnly": True}, artifact_mount]


def _export(out: PodWeights, weights: Weights, opts: RenderOptions, size: int) -> None:
    """`llmctl export` in an init container fills the weights volume, with the pull secret as its docker config."""
    out.volumes.append(_models_volume(opts, size))
    if opts.weights_claim:
        out.security_context = {"fsGroup": INIT_UID, "fsGroupChangePolicy": "OnRootMismatch"}
    mounts = [{"name": VOLUME, "mountPath": MODELS_DIR}]
    env = [{"name": "MODEL_DIR", "value": weights.folder}, {"name": "MODEL_REF", "value": weights.ref},
           {"name": "LLMCTL_HOME", "value": STORE_DIR}]
    env += [{"name": k, "value": v} for k, v in opts.export_env.items()]
    if opts.pull_secret:
        out.volumes.append({"name": REGISTRY_AUTH_VOLUME, "secret": {
            "secretName": opts.pull_secret, "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}})
        mounts.append({"name": REGISTRY_AUTH_VOLUME, "mountPath": REGISTRY_AUTH_DIR, "readOnly": True})
        env.append({"name": "DOCKER_CONFIG", "value": REGISTRY_AUTH_DIR})
    out.init_containers.append(init_container(opts, EXPORT_SCRIPT, env, mounts))
    out.mounts.append({"name": VOLUME, "mountPath": MODELS_DIR, "readOnly": True})


def init_container(opts: RenderOptions, script: str, env: list[dict[str, Any]],
                   mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": INIT_CONTAINER, "image": opts.init_image_ref, "command": ["sh", "-c", script], "env": env,
            "volumeMounts": mounts}


def hf_token_env(secret: str, *, required: bool) -> dict[str, Any]:
    """HF_TOKEN from the Secret: required for a gated model (the pod does not start without it, rather than
    failing its download later), optional otherwise (private repositories may still need it)."""
    ref: dict[str, Any] = {"name": secret, "key": "token"}
    if not required:
        ref["optional"] = True
    return {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": ref}}


def probes(pod: PodWeights, port: int) -> dict[str, Any]:
    """Start-up and readiness probes on the engine's own health endpoint: vLLM's /health answers 200 once the
    engine is up (its API server starts listening only after the model is loaded); SGLang's /health answers 503
    until its warm-up request has generated a token, then checks generation (sgl-project/sglang#8444 merged
    /health and /health_generate into that logic). The start-up probe allows `startup_s` for loading."""
    check = {"httpGet": {"path": "/health", "port": port}, "periodSeconds": PROBE_PERIOD_S, "timeoutSeconds": 5}
    return {
        "startupProbe": {**check, "failureThreshold": math.ceil(pod.startup_s / PROBE_PERIOD_S)},
        "readinessProbe": {**check, "failureThreshold": READY_FAILURES},
    }
