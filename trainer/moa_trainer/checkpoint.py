"""Run checkpoints: trainable weights, AdamW state and every RNG a step consumes, so a resumed
run replays exactly the steps an uninterrupted one would have taken.

`<run_dir>/checkpoints/step-NNNNNN.safetensors` (stage experts, the 0.1 name) or
`<stage>-step-NNNNNN.safetensors`; `progress.json` beside them records the config fingerprint
and which stages have finished (their artifacts are on disk), so --resume skips them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from .errors import TrainerError
from .fsutil import atomic_write_json
from .safetensors_io import load_file, load_metadata, save_file

NAME = re.compile(r"^(?:(router|mixed)-)?step-(\d{6,})\.safetensors$")


@dataclass(frozen=True)
class Found:
    stage: str
    step: int
    path: Path


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def checkpoint_path(run_dir: Path, stage: str, step: int) -> Path:
    prefix = "" if stage == "experts" else f"{stage}-"
    return checkpoint_dir(run_dir) / f"{prefix}step-{step:06d}.safetensors"


def list_checkpoints(run_dir: Path, stage: str) -> list[Found]:
    folder = checkpoint_dir(run_dir)
    found: list[Found] = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = NAME.match(p.name)
            if m and (m.group(1) or "experts") == stage:
                found.append(Found(stage, int(m.group(2)), p))
    return sorted(found, key=lambda f: f.step)


def clear(run_dir: Path) -> None:
    """A fresh (non-resume) start in a run folder that already has checkpoints: drop them, so
    pruning by step number cannot delete the new run's checkpoints in favour of stale ones."""
    folder = checkpoint_dir(run_dir)
    if folder.is_dir():
        for p in folder.iterdir():
            if NAME.match(p.name) or p.name == "progress.json":
                p.unlink(missing_ok=True)


def optimizer_tensors(opt: torch.optim.Optimizer, params: Sequence[nn.Parameter]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for i, p in enumerate(params):
        for k, v in opt.state.get(p, {}).items():
            if isinstance(v, torch.Tensor):
                out[f"optim.{i}.{k}"] = v.detach().float().cpu().reshape(v.shape)
    return out


def load_optimizer(opt: torch.optim.Optimizer, params: Sequence[nn.Parameter], tensors: dict[str, Tensor],
                   source: Path) -> None:
    for i, p in enumerate(params):
        state: dict[str, Tensor] = {}
        for k in ("step", "exp_avg", "exp_avg_sq"):
            t = tensors.get(f"optim.{i}.{k}")
            if t is not None:
                state[k] = t.clone() if k == "step" else t.to(device=p.device, dtype=p.dtype).clone()
        if state:
            if len(state) != 3 or state["exp_avg"].shape != p.shape:
                raise TrainerError(f"{source}: optimizer state for parameter {i} does not fit this run", None)
            opt.state[p] = state


def save(run_dir: Path, stage: str, step: int, tensors: dict[str, Tensor], meta: dict[str, str],
         state: dict[str, Any], keep: int) -> Path:
    path = checkpoint_path(run_dir, stage, step)
    save_file(tensors, path, metadata={**meta, "stage": stage, "step": str(step), "state": json.dumps(state)})
    # Older ones go only after the new one is safely on disk: a kill never leaves zero checkpoints.
    for old in list_checkpoints(run_dir, stage)[:-keep]:
        old.path.unlink(missing_ok=True)
    return path


def load(path: Path) -> tuple[dict[str, Tensor], dict[str, str], dict[str, Any]]:
    meta = load_metadata(path)
    try:
        state = json.loads(meta.get("state", "{}"))
    except ValueError as e:
        raise TrainerError(f"{path}: checkpoint state is not valid JSON ({e})", None) from None
    return load_file(path), meta, state


def rng_tensors(device: torch.device) -> dict[str, Tensor]:
    """The RNGs dropout draws from: torch's CPU generator, and the device's on CUDA."""
    out = {"rng.torch": torch.get_rng_state().clone()}
    if device.type == "cuda":
        out["rng.cuda"] = torch.cuda.get_rng_state(device).clone()
    return out


def restore_rng(tensors: dict[str, Tensor], device: torch.device) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"].to(torch.uint8))
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"].to(torch.uint8), device)


class Progress:
    """Which stages of this run are finished; written atomically after each stage's artifacts."""

    def __init__(self, run_dir: Path, fingerprint: str) -> None:
        self.path = checkpoint_dir(run_dir) / "progress.json"
        self.fingerprint = fingerprint
        self.completed: list[str] = []
        self.results: dict[str, Any] = {}

    def read(self) -> None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except ValueError as e:
            raise TrainerError(f"{self.path}: not valid JSON ({e})", "delete the run folder and start over") from None
        if raw.get("fingerprint") != self.fingerprint:
            raise TrainerError(f"{self.path}: this run was started with a different config; it cannot be resumed",
                               "start a new run instead of --resume")
        self.completed = list(raw.get("completed", []))
        self.results = dict(raw.get("results", {}))

    def complete(self, stage: str, result: dict[str, Any]) -> None:
        self.completed.append(stage)
        self.results[stage] = result
        atomic_write_json(self.path, {"v": 1, "fingerprint": self.fingerprint, "completed": self.completed,
                                      "results": self.results})
