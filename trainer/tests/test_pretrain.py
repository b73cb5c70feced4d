from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_trainer, write_config
from moa_trainer.corpus import BOS, EOS, build, parse_sources
from moa_trainer.errors import TrainerError
from moa_trainer.hf_folder import load_base_model


def make_corpus(root: Path) -> None:
    for i in range(12):
        (root / "docs" / f"pkg{i}").mkdir(parents=True)
        (root / "docs" / f"pkg{i}" / "README.md").write_text(f"# Package {i}\n\nIt does thing {i}.\n" * 20)
        (root / "py").mkdir(exist_ok=True)
        (root / "py" / f"mod{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n" * 30)
    (root / "py" / "skip").mkdir()
    (root / "py" / "skip" / "bad.py").write_text("never selected\n")


def pretrain_config(root: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "v": 1, "base_dir": ".", "out": "out/base",
        "corpus": {"val_percent": 25, "sources": [
            {"kind": "markdown", "root": "docs", "pattern": "README.md", "recursive": True,
             "max_bytes": 4000, "max_file_bytes": 500},
            {"kind": "python", "root": "py", "pattern": "*.py", "recursive": True, "exclude_dirs": ["skip"],
             "max_bytes": 100000, "max_file_bytes": 100000},
        ]},
        "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                  "num_key_value_heads": 1, "max_position_embeddings": 128},
        "steps": 8, "batch_size": 4, "seq_len": 32, "lr": 0.01, "warmup_steps": 2, "seed": 0, "threads": 1,
        "device": "cpu", "eval_every": 4, "eval_windows": 4, "log_every": 2,
    }
    cfg.update(over)
    return cfg


def test_pretrain_writes_a_loadable_byte_level_base(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    config = write_config(tmp_path / "pretrain.json", pretrain_config(tmp_path))
    for _ in range(2):  # the second run replaces the first folder in one swap
        rc, events, _, stderr = run_trainer(["pretrain", "--config", config])
        assert rc == 0, stderr
    out = tmp_path / "out" / "base"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "pretrain.json",
                                                     "tokenizer.json"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["base"], "temp folders left behind"
    types = [e["type"] for e in events]
    assert types[:2] == ["hello", "plan"] and types[-2:] == ["artifact", "done"]
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 4, 6, 8]
    done = events[-1]
    assert done["stopped"] is False and done["steps_done"] == 8 and done["tokens_seen"] == 8 * 4 * 32
    assert math.isclose(done["val_bits_per_byte"], done["val_loss"] / math.log(2))
    model = load_base_model(out)
    assert model.config.vocab_size == 258 and model.config.tie_word_embeddings
    assert json.loads((out / "tokenizer.json").read_text())["moa"]["type"] == "bytes"
    record = json.loads((out / "pretrain.json").read_text())
    assert record["tokens_seen"] == 8 * 4 * 32 and record["params"] == done["params"]
    md, py = record["corpus"]
    assert md["bytes"] == 4000 and py["files"] == 12 and py["val_files"] > 0


def test_pretrain_with_fim_adds_the_sentinels_and_measures_infill(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    config = write_config(tmp_path / "pretrain.json", pretrain_config(tmp_path, fim={"rate": 0.5}))
    rc, events, _, stderr = run_trainer(["pretrain", "--config", config])
    assert rc == 0, stderr
    out = tmp_path / "out" / "base"
    assert load_base_model(out).config.vocab_size == 261
    tok = json.loads((out / "tokenizer.json").read_text())
    assert tok["moa"]["vocab_size"] == 261 and tok["moa"]["fim_layout"] == "spm"
    assert {t["id"]: t["content"] for t in tok["added_tokens"]} == {
        256: "<s>", 257: "</s>", 258: "<fim_prefix>", 259: "<fim_middle>", 260: "<fim_suffix>"}
    done, record = events[-1], json.loads((out / "pretrain.json").read_text())
    for key in ("infill_psm_bits_per_byte", "infill_spm_bits_per_byte", "infill_prefix_only_bits_per_byte"):
        assert math.isfinite(done[key]) and done[key] > 0 and record[key] == done[key]
    bad = write_config(tmp_path / "bad.json", pretrain_config(tmp_path, fim={"rate": 2}))
    rc, events, _, _ = run_trainer(["pretrain", "--config", bad])
    assert rc != 0 and events[-1]["type"] == "error" and "fim rate" in events[-1]["message"]


def test_corpus_selection_is_deterministic_and_split_by_file(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    sources = parse_sources(pretrain_config(tmp_path)["corpus"]["sources"], tmp_path, "cfg")
    a, b = build(sources, 25), build(sources, 25)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)
    for split in (a.train, a.val):
        assert split[0] == BOS and split[-1] == EOS and (split == BOS).sum() == (split == EOS).sum()
    train_text, val_text = a.train.astype(np.uint8).tobytes(), a.val.astype(np.uint8).tobytes()
    for i in range(12):  # every file lands wholly on one side of the split
        marker = f"def f{i}(x)".encode()
        assert (marker in train_text) != (marker in val_text)
    assert b"never selected" not in train_text + val_text
    with pytest.raises(TrainerError, match="folder not found"):
        build(parse_sources([{"kind": "x", "root": "nope", "pattern": "*", "max_bytes": 1}], tmp_path, "cfg"), 5)
