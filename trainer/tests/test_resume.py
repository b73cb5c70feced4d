"""Checkpoints and --resume: a SIGKILLed run continues from its last checkpoint to the same end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import DOMAINS, make_config, parse_events, train_inproc, trainer_env, write_config
from moa_trainer.safetensors_io import load_file, load_metadata

STEPS = 160
ROUTER_STEPS = 100


def resume_config(tmp: Path, model_dir: Path, **over: Any) -> dict[str, Any]:
    cfg = make_config(tmp, model_dir, steps=STEPS, eval_every=0, checkpoint_every=20, lr=0.02,
                      lora={"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]})
    cfg.update(over)
    return cfg


def final_losses(events: list[dict[str, Any]], stage: str = "experts") -> dict[str, float]:
    done = events[-1]
    assert done["type"] == "done", events[-3:]
    last = [e for e in events if e["type"] == "step" and e["stage"] == stage and e["step"] == STEPS]
    return {e["expert"]: e["loss"] for e in last} | {f"train:{k}": v for k, v in done["train_loss"].items()}


def kill_after_checkpoint(config: str, min_step: int, stage: str = "experts") -> list[dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, "-m", "moa_trainer", "train", "--config", config],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=trainer_env())
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        event = parse_events(line)[0] if '"type":"checkpoint"' in line else None
        if event and event["stage"] == stage and event["step"] >= min_step:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return parse_events("".join(lines))


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path, tiny_model_dir: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    ref_cfg = resume_config(tmp_path / "ref", tiny_model_dir)
    ref_events = train_inproc(write_config(tmp_path / "ref.json", ref_cfg), capsys)
    ref = final_losses(ref_events)

    cfg = resume_config(tmp_path / "killed", tiny_model_dir)
    path = write_config(tmp_path / "killed.json", cfg)
    before = kill_after_checkpoint(path, 40)
    assert not any(e["type"] == "done" for e in before)
    ckpts = sorted((Path(cfg["run_dir"]) / "checkpoints").glob("step-*.safetensors"))
    assert 1 <= len(ckpts) <= 2  # keep_checkpoints 2: older ones pruned
    last_step = int(load_metadata(ckpts[-1])["step"])
    assert last_step >= 40 and not (Path(cfg["experts_dir"]) / "python").exists()

    events = train_inproc(path, capsys, resume=True)
    plan = next(e for e in events if e["type"] == "plan")
    assert plan["resumed_from"] == last_step
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps[0] == last_step + 1 and steps[-1] == STEPS
    got = final_losses(events)
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=0.02), k
    # Deterministic on CPU: the resumed run replays the same steps bit for bit.
    for name in DOMAINS:
        a = load_file(Path(ref_cfg["experts_dir"]) / name / "adapter_model.safetensors")
        b = load_file(Path(cfg["experts_dir"]) / name / "adapter_model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert events[-1]["resumed"] is True


def test_resume_inside_stage_two_and_after_a_finished_run(tmp_path: Path, tiny_model_dir: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    def cfg_for(where: str) -> dict[str, Any]:
        c = resume_config(tmp_path / where, tiny_model_dir, steps=20, checkpoint_every=20)
        c["router"] = {"steps": ROUTER_STEPS, "eta": 0.3, "out_dir": str(tmp_path / where / "router")}
        return c

    ref_cfg = cfg_for("ref")
    ref_events = train_inproc(write_config(tmp_path / "ref.json", ref_cfg), capsys)
    cfg = cfg_for("killed")
    path = write_config(tmp_path / "killed.json", cfg)
    kill_after_checkpoint(path, 40, stage="router")
    events = train_inproc(path, capsys, resume=True)
    # Stage 1 had finished (its experts are on disk): only the router stage continues.
    plans = [e for e in events if e["type"] == "plan"]
    assert [p["stage"] for p in plans] == ["router"] and plans[0]["resumed_from"] >= 40
    ref_last = [e for e in ref_events if e["type"] == "step" and e["step"] == ROUTER_STEPS][0]
    last = [e for e in events if e["type"] == "step" and e["step"] == ROUTER_STEPS][0]
    assert last["loss"] == pytest.approx(ref_last["loss"], rel=0.02)
    a = load_file(Path(ref_cfg["router"]["out_dir"]) / "router.safetensors")
    b = load_file(Path(cfg["router"]["out_dir"]) / "router.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert events[-1]["stages"] == ["experts", "router"] and events[-1]["experts"] == list(DOMAINS)

    # Resuming a finished run trains nothing and reports what was done.
    events = train_inproc(path, capsys, resume=True)
    assert not [e for e in events if e["type"] in ("plan", "step")]
    assert events[-1]["router"]["accuracy"] == json.loads((Path(cfg["router"]["out_dir"]) / "router.json")
                                                          .read_text())["accuracy"]


def test_resume_refuses_a_changed_config(tmp_path: Path, tiny_model_dir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from moa_trainer.errors import TrainerError
    from moa_trainer.protocol import StopFlag
    from moa_trainer.train import run

    cfg = resume_config(tmp_path, tiny_model_dir, steps=4, checkpoint_every=2)
    run(write_config(tmp_path / "a.json", cfg), StopFlag())
    cfg["lr"] = 0.5
    with pytest.raises(TrainerError, match="different config"):
        run(write_config(tmp_path / "a.json", cfg), StopFlag(), resume=True)
    capsys.readouterr()


def test_cli_resume_flag(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_trainer

    cfg = resume_config(tmp_path, tiny_model_dir, steps=3, checkpoint_every=1)
    path = write_config(tmp_path / "c.json", cfg)
    train_inproc(path, capsys)
    (Path(cfg["run_dir"]) / "checkpoints" / "progress.json").unlink()  # as if killed before the stage was marked done
    rc, events, _, stderr = run_trainer(["train", "--config", path, "--resume"])
    assert rc == 0, stderr
    assert not [e for e in events if e["type"] == "step"]  # the last checkpoint is the final step
    assert [e["type"] for e in events].count("artifact") == len(DOMAINS) and events[-1]["resumed"] is True
