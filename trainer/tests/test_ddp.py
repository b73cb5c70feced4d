"""torchrun: 2 CPU processes (gloo) train the same experts as one process on the same global batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import DOMAINS, make_config, parse_events, trainer_env, write_config
from moa_trainer.protocol import StopFlag
from moa_trainer.safetensors_io import load_file
from moa_trainer.train import run


def test_two_processes_match_one(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    over = dict(steps=4, eval_every=2, batch_size=2, checkpoint_every=2)
    single = make_config(tmp_path / "single", tiny_model_dir, **over)
    run(write_config(tmp_path / "single.json", single), StopFlag())
    ref = parse_events(capsys.readouterr().out)

    cfg = make_config(tmp_path / "ddp", tiny_model_dir, **over)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "moa_trainer", "train", "--config", write_config(tmp_path / "ddp.json", cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=trainer_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = parse_events(proc.stdout)
    # Rank 0 alone speaks and writes: one hello, one done, one artifact per expert.
    types = [e["type"] for e in events]
    assert types.count("hello") == 1 and types.count("done") == 1 and types[-1] == "done"
    assert [e["name"] for e in events if e["type"] == "artifact"] == list(DOMAINS)
    assert next(e for e in events if e["type"] == "plan")["world_size"] == 2
    steps = [(e["step"], e["expert"], e["loss"]) for e in events if e["type"] == "step"]
    ref_steps = [(e["step"], e["expert"], e["loss"]) for e in ref if e["type"] == "step"]
    assert [s[:2] for s in steps] == [s[:2] for s in ref_steps]
    for (_, _, a), (_, _, b) in zip(steps, ref_steps):
        assert a == pytest.approx(b, rel=1e-4)
    for name in DOMAINS:
        a = load_file(Path(cfg["experts_dir"]) / name / "adapter_model.safetensors")
        b = load_file(Path(single["experts_dir"]) / name / "adapter_model.safetensors")
        assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    evals = [(e["step"], e["domain"], e["loss"]) for e in events if e["type"] == "eval"]
    ref_evals = [(e["step"], e["domain"], e["loss"]) for e in ref if e["type"] == "eval"]
    assert [e[:2] for e in evals] == [e[:2] for e in ref_evals]
    assert not list(Path(cfg["experts_dir"]).rglob("*.tmp"))
