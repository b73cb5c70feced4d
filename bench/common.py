"""Shared pieces of the trainer benchmarks: a small random Llama folder, token shards, a train
config, and peak-RSS measurement of child processes.

Run from the repository root with the project venv, e.g.
    OMP_NUM_THREADS=1 .venv/bin/python bench/cpu_concurrent.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "trainer"))

from moa_trainer.hf_folder import save_model_files  # noqa: E402
from moa_trainer.model import CausalLM, ModelConfig, init_weights  # noqa: E402

def record_figure(bench: str, figure: str, ours: float, unit: str, **extra: Any) -> None:
    """One row of `npm run bench`'s table (bench/core/figures.ts has the fields): appended to the
    file scripts/bench.mjs names in MOA_BENCH_FIGURES; nothing when a script runs on its own."""
    out = os.environ.get("MOA_BENCH_FIGURES")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"bench": bench, "figure": figure, "ours": ours, "unit": unit, **extra}) + "\n")


# A small Llama (GQA, SwiGLU, tied embeddings), byte-level vocab like the built-in model.
SMALL_LLAMA = ModelConfig(vocab_size=258, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                          num_attention_heads=8, num_key_value_heads=4, head_dim=32, rms_norm_eps=1e-5,
                          rope_theta=10000.0, max_position_embeddings=1024, tie_word_embeddings=True,
                          bos_token_id=256, eos_token_id=257)

# Qwen2-0.5B's shape (hidden 896, 24 layers, 14 heads / 2 KV heads, SwiGLU 4864, vocab 151936).
QWEN2_05B = ModelConfig(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                        num_attention_heads=14, num_key_value_heads=2, head_dim=64, rms_norm_eps=1e-6,
                        rope_theta=1000000.0, max_position_embeddings=32768, tie_word_embeddings=True,
                        model_type="qwen2", qkv_bias=True, bos_token_id=151643, eos_token_id=151645)

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def write_model(folder: Path, cfg: ModelConfig, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = CausalLM(cfg)
    init_weights(model, 0.02)
    save_model_files(model, folder)
    return folder


def write_domains(folder: Path, names: list[str], tokens: int, vocab: int, seed: int = 0) -> list[dict[str, Any]]:
    out = []
    for i, name in enumerate(names):
        rng = np.random.default_rng(seed + i)
        d = folder / name
        d.mkdir(parents=True, exist_ok=True)
        lo = (i * 50) % max(1, vocab - 60)
        (d / "train.bin").write_bytes(rng.integers(lo, lo + 60, size=tokens).astype("<u4").tobytes())
        out.append({"name": name, "train": str(d / "train.bin"), "val": None})
    return out


def train_config(root: Path, model_dir: Path, domains: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "v": 1, "run_id": "bench", "run_dir": str(root / "run"), "base_model": str(model_dir),
        "experts_dir": str(root / "experts"), "domains": domains,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": TARGETS},
        "steps": 20, "batch_size": 4, "seq_len": 128, "lr": 1e-3, "warmup_steps": 2, "seed": 0,
        "eval_every": 0, "device": "auto", "threads": 0,
    }
    cfg.update(over)
    return cfg


@dataclass
class ChildRun:
    wall_s: float
    peak_rss_mb: float
    train_s: Optional[float]  # time inside the training loop, from the last step event
    tokens_per_s: Optional[float]
    returncode: int


def run_trainer(config: dict[str, Any], path: Path) -> ChildRun:
    """One `moa_trainer train` process; peak RSS from wait4 (this child only, not its siblings)."""
    path.write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=str(REPO / "trainer"), PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "moa_trainer", "train", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    # communicate() reaped it already; ru_maxrss of RUSAGE_CHILDREN is the largest child so far,
    # so each measured run happens in a fresh helper process (see measure()).
    last: Optional[dict[str, Any]] = None
    for line in out.decode().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("type") == "step":
            last = e
        if e.get("type") == "error":
            raise RuntimeError(f"trainer error: {e}\n{err.decode()[-2000:]}")
    import resource
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    tps = last["tokens_per_s"] if last else None
    return ChildRun(wall, rss, None, tps, proc.returncode)


def measure(config: dict[str, Any], path: Path) -> ChildRun:
    """Run the trainer from a fresh helper so RUSAGE_CHILDREN covers exactly that one trainer."""
    code = ("import json,sys; sys.path.insert(0, %r); from common import run_trainer; from pathlib import Path; "
            "r = run_trainer(json.loads(sys.argv[1]), Path(sys.argv[2])); print(json.dumps(r.__dict__))"
            % str(Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(config), str(path)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return ChildRun(**json.loads(proc.stdout.strip().splitlines()[-1]))
