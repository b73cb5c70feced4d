"""What the text after the cursor is worth to the built-in base: loss on held-out middles, in bits
per byte, read prefix only, prefix-suffix-middle (PSM) and suffix-prefix-middle (SPM).

    .venv/bin/python bench/fim_infill.py [--windows N] [--quick]

The held-out split of moa-tiny's own pretraining corpus (models/moa-tiny.pretrain.json), so no
middle was seen in training; the same cuts for the three readings (seed 0). Three kinds of middle:
two uniform random cuts (as training draws them), the rest of a line after a mid-line cursor (what
an inline completion fills), and 1 to 32 bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import record_figure

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "trainer"))

from moa_trainer.corpus import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, build, parse_sources  # noqa: E402
from moa_trainer.data import fixed_windows  # noqa: E402
from moa_trainer.hf_folder import load_base_model  # noqa: E402

NEWLINE = 10


def cut(w: torch.Tensor, kind: str, rng: np.random.Generator) -> tuple[int, int] | None:
    n = len(w)
    if kind == "random":
        a, b = sorted(int(x) for x in rng.integers(1, n, size=2))
        return (a, b) if a < b else None
    if kind == "rest of line":
        # A cursor inside a line, at least 64 bytes in; the middle runs to that line's end.
        ends = [i for i in range(64, n - 64) if int(w[i]) == NEWLINE]
        if len(ends) < 2:
            return None
        j = int(rng.integers(0, len(ends) - 1))
        start, end = ends[j] + 1, ends[j + 1]
        return (int(rng.integers(start, end)), end) if end - start >= 4 else None
    length = int(rng.integers(1, 33))
    a = int(rng.integers(64, n - length - 64))
    return a, a + length


@torch.no_grad()
def readings(model: torch.nn.Module, windows: torch.Tensor, kind: str) -> dict[str, float]:
    rng = np.random.default_rng(0)
    one = lambda t: torch.tensor([t], dtype=windows.dtype)  # noqa: E731
    p, s, m = one(FIM_PREFIX), one(FIM_SUFFIX), one(FIM_MIDDLE)
    sums, count = {"prefix only": 0.0, "PSM": 0.0, "SPM": 0.0}, 0
    for w in windows:
        ab = cut(w, kind, rng)
        if ab is None:
            continue
        a, b = ab
        mid = w[a:b]
        for name, seq in (("prefix only", w[:b]), ("PSM", torch.cat([p, w[:a], s, w[b:], m, mid])),
                          ("SPM", torch.cat([p, s, w[b:], m, w[:a], mid]))):
            logits = model(seq[None, :-1]).logits[0, len(seq) - len(mid) - 1:]
            sums[name] += float(F.cross_entropy(logits.float(), mid, reduction="sum"))
        count += len(mid)
    return {k: v / count / math.log(2) for k, v in sums.items()} | {"bytes": count}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="24 windows: checks the bench runs")
    args = ap.parse_args()
    windows_wanted = 24 if args.quick else args.windows
    torch.set_num_threads(2)
    recipe = json.loads((ROOT / "models" / "moa-tiny.pretrain.json").read_text())
    corpus = build(parse_sources(recipe["corpus"]["sources"], ROOT, "moa-tiny.pretrain.json"),
                   recipe["corpus"]["val_percent"])
    model = load_base_model(ROOT / "models" / "moa-tiny").eval()
    windows = fixed_windows(corpus.val, 513, windows_wanted, "pretrain", "corpus (val split)", model.config.vocab_size)
    out = {}
    for kind in ("random", "rest of line", "1-32 bytes"):
        r = out[kind] = readings(model, windows, kind)
        print(f"{kind:14s} prefix only {r['prefix only']:.3f}  PSM {r['PSM']:.3f}  SPM {r['SPM']:.3f} bits/byte"
              f"  ({r['bytes']} middle bytes)")
        for layout in ("PSM", "SPM"):
            ratio = r[layout] / r["prefix only"]
            record_figure("fim", f"moa-tiny held-out middles ({kind}), {layout} prompt", r[layout], "bits/byte",
                          comparison="prefix-only prompt, same cuts", theirs=r["prefix only"], ratio=ratio,
                          note=f"{len(windows)} windows, {r['bytes']} bytes")
    print(json.dumps({"windows": len(windows), "results": out}, indent=2))


if __name__ == "__main__":
    main()
