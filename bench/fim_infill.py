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

from common import record_figure

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "trainer"))

from moa_trainer.corpus import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, build, parse_sources  # noqa: E402
from moa_trainer.data import fixed_windows  # noqa: E402
from moa_trainer.fim import FimConfig  # noqa: E402
from moa_trainer.hf_folder import load_base_model  # noqa: E402
from moa_trainer.pretrain import Cut, infill_sums, uniform_cut  # noqa: E402

NEWLINE = 10


def cut(kind: str) -> Cut:
    def at(w: torch.Tensor, rng: np.random.Generator) -> tuple[int, int] | None:
        n = len(w)
        if kind == "random":
            return uniform_cut(w, rng)
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
    return at


def readings(model: torch.nn.Module, windows: torch.Tensor, kind: str) -> dict[str, float]:
    """pretrain.infill_sums on this kind of cut, in bits per byte (one token is one byte)."""
    fim = FimConfig(prefix=FIM_PREFIX, suffix=FIM_SUFFIX, middle=FIM_MIDDLE)
    sums, count = infill_sums(model, windows, fim, np.random.default_rng(0), torch.device("cpu"), cut(kind))
    names = {"prefix only": "prefix_only", "PSM": "psm", "SPM": "spm"}
    return {k: sums[v] / count / math.log(2) for k, v in names.items()} | {"bytes": count}


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
