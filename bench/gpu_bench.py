"""GPU benchmark (needs CUDA; not run on the CPU-only development machine).

A Qwen2-0.5B-shaped model with random weights, bf16 autocast, seq 1024: tokens/s and MFU of
moa_trainer's expert step for 1 and 4 experts, side by side with peft + transformers training
the same LoRA (r 8, q/k/v/o) on the same batch shapes. Designed to finish in well under
6 minutes on one H100/H200-class GPU.

    .venv/bin/python bench/gpu_bench.py                 # full run, prints JSON
    .venv/bin/python bench/gpu_bench.py --smoke         # tiny shapes (GPU if any, else CPU): checks the script
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from common import QWEN2_05B, SMALL_LLAMA, record_figure
from speed import compare


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny model (on the GPU if any, else the CPU), to check the script runs")
    ap.add_argument("--batch", type=int, default=4, help="sequences per expert per step")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.smoke:
        # Tiny shapes on the GPU when there is one (the CUDA path: bf16 autocast, MFU), else on CPU.
        res = compare(SMALL_LLAMA, [1, 4], 1, 32, "cuda" if torch.cuda.is_available() else "cpu", 1, warmup=1,
                      rounds=1)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("gpu_bench.py needs CUDA (use --smoke to check the script on CPU)")
        torch.backends.cuda.matmul.allow_tf32 = True
        res = compare(QWEN2_05B, [1, 4], args.batch, args.seq, "cuda", args.steps, warmup=3, rounds=args.rounds)
    res["model"] = "SMALL_LLAMA (smoke)" if args.smoke else "Qwen2-0.5B shape, random init, bf16 autocast"
    res["wall_s"] = time.perf_counter() - t0
    print(json.dumps(res, indent=2))
    where = f"{res['model']}, {res['gpu'] or 'CPU'}"
    for r in res["results"]:
        record_figure("gpu", f"training tokens/s vs peft + transformers, {r['experts']} expert(s), {where}",
                      r["ours_tokens_per_s"], "tok/s", comparison="peft + transformers", theirs=r["peft_tokens_per_s"],
                      ratio=r["ratio_ours_over_peft"], target="≥ 1.5× (on CUDA)", met=r["ratio_ours_over_peft"] >= 1.5)
    if "ours_concurrent_4_over_sequential_1" in res:
        x = res["ours_concurrent_4_over_sequential_1"]
        record_figure("gpu", f"training tokens/s, 4 experts concurrently vs 1, {where}", x, "×",
                      target="≥ 2× (on CUDA)", met=x >= 2)

if __name__ == "__main__":
    main()
