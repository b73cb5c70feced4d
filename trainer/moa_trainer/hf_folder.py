"""Hugging Face model folders: config.json + model.safetensors (or a sharded index), HF key names.

Only safetensors are ever read; pickle checkpoints are refused by name, never opened.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from .errors import TrainerError
from .fsutil import atomic_write_json
from .model import CausalLM, ModelConfig
from .safetensors_io import load_file, save_file

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise TrainerError(f"{path}: pickle checkpoints are never loaded (they can run code)",
                           "convert the model to safetensors (model.safetensors), e.g. with "
                           "transformers' save_pretrained(..., safe_serialization=True)")


def read_config(folder: Path) -> ModelConfig:
    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainerError(f"{path}: not found; a base model folder needs config.json",
                           "point base_model at a Hugging Face model folder") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise TrainerError(f"{path}: not valid JSON ({e})", None) from None
    if not isinstance(raw, dict):
        raise TrainerError(f"{path}: expected a JSON object", None)
    return ModelConfig.from_hf(raw, str(path))


def _weight_files(folder: Path) -> list[Path]:
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (KeyError, ValueError, TypeError) as e:
            raise TrainerError(f"{index}: invalid safetensors index ({e})", None) from None
        return [folder / name for name in sorted(set(weight_map.values()))]
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        refuse_pickle(folder / pickles[0])
    raise TrainerError(f"{folder}: no model.safetensors (or model.safetensors.index.json) found",
                       "a base model folder needs config.json and model.safetensors")


def load_base_model(folder: str | Path, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> CausalLM:
    """Build the model from an HF folder; weights are loaded as-is (no random init pass)."""
    folder = Path(folder)
    refuse_pickle(folder)
    if not folder.is_dir():
        raise TrainerError(f"{folder}: base model folder not found", None)
    cfg = read_config(folder)
    weights: dict[str, Tensor] = {}
    for f in _weight_files(folder):
        weights.update(load_file(f))
    with torch.device("meta"):
        model = CausalLM(cfg)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        expected.pop("lm_head.weight", None)
        weights.pop("lm_head.weight", None)
    # Old exports carry the RoPE table; it is recomputed from rope_theta.
    weights = {k: v for k, v in weights.items() if not k.endswith("rotary_emb.inv_freq")}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise TrainerError(f"{folder}: weights do not match config.json "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})",
                           "is this a Llama-family checkpoint (llama, qwen2, mistral) with HF key names?")
    for k, shape in expected.items():
        if weights[k].shape != shape:
            raise TrainerError(f"{folder}: tensor {k} has shape {list(weights[k].shape)}, "
                               f"config.json implies {list(shape)}", None)
    state = {k: v.to(device=device, dtype=dtype) for k, v in weights.items()}
    model.load_state_dict(state, strict=False, assign=True)
    # The RoPE table is not a weight: built on the meta device above, so compute it for real.
    model.rope_inv_freq = cfg.inv_freq().to(device)
    model.tie()
    return model


def save_model_files(model: CausalLM, folder: Path) -> None:
    """Write config.json and model.safetensors (each atomically) into an existing folder."""
    save_file({k: v.float().contiguous() for k, v in model.hf_state_dict().items()},
              folder / "model.safetensors", metadata={"format": "pt"})
    atomic_write_json(folder / "config.json", model.config.to_hf())
