"""`train`: stage 1 (experts), the mixed baseline and stage 2 (router), with checkpoints and resume.

The engine runs the configured stages in dependency order (experts, router, mixed). Each
stage: `plan`, then per optimizer step one `step` event per series, `eval` every
`eval_every` steps and at the end, a checkpoint every `checkpoint_every` steps and at the end
or stop, then its artifacts. One `done` closes the run. Under torchrun only rank 0 speaks.
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional

import torch
from torch import nn

from . import checkpoint as ckpt
from .dist import Dist, init_from_env
from .errors import TrainerError
from .fsutil import recover_dir
from .hf_folder import load_base_model
from .lora import StackedLoRA
from .mfu import flops_per_token, peak_flops
from .model import CausalLM, count_params
from .protocol import StopFlag, emit, set_muted
from .runtime import base_dtype, hello, pick_device, set_threads
from .stages import Ctx, LoraStage, NonFiniteLoss, RouterStage, Stage, load_experts
from .train_config import TrainConfig, parse_config

# Kept importable for callers of 0.1.
from .train_config import Domain  # noqa: F401

STAGE = "experts"
# torch >= 2.5 names it torch.OutOfMemoryError; before that only torch.cuda has it.
OUT_OF_MEMORY: type[BaseException] = getattr(torch, "OutOfMemoryError",
                                             getattr(torch.cuda, "OutOfMemoryError", MemoryError))


class Throughput:
    """Training tokens per second since the stage's first step, eval and checkpoint time excluded;
    and the stage's budget clock (training and evaluation time, what `max_seconds` bounds)."""

    def __init__(self, tokens: int = 0, seconds: float = 0.0, budget_seconds: float = 0.0) -> None:
        self.tokens = tokens
        self.seconds = seconds
        self.budget_seconds = budget_seconds
        self.session_steps = 0
        self.session_seconds = 0.0

    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def eta(self, step: int, steps: int, max_seconds: float, eval_every: int, eval_seconds: float) -> float:
        """Seconds left in the stage, from this session's own pace (model loading excluded), capped
        by what remains of the stage's time budget."""
        if self.session_steps == 0:
            return 0.0
        per_step = self.session_seconds / self.session_steps
        evals = (steps - step) // eval_every if eval_every else 0
        left = (steps - step) * per_step + evals * eval_seconds
        return min(left, max(0.0, max_seconds - self.budget_seconds)) if max_seconds else left


