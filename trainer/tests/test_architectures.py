"""Llama, Qwen2 and Mistral folders written by `transformers` (sharded safetensors with an
index, RoPE scaling, qkv bias, sliding window) load here with the same logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from moa_trainer.errors import TrainerError
from moa_trainer.hf_folder import load_base_model

transformers = pytest.importorskip("transformers", reason="transformers not installed (test dependency)")

SMALL = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5)

CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "llama-linear-rope": (lambda: transformers.LlamaConfig, dict(
        rope_scaling={"rope_type": "linear", "factor": 4.0}, rope_theta=10000.0, tie_word_embeddings=True)),
    "llama3-rope": (lambda: transformers.LlamaConfig, dict(
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 120}, rope_theta=10000.0)),
    "qwen2": (lambda: transformers.Qwen2Config, dict(rope_theta=1000000.0, tie_word_embeddings=True)),
    "mistral-window": (lambda: transformers.MistralConfig, dict(sliding_window=5, rope_theta=10000.0)),
}


def build(kind: str, folder: Path) -> Any:
    config_cls, extra = CASES[kind]
    cfg = config_cls()(**SMALL, **extra)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():  # wide random weights so every difference shows in the logits
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.2)
    model.save_pretrained(str(folder), max_shard_size="40KB")  # several shards + index
    return model


@pytest.mark.parametrize("kind", list(CASES))
def test_logits_match_transformers(tmp_path: Path, kind: str) -> None:
    hf = build(kind, tmp_path)
    assert (tmp_path / "model.safetensors.index.json").is_file() and len(list(tmp_path.glob("model-*"))) > 1
    ours = load_base_model(tmp_path)
    assert ours.config.model_type == kind.split("-")[0].replace("llama3", "llama")
    ids = torch.randint(0, 300, (2, 14), generator=torch.Generator().manual_seed(1))
    positions = torch.arange(14)[None].expand(2, 14) * 9  # far positions: RoPE scaling matters there
    with torch.no_grad():
        theirs = hf(input_ids=ids, position_ids=positions).logits
        mine = ours(ids, position_ids=positions).logits
    assert (mine - theirs).abs().max().item() < 1e-4
    if kind == "qwen2":
        assert ours.model.layers[0].self_attn.q_proj.bias is not None
        assert ours.model.layers[0].self_attn.o_proj.bias is None
    if kind == "mistral-window":
        assert ours.config.sliding_window == 5


def test_bad_folders_are_named(tmp_path: Path) -> None:
    build("qwen2", tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "model_type": "phi3"}))
    with pytest.raises(TrainerError, match="model_type 'phi3'"):
        load_base_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "rope_parameters": {"rope_type": "yarn", "factor": 2.0}}))
    with pytest.raises(TrainerError, match="rope scaling 'yarn'"):
        load_base_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "hidden_size": 48}))
    with pytest.raises(TrainerError, match="shape"):
        load_base_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    shard = sorted(tmp_path.glob("model-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(TrainerError, match=shard.name):
        load_base_model(tmp_path)


def test_our_qwen2_folders_load_in_transformers(tmp_path: Path) -> None:
    """The other direction (used by bench/gpu_bench.py): a Qwen2 folder we write is HF's Qwen2."""
    import dataclasses

    from conftest import TINY, random_model, write_model_dir

    cfg = dataclasses.replace(TINY, model_type="qwen2", qkv_bias=True, rope_theta=1e6)
    ours = random_model(cfg, seed=4)
    write_model_dir(tmp_path, ours)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()
    assert type(hf).__name__ == "Qwen2ForCausalLM"
    ids = torch.randint(0, 258, (2, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (hf(input_ids=ids).logits - ours(ids).logits).abs().max().item() < 1e-4
