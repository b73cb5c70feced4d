"""CPU tokens/s: moa_trainer vs peft + transformers, same small Llama, same LoRA, same batches.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cpu_vs_peft.py
"""

from __future__ import annotations

import argparse
import json

import torch

from common import SMALL_LLAMA, record_figure
from speed import compare


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="1 step, 1 round: checks the bench runs")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.rounds = 1, 1
    torch.set_num_threads(1)
    res = compare(SMALL_LLAMA, [1, 4], args.batch, args.seq, "cpu", args.steps, warmup=2, rounds=args.rounds,
                  extra={"threads": 1})
    res["model"] = "SMALL_LLAMA (hidden 256, 4 layers, GQA 8/4, SwiGLU 688, vocab 258, tied)"
    res["lora"] = "r 8, alpha 16, q/k/v/o"
    res["torch_threads"] = torch.get_num_threads()
    print(json.dumps(res, indent=2))
    for r in res["results"]:
        record_figure("trainer-vs-peft", f"training tokens/s vs peft + transformers, {r['experts']} expert(s), same batches, CPU, 1 thread",
                      r["ours_tokens_per_s"], "tok/s", comparison="peft + transformers", theirs=r["peft_tokens_per_s"],
                      ratio=r["ratio_ours_over_peft"], target="≥ 1.0×", met=r["ratio_ours_over_peft"] >= 1.0)


if __name__ == "__main__":
    main()
