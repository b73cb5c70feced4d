"""Training throughput of moa_trainer's real step (stage "experts") against peft + transformers
training the same LoRA on the same model and batch shapes, measured side by side in one
process (alternating timed blocks, so background load hits both alike).

Used by cpu_vs_peft.py and gpu_bench.py.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from common import TARGETS, train_config, write_domains, write_model
from moa_trainer.dist import Dist
from moa_trainer.mfu import flops_per_token, peak_flops
from moa_trainer.model import ModelConfig
from moa_trainer.stages import Ctx, LoraStage
from moa_trainer.train import load_model
from moa_trainer.train_config import parse_config


@dataclass
class Result:
    name: str
    tokens_per_s: float
    step_s: float
    mfu: Optional[float]
    peak_mem_gb: Optional[float]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours(root: Path, model_dir: Path, experts: int, batch: int, seq: int, device: str,
         extra: dict[str, Any]) -> tuple[Callable[[int], None], int, Any]:
    domains = write_domains(root / f"data{experts}", [f"d{i}" for i in range(experts)], 200_000, 1000)
    cfg_path = root / f"ours{experts}.json"
    cfg_path.write_text(json.dumps(train_config(root / f"o{experts}", model_dir, domains, batch_size=batch,
                                                seq_len=seq, steps=10**6, device=device, **extra)))
    cfg = parse_config(str(cfg_path))
    dev = torch.device(device)
    model = load_model(cfg, str(cfg_path), dev)
    stage = LoraStage(Ctx(cfg, model, dev, Dist()), "experts")
    return stage.step, experts * batch * seq, (model, stage.trainable())


def theirs(model_dir: Path, experts: int, batch: int, seq: int, device: str, r: int,
           alpha: int) -> tuple[Callable[[int], None], int, Any]:
    """peft's LoRA on transformers' model; one adapter, batch = experts × batch (the same tokens)."""
    import peft
    import transformers

    dev = torch.device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).to(dev)
    model = peft.get_peft_model(hf, peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=TARGETS,
                                                    lora_dropout=0.0, task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    rows = experts * batch
    g = torch.Generator().manual_seed(0)
    vocab = hf.config.vocab_size

    def step(_: int) -> None:
        batch_ids = torch.randint(0, min(vocab, 1000), (rows, seq + 1), generator=g).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits = model(input_ids=batch_ids[:, :-1]).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch_ids[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return step, rows * seq, None


def timed(step: Callable[[int], None], n: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for i in range(n):
        step(i + 1)
    sync(device)
    return time.perf_counter() - t0


def compare(cfg: ModelConfig, experts_list: list[int], batch: int, seq: int, device: str, steps: int,
            warmup: int, rounds: int, extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    dev = torch.device(device)
    extra = extra or {}
    out: dict[str, Any] = {"device": device, "batch_per_expert": batch, "seq_len": seq, "steps_per_round": steps,
                           "rounds": rounds, "results": []}
    gpu_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else None
    peak = peak_flops(gpu_name, None)
    out["gpu"] = gpu_name
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = write_model(root / "model", cfg)
        for experts in experts_list:
            o_step, o_tokens, (o_model, trainable) = ours(root, model_dir, experts, batch, seq, device, extra)
            t_step, t_tokens, _ = theirs(model_dir, experts, batch, seq, device, 8, 16)
            for s in (o_step, t_step):
                timed(s, warmup, dev)
            o_time = t_time = 0.0
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            for _ in range(rounds):
                o_time += timed(o_step, steps, dev)
                t_time += timed(t_step, steps, dev)
            o_tps = o_tokens * steps * rounds / o_time
            t_tps = t_tokens * steps * rounds / t_time
            fpt = flops_per_token(o_model, trainable, seq)
            mfu = (o_tps * fpt / peak) if peak else None
            t_mfu = (t_tps * fpt / peak) if peak else None
            out["results"].append({"experts": experts, "ours_tokens_per_s": o_tps, "peft_tokens_per_s": t_tps,
                                   "ratio_ours_over_peft": o_tps / t_tps, "ours_mfu": mfu, "peft_mfu": t_mfu,
                                   "ours_step_s": o_time / (steps * rounds),
                                   "peft_step_s": t_time / (steps * rounds)})
            del o_step, t_step, o_model
            if dev.type == "cuda":
                out["results"][-1]["peak_mem_gb_both"] = torch.cuda.max_memory_allocated(dev) / 2**30
                torch.cuda.empty_cache()
    tps = {r["experts"]: r["ours_tokens_per_s"] for r in out["results"]}
    if 1 in tps and 4 in tps:
        # Same per-expert batch: 4 experts at once vs the 1-expert step run 4 times over.
        out["ours_concurrent_4_over_sequential_1"] = tps[4] / tps[1]
    return out
