"""A step's training batch over all domains, and the held-out windows per domain.

Rows are laid out domain by domain ([domain 0 × c_0, domain 1 × c_1, …]) with c_d from the
sampling temperature. Under torchrun every rank draws the same global batch (same seeds) and
keeps its own interleaved slice of each domain's block, so the ranks' mean gradients average
to exactly the single-process gradient of that global batch.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from .data import WindowSampler, fixed_windows, open_shard
from .dist import Dist
from .errors import TrainerError
from .fim import FimTransform
from .sampling import domain_counts
from .train_config import TrainConfig


class BatchSource:
    def __init__(self, cfg: TrainConfig, vocab: int, seeds: list[int], dist: Dist, fim: bool = True) -> None:
        window = cfg.seq_len + 1
        self.samplers = [WindowSampler(open_shard(d.train, d.name, "train", allow_empty=False), window,
                                       seed, d.name, d.train, vocab)
                         for d, seed in zip(cfg.domains, seeds)]
        sizes = [len(s.tokens) for s in self.samplers]
        self.dist = dist
        self.counts = domain_counts(sizes, cfg.batch_size, cfg.sampling_temperature)
        bad = [(d.name, c) for d, c in zip(cfg.domains, self.counts) if c % dist.world]
        if bad:
            raise TrainerError(f"torchrun with {dist.world} processes: domain {bad[0][0]!r} gets {bad[0][1]} "
                               f"windows per step, not divisible by the process count",
                               "make batch_size a multiple of the number of processes")
        self.full_counts = list(self.counts)
        self.set_active([True] * len(self.counts))
        self.fim = None
        if fim and cfg.fim is not None and cfg.fim.rate > 0:
            bad_ids = [t for t in (cfg.fim.prefix, cfg.fim.suffix, cfg.fim.middle) if t >= vocab]
            if bad_ids:
                raise TrainerError(f"{cfg.source}: fim token ids {bad_ids} are outside the base model's vocabulary ({vocab})",
                                   "the fim ids must be the base tokenizer's own sentinel tokens")
            # Seeded alike on every rank: each draws the same global batch, FIM included.
            self.fim = FimTransform(cfg.fim, cfg.seed)

    def set_active(self, active: list[bool]) -> None:
        """Draw only from the domains still training (an expert that stopped early gets no rows)."""
        self.counts = [c if a else 0 for c, a in zip(self.full_counts, active)]
        ids = torch.cat([torch.full((c,), e, dtype=torch.long) for e, c in enumerate(self.counts)])
        within = torch.cat([torch.arange(c) for c in self.counts])
        self.rows = (within % self.dist.world == self.dist.rank).nonzero().flatten()
        self.ids = ids[self.rows]
        self.local_counts = [int((self.ids == e).sum()) for e in range(len(self.counts))]

    @property
    def global_rows(self) -> int:
        return sum(self.counts)

    def draw(self) -> tuple[Tensor, Tensor]:
        """(windows [rows, seq_len + 1], domain ids [rows]) for this rank."""
        batch = torch.cat([s.sample(c) for s, c in zip(self.samplers, self.counts) if c])
        if self.fim is not None:
            batch = self.fim.apply(batch)
        return batch[self.rows], self.ids

    def state(self) -> list[dict[str, Any]]:
        # The FIM generator's state rides after the samplers' (absent in checkpoints without FIM).
        return [s.rng.bit_generator.state for s in self.samplers] + ([self.fim.state()] if self.fim else [])

    def load_state(self, states: list[dict[str, Any]]) -> None:
        for s, st in zip(self.samplers, states):
            s.rng.bit_generator.state = st
        if self.fim is not None and len(states) > len(self.samplers):
            self.fim.load_state(states[len(self.samplers)])


def val_windows(cfg: TrainConfig, vocab: int) -> list[Optional[Tensor]]:
    out: list[Optional[Tensor]] = []
    window = cfg.seq_len + 1
    for d in cfg.domains:
        tokens = open_shard(d.val, d.name, "val", allow_empty=True) if d.val else np.zeros(0, dtype="<u4")
        out.append(None if len(tokens) == 0 else
                   fixed_windows(tokens, window, cfg.eval_windows, d.name, d.val or "", vocab))
    return out
