"""`train`, stage "experts": every domain's LoRA expert trained at once on one frozen base.

Each optimizer step draws batch_size windows from every domain; the concatenated batch goes
through the base once, each sequence through its own domain's expert (one-hot routing by
index). The loss is the sum of the per-expert mean losses: the experts' parameters are
disjoint, so each expert gets exactly the gradient a separate run on its domain would get,
and clipping is per expert for the same reason.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from .config import Fields, read_json_config
from .data import WindowSampler, domain_seed, fixed_windows, open_shard
from .errors import TrainerError
from .fsutil import atomic_write_json
from .hf_folder import load_base_model
from .lora import LoraSpec, StackedLoRA, one_hot_index, parse_spec
from .model import CausalLM, count_params
from .protocol import StopFlag, emit
from .runtime import autocast, hello, pick_device, set_threads
from .safetensors_io import save_file
from .schedule import lr_at

STAGE = "experts"
DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Domain:
    name: str
    train: str
    val: Optional[str]
    fingerprint: Optional[str]


@dataclass(frozen=True)
class TrainConfig:
    run_id: str
    run_dir: Path
    base_model: str
    base_model_name: str
    experts_dir: Path
    domains: list[Domain]
    lora: LoraSpec
    steps: int
    batch_size: int
    seq_len: int
    lr: float
    warmup_steps: int
    seed: int
    eval_every: int
    eval_windows: int
    weight_decay: float
    device: str
    threads: int


def parse_config(path: str) -> TrainConfig:
    raw, source = read_json_config(path)
    f = Fields(raw, source)
    domains: list[Domain] = []
    for i, d in enumerate(f.list("domains", required=True)):
        if not isinstance(d, dict):
            raise TrainerError(f"{source}: domains[{i}] must be an object", None)
        df = Fields(d, f"{source}: domains[{i}]")
        name = df.str("name", required=True)
        if not DOMAIN_NAME.match(name):
            raise TrainerError(f"{source}: domain name {name!r} is not a safe folder name",
                               "use letters, digits, '.', '_' or '-'")
        domains.append(Domain(name, df.str("train", required=True), df.str("val"), df.str("fingerprint")))
    if not domains:
        raise TrainerError(f"{source}: domains is empty; nothing to train", None)
    names = [d.name for d in domains]
    if len(set(names)) != len(names):
        raise TrainerError(f"{source}: duplicate domain names in {names}", None)
    base_model = f.str("base_model", required=True)
    return TrainConfig(
        run_id=f.str("run_id", required=True),
        run_dir=Path(f.str("run_dir", required=True)),
        base_model=base_model,
        base_model_name=f.str("base_model_name", base_model),
        experts_dir=Path(f.str("experts_dir", required=True)),
        domains=domains,
        lora=parse_spec(raw.get("lora", {}), f"{source}: lora"),
        steps=f.int("steps", 100, minimum=1),
        batch_size=f.int("batch_size", 4, minimum=1),
        seq_len=f.int("seq_len", 128, minimum=1),
        lr=f.float("lr", 2e-3),
        warmup_steps=f.int("warmup_steps", 10, minimum=0),
        seed=f.int("seed", 0),
        eval_every=f.int("eval_every", 0, minimum=0),
        eval_windows=f.int("eval_windows", 32, minimum=1),
        weight_decay=f.float("weight_decay", 0.0),
        device=f.str("device", "auto"),
        threads=f.int("threads", 0, minimum=0),
    )


class ExpertTrainer:
    def __init__(self, cfg: TrainConfig, model: CausalLM, device: torch.device) -> None:
        self.cfg = cfg
        self.model = model
        self.device = device
        self.names = [d.name for d in cfg.domains]
        vocab = model.config.vocab_size
        window = cfg.seq_len + 1
        self.samplers = [WindowSampler(open_shard(d.train, d.name, "train", allow_empty=False), window,
                                       domain_seed(cfg.seed, d.name), d.name, d.train, vocab)
                         for d in cfg.domains]
        self.val: list[Optional[torch.Tensor]] = []
        for d in cfg.domains:
            tokens = open_shard(d.val, d.name, "val", allow_empty=True) if d.val else None
            self.val.append(None if tokens is None or len(tokens) == 0 else
                            fixed_windows(tokens, window, cfg.eval_windows, d.name, d.val or "", vocab))
        torch.manual_seed(cfg.seed)
        self.lora = StackedLoRA(model.config, cfg.lora, len(cfg.domains)).to(device)
        self.opt = torch.optim.AdamW(self.lora.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.index = one_hot_index(len(cfg.domains), cfg.batch_size, device)
        self.train_losses: list[list[float]] = [[] for _ in cfg.domains]
        self.val_losses: list[Optional[float]] = [None for _ in cfg.domains]

    def step(self, step: int) -> list[float]:
        cfg = self.cfg
        lr = lr_at(step, cfg.steps, cfg.warmup_steps, cfg.lr)
        for group in self.opt.param_groups:
            group["lr"] = lr
        batch = torch.cat([s.sample(cfg.batch_size) for s in self.samplers]).to(self.device)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        self.lora.train()
        with autocast(self.device):
            logits = self.model(inputs, adapter=self.lora.adapter(index=self.index)).logits
        token_loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
        per_expert = token_loss.view(len(self.names), -1).mean(1)
        self.opt.zero_grad(set_to_none=True)
        per_expert.sum().backward()
        self.lora.expert_grad_clip_(1.0)
        self.opt.step()
        losses = per_expert.detach().float().cpu().tolist()
        for e, loss in enumerate(losses):
            self.train_losses[e].append(loss)
        return losses

    @torch.no_grad()
    def evaluate(self, step: int) -> None:
        self.lora.eval()
        for e, windows in enumerate(self.val):
            if windows is None:
                continue
            total, count = 0.0, 0
            for chunk in windows.split(self.cfg.batch_size):
                chunk = chunk.to(self.device)
                index = torch.full((chunk.shape[0],), e, device=self.device, dtype=torch.long)
                with autocast(self.device):
                    logits = self.model(chunk[:, :-1], adapter=self.lora.adapter(index=index)).logits
                loss = F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum")
                total += float(loss)
                count += chunk[:, 1:].numel()
            self.val_losses[e] = total / count
            emit("eval", stage=STAGE, expert=self.names[e], domain=self.names[e],
                 loss=self.val_losses[e], step=step)

    def recent_loss(self, e: int) -> Optional[float]:
        """Mean of the last 10 steps: one step's loss is too noisy to record."""
        recent = self.train_losses[e][-10:]
        return sum(recent) / len(recent) if recent else None

    def save_checkpoint(self, step: int) -> Path:
        """Stacked LoRA plus AdamW moments, the state a resume needs (besides the data RNG)."""
        tensors = {f"lora.{k}": v.detach().float().cpu() for k, v in self.lora.state_dict().items()}
        for i, p in enumerate(self.lora.parameters()):
            for k, v in self.opt.state.get(p, {}).items():
                if isinstance(v, torch.Tensor):
                    tensors[f"optim.{i}.{k}"] = v.detach().float().cpu().reshape(v.shape)
        spec = self.cfg.lora
        meta = {"step": str(step), "experts": ",".join(self.names), "run_id": self.cfg.run_id,
                "r": str(spec.r), "lora_alpha": str(spec.alpha),
                "target_modules": ",".join(spec.target_modules), "base_model": self.cfg.base_model_name}
        path = self.cfg.run_dir / "checkpoints" / f"step-{step:06d}.safetensors"
        save_file(tensors, path, metadata=meta)
        return path

    def write_expert(self, e: int, steps_done: int) -> Path:
        cfg, spec, d = self.cfg, self.cfg.lora, self.cfg.domains[e]
        folder = cfg.experts_dir / d.name
        save_file(self.lora.peft_state_dict(e), folder / "adapter_model.safetensors", metadata={"format": "pt"})
        atomic_write_json(folder / "adapter_config.json", {
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": spec.r, "lora_alpha": spec.alpha,
            "lora_dropout": spec.dropout, "target_modules": list(spec.target_modules),
            "base_model_name_or_path": cfg.base_model_name, "bias": "none", "use_rslora": False,
            "fan_in_fan_out": False, "inference_mode": True, "modules_to_save": None,
            "init_lora_weights": True,
        })
        # expert.json last: its presence marks a complete expert.
        atomic_write_json(folder / "expert.json", {
            "v": 1, "domain": d.name, "base_model": cfg.base_model_name, "run_id": cfg.run_id,
            "steps": steps_done, "train_loss": self.recent_loss(e),
            "val_loss": self.val_losses[e], "fingerprint": d.fingerprint,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "lora": {"r": spec.r, "alpha": spec.alpha, "target_modules": list(spec.target_modules)},
        })
        return folder


