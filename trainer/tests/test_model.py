from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT, TINY, random_model, write_model_dir
from moa_trainer.errors import TrainerError
from moa_trainer.hf_folder import load_base_model
from moa_trainer.safetensors_io import load_file, save_file


def hf_logits(folder: Path, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    transformers = pytest.importorskip("transformers", reason="transformers not installed (test dependency)")
    hf = transformers.LlamaForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return hf(input_ids=ids, attention_mask=mask).logits


@pytest.mark.parametrize("variant", ["tied-gqa", "untied-bias-mha"])
def test_logits_match_transformers(tmp_path: Path, variant: str) -> None:
    cfg = TINY if variant == "tied-gqa" else dataclasses.replace(
        TINY, tie_word_embeddings=False, attention_bias=True, mlp_bias=True, num_key_value_heads=4,
        rope_theta=10000.0)
    folder = write_model_dir(tmp_path / variant, random_model(cfg, seed=1))
    ours = load_base_model(folder)
    ids = torch.randint(0, cfg.vocab_size, (2, 19), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mine = ours(ids).logits
    theirs = hf_logits(folder, ids)
    assert (mine - theirs).abs().max().item() < 1e-4


def test_cached_decode_and_left_padding_match_full_recompute(tiny_model_dir: Path) -> None:
    model = load_base_model(tiny_model_dir)
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids).logits
        first = model(ids[:, :7], use_cache=True)
        rest = model(ids[:, 7:], attention_mask=torch.ones(2, 12, dtype=torch.long),
                     past_key_values=first.present)
        assert (rest.logits - full[:, 7:]).abs().max().item() < 1e-5
        # Row 1 left-padded by 3: its real tokens must see exactly what they saw unpadded.
        padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids[1:, :9]], dim=1)
        mask = torch.tensor([[0, 0, 0] + [1] * 9])
        pos = torch.tensor([[0, 0, 0] + list(range(9))])
        out = model(padded, attention_mask=mask, position_ids=pos).logits
        assert torch.isfinite(out).all()
        assert (out[:, 3:] - full[1:, :9]).abs().max().item() < 1e-5


def test_padding_matches_transformers(tiny_model_dir: Path) -> None:
    ids = torch.randint(0, 256, (2, 10), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[0, :4] = 0
    model = load_base_model(tiny_model_dir)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        mine = model(ids, attention_mask=mask, position_ids=pos).logits
    theirs = hf_logits(tiny_model_dir, ids, mask)
    assert (mine[mask.bool()] - theirs[mask.bool()]).abs().max().item() < 1e-4


def test_pickles_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY.to_hf()))
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(TrainerError) as info:
        load_base_model(folder)
    assert "pytorch_model.bin" in info.value.message and "pickle" in info.value.message
    assert info.value.hint and "safetensors" in info.value.hint
    with pytest.raises(TrainerError, match="pickle"):
        load_base_model(folder / "pytorch_model.bin")


def test_sharded_folder_loads_and_mismatches_are_named(tmp_path: Path, tiny_model_dir: Path) -> None:
    weights = load_file(tiny_model_dir / "model.safetensors")
    names = sorted(weights)
    half = len(names) // 2
    folder = tmp_path / "sharded"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for file, keys in shards.items():
        save_file({k: weights[k] for k in keys}, folder / file)
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {k: f for f, keys in shards.items() for k in keys}}))
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(load_base_model(folder)(ids).logits, load_base_model(tiny_model_dir)(ids).logits)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    save_file({k: v for k, v in weights.items() if k != "model.norm.weight"}, broken / "model.safetensors")
    with pytest.raises(TrainerError, match="model.norm.weight"):
        load_base_model(broken)


def test_unsupported_architecture_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**TINY.to_hf(), "model_type": "gpt2"}))
    with pytest.raises(TrainerError, match="model_type 'gpt2'"):
        load_base_model(tmp_path)


def test_builtin_moa_tiny() -> None:
    # The built-in base ships in the repository: its absence is a failure, not a reason to skip.
    folder = REPO_ROOT / "models" / "moa-tiny"
    assert (folder / "model.safetensors").is_file(), f"{folder} missing (python -m moa_trainer pretrain --config models/moa-tiny.pretrain.json)"
    model = load_base_model(folder)
    cfg = model.config
    assert cfg.vocab_size == 261 and cfg.bos_token_id == 256 and cfg.eos_token_id == 257
    tok = json.loads((folder / "tokenizer.json").read_text())
    assert tok["moa"] == {"type": "bytes", "vocab_size": 261, "bos_token_id": 256, "eos_token_id": 257, "fim_layout": "spm"}
    # StarCoder's sentinel names after BOS and EOS: FIM-aware tools (ours, llama.cpp) find them by text.
    assert [t["content"] for t in tok["added_tokens"]] == ["<s>", "</s>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>"]
    ids = torch.tensor([[256] + list(b"def main():\n    return 0\n")])
    with torch.no_grad():
        mine = model(ids).logits
    assert (mine - hf_logits(folder, ids)).abs().max().item() < 1e-4
    # A trained byte model predicts text far better than uniform (ln 261 = 5.56 nats).
    loss = torch.nn.functional.cross_entropy(mine[0, :-1], ids[0, 1:]).item()
    assert loss < 4.0
