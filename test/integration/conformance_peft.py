"""The conformance matrix's reference side: tiny random base folders written by `transformers`
over the config variants that change shapes or math, and LoRA adapters written by `peft` itself
over the options users set, each with the logits and greedy tokens transformers + peft compute.
conformance.test.ts imports every cell through MoA's own path and checks: exact, or refused
with the file and the option named.

usage: python conformance_peft.py OUT_DIR TOKENIZER_JSON
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import peft
import torch
import transformers

SMALL: dict[str, Any] = dict(vocab_size=258, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                             rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True)
IDS = [256, 105, 109, 112, 111, 114, 116, 32, 111, 115, 10, 10, 100, 101, 102, 32]
GREEDY_STEPS = 6

# name → (config class, overrides): what changes shapes or math in a base.
BASES: dict[str, tuple[Callable[[], Any], dict[str, Any]]] = {
    "llama (GQA, tied)": (lambda: transformers.LlamaConfig, {}),
    "llama MQA": (lambda: transformers.LlamaConfig, dict(num_key_value_heads=1)),
    "llama untied head": (lambda: transformers.LlamaConfig, dict(tie_word_embeddings=False)),
    "llama head_dim 16": (lambda: transformers.LlamaConfig, dict(head_dim=16)),
    "llama attention_bias": (lambda: transformers.LlamaConfig, dict(attention_bias=True)),
    "llama mlp_bias": (lambda: transformers.LlamaConfig, dict(mlp_bias=True)),
    "llama rope linear": (lambda: transformers.LlamaConfig, dict(rope_scaling={"rope_type": "linear", "factor": 4.0})),
    "llama rope dynamic": (lambda: transformers.LlamaConfig, dict(rope_scaling={"rope_type": "dynamic", "factor": 2.0})),
    "llama rope yarn": (lambda: transformers.LlamaConfig, dict(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64})),
    "llama3 rope": (lambda: transformers.LlamaConfig, dict(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64})),
    "qwen2 (qkv bias)": (lambda: transformers.Qwen2Config, dict(rope_theta=1000000.0)),
    "mistral sliding_window": (lambda: transformers.MistralConfig, dict(sliding_window=8)),
}

QV = ["q_proj", "v_proj"]
# name → LoraConfig options: what users set.
ADAPTERS: dict[str, dict[str, Any]] = {
    "r 4, alpha 8, [q, v]": dict(r=4, lora_alpha=8, target_modules=QV),
    "r 8, alpha 3, [q, v]": dict(r=8, lora_alpha=3, target_modules=QV),
    "[k, o]": dict(r=4, lora_alpha=8, target_modules=["k_proj", "o_proj"]),
    "[gate, up, down]": dict(r=4, lora_alpha=8, target_modules=["gate_proj", "up_proj", "down_proj"]),
    "r 8, alpha 3, all seven": dict(r=8, lora_alpha=3, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    "use_rslora": dict(r=4, lora_alpha=8, target_modules=QV, use_rslora=True),
    "target_modules regex": dict(r=4, lora_alpha=8, target_modules=r".*\.(q_proj|v_proj)"),
    "target_modules all-linear": dict(r=4, lora_alpha=8, target_modules="all-linear"),
    "target_modules one name as a string": dict(r=4, lora_alpha=8, target_modules="q_proj"),
    "rank_pattern": dict(r=4, lora_alpha=8, target_modules=QV, rank_pattern={"q_proj": 2}),
    "alpha_pattern": dict(r=4, lora_alpha=8, target_modules=QV, alpha_pattern={"v_proj": 32}),
    "layers_to_transform [0]": dict(r=4, lora_alpha=8, target_modules=QV, layers_to_transform=[0]),
    "bias lora_only": dict(r=4, lora_alpha=8, target_modules=QV, bias="lora_only"),
    "bias all": dict(r=4, lora_alpha=8, target_modules=QV, bias="all"),
    "modules_to_save lm_head": dict(r=4, lora_alpha=8, target_modules=QV, modules_to_save=["lm_head"]),
    "use_dora": dict(r=4, lora_alpha=8, target_modules=QV, use_dora=True),
    "init gaussian": dict(r=4, lora_alpha=8, target_modules=QV, init_lora_weights="gaussian"),
    "init pissa": dict(r=4, lora_alpha=8, target_modules=QV, init_lora_weights="pissa"),
    "init olora": dict(r=4, lora_alpha=8, target_modules=QV, init_lora_weights="olora"),
    "fan_in_fan_out on Linear": dict(r=4, lora_alpha=8, target_modules=QV, fan_in_fan_out=True),
    "lora_dropout 0.1": dict(r=4, lora_alpha=8, target_modules=QV, lora_dropout=0.1),
    "embed_tokens targeted": dict(r=4, lora_alpha=8, target_modules=["q_proj", "embed_tokens"]),
}


def randomise(model: torch.nn.Module, seed: int, only_lora: bool = False) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # The base's own weights (biases too) stay as saved: only the adapter is random.
            if only_lora and "lora_" not in name and "magnitude" not in name:
                continue
            if "norm" in name and not only_lora:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif "magnitude" in name:
                p.copy_(p * (1 + 0.1 * torch.randn(p.shape, generator=g)))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def reference(model: Any) -> dict[str, Any]:
    ids = torch.tensor([IDS])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].tolist()
        seq = list(IDS)
        for _ in range(GREEDY_STEPS):
            nxt = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
            seq.append(nxt)
    return {"ids": IDS, "last_logits": logits, "greedy": seq[len(IDS):]}


def build_base(name: str, folder: Path, tokenizer: Path) -> Any:
    cls, extra = BASES[name]
    cfg = cls()(**{**SMALL, **extra})
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    randomise(model, 0)
    model.save_pretrained(str(folder))
    shutil.copy(tokenizer, folder / "tokenizer.json")
    return model


def main() -> None:
    out, tokenizer = Path(sys.argv[1]), Path(sys.argv[2])
    cells: list[dict[str, Any]] = []
    for i, name in enumerate(BASES):
        folder = out / "bases" / f"b{i}"
        model = build_base(name, folder, tokenizer)
        # One plain adapter per base: the shapes its config implies, through our path.
        adapter = out / "base-adapters" / f"b{i}"
        pm = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=QV, init_lora_weights=False))
        randomise(pm, 100 + i, only_lora=True)
        pm.save_pretrained(str(adapter))
        cells.append({"kind": "base", "name": name, "base": str(folder), "adapter": str(adapter), **reference(pm.eval())})
    default = out / "bases" / "b0"
    for j, (name, opts) in enumerate(ADAPTERS.items()):
        model = transformers.AutoModelForCausalLM.from_pretrained(str(default)).eval()
        folder = out / "adapters" / f"a{j}"
        try:
            pm = peft.get_peft_model(model, peft.LoraConfig(**{"init_lora_weights": False, **opts}))
        except Exception as e:  # noqa: BLE001 - peft itself refuses: the cell says so
            cells.append({"kind": "adapter", "name": name, "base": str(default), "adapter": None, "peft_refused": f"{type(e).__name__}: {e}"})
            continue
        if opts.get("init_lora_weights") in (None, False):
            randomise(pm, 200 + j, only_lora=True)
        pm.save_pretrained(str(folder))
        cells.append({"kind": "adapter", "name": name, "base": str(default), "adapter": str(folder), **reference(pm.eval())})
    (out / "cells.json").write_text(json.dumps(cells), encoding="utf-8")


if __name__ == "__main__":
    main()
