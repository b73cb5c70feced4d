"""Fill-in-the-middle training windows (Bavarian et al. 2022; the StarCoder and Code Llama recipes).

With probability `rate` a training window is cut at two random points into prefix, middle and
suffix and laid out with the base model's sentinel tokens, so the model learns to use the text
after the cursor that inline completions send:

- PSM: <prefix> prefix <suffix> suffix <middle> middle
- SPM: <prefix> <suffix> suffix <middle> prefix middle   (Code Llama's suffix-first variant)

A window keeps its length (the three sentinels push the last three tokens out), so batches and
the token accounting do not change. Held-out windows are never transformed: loss figures stay
comparable with and without FIM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class FimConfig:
    prefix: int
    suffix: int
    middle: int
    rate: float = 0.5
    # Among transformed windows, the share laid out suffix-first.
    spm_rate: float = 0.5


class FimTransform:
    def __init__(self, cfg: FimConfig, seed: int) -> None:
        self.cfg = cfg
        # Its own generator: the windows drawn do not depend on whether FIM is on.
        self.rng = np.random.default_rng([seed, 0xF1F])

    def apply(self, batch: Tensor) -> Tensor:
        """`batch` [rows, length] of token ids; returns a new tensor, rows transformed at `rate`."""
        c = self.cfg
        out = batch.clone()
        rows, length = batch.shape
        for i in range(rows):
            # One draw per row whatever happens, so the stream of draws is the same for every run.
            use, spm, a, b = self.rng.random(), self.rng.random(), self.rng.integers(0, length + 1), self.rng.integers(0, length + 1)
            if use >= c.rate or length < 4:
                continue
            lo, hi = (int(a), int(b)) if a <= b else (int(b), int(a))
            w = batch[i]
            pre, mid, suf = w[:lo], w[lo:hi], w[hi:]
            p, s, m = (torch.tensor([t], dtype=batch.dtype) for t in (c.prefix, c.suffix, c.middle))
            parts = [p, s, suf, m, pre, mid] if spm < c.spm_rate else [p, pre, s, suf, m, mid]
            out[i] = torch.cat(parts)[:length]
        return out

    def state(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state
