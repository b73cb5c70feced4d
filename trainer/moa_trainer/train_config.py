"""The `train` command's config (PROTOCOL.md, `train` config): parsed once, typed, validated."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .config import Fields, read_json_config
from .errors import TrainerError
from .fim import FimConfig
from .lora import LoraSpec, parse_spec

# The one name rule for domains and experts (schemas/moa.schema.json's domain name pattern, the
# editor's SAFE_NAME): each names a folder, so nothing that climbs out of one or differs in case.
DOMAIN_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
STAGES = ("experts", "router", "mixed")
# Fields that may change between a killed run and its --resume without changing the result.
RESUME_NEUTRAL = ("device", "threads", "checkpoint_every", "eval_every", "compile", "keep_partial", "finish_now")


@dataclass(frozen=True)
class Domain:
    name: str
    train: str
    val: Optional[str]
    fingerprint: Optional[str]
    init_from: Optional[str] = None


@dataclass(frozen=True)
class RouterConfig:
    steps: int
    eta: float
    expert_lr_mult: float
    top_k: int
    out_dir: Path
    lr: float
    eval_every: int = 0
    max_seconds: float = 0.0
    # Fit each layer's router by logistic regression on pooled features before stage 2's steps,
    # on up to this many training windows per domain (fewer when the largest domain is small, or
    # when a quarter of the stage's time budget runs out first: trainer/ROUTER.md, experiment 4).
    warm_start: bool = True
    warm_windows: int = 1024
    # Steps of the n-gram decision's fit (ngram_router.py; trainer/ROUTER.md, experiment 7).
    ngram_steps: int = 300


@dataclass(frozen=True)
class MixedConfig:
    out_dir: Path
    max_seconds: float = 0.0


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
    stages: tuple[str, ...] = ("experts",)
    router: Optional[RouterConfig] = None
    mixed: Optional[MixedConfig] = None
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    sampling_temperature: float = 1.0
    grad_accum: int = 1
    activation_checkpointing: bool = False
    compile: bool = False
    peak_tflops: Optional[float] = None
    precision: str = "auto"
    # Stage 1's budget: wall seconds for the loop and its evaluations (0: none; the learning-rate
    # schedule then follows time or steps, whichever is further along), passes over a domain's
    # training tokens before its expert stops (0: no cap), and evaluations without a held-out
    # improvement before it stops (0: never; the best weights are the ones kept).
    max_seconds: float = 0.0
    max_epochs: float = 0.0
    patience: int = 0
    # A stopped stage publishes its partly trained artifacts only when asked; otherwise the
    # previous ones stay and the checkpoint waits for --resume.
    keep_partial: bool = False
    # With --resume: publish the last checkpoint's artifacts without training further.
    finish_now: bool = False
    # Fill-in-the-middle windows in stage 1 and the mixed baseline (the base's sentinel ids and
    # the rate): set when the base model has FIM tokens (fim.py).
    fim: Optional[FimConfig] = None
    fingerprint: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.domains]


def _bool(f: Fields, key: str, default: bool) -> bool:
    v = f.raw.get(key, default)
    if not isinstance(v, bool):
        raise TrainerError(f"{f.source}: field {key!r} must be a boolean, got {type(v).__name__}", None)
    return v


def parse_fim(raw: Any, source: str) -> Optional[FimConfig]:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TrainerError(f"{source}: fim must be an object", None)
    f = Fields(raw, f"{source}: fim")
    ids = [f.int(k, required=True, minimum=0) for k in ("prefix", "suffix", "middle")]
    if len(set(ids)) != 3:
        raise TrainerError(f"{source}: fim prefix, suffix and middle must be three different token ids (got {ids})", None)
    rate, spm = f.float("rate", 0.5, minimum=0), f.float("spm_rate", 0.5, minimum=0)
    if rate > 1 or spm > 1:
        raise TrainerError(f"{source}: fim rate and spm_rate are fractions from 0 to 1 (got {rate}, {spm})", None)
    return FimConfig(prefix=ids[0], suffix=ids[1], middle=ids[2], rate=rate, spm_rate=spm)


def _router(raw: Any, source: str, steps: int, lr: float, eval_every: int) -> RouterConfig:
    if not isinstance(raw, dict):
        raise TrainerError(f"{source}: router must be an object", None)
    f = Fields(raw, f"{source}: router")
    eta = f.float("eta", 0.1)
    mult = f.float("expert_lr_mult", 0.1)
    if eta < 0 or mult < 0:
        raise TrainerError(f"{source}: router.eta and router.expert_lr_mult must be >= 0", None)
    router_steps = f.int("steps", steps, minimum=1)
    # Stage 2 is often much longer or shorter than stage 1: by default evaluate it 4 times.
    default_eval = max(1, router_steps // 4) if eval_every else 0
    return RouterConfig(steps=router_steps, eta=eta, expert_lr_mult=mult,
                        top_k=f.int("top_k", 1, minimum=1), out_dir=Path(f.str("out_dir", required=True)),
                        lr=f.float("lr", lr), eval_every=f.int("eval_every", default_eval, minimum=0),
                        max_seconds=f.float("max_seconds", 0.0, minimum=0),
                        warm_start=_bool(f, "warm_start", True), warm_windows=f.int("warm_windows", 1024, minimum=1),
                        ngram_steps=f.int("ngram_steps", 300, minimum=1))


def config_fingerprint(raw: dict[str, Any]) -> str:
    """What a checkpoint must agree with to be resumed: everything that shapes the result."""
    kept = {k: v for k, v in raw.items() if k not in RESUME_NEUTRAL}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode("utf-8")).hexdigest()[:16]


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
                               "use lowercase letters, digits, '_' or '-' (at most 64)")
        domains.append(Domain(name, df.str("train", required=True), df.str("val"), df.str("fingerprint"),
                              df.str("init_from")))
    if not domains:
        raise TrainerError(f"{source}: domains is empty; nothing to train", None)
    names = [d.name for d in domains]
    if len(set(names)) != len(names):
        raise TrainerError(f"{source}: duplicate domain names in {names}", None)
    base_model = f.str("base_model", required=True)
    # Defaults and lower bounds are .moa/moa.json's (schemas/moa.schema.json, `training`): one
    # contract for the editor and the trainer, held by trainer/tests/test_event_contract.py.
    steps = f.int("steps", 200, minimum=1)
    lr = f.float("lr", 2e-3, minimum=0)
    eval_every = f.int("eval_every", 0, minimum=0)
    router = _router(raw["router"], source, steps, lr, eval_every) if raw.get("router") is not None else None
    mixed: Optional[MixedConfig] = None
    if raw.get("mixed") is not None:
        mf = Fields(f.dict("mixed"), f"{source}: mixed")
        mixed = MixedConfig(out_dir=Path(mf.str("out_dir", required=True)), max_seconds=mf.float("max_seconds", 0.0, minimum=0))
    default_stages = ["experts"] + (["router"] if router else []) + (["mixed"] if mixed else [])
    stages_raw = raw.get("stages", default_stages)
    if not isinstance(stages_raw, list) or not stages_raw or any(s not in STAGES for s in stages_raw):
        raise TrainerError(f"{source}: stages must be a non-empty list of {', '.join(STAGES)}", None)
    stages = tuple(s for s in STAGES if s in stages_raw)  # always run in dependency order
    if "router" in stages and router is None:
        raise TrainerError(f"{source}: stages lists \"router\" but there is no router section",
                           'add "router": {"out_dir": ...}')
    if "mixed" in stages and mixed is None:
        raise TrainerError(f"{source}: stages lists \"mixed\" but there is no mixed section",
                           'add "mixed": {"out_dir": ...}')
    temperature = f.float("sampling_temperature", 1.0)
    if temperature < 1.0:
        raise TrainerError(f"{source}: sampling_temperature must be >= 1 (got {temperature})",
                           "1 = equal share per domain; larger values move towards shares by size")
    peak = raw.get("peak_tflops")
    precision = f.str("precision", "auto")
    if precision not in ("auto", "fp32", "bf16"):
        raise TrainerError(f"{source}: precision must be \"auto\", \"fp32\" or \"bf16\" (got {precision!r})",
                           None)
    return TrainConfig(
        run_id=f.str("run_id", required=True),
        run_dir=Path(f.str("run_dir", required=True)),
        base_model=base_model,
        base_model_name=f.str("base_model_name", base_model),
        experts_dir=Path(f.str("experts_dir", required=True)),
        domains=domains,
        lora=parse_spec(raw.get("lora", {}), f"{source}: lora"),
        steps=steps,
        batch_size=f.int("batch_size", 8, minimum=1),
        seq_len=f.int("seq_len", 128, minimum=8),
        lr=lr,
        warmup_steps=f.int("warmup_steps", 10, minimum=0),
        seed=f.int("seed", 0, minimum=0),
        eval_every=eval_every,
        eval_windows=f.int("eval_windows", 16, minimum=1),
        weight_decay=f.float("weight_decay", 0.0),
        device=f.str("device", "auto"),
        threads=f.int("threads", 0, minimum=0),
        stages=stages,
        router=router,
        mixed=mixed,
        checkpoint_every=f.int("checkpoint_every", 0, minimum=0),
        keep_checkpoints=f.int("keep_checkpoints", 2, minimum=1),
        sampling_temperature=temperature,
        grad_accum=f.int("grad_accum", 1, minimum=1),
        activation_checkpointing=_bool(f, "activation_checkpointing", False),
        compile=_bool(f, "compile", False),
        peak_tflops=None if peak is None else f.float("peak_tflops"),
        precision=precision,
        max_seconds=f.float("max_seconds", 0.0, minimum=0),
        max_epochs=f.float("max_epochs", 4.0, minimum=0),
        patience=f.int("patience", 3, minimum=0),
        keep_partial=_bool(f, "keep_partial", False),
        finish_now=_bool(f, "finish_now", False),
        fim=parse_fim(raw.get("fim"), source),
        fingerprint=config_fingerprint(raw),
        source=source,
    )
