"""Learning-rate schedule shared by expert training and pretraining."""

from __future__ import annotations

import math


def lr_at(step: int, steps: int, warmup: int, peak: float, floor_ratio: float = 0.1) -> float:
    """Linear warmup over `warmup` steps, then cosine down to floor_ratio·peak at `steps`.

    `step` is 1-based so the first update already moves; the floor keeps the last updates
    from being wasted at lr 0.
    """
    if warmup > 0 and step <= warmup:
        return peak * step / warmup
    span = max(1, steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return peak * (floor_ratio + (1.0 - floor_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))
