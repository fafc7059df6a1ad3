"""Launch plans: size a multi-node vLLM/SGLang deployment from a model and GPU profile, render it for bare
hosts, compose or Kubernetes, and validate every output offline before it is printed.

Pure below this package's surface: no network I/O, at import or at any time. `resolve.py` reads local
files (a model folder, the Hugging Face cache) and is the only module that touches the filesystem outside
package data.
"""

from __future__ import annotations

from llmctl.plan.catalog import catalog, find_catalog, gpu_profiles, load_gpu
from llmctl.plan.profiles import GpuProfile, ModelProfile, profile_from_config, profile_from_gguf
from llmctl.plan.render import render
from llmctl.plan.solve import solve
from llmctl.plan.types import Plan, PlanRequest, Workload

__all__ = [
    "GpuProfile",
    "ModelProfile",
    "Plan",
    "PlanRequest",
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
