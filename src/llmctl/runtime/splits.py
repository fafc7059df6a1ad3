"""Split GGUF models for llama.cpp: their shards under the names llama.cpp looks for.

A split GGUF (`name-00001-of-00003.gguf`, ...) is stored as one blob per shard, each file named by its
digest. llama.cpp opens the first shard and finds the others beside it by name (`PREFIX-0000i-of-0000N.gguf`,
its `llama_split_path`), so a model with several weight layers is started from a folder of symbolic links,
`$LLMCTL_HOME/run/splits/<model id>/model-0000i-of-0000N.gguf`, one per shard in layer order. The names are
llmctl's own, never the layers' title annotations: a registry's annotations must not choose file names.
The folder is keyed by the manifest digest, so it is made once per model and shared by every engine on it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmctl.settings import Settings


def engine_weights(settings: Settings, model: Any) -> Path:
    """The path to give llama.cpp's `-m`: the weights blob itself, or the first link of a split model."""
    weights = [Path(p) for p in model.weights]
    if len(weights) == 1:
        return weights[0]
    count = len(weights)
    folder = settings.run_dir / "splits" / model.id
    folder.mkdir(parents=True, exist_ok=True)
    links = [folder / f"model-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
    for link, target in zip(links, weights):
        if os.path.islink(link) and os.readlink(link) == str(target):
            continue
        tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)  # atomic: an engine starting at the same time sees the old link or the new one
    return links[0]