def run(config_path: str, stop: StopFlag) -> None:
    start = time.perf_counter()
    cfg = parse_config(config_path)
    set_threads(cfg.threads)
    device = pick_device(cfg.device)
    hello(device)
    model = load_base_model(cfg.base_model, device=device)
    if cfg.seq_len > model.config.max_position_embeddings:
        raise TrainerError(f"{config_path}: seq_len {cfg.seq_len} exceeds the base model's "
                           f"max_position_embeddings {model.config.max_position_embeddings}",
                           "lower seq_len")
    model.requires_grad_(False)
    model.eval()
    trainer = ExpertTrainer(cfg, model, device)
    experts = len(cfg.domains)
    emit("plan", stage=STAGE, experts=trainer.names, steps=cfg.steps, batch_size=cfg.batch_size,
         seq_len=cfg.seq_len, tokens=cfg.steps * experts * cfg.batch_size * cfg.seq_len,
         params_trainable=count_params(trainer.lora), params_base=count_params(model))

    train_time, tokens, steps_done = 0.0, 0, 0
    for step in range(1, cfg.steps + 1):
        if stop.is_set():
            break
        t0 = time.perf_counter()
        losses = trainer.step(step)
        train_time += time.perf_counter() - t0
        tokens += experts * cfg.batch_size * cfg.seq_len
        steps_done = step
        lr = trainer.opt.param_groups[0]["lr"]
        elapsed = time.perf_counter() - start
        for name, loss in zip(trainer.names, losses):
            emit("step", stage=STAGE, expert=name, step=step, steps=cfg.steps, loss=loss, lr=lr,
                 tokens_per_s=tokens / train_time, elapsed_s=round(elapsed, 3))
        if cfg.eval_every and step % cfg.eval_every == 0 and step != cfg.steps:
            trainer.evaluate(step)

    stopped = stop.is_set() and steps_done < cfg.steps
    written: list[str] = []
    checkpoint: Optional[str] = None
    if steps_done > 0:
        if not stopped:
            trainer.evaluate(steps_done)
        path = trainer.save_checkpoint(steps_done)
        checkpoint = str(path)
        emit("checkpoint", path=checkpoint, step=steps_done)
        for e, name in enumerate(trainer.names):
            folder = trainer.write_expert(e, steps_done)
            written.append(name)
            emit("artifact", kind="expert", name=name, path=str(folder))
    emit("done", stopped=stopped, elapsed_s=round(time.perf_counter() - start, 3), stage=STAGE,
         steps_done=steps_done, experts=written, checkpoint=checkpoint,
         train_loss={n: trainer.recent_loss(e) for e, n in enumerate(trainer.names)},
         val_loss=dict(zip(trainer.names, trainer.val_losses)))
