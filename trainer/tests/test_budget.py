"""Training that fits the data and the clock: an epoch cap per domain, early stopping per expert
on held-out loss (best weights kept), and a wall-clock budget the schedule follows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import DOMAINS, domain_tokens, make_config, train_inproc, write_config, write_shard
from moa_trainer.safetensors_io import load_file


def test_a_small_domain_stops_at_its_epoch_cap_while_the_others_train_on(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_config(tmp_path, tiny_model_dir, steps=40, eval_every=0, max_epochs=2)
    # sql: 300 training tokens; 2 windows of 16 per step = 32 tokens, so 2 epochs after 19 steps.
    write_shard(Path(cfg["domains"][1]["train"]), domain_tokens(1, 300, 100, 150))
    events = train_inproc(write_config(tmp_path / "t.json", cfg), capsys)
    done_events = [e for e in events if e["type"] == "expert_done"]
    assert [(e["expert"], e["step"]) for e in done_events] == [("sql", 19)]
    assert "max_epochs" in done_events[0]["reason"]
    steps = [e for e in events if e["type"] == "step"]
    assert max(e["step"] for e in steps if e["expert"] == "sql") == 19
    assert max(e["step"] for e in steps if e["expert"] == "python") == 40
    done = events[-1]
    assert done["stopped"] is False and set(done["experts"]) == set(DOMAINS)
    assert list(done["stopped_early"]) == ["sql"] and done["steps_done"] == 40
    assert done["tokens_seen"]["sql"] == 19 * 2 * 16 and done["tokens_seen"]["python"] == 40 * 2 * 16


def test_experts_stop_without_a_held_out_gain_and_the_stage_ends_early(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # lr 0: the held-out loss can never improve, so each expert stops after `patience` evaluations.
    cfg = make_config(tmp_path, tiny_model_dir, steps=60, eval_every=2, patience=2, lr=0.0, warmup_steps=0)
    events = train_inproc(write_config(tmp_path / "t.json", cfg), capsys)
    stopped = {e["expert"]: e["step"] for e in events if e["type"] == "expert_done"}
    # docs has no held-out windows: nothing to judge it by, so it trains to the end of the stage.
    assert stopped == {"python": 6, "sql": 6}
    assert max(e["step"] for e in events if e["type"] == "step") == 60
    assert max(e["step"] for e in events if e["type"] == "step" and e["expert"] == "python") == 6


def test_early_stopping_publishes_each_expert_at_its_best_evaluation(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A large lr makes the held-out loss worse after a while; the published expert is the best one seen.
    cfg = make_config(tmp_path, tiny_model_dir, steps=40, eval_every=2, patience=3, lr=0.5, warmup_steps=0)
    events = train_inproc(write_config(tmp_path / "t.json", cfg), capsys)
    evals = [e for e in events if e["type"] == "eval" and e["stage"] == "experts" and e["expert"] == "python"]
    best = min(e["loss"] for e in evals)
    written = json.loads((tmp_path / "experts" / "python" / "expert.json").read_text())
    assert written["val_loss"] == pytest.approx(best, abs=1e-6)


def test_a_time_budget_ends_the_stage_on_the_clock_with_the_schedule_annealed(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_config(tmp_path, tiny_model_dir, steps=100000, eval_every=0, max_seconds=2.0, warmup_steps=0)
    events = train_inproc(write_config(tmp_path / "t.json", cfg), capsys)
    steps = [e for e in events if e["type"] == "step"]
    done = events[-1]
    assert done["stopped"] is False and 1 <= done["steps_done"] < 100000
    assert set(done["experts"]) == set(DOMAINS), "a budget end publishes, unlike a stop"
    # The schedule followed the clock: the last step ran close to the floor (10 % of lr).
    assert steps[-1]["lr"] < 0.2 * cfg["lr"]
    assert all(e["eta_s"] <= 2.0 + 1e-6 for e in steps)
    assert (tmp_path / "experts" / "python" / "adapter_model.safetensors").is_file()
    assert load_file(tmp_path / "experts" / "python" / "adapter_model.safetensors")


def test_early_stopping_state_survives_a_resume(tmp_path: Path, tiny_model_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_config(tmp_path / "a", tiny_model_dir, steps=30, eval_every=2, patience=2, lr=0.0,
                      warmup_steps=0, checkpoint_every=10)
    whole = train_inproc(write_config(tmp_path / "a.json", cfg), capsys)
    # The same run, its checkpoint at step 10 resumed: experts stopped at step 6 stay stopped.
    cut = make_config(tmp_path / "b", tiny_model_dir, steps=30, eval_every=2, patience=2, lr=0.0,
                      warmup_steps=0, checkpoint_every=10)
    config = write_config(tmp_path / "b.json", cut)
    from moa_trainer.protocol import StopFlag
    from moa_trainer.stages import LoraStage
    from moa_trainer.train import run
    flag = StopFlag()
    real = LoraStage.step

    def step(self: LoraStage, n: int):  # type: ignore[no-untyped-def]
        if n == 11:
            flag.set("test")
        return real(self, n)

    LoraStage.step = step  # type: ignore[method-assign]
    try:
        run(config, flag)
    finally:
        LoraStage.step = real  # type: ignore[method-assign]
    capsys.readouterr()
    resumed = train_inproc(config, capsys, resume=True)
    assert not [e for e in resumed if e["type"] == "step" and e["expert"] in ("python", "sql")]
    final = {n: torch.equal(load_file(tmp_path / "a" / "experts" / n / "adapter_model.safetensors")[k],
                            load_file(tmp_path / "b" / "experts" / n / "adapter_model.safetensors")[k])
             for n in DOMAINS for k in load_file(tmp_path / "a" / "experts" / n / "adapter_model.safetensors")}
    assert all(final.values())
    assert [e["expert"] for e in whole if e["type"] == "expert_done"] == ["python", "sql"]
