"""Token shards (little-endian uint32, see PROTOCOL.md) and seeded random windows over them."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import torch

from .errors import TrainerError

HINT_REBUILD = "rebuild the training data (moa data) and try again"


def open_shard(path: str | os.PathLike[str], domain: str, split: str, allow_empty: bool) -> np.ndarray:
    """Memory-map a shard; an empty file gives an empty array (np.memmap cannot map 0 bytes)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        if allow_empty:
            return np.zeros(0, dtype="<u4")
        raise TrainerError(f"domain {domain!r}: {split} shard not found: {p}", HINT_REBUILD) from None
    if size % 4:
        raise TrainerError(f"domain {domain!r}: {split} shard {p} is {size} bytes, "
                           "not a whole number of uint32 tokens", HINT_REBUILD)
    if size == 0:
        if allow_empty:
            return np.zeros(0, dtype="<u4")
        raise TrainerError(f"domain {domain!r}: {split} shard {p} is empty", HINT_REBUILD)
    return np.memmap(p, dtype="<u4", mode="r")


def check_length(tokens: np.ndarray, window: int, domain: str, split: str, path: str) -> None:
    if len(tokens) < window:
        raise TrainerError(f"domain {domain!r}: {split} shard {path} has {len(tokens)} tokens, "
                           f"fewer than one window of seq_len + 1 = {window}",
                           "add more files to this domain or lower seq_len")


def _checked(windows: np.ndarray, vocab_size: int, domain: str, path: str) -> torch.Tensor:
    top = int(windows.max()) if windows.size else 0
    if top >= vocab_size:
        raise TrainerError(f"domain {domain!r}: token id {top} in {path} is outside the model's "
                           f"vocabulary ({vocab_size})",
                           "the data was tokenized for a different base model; rebuild it")
    return torch.from_numpy(windows.astype(np.int64))


class WindowSampler:
    """Random windows of `window` tokens (seq_len + 1: inputs plus shifted targets)."""

    def __init__(self, tokens: np.ndarray, window: int, seed: int, domain: str, path: str,
                 vocab_size: int) -> None:
        check_length(tokens, window, domain, "train", path)
        self.tokens = tokens
        self.window = window
        self.domain = domain
        self.path = path
        self.vocab_size = vocab_size
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int) -> torch.Tensor:
        starts = self.rng.integers(0, len(self.tokens) - self.window + 1, size=batch)
        windows = np.stack([np.asarray(self.tokens[s:s + self.window]) for s in starts])
        return _checked(windows, self.vocab_size, self.domain, self.path)


def fixed_windows(tokens: np.ndarray, window: int, max_windows: int, domain: str, path: str,
                  vocab_size: int) -> torch.Tensor:
    """Evenly spread, deterministic windows for evaluation (the same ones every eval)."""
    check_length(tokens, window, domain, "val", path)
    last = len(tokens) - window
    count = max(1, min(max_windows, len(tokens) // window))
    starts = np.linspace(0, last, num=count).round().astype(np.int64)
    windows = np.stack([np.asarray(tokens[s:s + window]) for s in starts])
    return _checked(windows, vocab_size, domain, path)


def domain_seed(seed: int, domain: str) -> int:
    # Keyed by name, so a domain's stream does not shift when other domains are added or reordered.
    return int(np.random.SeedSequence([seed, zlib.crc32(domain.encode("utf-8"))]).generate_state(1)[0])
