"""A PEFT LoRA folder (as `peft` saves it) as the starting point of an expert (`init_from`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import run_trainer, train_inproc, write_config
from moa_trainer.errors import TrainerError
from moa_trainer.safetensors_io import load_file
from conftest import TARGETS, make_config

transformers = pytest.importorskip("transformers", reason="transformers not installed (test dependency)")
peft = pytest.importorskip("peft", reason="peft not installed (test dependency)")


def peft_adapter(model_dir: Path, out: Path, r: int, targets: list[str]) -> dict[str, torch.Tensor]:
    hf = transformers.LlamaForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    cfg = peft.LoraConfig(r=r, lora_alpha=8, target_modules=targets, lora_dropout=0.0, task_type="CAUSAL_LM")
    model = peft.get_peft_model(hf, cfg)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    model.save_pretrained(str(out))
    return load_file(out / "adapter_model.safetensors")


def test_expert_starts_from_a_peft_folder(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = peft_adapter(tiny_model_dir, tmp_path / "imported", 4, TARGETS)
    cfg: dict[str, Any] = make_config(tmp_path, tiny_model_dir, steps=1, eval_every=0, lr=1e-9, warmup_steps=0)
    cfg["domains"][1]["init_from"] = str(tmp_path / "imported")
    rc, events, _, stderr = run_trainer(["train", "--config", write_config(tmp_path / "t.json", cfg)])
    assert rc == 0, stderr
    sql = load_file(Path(cfg["experts_dir"]) / "sql" / "adapter_model.safetensors")
    assert set(sql) == set(source)
    # One step at lr 1e-9 leaves the imported weights where they were (B too, which starts at 0 otherwise).
    assert all(torch.allclose(sql[k], source[k], atol=1e-6) for k in source)
    python = load_file(Path(cfg["experts_dir"]) / "python" / "adapter_model.safetensors")
    assert all(python[k].abs().max() < 1e-6 for k in python if "lora_B" in k)  # untouched domains start fresh
    ej = json.loads((Path(cfg["experts_dir"]) / "sql" / "expert.json").read_text())
    assert ej["init_from"] == str(tmp_path / "imported")


def test_incompatible_import_names_the_domain(tmp_path: Path, tiny_model_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    peft_adapter(tiny_model_dir, tmp_path / "r8", 8, TARGETS)
    cfg = make_config(tmp_path, tiny_model_dir, steps=1, eval_every=0)
    cfg["domains"][2]["init_from"] = str(tmp_path / "r8")
    with pytest.raises(TrainerError) as info:
        train_inproc(write_config(tmp_path / "t.json", cfg), capsys)
    assert "'docs'" in info.value.message and "rank 8" in info.value.message and info.value.hint
    cfg["domains"][2]["init_from"] = str(tmp_path / "nowhere")
    with pytest.raises(TrainerError, match="'docs'.*not found"):
        train_inproc(write_config(tmp_path / "t.json", cfg), capsys)
    assert not (Path(cfg["experts_dir"])).exists()
