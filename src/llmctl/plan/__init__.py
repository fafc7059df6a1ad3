"""Launch plans: size a multi-node vLLM/SGLang deployment from a model and GPU profile, render it for bare
hosts, compose or Kubernetes, and validate every output offline before it is printed.

Pure: no network, no process, no environment, no files but the package's own data (`data.py`). Reading a
model's config.json (a folder, the Hugging Face cache or hub, the llmctl store or a registry) and the checks
that run programs (`bash -n`, kubectl) live in the API layer (`llmctl.api.plan`), which passes them in.
"""

from __future__ import annotations

from llmctl.plan.catalog import catalog, find_catalog, gpu_profiles, load_gpu
from llmctl.plan.gguf_profile import profile_from_gguf
from llmctl.plan.hfconfig import profile_from_config
from llmctl.plan.profiles import GpuProfile, ModelProfile
from llmctl.plan.render import TextCheck, render
from llmctl.plan.solve import solve
from llmctl.plan.types import Plan, PlanRequest, Workload

__all__ = [
    "GpuProfile",
    "ModelProfile",
    "Plan",
    "PlanRequest",
    "TextCheck",
    "Workload",
    "catalog",
    "find_catalog",
    "gpu_profiles",
    "load_gpu",
    "profile_from_config",
    "profile_from_gguf",
    "render",
    "solve",
]
