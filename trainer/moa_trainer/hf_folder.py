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
from .safetensors_io import load_file, read_header, save_file

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise TrainerError(f"{path}: pickle checkpoints are never loaded (they can run code)",
                           "convert the model to safetensors (model.safetensors), e.g. with "
                           "transformers' save_pretrained(..., safe_serialization=True)")


# A config.json or an index this large is not a model's: refused before it is read.
MAX_JSON_BYTES = 16 * 1024 * 1024


def _read_small_json(path: Path) -> object:
    if path.exists() and not path.is_file():
        raise TrainerError(f"{path}: not a regular file", None)
    if path.is_file() and path.stat().st_size > MAX_JSON_BYTES:
        raise TrainerError(f"{path}: {path.stat().st_size} bytes is larger than the "
                           f"{MAX_JSON_BYTES}-byte limit for this file", None)
    return json.loads(path.read_text(encoding="utf-8"))


def read_config(folder: Path) -> ModelConfig:
    path = folder / "config.json"
    try:
        raw = _read_small_json(path)
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
            weight_map = _read_small_json(index)["weight_map"]  # type: ignore[index]
            names = sorted(set(weight_map.values()))
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise TrainerError(f"{index}: invalid safetensors index ({e})", None) from None
        for name in names:
            # A shard name from the index must be a file in this folder, nothing else.
            if not isinstance(name, str) or Path(name).name != name or not name.endswith(".safetensors"):
                raise TrainerError(f"{index}: shard {name!r} is not a .safetensors file in {folder}", None)
        return [folder / name for name in names]
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        refuse_pickle(folder / pickles[0])
    raise TrainerError(f"{folder}: no model.safetensors (or model.safetensors.index.json) found",
                       "a base model folder needs config.json and model.safetensors")


def check_weight_headers(folder: Path, cfg: ModelConfig, files: list[Path]) -> None:
    """The tensors the files declare (headers only) against the shapes config.json implies, before
    any weight is read or any module built: a config that claims a billion layers, or weights of
    another model, are refused here with the first difference named."""
    expected = cfg.weight_shapes()
    found: dict[str, tuple[int, ...]] = {}
    for f in files:
        found.update({k: tuple(info.shape) for k, info in read_header(f)[0].items()})
    if cfg.tie_word_embeddings:
        found.pop("lm_head.weight", None)
    # Old exports carry the RoPE table; it is recomputed from rope_theta.
    found = {k: v for k, v in found.items() if not k.endswith("rotary_emb.inv_freq")}
    layers = {int(k.split(".")[2]) for k in found if k.startswith("model.layers.") and k.split(".")[2].isdigit()}
    if len(layers) != cfg.num_hidden_layers:
        raise TrainerError(f"{folder}: config.json says {cfg.num_hidden_layers} layers, the weights hold "
                           f"{len(layers)}", "does config.json belong to these weights?")
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise TrainerError(f"{folder}: weights do not match config.json "
                           f"(missing {missing[:3]}{' …' if len(missing) > 3 else ''}, "
                           f"unexpected {unexpected[:3]}{' …' if len(unexpected) > 3 else ''})",
                           "is this a Llama-family checkpoint (llama, qwen2, mistral) with HF key names, "
                           "and does config.json belong to these weights?")
    for k, shape in expected.items():
        if found[k] != shape:
            raise TrainerError(f"{folder}: tensor {k} has shape {list(found[k])}, "
                               f"config.json implies {list(shape)}", None)


def load_base_model(folder: str | Path, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> CausalLM:
    """Build the model from an HF folder; weights are loaded as-is (no random init pass)."""
    folder = Path(folder)
    refuse_pickle(folder)
    if not folder.is_dir():
        raise TrainerError(f"{folder}: base model folder not found", None)
    cfg = read_config(folder)
    files = _weight_files(folder)
    check_weight_headers(folder, cfg, files)
    weights: dict[str, Tensor] = {}
    for f in files:
        weights.update(load_file(f))
    if cfg.tie_word_embeddings:
        weights.pop("lm_head.weight", None)
    weights = {k: v for k, v in weights.items() if not k.endswith("rotary_emb.inv_freq")}
    with torch.device("meta"):
        model = CausalLM(cfg)
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
