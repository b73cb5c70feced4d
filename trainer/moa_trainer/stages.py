"""The three training stages of `train`, each a step function plus its state and its outputs.

- `experts` (stage 1): every domain's expert at once on one frozen base; each sequence goes
  through its own domain's expert (one-hot routing by index). The loss is the sum of the
  per-expert mean losses: the experts' parameters are disjoint, so each expert gets exactly
  the gradient a separate run on its domain would get, and clipping is per expert.
- `mixed` (baseline): one LoRA of the same rank on the union of the same batches.
- `router` (stage 2): per-layer routers over the experts, `L = L_LM + η·L_cls`, base frozen,
  experts at `expert_lr_mult` × the router's learning rate (0 freezes them).

The engine (train.py) owns the loop, checkpoints, events and resume; a stage only knows how
to take one optimizer step, evaluate, save/restore its state and write its artifacts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .batches import BatchSource, val_windows
from .checkpoint import load_optimizer, optimizer_tensors
from .data import domain_seed
from .dist import Dist
from .errors import TrainerError
from .experts_io import (check_compatible, load_into_slot, now_iso, read_expert_json, read_peft_spec,
                         write_expert_folder)
from .lora import StackedLoRA
from .model import CausalLM
from .protocol import emit
from .ngram_router import NGRAM_BATCH, NgramRouter, fit_ngram
from .router import RoutedAdapter, Routers, fit_linear, masked_mean, router_files
from .runtime import autocast
from .schedule import lr_at
from .train_config import TrainConfig

STAGE_SEED_OFFSET = {"experts": 0, "router": 1, "mixed": 2}


class NonFiniteLoss(TrainerError):
    pass


@dataclass
class StepResult:
    losses: list[float]  # one per series (expert names, or ["mixed"] / ["router"])
    extra: dict[str, Any]


@dataclass
class Ctx:
    cfg: TrainConfig
    model: CausalLM
    device: torch.device
    dist: Dist


def stage_seed(cfg: TrainConfig, stage: str, domain: str) -> int:
    # Stage 1 keeps the 0.1 streams (seed, domain); the other stages get their own.
    if stage == "experts":
        return domain_seed(cfg.seed, domain)
    return domain_seed(cfg.seed * 7919 + STAGE_SEED_OFFSET[stage], domain)


def row_losses(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token loss per row [rows]."""
    tok = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    return tok.view(targets.shape).mean(1)


def per_domain(values: Tensor, ids: Tensor, n: int) -> Tensor:
    sums = torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, ids, values)
    counts = torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, ids, torch.ones_like(values))
    return sums / counts.clamp(min=1)


def check_finite(stage: str, step: int, names: list[str], losses: Tensor) -> None:
    bad = [n for n, v in zip(names, losses.detach().float().cpu().tolist()) if not math.isfinite(v)]
    if bad:
        raise NonFiniteLoss(f"stage {stage}, step {step}: the loss is not finite (NaN or inf) for domain"
                            f"{'s' if len(bad) > 1 else ''} {', '.join(repr(b) for b in bad)}",
                            "lower lr (or check that domain's data); nothing of this step was kept")


