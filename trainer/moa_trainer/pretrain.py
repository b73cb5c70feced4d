"""`pretrain`: train a small byte-level base model from scratch and write it as an HF folder.

This is how the built-in `models/moa-tiny` is made (config: models/moa-tiny.pretrain.json).
Relative paths in the config resolve against its `base_dir`, itself relative to the config
file, so the recipe runs from any working directory.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .config import Fields, read_json_config
from .corpus import BOS, EOS, FIM_MIDDLE, FIM_NAMES, FIM_PREFIX, FIM_SUFFIX, VOCAB, VOCAB_FIM, build, parse_sources
from .data import WindowSampler, fixed_windows
from .errors import TrainerError
from .fim import FimConfig, FimTransform
from .train_config import parse_fim
from .fsutil import atomic_write_json, previous_path, publish_dir
from .hf_folder import save_model_files
from .model import CausalLM, ModelConfig, count_params, init_weights
from .protocol import StopFlag, emit
from .runtime import autocast, hello, pick_device, set_threads
from .schedule import lr_at

STAGE = "pretrain"


def byte_tokenizer_json(fim: bool = False) -> dict[str, Any]:
    """With FIM, `fim_layout` tells the prompt builder to put the suffix first: at this size the
    model writes a middle far better right after its prefix (models/README.md, infill figures)."""
    def special(i: int, text: str) -> dict[str, Any]:
        return {"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}

    names = {BOS: "<s>", EOS: "</s>", **(FIM_NAMES if fim else {})}
    return {"version": "1.0",
            "moa": {"type": "bytes", "vocab_size": VOCAB_FIM if fim else VOCAB, "bos_token_id": BOS, "eos_token_id": EOS,
                    **({"fim_layout": "spm"} if fim else {})},
            "added_tokens": [special(i, text) for i, text in names.items()]}


def _model_config(raw: dict[str, Any], source: str, vocab: int) -> ModelConfig:
    d = {"model_type": "llama", "vocab_size": vocab, "bos_token_id": BOS, "eos_token_id": EOS,
         "tie_word_embeddings": True, **raw}
    cfg = ModelConfig.from_hf(d, f"{source}: model")
    if cfg.vocab_size != vocab:
        raise TrainerError(f"{source}: model.vocab_size must be {vocab} for the byte-level tokenizer"
                           f"{' with FIM sentinels' if vocab == VOCAB_FIM else ''}", None)
    return cfg


def _fim_config(raw: Any, source: str) -> FimConfig | None:
    """The recipe's `fim` block (rate, spm_rate) read as a train config's, with the sentinels' ids."""
    ids = {"prefix": FIM_PREFIX, "suffix": FIM_SUFFIX, "middle": FIM_MIDDLE}
    return parse_fim({**raw, **ids} if isinstance(raw, dict) else raw, source)


