"""Fill-in-the-middle training windows: the layout, the rate, determinism, and a real run."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import make_config, run_trainer, write_config
from moa_trainer.fim import FimConfig, FimTransform

P, S, M = 250, 251, 252


def test_psm_and_spm_layouts_keep_every_piece_in_place_and_the_window_length() -> None:
    window = torch.arange(100, 132).unsqueeze(0)
    seen = {"psm": 0, "spm": 0}
    t = FimTransform(FimConfig(P, S, M, rate=1.0, spm_rate=0.5), seed=3)
    for _ in range(40):
        out = t.apply(window)[0].tolist()
        assert len(out) == 32 and out[0] == P
        if out[1] == S:  # SPM: <P><S> suffix <M> prefix middle
            seen["spm"] += 1
            m = out.index(M)
            suffix, rest = out[2:m], out[m + 1:]
            # prefix + middle is the window's start, the suffix its (cut) end: nothing reordered inside.
            assert rest == list(range(100, 100 + len(rest)))
            assert suffix == list(range(suffix[0], suffix[0] + len(suffix))) if suffix else True
        else:  # PSM: <P> prefix <S> suffix <M> middle
            seen["psm"] += 1
            s, m = out.index(S), out.index(M) if M in out else len(out)
            prefix = out[1:s]
            assert prefix == list(range(100, 100 + len(prefix)))
            assert out[s + 1:m] == list(range(out[s + 1], out[s + 1] + (m - s - 1))) if m > s + 1 else True
    assert seen["psm"] > 5 and seen["spm"] > 5, seen


def test_the_rate_is_the_share_of_windows_and_the_draws_are_seeded() -> None:
    batch = torch.arange(0, 64).repeat(400, 1)
    out = FimTransform(FimConfig(P, S, M, rate=0.5), seed=0).apply(batch)
    changed = (out != batch).any(dim=1).float().mean().item()
    assert 0.4 < changed < 0.6, changed
    again = FimTransform(FimConfig(P, S, M, rate=0.5), seed=0).apply(batch)
    assert torch.equal(out, again)
    assert torch.equal(FimTransform(FimConfig(P, S, M, rate=0.0), seed=0).apply(batch), batch)


def test_a_run_with_fim_trains_on_transformed_windows_and_says_so(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = make_config(tmp_path, tiny_model_dir, steps=4, eval_every=0, fim={"prefix": P, "suffix": S, "middle": M, "rate": 0.5})
    rc, events, _, stderr = run_trainer(["train", "--config", write_config(tmp_path / "train.json", cfg)])
    assert rc == 0, stderr
    plan = next(e for e in events if e["type"] == "plan")
    assert plan["fim_rate"] == 0.5
    steps = [e for e in events if e["type"] == "step"]
    assert steps and all(e["loss"] is not None for e in steps)


@pytest.mark.parametrize("fim, problem", [
    ({"prefix": 1, "suffix": 1, "middle": 2}, "three different token ids"),
    ({"prefix": 1, "suffix": 2, "middle": 3, "rate": 1.5}, "fractions from 0 to 1"),
    ({"prefix": 1, "suffix": 2, "middle": 100000}, "outside the base model's vocabulary"),
])
def test_bad_fim_settings_are_refused_naming_the_field(tmp_path: Path, tiny_model_dir: Path, fim: dict[str, float], problem: str) -> None:
    cfg = make_config(tmp_path, tiny_model_dir, steps=1, eval_every=0, fim=fim)
    rc, events, _, _ = run_trainer(["train", "--config", write_config(tmp_path / "train.json", cfg)])
    assert rc != 0
    assert problem in events[-1]["message"], events[-1]