class Stage:
    name = ""
    # Fill-in-the-middle windows (when configured): the experts and the mixed baseline learn
    # them; the router classifies plain text, as completions route on the text before the cursor.
    fim = True

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.names = ctx.cfg.names
        vocab = ctx.model.config.vocab_size
        self.source = BatchSource(self.cfg, vocab, [stage_seed(self.cfg, self.name, n) for n in self.names], ctx.dist,
                                  fim=self.fim)
        self.val = val_windows(self.cfg, vocab) if ctx.dist.is_main else [None] * len(self.names)
        self.train_losses: dict[str, list[float]] = {}
        self.opt: torch.optim.Optimizer
        self.params: list[nn.Parameter] = []

    # -- what the engine needs -------------------------------------------------------------
    steps: int = 0
    series: list[str] = []
    eval_every: int = 0
    # Wall seconds for this stage's loop and evaluations (0: none), and the step the learning-rate
    # schedule is at (ahead of the step count when time runs faster than steps).
    max_seconds: float = 0.0
    pace: int = 0

    def all_done(self) -> bool:
        """Every series has stopped on its own (early stopping): the stage can end before its steps."""
        return False

    def prepare(self) -> None:
        """Before the first step of a fresh (not resumed) stage."""

    def sync(self) -> None:
        """After an evaluation (rank 0 only): share what it decided with the other ranks."""

    def series_active(self) -> list[bool]:
        return [True] * len(self.series)

    def tokens_per_step(self) -> int:
        return self.source.global_rows * self.cfg.seq_len * self.cfg.grad_accum

    def trainable(self) -> int:
        return sum(p.numel() for p in self.params)

    def step(self, step: int) -> StepResult:
        raise NotImplementedError

    def evaluate(self, step: int) -> None:
        raise NotImplementedError

    def finish(self, steps_done: int) -> dict[str, Any]:
        raise NotImplementedError

    def record(self, losses: list[float]) -> None:
        for name, loss, active in zip(self.series, losses, self.series_active()):
            if not active:
                continue  # a stopped expert's slot holds no loss
            self.train_losses.setdefault(name, []).append(loss)
            del self.train_losses[name][:-10]  # only the recent mean is ever reported

    def recent_loss(self, name: str) -> Optional[float]:
        recent = self.train_losses.get(name, [])
        return sum(recent) / len(recent) if recent else None

    def state_tensors(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def load_tensors(self, tensors: dict[str, Tensor], source: Path) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {"samplers": self.source.state(), "train_losses": self.train_losses}

    def load_state(self, state: dict[str, Any]) -> None:
        self.source.load_state(state["samplers"])
        self.train_losses = {k: list(v) for k, v in state.get("train_losses", {}).items()}

    def set_lr(self, step: int, steps: int, peak: float) -> float:
        warmup = min(self.cfg.warmup_steps, max(0, steps - 1))
        lr = lr_at(max(step, self.pace), steps, warmup, peak)
        for group in self.opt.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        return lr

    def forward_rows(self, inputs: Tensor, adapter: Any, route: Any = None) -> Tensor:
        with autocast(self.ctx.device, self.cfg.precision):
            return self.ctx.model(inputs, adapter=adapter, route=route).logits


class LoraStage(Stage):
    """Stage `experts` (one expert per domain) or `mixed` (one LoRA for the union)."""

    def __init__(self, ctx: Ctx, name: str) -> None:
        self.name = name
        super().__init__(ctx)
        cfg = self.cfg
        self.mixed = name == "mixed"
        self.steps = cfg.steps
        self.eval_every = cfg.eval_every
        self.series = ["mixed"] if self.mixed else list(self.names)
        torch.manual_seed(cfg.seed + STAGE_SEED_OFFSET[name])
        self.lora = StackedLoRA(ctx.model.config, cfg.lora, 1 if self.mixed else len(self.names)).to(ctx.device)
        if not self.mixed:
            for e, d in enumerate(cfg.domains):
                if d.init_from:
                    load_into_slot(self.lora, e, Path(d.init_from), f"domain {d.name!r}: init_from")
        self.params = list(self.lora.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.val_losses: list[Optional[float]] = [None] * len(self.names)
        self.max_seconds = cfg.mixed.max_seconds if self.mixed and cfg.mixed else cfg.max_seconds
        # Early stopping, per expert (stage 1 only): an expert stops when it has seen max_epochs
        # passes over its domain, or after `patience` evaluations without a held-out improvement;
        # from then on its rows leave the batch and its weights stay at its best evaluation.
        n = len(self.names)
        self.active = [True] * n
        self.bad_evals = [0] * n
        self.best_loss: list[Optional[float]] = [None] * n
        self.best: list[Optional[list[Tensor]]] = [None] * n
        self.tokens_seen = [0] * n
        self.stopped_why: dict[str, str] = {}
        self.train_tokens = [len(smp.tokens) for smp in self.source.samplers]

    def step(self, step: int) -> StepResult:
        cfg, dist = self.cfg, self.ctx.dist
        self.set_lr(step, self.steps, cfg.lr)
        self.lora.train()
        self.opt.zero_grad(set_to_none=True)
        n = len(self.names)
        total = torch.zeros(len(self.series))
        for _ in range(cfg.grad_accum):
            batch, ids = self.source.draw()
            batch, ids = batch.to(self.ctx.device), ids.to(self.ctx.device)
            groups = [len(ids)] if self.mixed else self.source.local_counts
            logits = self.forward_rows(batch[:, :-1], self.lora.adapter(groups=groups))
            rows = row_losses(logits, batch[:, 1:])
            domains = per_domain(rows, ids, n)
            check_finite(self.name, step, self.names, domains)
            loss = rows.mean().reshape(1) if self.mixed else domains
            (loss.sum() / cfg.grad_accum).backward()
            total += loss.detach().float().cpu() / cfg.grad_accum
        dist.all_reduce_grads_(self.params)
        self.lora.expert_grad_clip_(1.0)
        self.opt.step()
        losses = dist.all_reduce_mean_(total).tolist()
        self.record(losses)
        if not self.mixed:
            self.hold_stopped()
            for e in range(n):
                if self.active[e]:
                    self.tokens_seen[e] += self.source.full_counts[e] * cfg.seq_len * cfg.grad_accum
                    if cfg.max_epochs and self.tokens_seen[e] >= cfg.max_epochs * self.train_tokens[e]:
                        self.retire(e, step, f"saw its {self.train_tokens[e]} training tokens {cfg.max_epochs:g} times "
                                             f"(max_epochs)")
        return StepResult(losses, {})

    # -- early stopping (stage 1) ------------------------------------------------------------
    def series_active(self) -> list[bool]:
        return [True] if self.mixed else list(self.active)

    def all_done(self) -> bool:
        return not self.mixed and not any(self.active)

    def _slices(self, e: int) -> list[Tensor]:
        return [p.data[e] for p in self.params]

    def _restore_best(self, e: int) -> None:
        for dst, src in zip(self._slices(e), self.best[e] or []):
            dst.copy_(src)

    def retire(self, e: int, step: int, why: str) -> None:
        """Stop expert e: back to its best evaluated weights (if any), out of the batch from now on."""
        if not self.active[e]:
            return
        self.active[e] = False
        if self.best[e] is None:
            self.best[e] = [t.clone() for t in self._slices(e)]
        self._restore_best(e)
        self.source.set_active(self.active)
        self.stopped_why[self.names[e]] = why
        emit("expert_done", stage=self.name, expert=self.names[e], step=step, reason=why,
             best_val_loss=self.best_loss[e])

    def hold_stopped(self) -> None:
        # AdamW's momentum would keep moving a stopped expert; put its weights back after each step.
        for e, a in enumerate(self.active):
            if not a:
                self._restore_best(e)

    def sync(self) -> None:
        dist = self.ctx.dist
        if dist.world == 1 or self.mixed:
            return
        flags = torch.tensor([0.0 if a else 1.0 for a in self.active])
        dist.broadcast_(flags)
        for e, retired in enumerate(flags.tolist()):
            if retired and self.active[e]:
                self.active[e] = False
                self.source.set_active(self.active)
            if retired:
                for t in self._slices(e):
                    dist.broadcast_(t)
                self.best[e] = [t.clone() for t in self._slices(e)]

    @torch.no_grad()
    def evaluate(self, step: int) -> None:
        self.lora.eval()
        for e, windows in enumerate(self.val):
            if windows is None or (not self.mixed and not self.active[e]):
                continue
            total, count = 0.0, 0
            for chunk in windows.split(self.cfg.batch_size):
                chunk = chunk.to(self.ctx.device)
                index = torch.full((chunk.shape[0],), 0 if self.mixed else e, device=self.ctx.device,
                                   dtype=torch.long)
                logits = self.forward_rows(chunk[:, :-1], self.lora.adapter(index=index))
                total += float(row_losses(logits, chunk[:, 1:]).sum()) * (chunk.shape[1] - 1)
                count += chunk[:, 1:].numel()
            self.val_losses[e] = total / count
            emit("eval", stage=self.name, expert=self.series[0] if self.mixed else self.names[e],
                 domain=self.names[e], loss=self.val_losses[e], step=step)
            if not self.mixed:
                self.judge(e, step, self.val_losses[e])

    def judge(self, e: int, step: int, loss: float) -> None:
        """Keep expert e's best held-out weights; stop it after `patience` evaluations without a gain."""
        best = self.best_loss[e]
        if best is None or loss < best - 1e-4:
            self.best_loss[e] = loss
            self.best[e] = [t.clone() for t in self._slices(e)]
            self.bad_evals[e] = 0
            return
        self.bad_evals[e] += 1
        if self.cfg.patience and self.bad_evals[e] >= self.cfg.patience:
            self.retire(e, step, f"held-out loss did not improve on {best:.4f} for {self.bad_evals[e]} evaluations")

    def state_tensors(self) -> dict[str, Tensor]:
        tensors = {f"lora.{k}": v.detach().float().cpu() for k, v in self.lora.state_dict().items()}
        tensors.update(optimizer_tensors(self.opt, self.params))
        for e, kept in enumerate(self.best):
            if kept is not None:
                tensors.update({f"best.{e}.{i}": t.detach().float().cpu().contiguous() for i, t in enumerate(kept)})
        return tensors

    def load_tensors(self, tensors: dict[str, Tensor], source: Path) -> None:
        sd = {k.removeprefix("lora."): v for k, v in tensors.items() if k.startswith("lora.")}
        try:
            self.lora.load_state_dict(sd)
        except RuntimeError as e:
            raise TrainerError(f"{source}: checkpoint does not fit this run's LoRA ({e})", None) from None
        load_optimizer(self.opt, self.params, tensors, source)
        for e in range(len(self.names)):
            if f"best.{e}.0" in tensors:
                self.best[e] = [tensors[f"best.{e}.{i}"].to(p.device, p.dtype).clone() for i, p in enumerate(self.params)]

    def state(self) -> dict[str, Any]:
        return {**super().state(), "active": self.active, "bad_evals": self.bad_evals, "best_loss": self.best_loss,
                "tokens_seen": self.tokens_seen, "stopped_why": self.stopped_why}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        n = len(self.names)
        self.active = list(state.get("active", [True] * n))
        self.bad_evals = list(state.get("bad_evals", [0] * n))
        self.best_loss = list(state.get("best_loss", [None] * n))
        self.tokens_seen = list(state.get("tokens_seen", [0] * n))
        self.stopped_why = dict(state.get("stopped_why", {}))
        self.source.set_active(self.active)

    def finish(self, steps_done: int) -> dict[str, Any]:
        cfg = self.cfg
        if self.mixed:
            assert cfg.mixed is not None
            folder = write_expert_folder(cfg.mixed.out_dir, self.lora, 0, cfg.base_model_name, {
                "domain": "mixed", "domains": self.names, "base_model": cfg.base_model_name,
                "run_id": cfg.run_id, "steps": steps_done, "train_loss": self.recent_loss("mixed"),
                "val_loss": dict(zip(self.names, self.val_losses)), "fingerprint": None,
                "created": now_iso(), "baseline": "mixed"})
            emit("artifact", kind="mixed", name="mixed", path=str(folder), stage=self.name)
            return {"path": str(folder), "steps_done": steps_done, "train_loss": self.recent_loss("mixed"),
                    "val_loss": dict(zip(self.names, self.val_losses))}
        # Each expert is published at its best held-out evaluation, the weights early stopping keeps.
        for e, loss in enumerate(self.best_loss):
            if loss is not None:
                self._restore_best(e)
                self.val_losses[e] = loss
        written = []
        for e, d in enumerate(cfg.domains):
            folder = write_expert_folder(cfg.experts_dir / d.name, self.lora, e, cfg.base_model_name, {
                "domain": d.name, "base_model": cfg.base_model_name, "run_id": cfg.run_id,
                "steps": steps_done, "train_loss": self.recent_loss(d.name), "val_loss": self.val_losses[e],
                "fingerprint": d.fingerprint, "created": now_iso(),
                **({"init_from": d.init_from} if d.init_from else {})})
            written.append(d.name)
            emit("artifact", kind="expert", name=d.name, path=str(folder))
        return {"experts": written, "steps_done": steps_done,
                "train_loss": {n: self.recent_loss(n) for n in self.names},
                "val_loss": dict(zip(self.names, self.val_losses)), "stopped_early": self.stopped_why,
                "tokens_seen": dict(zip(self.names, self.tokens_seen))}


def load_experts(cfg: TrainConfig, device: torch.device, model: CausalLM) -> StackedLoRA:
    """Stage 2 on its own: the attached experts, from experts_dir, in the config's domain order."""
    specs = []
    for d in cfg.domains:
        folder = cfg.experts_dir / d.name
        if not (folder / "expert.json").is_file() and not (folder / "adapter_config.json").is_file():
            raise TrainerError(f"domain {d.name!r}: no trained expert in {folder}",
                               "train its expert first (stage experts), then refresh the router")
        specs.append(read_peft_spec(folder, f"domain {d.name!r}"))
    lora = StackedLoRA(model.config, specs[0], len(cfg.domains)).to(device)
    for e, d in enumerate(cfg.domains):
        folder = cfg.experts_dir / d.name
        check_compatible(specs[e], specs[0], f"domain {d.name!r}", folder)
        load_into_slot(lora, e, folder, f"domain {d.name!r}")
    return lora


class RouterStage(Stage):
    name = "router"
    fim = False

    def __init__(self, ctx: Ctx, lora: StackedLoRA) -> None:
        super().__init__(ctx)
        cfg = self.cfg
        assert cfg.router is not None
        self.rc = cfg.router
        self.steps = self.rc.steps
        self.eval_every = self.rc.eval_every
        self.max_seconds = self.rc.max_seconds
        self.series = ["router"]
        self.lora = lora
        torch.manual_seed(cfg.seed + STAGE_SEED_OFFSET["router"])
        c = ctx.model.config
        self.routers = Routers(c.num_hidden_layers, c.hidden_size, len(self.names)).to(ctx.device)
        self.ngram = NgramRouter(len(self.names)).to(ctx.device)
        # What fitting the n-gram classifier took (steps, seconds), for router.json.
        self.ngram_fit: Optional[dict[str, Any]] = None
        groups: list[dict[str, Any]] = [{"params": list(self.routers.parameters()), "lr_mult": 1.0}]
        self.train_experts = self.rc.expert_lr_mult > 0
        self.lora.requires_grad_(self.train_experts)
        if self.train_experts:
            # A fraction of stage 1's rate (not of the router's): the experts are only nudged.
            groups.append({"params": list(self.lora.parameters()),
                           "lr_mult": self.rc.expert_lr_mult * cfg.lr / self.rc.lr if self.rc.lr else 0.0})
        self.params = [p for g in groups for p in g["params"]]
        self.opt = torch.optim.AdamW(groups, lr=self.rc.lr, weight_decay=cfg.weight_decay)
        # Prompt lengths vary per sequence so the router learns to decide from short and long prompts.
        self.prompt_rng = torch.Generator().manual_seed(cfg.seed + 104729)
        self.accuracy: dict[str, Optional[float]] = {n: None for n in self.names}
        self.val_losses: dict[str, Optional[float]] = {n: None for n in self.names}
        # Confusion rows: for each domain, the share of its held-out windows routed to each expert.
        self.confusion: dict[str, Optional[dict[str, float]]] = {n: None for n in self.names}
        # What the warm start read (windows per domain, seconds), for router.json; None when it did not run here.
        self.warm: Optional[dict[str, float]] = None

    @torch.no_grad()
    def prepare(self) -> None:
        """Before stage 2's first step: the per-layer routers' warm start, then the decision's fit."""
        if self.rc.warm_start:
            self.warm_start()
        self.fit_ngram()

    @torch.no_grad()
    def warm_start(self) -> None:
        """Warm start: fit each layer's router as a logistic regression on the pooled features of
        training windows (experts routed by their labels, prompt lengths drawn as in training),
        before any gradient step. Adam on the cross-entropy alone moves a linear router slowly
        (with top-1 routing the LM loss sends it no gradient); the fit starts it where a linear
        router can be (trainer/ROUTER.md). The windows are read a chunk per domain at a time, so
        every domain has as many when a time budget (a quarter of the stage's) ends it early.
        Own random stream: the training streams are unchanged."""
        cfg, dist = self.cfg, self.ctx.dist
        if dist.is_main:
            rng = torch.Generator().manual_seed(cfg.seed + 7211)
            window = cfg.seq_len + 1
            chunk = cfg.batch_size * 2
            # More windows than cover a small domain's text twice over would only repeat it.
            n = min(self.rc.warm_windows, max(64, max(2 * len(s.tokens) // cfg.seq_len for s in self.source.samplers)))
            drawn: list[tuple[Tensor, Tensor, Tensor]] = []
            for smp in self.source.samplers:
                tokens = torch.from_numpy(smp.tokens.astype("int64"))
                starts = torch.randint(0, len(tokens) - window + 1, (n,), generator=rng)
                lengths = torch.randint(max(1, cfg.seq_len // 4), cfg.seq_len + 1, (n,), generator=rng)
                drawn.append((tokens, starts, lengths))
            per_layer: list[list[Tensor]] = [[] for _ in self.routers.layers]
            labels: list[Tensor] = []
            self.lora.eval()
            t0 = time.monotonic()
            deadline = t0 + self.rc.max_seconds / 4 if self.rc.max_seconds else math.inf
            read = 0
            for lo in range(0, n, chunk):
                for e, (tokens, starts, lengths) in enumerate(drawn):
                    ids = torch.stack([tokens[s:s + window] for s in starts[lo:lo + chunk].tolist()])[:, :-1]
                    ids = ids.to(self.ctx.device)
                    mask = self.prompt_mask(ids.shape[0], cfg.seq_len, lengths[lo:lo + chunk])
                    feats: dict[int, Tensor] = {}
                    index = torch.full((ids.shape[0],), e, device=self.ctx.device, dtype=torch.long)
                    self.forward_rows(ids, self.lora.adapter(index=index),
                                      lambda layer, h: feats.__setitem__(layer, masked_mean(h.float(), mask)))
                    for layer, f in feats.items():
                        per_layer[layer].append(f.cpu())
                    labels.append(torch.full((ids.shape[0],), e, dtype=torch.long))
                read += min(chunk, n - lo)
                if time.monotonic() > deadline:
                    break
            y = torch.cat(labels)
            for layer, lin in enumerate(self.routers.layers):
                weight, bias = fit_linear(torch.cat(per_layer[layer]), y, len(self.names))
                lin.weight.copy_(weight.to(lin.weight))
                lin.bias.copy_(bias.to(lin.bias))
            self.warm = {"windows_per_domain": read, "seconds": round(time.monotonic() - t0, 2)}
        for p in self.routers.parameters():
            dist.broadcast_(p.data)

    def fit_ngram(self) -> None:
        """The decision's classifier (ngram_router.py), fitted on the training shards; an eighth
        of the stage's time budget at most. Own random stream."""
        cfg, dist = self.cfg, self.ctx.dist
        if dist.is_main:
            deadline = time.monotonic() + self.rc.max_seconds / 8 if self.rc.max_seconds else math.inf
            domains = [s.tokens for s in self.source.samplers]
            # More steps than read the largest domain's text 8 times over would only repeat it.
            cap = max(20, math.ceil(8 * max(len(t) for t in domains) / (NGRAM_BATCH * cfg.seq_len)))
            with torch.enable_grad():
                self.ngram_fit = fit_ngram(self.ngram, domains, cfg.seq_len, min(self.rc.ngram_steps, cap),
                                           cfg.seed + 7213, deadline)
        for p in self.ngram.parameters():
            dist.broadcast_(p.data)

    @torch.no_grad()
    def ngram_decision(self, rows: Tensor, lengths: Tensor) -> Tensor:
        """Each row's expert from the n-grams of its first `lengths[i]` tokens."""
        return self.ngram.logits(rows.cpu().numpy(), lengths.cpu().numpy()).argmax(-1).to(rows.device)

    def prompt_mask(self, rows: int, seq: int, lengths: Optional[Tensor] = None) -> Tensor:
        if lengths is None:
            lo = max(1, seq // 4)
            lengths = torch.randint(lo, seq + 1, (rows,), generator=self.prompt_rng)
        return (torch.arange(seq)[None, :] < lengths[:, None]).to(self.ctx.device)

    def step(self, step: int) -> StepResult:
        cfg, dist = self.cfg, self.ctx.dist
        self.set_lr(step, self.steps, self.rc.lr)
        self.lora.train()
        self.opt.zero_grad(set_to_none=True)
        sums = torch.zeros(4)  # loss, lm, cls, accuracy
        for _ in range(cfg.grad_accum):
            batch, ids = self.source.draw()
            # Draw every row's prompt length for the global batch so ranks stay in lockstep.
            full = self.prompt_mask(self.source.global_rows, cfg.seq_len)
            mask = full[self.source.rows.to(full.device)]
            batch, ids = batch.to(self.ctx.device), ids.to(self.ctx.device)
            ra = RoutedAdapter(self.lora, self.routers, mask, self.rc.top_k)
            logits = self.forward_rows(batch[:, :-1], ra.adapter(), ra.route)
            rows = row_losses(logits, batch[:, 1:])
            check_finite(self.name, step, self.names, per_domain(rows, ids, len(self.names)))
            lm = rows.mean()
            stacked = ra.stacked_logits()
            cls = F.cross_entropy(stacked.float().flatten(0, 1), ids.repeat(stacked.shape[0]))
            loss = lm + self.rc.eta * cls
            (loss / cfg.grad_accum).backward()
            acc = (self.ngram_decision(batch, mask.sum(1)) == ids).float().mean()
            sums += torch.stack([loss.detach(), lm.detach(), cls.detach(), acc]).float().cpu() / cfg.grad_accum
        dist.all_reduce_grads_(self.params)
        nn.utils.clip_grad_norm_(list(self.routers.parameters()), 1.0)
        if self.train_experts:
            self.lora.expert_grad_clip_(1.0)
        self.opt.step()
        loss, lm, cls, acc = dist.all_reduce_mean_(sums).tolist()
        self.record([loss])
        return StepResult([loss], {"lm_loss": lm, "cls_loss": cls, "router_accuracy": acc})

    @torch.no_grad()
    def evaluate(self, step: int) -> None:
        self.lora.eval()
        seq = self.cfg.seq_len
        prompt = max(1, seq // 2)
        for e, windows in enumerate(self.val):
            if windows is None:
                continue
            total = oracle_total = 0.0
            count = correct = 0
            layer_correct = torch.zeros(len(self.routers.layers))
            routed = torch.zeros(len(self.names))
            for chunk in windows.split(self.cfg.batch_size):
                chunk = chunk.to(self.ctx.device)
                rows = chunk.shape[0]
                mask = self.prompt_mask(rows, seq, torch.full((rows,), prompt))
                # The per-layer routers' own choices, for router_accuracy_per_layer.
                ra = RoutedAdapter(self.lora, self.routers, mask, self.rc.top_k)
                self.forward_rows(chunk[:, :-1], ra.adapter(), ra.route)
                stacked = ra.stacked_logits()
                chosen = self.ngram_decision(chunk, torch.full((rows,), prompt))
                logits = self.forward_rows(chunk[:, :-1], self.lora.adapter(index=chosen))
                total += float(row_losses(logits, chunk[:, 1:]).sum())
                index = torch.full((rows,), e, device=self.ctx.device, dtype=torch.long)
                oracle = self.forward_rows(chunk[:, :-1], self.lora.adapter(index=index))
                oracle_total += float(row_losses(oracle, chunk[:, 1:]).sum())
                correct += int((chosen == e).sum())
                routed += torch.bincount(chosen.cpu(), minlength=len(self.names)).float()
                layer_correct += (stacked.argmax(-1) == e).float().sum(1).cpu()
                count += rows
            name = self.names[e]
            self.accuracy[name] = correct / count
            self.val_losses[name] = total / count
            self.confusion[name] = {n: float(routed[i]) / count for i, n in enumerate(self.names)}
            emit("eval", stage=self.name, expert="router", domain=name, loss=self.val_losses[name],
                 step=step, router_accuracy=self.accuracy[name], routed_to=self.confusion[name],
                 router_accuracy_per_layer=(layer_correct / count).tolist(), oracle_loss=oracle_total / count)

    def state_tensors(self) -> dict[str, Tensor]:
        tensors = {f"router.{k}": v.detach().float().cpu() for k, v in self.routers.state_dict().items()}
        tensors.update({f"ngram.{k}": v.detach().float().cpu() for k, v in self.ngram.state_dict().items()})
        tensors.update({f"lora.{k}": v.detach().float().cpu() for k, v in self.lora.state_dict().items()})
        tensors.update(optimizer_tensors(self.opt, self.params))
        tensors["rng.prompt"] = self.prompt_rng.get_state()
        return tensors

    def load_tensors(self, tensors: dict[str, Tensor], source: Path) -> None:
        try:
            self.routers.load_state_dict({k.removeprefix("router."): v for k, v in tensors.items()
                                          if k.startswith("router.")})
            self.lora.load_state_dict({k.removeprefix("lora."): v for k, v in tensors.items()
                                       if k.startswith("lora.")})
            if "ngram.weight" in tensors:
                self.ngram.load_state_dict({k.removeprefix("ngram."): v for k, v in tensors.items() if k.startswith("ngram.")})
            else:  # a checkpoint from before the n-gram decision: fit it now
                self.fit_ngram()
        except RuntimeError as e:
            raise TrainerError(f"{source}: checkpoint does not fit this run's router ({e})", None) from None
        load_optimizer(self.opt, self.params, tensors, source)
        self.prompt_rng.set_state(tensors["rng.prompt"].to(torch.uint8))

    def finish(self, steps_done: int) -> dict[str, Any]:
        cfg, rc = self.cfg, self.rc
        if self.train_experts:
            # The experts moved with the router; what is on disk must match what it was trained with.
            for e, d in enumerate(cfg.domains):
                folder = cfg.experts_dir / d.name
                old = read_expert_json(folder) or {}
                old.pop("v", None)
                old.pop("lora", None)
                write_expert_folder(folder, self.lora, e, cfg.base_model_name, {
                    **old, "domain": d.name, "base_model": cfg.base_model_name,
                    "router_run_id": cfg.run_id, "router_steps": steps_done, "created": now_iso()})
                emit("artifact", kind="expert", name=d.name, path=str(folder), stage=self.name)
        router_files(self.routers, self.ngram, rc.out_dir, {
            "experts": self.names, "eta": rc.eta, "top_k": rc.top_k, "expert_lr_mult": rc.expert_lr_mult,
            "accuracy": self.accuracy, "confusion": self.confusion, "val_loss": self.val_losses, "steps": steps_done,
            "run_id": cfg.run_id, "base_model": cfg.base_model_name, "created": now_iso(),
            **({"warm_start": self.warm} if self.warm else {}),
            **({"ngram_fit": self.ngram_fit} if self.ngram_fit else {}),
            "lora": {"r": self.lora.spec.r, "alpha": self.lora.spec.alpha,
                     "target_modules": list(self.lora.spec.target_modules)}})
        emit("artifact", kind="router", name="router", path=str(rc.out_dir), stage=self.name)
        return {"path": str(rc.out_dir), "steps_done": steps_done, "accuracy": self.accuracy,
                "val_loss": self.val_losses, "train_loss": self.recent_loss("router")}
