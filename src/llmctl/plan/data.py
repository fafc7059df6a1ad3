"""Read the planner's package data (llmctl/data/plan): GPU profiles, the model catalog, pinned flag lists, CRDs.

Everything goes through importlib.resources so it works from a wheel, a zip or a source checkout, and
every reader is cached: the CRD files are megabytes of YAML and a plan reads each at most once.
"""

from __future__ import annotations

import functools
import json
from typing import Any

_ROOT = ("data", "plan")


def _path(*parts: str) -> Any:
    # imported on first read, not with llmctl.plan: importlib.resources brings tempfile and shutil
    from importlib import resources

    node = resources.files("llmctl")
    for part in (*_ROOT, *parts):
        node = node / part
    return node


def read_text(*parts: str) -> str:
    return _path(*parts).read_text(encoding="utf-8")


def list_dir(*parts: str) -> list[str]:
    """File names in a data folder, sorted, so catalog order is stable across platforms."""
    return sorted(p.name for p in _path(*parts).iterdir() if p.is_file())


@functools.cache
def read_json(*parts: str) -> Any:
    return json.loads(read_text(*parts))


@functools.cache
def read_yaml(*parts: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(read_text(*parts), Loader=loader)


@functools.cache
def read_lines(*parts: str) -> tuple[str, ...]:
    """Non-empty, non-comment lines of a pinned list file (flags, connectors, backends)."""
    out = []
    for line in read_text(*parts).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return tuple(out)
