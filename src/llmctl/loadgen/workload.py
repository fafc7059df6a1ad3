"""What to send and when: ISL/OSL draws and arrival times, as vLLM's random dataset and `vllm bench serve`.

- Lengths: uniform integers in [floor(L x (1 - r)), ceil(L x (1 + r))] for a range ratio r in [0, 1)
  (vLLM's `--random-range-ratio`); r = 0 gives every request exactly L. OSL is at least 1.
- Arrivals at a request rate: gaps drawn from a gamma distribution with shape = burstiness and
  scale = 1 / (rate x burstiness) (burstiness 1 is a Poisson process; lower is burstier), then scaled so
  the last arrival falls at N / rate, as vLLM does to steady the throughput across seeds. An infinite rate
  sends everything at once.
Deterministic for a seed, so two endpoints can be given the same workload.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from llmctl.errors import InvalidInput, UsageError


@dataclass(frozen=True)
class Lengths:
    isl: int
    osl: int
    range_ratio: float = 0.0

    def check(self) -> None:
        if self.isl < 1 or self.osl < 1:
            raise InvalidInput("--isl and --osl must be at least 1 token")
        if not 0.0 <= self.range_ratio < 1.0:
            raise InvalidInput("--range-ratio must be in [0, 1)")

    def bounds(self, mean: int, floor_one: bool = True) -> tuple[int, int]:
        low = math.floor(mean * (1 - self.range_ratio))
        high = math.ceil(mean * (1 + self.range_ratio))
        return (max(low, 1) if floor_one else low, high)

    def draw(self, n: int, rng: random.Random) -> list[tuple[int, int]]:
        """`n` (ISL, OSL) pairs."""
        ilo, ihi = self.bounds(self.isl)
        olo, ohi = self.bounds(self.osl)
        return [(rng.randint(ilo, ihi), rng.randint(olo, ohi)) for _ in range(n)]


def arrival_offsets(n: int, rate: float, burstiness: float, rng: random.Random) -> list[float]:
    """Seconds from the start of a run at which each of `n` requests arrives."""
    if burstiness <= 0:
        raise InvalidInput("--burstiness must be positive")
    if math.isinf(rate):
        return [0.0] * n
    if rate <= 0:
        raise InvalidInput("--request-rate must be positive (or inf)")
    theta = 1.0 / (rate * burstiness)
    offsets: list[float] = []
    total = 0.0
    for _ in range(n):
        total += rng.gammavariate(burstiness, theta)
        offsets.append(total)
    if offsets and offsets[-1] > 0:
        scale = (n / rate) / offsets[-1]
        offsets = [t * scale for t in offsets]
    return offsets


def parse_levels(text: str, what: str, *, allow_inf: bool = False) -> list[float]:
    """`1,4,16` (or `1,2,inf` for rates) -> sorted, de-duplicated positive numbers.

    A list that does not parse (`abc`, nothing in it) is a UsageError, as typer's own `--isl abc` is; numbers
    that parse but are not allowed (0, negative, inf where it means nothing) are InvalidInput.
    """
    out: list[float] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            value = float("inf") if allow_inf and part in ("inf", "infinity") else float(part)
        except ValueError as exc:
            raise UsageError(f"{what}: {part!r} is not a number") from exc
        if not value > 0 or math.isnan(value) or (math.isinf(value) and not allow_inf):
            raise InvalidInput(f"{what}: each value must be a positive number, got {part!r}")
        out.append(value)
    if not out:
        raise UsageError(f"{what}: give at least one value")
    return sorted(set(out))
