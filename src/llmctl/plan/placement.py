"""Pack instances onto nodes: which node and which GPU ids each instance (or each node of it) gets.

Instance sizes are divisors of a node or whole multiples of it, so first-fit in decreasing size never
strands GPUs: the node count it returns is ceil(total GPUs / GPUs per node) for single-node instances.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.plan.memory import Shape
from llmctl.plan.profiles import ceil_div
from llmctl.plan.types import Placement

ROLE_ORDER = {"serve": 0, "prefill": 1, "decode": 2}


@dataclass(frozen=True)
class Pool:
    role: str
    shape: Shape
    instances: int


def place(pools: list[Pool], gpus_per_node: int) -> tuple[list[Placement], int]:
    """(placements, nodes used). Multi-node instances take whole nodes; the rest share nodes."""
    items = [(p.role, i, p.shape) for p in pools for i in range(p.instances)]
    items.sort(key=lambda it: (-it[2].gpus, ROLE_ORDER.get(it[0], 9), it[1]))
    free: list[list[int]] = []  # free GPU ids per node
    out: list[Placement] = []
    for role, idx, shape in items:
        if shape.gpus > gpus_per_node:
            nnodes = ceil_div(shape.gpus, gpus_per_node)
            first = len(free)
            for rank in range(nnodes):
                free.append([])
                out.append(Placement(first + rank, role, idx, rank, nnodes, tuple(range(gpus_per_node))))
            continue
        node = next((n for n, ids in enumerate(free) if len(ids) >= shape.gpus), None)
        if node is None:
            free.append(list(range(gpus_per_node)))
            node = len(free) - 1
        ids = free[node][: shape.gpus]
        free[node] = free[node][shape.gpus :]
        out.append(Placement(node, role, idx, 0, 1, tuple(ids)))
    out.sort(key=lambda p: (p.node, p.gpu_ids[0] if p.gpu_ids else 0, p.node_rank))
    return out, len(free)


def nodes_needed(pools: list[Pool], gpus_per_node: int) -> int:
    return place(pools, gpus_per_node)[1]
