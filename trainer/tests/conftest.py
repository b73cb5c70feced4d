"""Shared fixtures: a small random Llama folder, uint32 shards, and a trainer subprocess runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
import torch

TRAINER_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TRAINER_DIR.parent
sys.path.insert(0, str(TRAINER_DIR))

from moa_trainer.fsutil import atomic_write_json  # noqa: E402
from moa_trainer.hf_folder import save_model_files  # noqa: E402
from moa_trainer.model import CausalLM, ModelConfig, init_weights  # noqa: E402
from moa_trainer.pretrain import byte_tokenizer_json  # noqa: E402
from event_contract import event_problems  # noqa: E402

torch.set_num_threads(1)

TINY = ModelConfig(vocab_size=258, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5,
                   rope_theta=500.0, max_position_embeddings=256, tie_word_embeddings=True,
                   bos_token_id=256, eos_token_id=257)


def random_model(cfg: ModelConfig = TINY, seed: int = 0, std: float = 0.2) -> CausalLM:
    """A wide init (std 0.2) so logits differ clearly between inputs and adapters."""
    torch.manual_seed(seed)
    model = CausalLM(cfg)
    init_weights(model, std)
    for name, p in model.named_parameters():
        if name.endswith("bias") or "norm" in name:
            with torch.no_grad():
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def write_model_dir(folder: Path, model: CausalLM) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_model_files(model, folder)
    atomic_write_json(folder / "tokenizer.json", byte_tokenizer_json())
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("tiny-model"), random_model())


# TINY with heads of 16: onnxruntime's GroupQueryAttention (the exported graph's attention) takes
# head sizes in multiples of 16.
ONNX_TINY = replace(TINY, head_dim=16)


@pytest.fixture(scope="session")
def onnx_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("onnx-tiny-model"), random_model(ONNX_TINY))


def write_shard(path: Path, tokens: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.asarray(tokens, dtype="<u4").tobytes())
    return path


def domain_tokens(seed: int, n: int, lo: int, hi: int) -> np.ndarray:
    """A domain with its own byte range, so each expert has something distinct to learn."""
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi, size=n).astype(np.uint32)


def trainer_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(TRAINER_DIR)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


# Event types the session's tests have seen (test_event_contract.py checks that all were).
SEEN_EVENT_TYPES: set[str] = set()


def parse_events(stdout: str) -> list[dict[str, Any]]:
    events = []
    for line in stdout.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("v") == 1 and "type" in obj:
            # Every event any test sees keeps the declared contract, whatever the test checks.
            problems = event_problems(obj)
            assert not problems, f"event breaks schemas/trainer-events.schema.json: {problems}"
            SEEN_EVENT_TYPES.add(obj["type"])
            events.append(obj)
    return events


def run_trainer(args: list[str], timeout: float = 120, input_text: Optional[str] = None,
                env: Optional[dict[str, str]] = None) -> tuple[int, list[dict[str, Any]], str, str]:
    proc = subprocess.run([sys.executable, "-m", "moa_trainer", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or trainer_env(), input=input_text or "")
    return proc.returncode, parse_events(proc.stdout), proc.stdout, proc.stderr


def write_config(path: Path, cfg: dict[str, Any]) -> str:
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return str(path)


def train_inproc(config_path: str, capsys: pytest.CaptureFixture[str], resume: bool = False) -> list[dict[str, Any]]:
    """`train` in this process (saves a torch import per run); its events come back parsed.

    Errors surface as TrainerError, not as an `error` event: the CLI wrapper is not involved.
    """
    from moa_trainer.protocol import StopFlag
    from moa_trainer.train import run

    capsys.readouterr()
    run(config_path, StopFlag(), resume=resume)
    return parse_events(capsys.readouterr().out)


# The three-domain training fixture most trainer tests start from: each domain its own byte range.
DOMAINS = {"python": (10, 60), "sql": (100, 150), "docs": (200, 250)}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"]


def make_config(tmp: Path, model_dir: Path, **over: Any) -> dict[str, Any]:
    domains = []
    for i, (name, (lo, hi)) in enumerate(DOMAINS.items()):
        train = write_shard(tmp / "data" / name / "train.bin", domain_tokens(i, 3000, lo, hi))
        # docs has an empty val shard: eval is skipped for it.
        val_tokens = domain_tokens(i + 10, 0 if name == "docs" else 400, lo, hi)
        val = write_shard(tmp / "data" / name / "val.bin", val_tokens)
        domains.append({"name": name, "train": str(train), "val": str(val), "fingerprint": f"fp-{name}"})
    cfg: dict[str, Any] = {
        "v": 1, "run_id": "run-1", "run_dir": str(tmp / "runs" / "run-1"), "base_model": str(model_dir),
        "base_model_name": "builtin:test-tiny", "experts_dir": str(tmp / "experts"), "domains": domains,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": TARGETS},
        "steps": 6, "batch_size": 2, "seq_len": 16, "lr": 0.05, "warmup_steps": 2, "seed": 0,
        "eval_every": 3, "eval_windows": 4, "device": "auto", "threads": 1,
    }
    cfg.update(over)
    return cfg
