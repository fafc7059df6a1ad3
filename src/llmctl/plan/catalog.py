"""The built-in model catalog and the GPU profiles: data files under llmctl/data/plan, read, never hard-coded.

`models/*.json` hold each model's published config.json with the source cited; `gpus/*.yaml` hold one
datasheet each, sources cited in the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmctl.errors import NotFound
from llmctl.plan import data
from llmctl.plan.hfconfig import profile_from_config
from llmctl.plan.profiles import GpuProfile, ModelProfile
from llmctl.plan.units import MiB

# -- the catalog ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    hf_id: str
    aliases: tuple[str, ...]
    nominal_params_b: float
    source: str
    config: dict[str, Any]

    def names(self) -> tuple[str, ...]:
        return (self.name, self.hf_id, *self.aliases)

    def profile(self) -> ModelProfile:
        return profile_from_config(
            self.config, name=self.name, serve_id=self.hf_id, source="catalog", aliases=self.aliases
        )


def catalog() -> list[CatalogEntry]:
    """Every model in data/plan/models, in file-name order."""
    out = []
    for fname in data.list_dir("models"):
        if not fname.endswith(".json"):
            continue
        doc = data.read_json("models", fname)
        meta = doc["_llmctl"]
        out.append(
            CatalogEntry(
                name=meta["name"],
                hf_id=meta["hf_id"],
                aliases=tuple(meta.get("aliases", ())),
                nominal_params_b=float(meta["nominal_params_b"]),
                source=meta["source"],
                config=doc["config"],
            )
        )
    return out


def find_catalog(name: str) -> CatalogEntry | None:
    """Case-insensitive match on catalog name, Hugging Face id or alias."""
    want = name.strip().lower()
    for entry in catalog():
        if want in (k.lower() for k in entry.names()):
            return entry
    return None


# -- GPU profiles -----------------------------------------------------------------------------------


def gpu_profile_from_dict(doc: Mapping[str, Any]) -> GpuProfile:
    intra = doc.get("intra_node") or {}
    return GpuProfile(
        name=str(doc["name"]),
        description=str(doc.get("description", doc["name"])),
        memory_bytes=int(doc["memory_mib"]) * MiB,
        memory_gb=float(doc.get("memory_gb", 0) or 0),
        bf16_tflops=float(doc["bf16_dense_tflops"]),
        fp8_tflops=float(doc["fp8_dense_tflops"]) if doc.get("fp8_dense_tflops") else None,
        hbm_bandwidth=float(doc["hbm_bandwidth_gb_s"]) * 1e9,
        intra_node_link=str(intra.get("link", "pcie")),
        intra_node_bandwidth=float(intra.get("bandwidth_gb_s", 32)) * 1e9,
        inter_node_bandwidth=float(doc["inter_node_gb_s_per_gpu"]) * 1e9,
        default_gpus_per_node=int(doc.get("default_gpus_per_node", 8)),
        k8s_resource=str(doc.get("k8s_resource", "nvidia.com/gpu")),
        aliases=tuple(doc.get("aliases", ())),
        arch=str(doc.get("arch", "hopper")),
        fp4_tflops=float(doc["fp4_dense_tflops"]) if doc.get("fp4_dense_tflops") else None,
    )


def gpu_profiles() -> list[GpuProfile]:
    return [gpu_profile_from_dict(data.read_yaml("gpus", f)) for f in data.list_dir("gpus") if f.endswith(".yaml")]


def load_gpu(name: str) -> GpuProfile:
    want = name.strip().lower()
    profiles = gpu_profiles()
    for gpu in profiles:
        if want == gpu.name or want in gpu.aliases:
            return gpu
    known = ", ".join(g.name for g in profiles)
    raise NotFound(f"no GPU profile {name!r}", hint=f"known: {known}")
