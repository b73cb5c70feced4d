"""4 experts trained concurrently (one process, one base, stacked LoRA) versus one after another
(4 processes of 1 expert each), same tokens and per-expert batch: wall time and peak RSS.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cpu_concurrent.py [--steps 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import SMALL_LLAMA, measure, train_config, write_domains, write_model

NAMES = ["python", "sql", "terraform", "docs"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = write_model(root / "model", SMALL_LLAMA)
        domains = write_domains(root / "data", NAMES, 20000, SMALL_LLAMA.vocab_size)
        over = dict(steps=args.steps, batch_size=args.batch, seq_len=args.seq, threads=1)
        results: dict[str, list[dict[str, float]]] = {"concurrent": [], "sequential": []}
        for r in range(args.rounds):  # alternate so background load hits both alike
            c = measure(train_config(root / f"c{r}", model, domains, **over), root / f"c{r}.json")
            results["concurrent"].append({"wall_s": c.wall_s, "peak_rss_mb": c.peak_rss_mb,
                                          "tokens_per_s": c.tokens_per_s or 0.0})
            runs = [measure(train_config(root / f"s{r}{i}", model, [d], **over), root / f"s{r}{i}.json")
                    for i, d in enumerate(domains)]
            # tokens/s over the four loops together: total tokens / total in-loop time
            tokens = args.steps * args.batch * args.seq
            loop_s = sum(tokens / (x.tokens_per_s or 1.0) for x in runs)
            results["sequential"].append({"wall_s": sum(x.wall_s for x in runs),
                                          "peak_rss_mb": max(x.peak_rss_mb for x in runs),
                                          "tokens_per_s": 4 * tokens / loop_s})
        best = {k: {m: (min if m != "tokens_per_s" else max)(x[m] for x in v) for m in v[0]}
                for k, v in results.items()}
        c, s = best["concurrent"], best["sequential"]
        summary = {
            "config": {"model": "SMALL_LLAMA (hidden 256, 4 layers, GQA 8/4, vocab 258)", **over,
                       "experts": 4, "lora_r": 8, "targets": "q,k,v,o"},
            "best_of_rounds": best,
            "wall_ratio_sequential_over_concurrent": s["wall_s"] / c["wall_s"],
            "loop_tokens_per_s_ratio_concurrent_over_sequential": c["tokens_per_s"] / s["tokens_per_s"],
            "peak_rss_ratio_concurrent_over_single_expert": c["peak_rss_mb"] / s["peak_rss_mb"],
            "rounds": results,
        }
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