class Engine:
    def __init__(self, cfg: TrainConfig, model: CausalLM, device: torch.device, dist: Dist, stop: StopFlag,
                 start: float, resume: bool) -> None:
        self.cfg = cfg
        self.model = model
        self.device = device
        self.dist = dist
        self.stop = stop
        self.start = start
        self.resume = resume
        self.peak = peak_flops(torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                               cfg.peak_tflops) if device.type == "cuda" else None
        self.last_checkpoint: Optional[str] = None
        self.ended = "steps"

    def checkpoint_meta(self, stage: Stage) -> dict[str, str]:
        spec = getattr(stage, "lora").spec
        return {"experts": ",".join(self.cfg.names), "run_id": self.cfg.run_id, "r": str(spec.r),
                "lora_alpha": str(spec.alpha), "target_modules": ",".join(spec.target_modules),
                "base_model": self.cfg.base_model_name, "fingerprint": self.cfg.fingerprint}

    def save(self, stage: Stage, step: int, meter: Throughput) -> None:
        if self.dist.is_main:
            tensors = stage.state_tensors()
            tensors.update(ckpt.rng_tensors(self.device))
            state = {**stage.state(), "tokens": meter.tokens, "train_seconds": meter.seconds,
                     "budget_seconds": meter.budget_seconds}
            path = ckpt.save(self.cfg.run_dir, stage.name, step, tensors, self.checkpoint_meta(stage), state,
                             self.cfg.keep_checkpoints)
            self.last_checkpoint = str(path)
            emit("checkpoint", path=str(path), step=step, stage=stage.name)
        self.dist.barrier()

    def restore(self, stage: Stage) -> tuple[int, Throughput]:
        found = ckpt.list_checkpoints(self.cfg.run_dir, stage.name)
        if not self.resume or not found:
            return 0, Throughput()
        last = found[-1]
        tensors, meta, state = ckpt.load(last.path)
        if meta.get("fingerprint") != self.cfg.fingerprint:
            raise TrainerError(f"{last.path}: checkpoint was made with a different config; it cannot be resumed",
                               "start a new run instead of --resume")
        stage.load_tensors(tensors, last.path)
        stage.load_state(state)
        ckpt.restore_rng(tensors, self.device)
        self.last_checkpoint = str(last.path)
        return last.step, Throughput(int(state.get("tokens", 0)), float(state.get("train_seconds", 0.0)),
                                     float(state.get("budget_seconds", state.get("train_seconds", 0.0))))

    def run_stage(self, stage: Stage) -> tuple[int, bool]:
        """Runs a stage until its steps, its time budget or early stopping end it, or a stop does.
        Returns (steps done, stopped by a stop request)."""
        cfg = self.cfg
        first, meter = self.restore(stage)
        if first == 0:
            # The warm start is part of the stage: its time counts against the stage's budget.
            t0 = time.monotonic()
            stage.prepare()
            meter.budget_seconds += time.monotonic() - t0
        trainable = stage.trainable()
        fpt = flops_per_token(self.model, trainable, cfg.seq_len) if self.peak else None
        emit("plan", stage=stage.name, experts=list(cfg.names) if stage.name != "mixed" else ["mixed"],
             steps=stage.steps, batch_size=cfg.batch_size, seq_len=cfg.seq_len,
             tokens=stage.steps * stage.tokens_per_step(), params_trainable=trainable,
             params_base=count_params(self.model), grad_accum=cfg.grad_accum,
             domain_batch=dict(zip(cfg.names, stage.source.counts)), world_size=self.dist.world,
             max_seconds=stage.max_seconds or None, max_epochs=cfg.max_epochs or None, patience=cfg.patience or None,
             train_tokens=dict(zip(cfg.names, [len(smp.tokens) for smp in stage.source.samplers])),
             **({"resumed_from": first} if first else {}),
             **({"fim_rate": cfg.fim.rate} if stage.source.fim is not None and cfg.fim is not None else {}))
        steps_done = first
        ended = "steps"
        eval_seconds = 0.0
        for step in range(first + 1, stage.steps + 1):
            if self.dist.any(self.stop.is_set()):
                ended = "stop"
                break
            # A fresh stage takes at least one step, so a warm start that used up the budget still
            # ends in an evaluated, written router.
            # Decided together: ranks whose clocks differ by a step would otherwise part ways and hang.
            if stage.max_seconds and steps_done > 0 and self.dist.any(meter.budget_seconds >= stage.max_seconds):
                ended = "budget"
                break
            if stage.all_done():
                ended = "early"
                break
            # With a time budget the schedule follows whichever is further along, steps or time,
            # so a run cut short by the clock still anneals instead of stopping at a high rate.
            stage.pace = step if not stage.max_seconds else max(
                step, math.ceil(stage.steps * meter.budget_seconds / stage.max_seconds))
            training = stage.series_active()  # before the step: an expert stopping in it still trained in it
            t0 = time.perf_counter()
            try:
                result = stage.step(step)
            except NonFiniteLoss as e:
                kept = self.last_checkpoint or "none yet"
                raise TrainerError(e.message, f"{e.hint} Last good checkpoint: {kept}") from None
            except OUT_OF_MEMORY as e:
                kept = self.last_checkpoint or "none yet"
                raise TrainerError(f"stage {stage.name}, step {step}: out of memory on {self.device} "
                                   f"({str(e).splitlines()[0] if str(e) else type(e).__name__})",
                                   "lower batch_size or seq_len, or use grad_accum / activation_checkpointing; "
                                   f"--resume continues from the last good checkpoint: {kept}") from None
            took = time.perf_counter() - t0
            meter.seconds += took
            meter.budget_seconds += took
            meter.session_seconds += took
            meter.session_steps += 1
            meter.tokens += stage.tokens_per_step()
            steps_done = step
            lr = stage.opt.param_groups[0]["lr"]
            extra: dict[str, Any] = dict(result.extra)
            if fpt is not None and self.peak:
                extra["mfu"] = meter.rate() * fpt / self.peak
            elapsed = round(time.perf_counter() - self.start, 3)
            eta = round(meter.eta(step, stage.steps, stage.max_seconds, stage.eval_every, eval_seconds), 1)
            for name, loss, active in zip(stage.series, result.losses, training):
                if active:
                    emit("step", stage=stage.name, expert=name, step=step, steps=stage.steps, loss=loss, lr=lr,
                         tokens_per_s=meter.rate(), elapsed_s=elapsed, eta_s=eta, t=round(time.time(), 4), **extra)
            if stage.eval_every and step % stage.eval_every == 0 and step != stage.steps:
                t1 = time.perf_counter()
                if self.dist.is_main:
                    stage.evaluate(step)
                stage.sync()
                eval_seconds = time.perf_counter() - t1
                meter.budget_seconds += eval_seconds
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step != stage.steps:
                self.save(stage, step, meter)
        stopped = ended == "stop"
        if steps_done > 0:
            if not stopped and self.dist.is_main:
                stage.evaluate(steps_done)
            if steps_done > first:
                self.save(stage, steps_done, meter)
        self.ended = ended
        return steps_done, stopped


def build_stage(name: str, ctx: Ctx, experts: Optional[StackedLoRA]) -> Stage:
    if name == "router":
        return RouterStage(ctx, experts if experts is not None else load_experts(ctx.cfg, ctx.device, ctx.model))
    return LoraStage(ctx, name)


