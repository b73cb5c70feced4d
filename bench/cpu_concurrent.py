"""4 experts trained concurrently (one process, one base, stacked LoRA) versus one after another
(4 processes of 1 expert each), same tokens and per-expert batch: wall time and peak RSS.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cpu_concurrent.py [--steps 10] [--rounds 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import SMALL_LLAMA, measure, record_figure, train_config, write_domains, write_model

NAMES = ["python", "sql", "terraform", "docs"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="2 steps, 1 round: checks the bench runs")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.rounds = 2, 1
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
        what = f"4 experts, {args.steps} steps × {args.batch} × {args.seq} tokens each, CPU, 1 thread"
        record_figure("trainer-concurrent", f"training wall time, concurrently vs one after another ({what})", c["wall_s"], "s",
                      comparison="4 runs of 1 expert, one after another", theirs=s["wall_s"],
                      ratio=s["wall_s"] / c["wall_s"], target="≥ 1.0× (no slower)", met=s["wall_s"] >= c["wall_s"])
        record_figure("trainer-concurrent", f"training in-loop tokens/s, concurrently vs one after another ({what})",
                      c["tokens_per_s"], "tok/s", comparison="4 runs of 1 expert", theirs=s["tokens_per_s"],
                      ratio=c["tokens_per_s"] / s["tokens_per_s"])
        mem = c["peak_rss_mb"] / s["peak_rss_mb"]
        record_figure("trainer-concurrent", f"training peak memory, 4 experts concurrently vs 1 expert ({what})",
                      c["peak_rss_mb"], "MB", comparison="one 1-expert run", theirs=s["peak_rss_mb"], ratio=mem,
                      target="≤ 1.25×", met=mem <= 1.25)


if __name__ == "__main__":
    main()
