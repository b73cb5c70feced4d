"""The n-gram decision (ngram_router.py): its hash, which TypeScript computes again, and its fit."""

from __future__ import annotations

import numpy as np
import torch

from moa_trainer.ngram_router import BUCKETS, NgramRouter, fit_ngram, gram_buckets

# The same ids and buckets are asserted in test/unit/ngram.test.ts: the two hashes must agree.
SHARED_IDS = [104, 101, 108, 108, 111, 258, 70000, 0]
SHARED_BUCKETS = [58520, 59327, 40660, 40660, 58413, 24824, 22105, 62992, 47476, 57030, 30620, 32725, 49449,
                  24682, 48221, 38353, 416, 51910, 8967, 26925, 56216, 44021, 27118, 27023, 1764, 55136]


def reference(ids: list[int], buckets: int) -> list[int]:
    """The documented hash with Python integers, no numpy: FNV-1a 32 over the order, then the ids."""
    out = []
    for k in (1, 2, 3, 4):
        for i in range(len(ids) - k + 1):
            h = 2166136261
            for word in [k, *ids[i:i + k]]:
                h = ((h ^ word) * 16777619) & 0xFFFFFFFF
            out.append((h ^ (h >> 16)) & (buckets - 1))
    return out


def test_hash_matches_the_reference_and_the_shared_values() -> None:
    assert gram_buckets(np.array(SHARED_IDS), BUCKETS).tolist() == SHARED_BUCKETS
    assert reference(SHARED_IDS, BUCKETS) == SHARED_BUCKETS
    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 50):
        ids = rng.integers(0, 200_000, n).tolist()
        assert gram_buckets(np.array(ids, dtype=np.int64), 1 << 10).tolist() == reference(ids, 1 << 10)


def test_fit_separates_domains_and_an_empty_prompt_gets_the_bias() -> None:
    rng = np.random.default_rng(1)
    # Two domains over the same bytes, told apart only by which pairs follow which.
    a = np.tile(np.array([1, 2, 3, 4]), 500)
    b = np.tile(np.array([4, 3, 2, 1]), 500)
    router = NgramRouter(2, buckets=1 << 10)
    fit = fit_ngram(router, [a, b], seq_len=32, steps=60, seed=0)
    assert fit["steps"] == 60
    with torch.no_grad():
        prompts = np.stack([a[s:s + 8] for s in rng.integers(0, 1900, 20)] + [b[s:s + 8] for s in rng.integers(0, 1900, 20)])
        lengths = rng.integers(2, 9, 40)
        chosen = router.logits(prompts, lengths).argmax(-1)
        assert chosen.tolist() == [0] * 20 + [1] * 20
        # Each row's bag holds only its first `lengths[i]` ids: the same as that prefix alone.
        alone = torch.stack([router.logits(p[None, :n], np.array([n]))[0] for p, n in zip(prompts, lengths)])
        assert torch.allclose(router.logits(prompts, lengths), alone, atol=1e-6)
        assert torch.equal(router.logits(prompts[:1], np.array([0]))[0], router.bias)


def test_a_deadline_ends_the_fit_after_one_step() -> None:
    router = NgramRouter(2, buckets=1 << 8)
    fit = fit_ngram(router, [np.arange(100), np.arange(100, 200)], seq_len=16, steps=1000, seed=0, deadline=0.0)
    assert fit["steps"] == 1