def load_model(cfg: TrainConfig, config_path: str, device: torch.device) -> CausalLM:
    model = load_base_model(cfg.base_model, device=device, dtype=base_dtype(device, cfg.precision))
    if cfg.seq_len > model.config.max_position_embeddings:
        raise TrainerError(f"{config_path}: seq_len {cfg.seq_len} exceeds the base model's "
                           f"max_position_embeddings {model.config.max_position_embeddings}",
                           "lower seq_len")
    model.requires_grad_(False)
    model.eval()
    model.activation_checkpointing = cfg.activation_checkpointing
    if cfg.compile:
        compile_layers(model)
    return model


def compile_layers(model: CausalLM, backend: str = "inductor") -> bool:
    """torch.compile each decoder layer when this torch can; otherwise say so and run eagerly.

    Per layer rather than the whole forward: the layers are identical, so one compiled graph
    serves all of them, and the adapter/route callables stay plain Python around it.
    """
    if not hasattr(torch, "compile") or not hasattr(nn.Module, "compile"):
        print("moa_trainer: torch.compile is not available in this torch; running eagerly", flush=True)
        return False
    for layer in model.model.layers:
        layer.compile(backend=backend)  # type: ignore[operator]
    return True


def run(config_path: str, stop: StopFlag, resume: bool = False) -> None:
    start = time.perf_counter()
    cfg = parse_config(config_path)
    set_threads(cfg.threads)
    device = pick_device(cfg.device)
    dist = init_from_env(device)
    set_muted(not dist.is_main)
    try:
        _run(cfg, config_path, device, dist, stop, start, resume)
    finally:
        dist.close()


def _run(cfg: TrainConfig, config_path: str, device: torch.device, dist: Dist, stop: StopFlag, start: float,
         resume: bool) -> None:
    hello(device)
    if dist.is_main:
        # A writer killed between publish_dir's renames left only the previous version: restore it.
        for folder in [cfg.experts_dir / d.name for d in cfg.domains] + ([cfg.router.out_dir] if cfg.router else []):
            recover_dir(folder)
    model = load_model(cfg, config_path, device)
    ctx = Ctx(cfg, model, device, dist)
    progress = ckpt.Progress(cfg.run_dir, cfg.fingerprint)
    if resume:
        progress.read()
    elif dist.is_main:
        ckpt.clear(cfg.run_dir)
    dist.barrier()
    engine = Engine(cfg, model, device, dist, stop, start, resume)
    stop.begin_loop()

    results: dict[str, dict[str, Any]] = {}
    ran: list[str] = []
    kept: list[str] = []
    stopped = False
    experts: Optional[StackedLoRA] = None
    if cfg.finish_now:
        stop.set("finish_now")
    for name in cfg.stages:
        if name in progress.completed:
            results[name] = progress.results.get(name, {})
            ran.append(name)
            continue
        stage = build_stage(name, ctx, experts)
        steps_done, stopped = engine.run_stage(stage)
        ran.append(name)
        if steps_done == 0:
            results[name] = {"steps_done": 0}
            break
        if stopped and not (cfg.keep_partial or cfg.finish_now):
            # A stopped stage leaves what it would replace as it was: its checkpoint is for --resume.
            results[name] = {"steps_done": steps_done}
            kept.append(name)
            break
        results[name] = stage.finish(steps_done) if dist.is_main else {}
        results[name]["steps_done"] = steps_done
        # What ended the stage: its steps, its time budget, or every expert stopping early.
        results[name]["ended"] = engine.ended
        if isinstance(stage, LoraStage) and name == "experts":
            experts = stage.lora
        if stopped:
            break
        if dist.is_main:
            progress.complete(name, results[name])
        dist.barrier()

    # Publishing a checkpoint on request (finish_now) ends the run as asked, not as a stop.
    stopped = stopped and not cfg.finish_now
    first = "experts" if "experts" in ran else ran[0]
    main = results.get(first, {})
    fields: dict[str, Any] = {
        "stage": first, "stages": ran, "steps_done": main.get("steps_done", 0),
        "experts": results.get("experts", {}).get("experts", []),
        "checkpoint": engine.last_checkpoint,
        "train_loss": results.get("experts", {}).get("train_loss", {n: None for n in cfg.names}),
        "val_loss": results.get("experts", {}).get("val_loss", {n: None for n in cfg.names}),
        "resumed": resume,
        "kept_previous": kept,
        "stopped_early": results.get("experts", {}).get("stopped_early", {}),
        "tokens_seen": results.get("experts", {}).get("tokens_seen", {}),
        "ended": {name: r.get("ended") for name, r in results.items() if r.get("ended")},
    }
    for extra in ("router", "mixed"):
        if extra in results:
            fields[extra] = results[extra]
    emit("done", stopped=stopped, elapsed_s=round(time.perf_counter() - start, 3), **fields)
