"""The router's decision: a bag of hashed token n-grams of the prompt, one linear layer.

Why not the per-layer routers' pooled hidden states: on 64-token prompts a linear map of those
features tops out at 78-84 % accuracy, while this bag reaches 88-97 % and learned routing comes
within 0.2 % of label routing (trainer/ROUTER.md, experiment 7). The per-layer routers stay in
stage 2 (their classification loss shapes the experts' light update); a reader serves this
decision alone (src/core/routing/learned.ts picks the expert before any model pass).

The hash is part of router.json's contract (`ngram.hash`) and is computed again in TypeScript
(src/core/routing/ngram.ts): 32-bit FNV-1a over the n-gram's order then its token ids (each id
folded in whole, as one 32-bit word), then `h ^ (h >> 16)`, masked to a power-of-two bucket count.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

HASH = "fnv1a32-order-ids-xs16"
ORDERS = (1, 2, 3, 4)
BUCKETS = 1 << 16
# Windows per domain in each step of the fit.
NGRAM_BATCH = 32
FNV_OFFSET = np.uint32(2166136261)
FNV_PRIME = np.uint32(16777619)


def _order_buckets(x: np.ndarray, k: int, buckets: int) -> np.ndarray:
    """[rows, T - k + 1]: the bucket of the order-k n-gram starting at each position of x [rows, T]."""
    n = x.shape[1] - k + 1
    with np.errstate(over="ignore"):
        h = np.full((x.shape[0], n), FNV_OFFSET, np.uint32)
        h = (h ^ np.uint32(k)) * FNV_PRIME
        for j in range(k):
            h = (h ^ x[:, j:j + n]) * FNV_PRIME
    return (h ^ (h >> np.uint32(16))) & np.uint32(buckets - 1)


def bags(rows: np.ndarray, lengths: np.ndarray, buckets: int = BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """The n-grams of each row's first `lengths[i]` ids, for F.embedding_bag: (flat buckets,
    offsets), each row's n-grams order by order."""
    x = np.asarray(rows, dtype=np.int64).astype(np.uint32)
    lengths = np.asarray(lengths, dtype=np.int64)
    per_row: list[list[np.ndarray]] = [[] for _ in range(len(x))]
    counts = np.zeros(len(x), np.int64)
    for k in ORDERS:
        if x.shape[1] < k:
            continue
        grams = _order_buckets(x, k, buckets)
        valid = np.maximum(lengths - k + 1, 0)
        counts += valid
        for i, v in enumerate(valid):
            per_row[i].append(grams[i, :v])
    flat = np.concatenate([np.zeros(0, np.uint32)] + [g for row in per_row for g in row])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(x) else np.zeros(0, np.int64)
    return flat.astype(np.int64), offsets.astype(np.int64)


def gram_buckets(ids: np.ndarray, buckets: int = BUCKETS) -> np.ndarray:
    """Bucket of every n-gram (orders 1-4) of one prompt's token ids [T], orders one after another."""
    ids = np.asarray(ids, dtype=np.int64)
    return bags(ids[None, :], np.array([len(ids)]), buckets)[0]


class NgramRouter(nn.Module):
    def __init__(self, num_experts: int, buckets: int = BUCKETS) -> None:
        super().__init__()
        if buckets & (buckets - 1):
            raise ValueError("the bucket count must be a power of two")
        self.buckets = buckets
        self.weight = nn.Parameter(torch.zeros(buckets, num_experts))
        self.bias = nn.Parameter(torch.zeros(num_experts))

    def logits(self, rows: np.ndarray, lengths: np.ndarray, sparse: bool = False) -> Tensor:
        """[rows, experts]: the mean of the rows of each prompt's n-grams (its first `lengths[i]`
        ids), plus the bias; an empty prompt gets the bias alone."""
        flat, offsets = bags(rows, lengths, self.buckets)
        dev = self.weight.device
        return F.embedding_bag(torch.from_numpy(flat).to(dev), self.weight, torch.from_numpy(offsets).to(dev),
                               mode="mean", sparse=sparse) + self.bias

    def info(self) -> dict[str, Any]:
        return {"orders": list(ORDERS), "buckets": self.buckets, "hash": HASH}


def fit_ngram(router: NgramRouter, domains: Sequence[np.ndarray], seq_len: int, steps: int, seed: int,
              deadline: float = math.inf) -> dict[str, Any]:
    """Adagrad on the cross-entropy over windows of every domain's training tokens, the same count of
    each per step (balanced classes), prompt lengths drawn from a quarter of `seq_len` to all of it
    as stage 2's are. Stops at `deadline` (time.monotonic()) after at least one step."""
    rng = np.random.default_rng(seed)
    # The table's gradient touches only the buckets a batch holds (a sparse gradient); Adagrad
    # takes it as it is, and reached SparseAdam's accuracy in half the steps (ROUTER.md, experiment 7).
    opt = torch.optim.Adagrad(router.parameters(), lr=2.0)
    per = NGRAM_BATCH
    labels = torch.arange(len(domains)).repeat_interleave(per).to(router.weight.device)
    t0 = time.monotonic()
    done = 0
    for done in range(1, steps + 1):
        rows, lengths = [], []
        for tokens in domains:
            tokens = np.asarray(tokens)
            span = min(seq_len, len(tokens))
            starts = rng.integers(0, len(tokens) - span + 1, per)
            rows.append(np.stack([tokens[s:s + span] for s in starts]).astype(np.int64))
            lengths.append(rng.integers(max(1, span // 4), span + 1, per))
        width = min(r.shape[1] for r in rows)
        loss = F.cross_entropy(router.logits(np.concatenate([r[:, :width] for r in rows]),
                                             np.minimum(np.concatenate(lengths), width), sparse=True), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with warnings.catch_warnings():  # torch warns that it skips sparse invariant checks: ours are built whole
            warnings.simplefilter("ignore", UserWarning)
            opt.step()
        if time.monotonic() > deadline:
            break
    return {"steps": done, "seconds": round(time.monotonic() - t0, 2)}
