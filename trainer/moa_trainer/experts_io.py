"""Expert folders in PEFT layout: writing ours, reading ours or any PEFT LoRA folder back.

An expert folder is published whole (fsutil.publish_dir): written beside its place, then
renamed into it, the version it replaces kept as `.<name>.prev` for one step of rollback.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from torch import Tensor

from .errors import TrainerError
from .fsutil import atomic_write_json, publish_dir
from .lora import LoraSpec, StackedLoRA
from .safetensors_io import load_file, save_file

HINT_IMPORT = "point init_from at a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors)"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def adapter_config(spec: LoraSpec, base_model_name: str) -> dict[str, Any]:
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": spec.r, "lora_alpha": spec.alpha,
        "lora_dropout": spec.dropout, "target_modules": list(spec.target_modules),
        "base_model_name_or_path": base_model_name, "bias": "none", "use_rslora": spec.use_rslora,
        "fan_in_fan_out": False, "inference_mode": True, "modules_to_save": None,
        "init_lora_weights": True,
    }


def write_expert_folder(folder: Path, lora: StackedLoRA, slot: int, base_model_name: str,
                        expert_json: dict[str, Any]) -> Path:
    spec = lora.spec
    tensors = lora.peft_state_dict(slot)

    def write(staging: Path) -> None:
        save_file(tensors, staging / "adapter_model.safetensors", metadata={"format": "pt"})
        atomic_write_json(staging / "adapter_config.json", adapter_config(spec, base_model_name))
        atomic_write_json(staging / "expert.json", {
            "v": 1, **expert_json,
            "lora": {"r": spec.r, "alpha": spec.alpha, "target_modules": list(spec.target_modules),
                     **({"use_rslora": True} if spec.use_rslora else {})},
        })
    return publish_dir(folder, write)


def read_peft_spec(folder: Path, who: str) -> LoraSpec:
    """The LoRA shape an adapter folder holds; anything we cannot reproduce exactly is refused."""
    path = folder / "adapter_config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainerError(f"{who}: {path} not found", HINT_IMPORT) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise TrainerError(f"{who}: {path} is not valid JSON ({e})", HINT_IMPORT) from None
    if not isinstance(raw, dict) or raw.get("peft_type", "LORA") != "LORA":
        raise TrainerError(f"{who}: {path} is not a LoRA adapter config", HINT_IMPORT)
    tm = raw.get("target_modules")
    if isinstance(tm, str) or not isinstance(tm, list):
        raise TrainerError(f"{who}: {path}: target_modules must be a list of module names", HINT_IMPORT)
    # The same refusals as the importer's (schemas/peft-refusals.json holds both to one list).
    if raw.get("use_dora", False):
        raise TrainerError(f"{who}: {path}: DoRA adapters are not supported", None)
    if raw.get("bias", "none") != "none":
        raise TrainerError(f"{who}: {path}: bias {raw.get('bias')!r} is not supported (LoRA matrices only)", None)
    if raw.get("fan_in_fan_out", False):
        raise TrainerError(f"{who}: {path}: fan_in_fan_out adapters (Conv1D layers) are not supported", None)
    for key in ("rank_pattern", "alpha_pattern", "modules_to_save", "layers_to_transform"):
        if raw.get(key):
            raise TrainerError(f"{who}: {path}: {key} {json.dumps(raw.get(key))[:80]} is not supported", None)
    init = raw.get("init_lora_weights", True)
    if init not in (True, False, None, "gaussian"):
        raise TrainerError(f"{who}: {path}: init_lora_weights {init!r} is not supported: it changes the base model's "
                           "weights too", "convert it to a plain LoRA with peft, then import that")
    try:
        spec = LoraSpec(r=int(raw["r"]), alpha=float(raw.get("lora_alpha", raw["r"])),
                        dropout=float(raw.get("lora_dropout", 0.0) or 0.0),
                        target_modules=tuple(str(m) for m in tm),
                        use_rslora=bool(raw.get("use_rslora", False)))
    except (KeyError, TypeError, ValueError) as e:
        raise TrainerError(f"{who}: {path}: invalid LoRA settings ({e})", HINT_IMPORT) from None
    spec.validate(f"{who}: {path}")
    return spec


def read_peft_tensors(folder: Path, who: str) -> dict[str, Tensor]:
    path = folder / "adapter_model.safetensors"
    if not path.is_file():
        bins = [p.name for p in folder.glob("adapter_model.bin")]
        raise TrainerError(f"{who}: {path} not found" + (" (pickle adapter_model.bin is never loaded)" if bins else ""),
                           HINT_IMPORT)
    tensors = load_file(path)
    # PEFT sometimes keeps the adapter name in keys (…lora_A.default.weight); ours never does.
    return {k.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B."): v.float()
            for k, v in tensors.items()}


def check_compatible(spec: LoraSpec, expected: LoraSpec, who: str, folder: Path) -> None:
    if spec.r != expected.r or set(spec.target_modules) != set(expected.target_modules):
        raise TrainerError(f"{who}: {folder} holds a LoRA of rank {spec.r} on {sorted(spec.target_modules)}, "
                           f"but this run trains rank {expected.r} on {sorted(expected.target_modules)}",
                           "match lora.r and lora.target_modules to the imported adapter")
    if spec.scaling != expected.scaling:
        raise TrainerError(f"{who}: {folder} has LoRA scaling {spec.scaling:g} (alpha {spec.alpha:g}), "
                           f"this run uses {expected.scaling:g}", "match lora.alpha (and use_rslora)")


def load_into_slot(lora: StackedLoRA, slot: int, folder: Path, who: str) -> None:
    check_compatible(read_peft_spec(folder, who), lora.spec, who, folder)
    lora.load_peft_state_dict(slot, read_peft_tensors(folder, who), f"{who}: {folder}")


def read_expert_json(folder: Path) -> Optional[dict[str, Any]]:
    try:
        raw = json.loads((folder / "expert.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
    return raw if isinstance(raw, dict) else None