@torch.no_grad()
def held_out_loss(model: CausalLM, windows: torch.Tensor, batch: int, device: torch.device) -> float:
    model.eval()
    total, count = 0.0, 0
    for chunk in windows.split(batch):
        chunk = chunk.to(device)
        with autocast(device):
            logits = model(chunk[:, :-1]).logits
        total += float(F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum"))
        count += chunk[:, 1:].numel()
    model.train()
    return total / count


Cut = Callable[[torch.Tensor, np.random.Generator], Optional[tuple[int, int]]]


def uniform_cut(w: torch.Tensor, rng: np.random.Generator) -> Optional[tuple[int, int]]:
    """Two random points of the window (as the FIM transform draws them); None when they meet."""
    a, b = sorted(int(x) for x in rng.integers(1, len(w), size=2))
    return (a, b) if a < b else None


@torch.no_grad()
def infill_sums(model: CausalLM, windows: torch.Tensor, fim: FimConfig, rng: np.random.Generator,
                device: torch.device, cut: Cut = uniform_cut) -> tuple[dict[str, float], int]:
    """
    Summed loss (nats) on the middles `cut` marks in each window, read three ways: prefix only,
    prefix-suffix-middle and suffix-prefix-middle (the model sees the text after the gap), and the
    middles' token count. The same cuts for all, so the differences are what the suffix and the
    layout are worth (bench/fim_infill.py reads line ends and short middles the same way).
    """
    model.eval()
    sums, count = {"prefix_only": 0.0, "psm": 0.0, "spm": 0.0}, 0
    p, s, m = (torch.tensor([t], dtype=windows.dtype) for t in (fim.prefix, fim.suffix, fim.middle))
    for w in windows:
        ab = cut(w, rng)
        if ab is None:
            continue
        a, b = ab
        mid = w[a:b]
        layouts = {"prefix_only": w[:b], "psm": torch.cat([p, w[:a], s, w[b:], m, mid]),
                   "spm": torch.cat([p, s, w[b:], m, w[:a], mid])}
        for k, seq in layouts.items():
            first = len(seq) - len(mid)
            with autocast(device):
                logits = model(seq[None, :-1].to(device)).logits[0, first - 1:]
            sums[k] += float(F.cross_entropy(logits.float(), mid.to(device), reduction="sum"))
        count += len(mid)
    model.train()
    return sums, count


def infill_losses(model: CausalLM, windows: torch.Tensor, fim: FimConfig, seed: int,
                  device: torch.device) -> dict[str, float]:
    """Mean loss (nats per token) on the middles of held-out windows cut at two random points."""
    sums, count = infill_sums(model, windows, fim, np.random.default_rng([seed, 0x1F1]), device)
    return {k: v / count for k, v in sums.items()}


def _write_folder(out: Path, model: CausalLM, record: dict[str, Any], fim: bool) -> None:
    """Build the folder beside `out`, then swap it in, so `out` is never half written."""
    def write(tmp: Path) -> None:
        save_model_files(model, tmp)
        atomic_write_json(tmp / "tokenizer.json", byte_tokenizer_json(fim))
        atomic_write_json(tmp / "pretrain.json", record)
    publish_dir(out, write)
    shutil.rmtree(previous_path(out), ignore_errors=True)


def run(config_path: str, stop: StopFlag) -> None:
    start = time.perf_counter()
    raw, source = read_json_config(config_path)
    f = Fields(raw, source)
    base_dir = (Path(config_path).resolve().parent / f.str("base_dir", ".")).resolve()
    out = base_dir / f.str("out", required=True)
    corpus_cfg = Fields(f.dict("corpus", required=True), f"{source}: corpus")
    sources = parse_sources(corpus_cfg.list("sources", required=True), base_dir, source)
    val_percent = corpus_cfg.int("val_percent", 5, minimum=0)
    fim = _fim_config(raw.get("fim"), source)
    vocab = VOCAB_FIM if fim else VOCAB
    mcfg = _model_config(f.dict("model", required=True), source, vocab)
    steps = f.int("steps", required=True, minimum=1)
    batch = f.int("batch_size", 16, minimum=1)
    seq_len = f.int("seq_len", 256, minimum=1)
    peak_lr = f.float("lr", 3e-3)
    warmup = f.int("warmup_steps", 100, minimum=0)
    weight_decay = f.float("weight_decay", 0.1)
    seed = f.int("seed", 0)
    eval_every = f.int("eval_every", 0, minimum=0)
    eval_windows = f.int("eval_windows", 64, minimum=1)
    log_every = f.int("log_every", 10, minimum=1)
    max_seconds = f.float("max_seconds", 0.0)
    set_threads(f.int("threads", 0, minimum=0))
    device = pick_device(f.str("device", "auto"))
    hello(device)

    corpus = build(sources, val_percent)
    window = seq_len + 1
    if len(corpus.val) < window:
        raise TrainerError(f"{source}: the held-out split has {len(corpus.val)} tokens, less than one window",
                           "raise corpus.val_percent or the byte caps")
    sampler = WindowSampler(corpus.train, window, seed, "pretrain", "corpus (train split)", vocab)
    val_quick = fixed_windows(corpus.val, window, eval_windows, "pretrain", "corpus (val split)", vocab)
    # Training windows only: held-out loss stays plain text, comparable with a base without FIM.
    transform = FimTransform(fim, seed) if fim else None

    torch.manual_seed(seed)
    model = CausalLM(mcfg)
    init_weights(model)
    model.to(device).train()
    params = count_params(model)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=peak_lr, betas=(0.9, 0.95))
    emit("plan", stage=STAGE, experts=[], steps=steps, batch_size=batch, seq_len=seq_len,
         tokens=steps * batch * seq_len, params_trainable=params, params_base=params,
         corpus_train_tokens=len(corpus.train), corpus_val_tokens=len(corpus.val))

    train_time, tokens, steps_done, loss_val = 0.0, 0, 0, float("nan")
    budget_hit = False
    stop.begin_loop()
    for step in range(1, steps + 1):
        if stop.is_set():
            break
        # With a wall budget, the schedule follows whichever is further along, steps or time,
        # so a slower machine still anneals fully instead of stopping at a high learning rate.
        pace = step if not max_seconds else max(step, math.ceil(steps * train_time / max_seconds))
        if pace > steps:
            budget_hit = True
            break
        t0 = time.perf_counter()
        lr = lr_at(pace, steps, warmup, peak_lr)
        for group in opt.param_groups:
            group["lr"] = lr
        xy = sampler.sample(batch)
        xy = (transform.apply(xy) if transform else xy).to(device)
        with autocast(device):
            logits = model(xy[:, :-1]).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), xy[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_val = loss.item()
        train_time += time.perf_counter() - t0
        tokens += batch * seq_len
        steps_done = step
        if step % log_every == 0 or step == 1 or step == steps:
            emit("step", stage=STAGE, expert="base", step=step, steps=steps, loss=loss_val, lr=lr,
                 tokens_per_s=tokens / train_time, elapsed_s=round(time.perf_counter() - start, 3))
        if eval_every and step % eval_every == 0 and step != steps:
            emit("eval", stage=STAGE, expert="base", domain="held-out",
                 loss=held_out_loss(model, val_quick, batch, device), step=step)
    if steps_done == 0:
        emit("done", stopped=True, elapsed_s=round(time.perf_counter() - start, 3), stage=STAGE, steps_done=0)
        return

    stopped = stop.is_set() and steps_done < steps
    # The reported figure uses every held-out window (non-overlapping), unless stopping early.
    val_windows = val_quick if stopped else fixed_windows(
        corpus.val, window, len(corpus.val) // window, "pretrain", "corpus (val split)", vocab)
    val_loss = held_out_loss(model, val_windows, batch, device)
    bpb = val_loss / math.log(2)
    emit("eval", stage=STAGE, expert="base", domain="held-out", loss=val_loss, step=steps_done)
    infill: dict[str, Any] = {}
    if fim:
        infill = {f"infill_{k}_bits_per_byte": v / math.log(2)
                  for k, v in infill_losses(model, val_windows, fim, seed, device).items()}
    record = {
        "v": 1, "recipe": f"python -m moa_trainer pretrain --config {config_path}",
        "config": raw, "params": params, "steps_done": steps_done, "tokens_seen": tokens,
        "train_seconds": round(train_time, 1), "tokens_per_s": round(tokens / train_time, 1),
        "final_train_loss": loss_val, "val_loss": val_loss, "val_bits_per_byte": bpb,
        "val_tokens_evaluated": int(val_windows[:, 1:].numel()), **infill,
        "corpus": [vars(s) for s in corpus.stats], "stopped": stopped, "budget_hit": budget_hit,
        "torch": torch.__version__, "device": device.type, "threads": torch.get_num_threads(),
    }
    _write_folder(out, model.float(), record, fim is not None)
    emit("artifact", kind="base", name=out.name, path=str(out))
    emit("done", stopped=stopped, elapsed_s=round(time.perf_counter() - start, 3), stage=STAGE,
         steps_done=steps_done, tokens_seen=tokens, params=params, val_loss=val_loss,
         val_bits_per_byte=bpb, budget_hit=budget_hit, path=str(out), **infill,
         corpus_bytes=sum(s.bytes for s in corpus.stats))
