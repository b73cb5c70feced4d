"""PyTorch side of test/integration/parity.test.ts: the reference the TypeScript engine is held to.

Reads one JSON request (path in argv[1]), prints one JSON answer on stdout. It writes the seeded
random experts with the trainer's own writers, reads them back from those files the
way any consumer would, and computes logits with moa_trainer's model in plain PyTorch, by full
recompute (no KV cache). Run with PYTHONPATH=trainer.

Request keys:
  base          base model folder
  experts_dir   where `make` writes the expert folders (and whence every case reads them)
  make          [{name, r, alpha, seed, std}]: one random LoRA expert each (q/k/v/o_proj)
  logits        [{name, ids, experts: {name: weight}}]: logits at every position of `ids`
  greedy        [{name, prompt, steps, experts: {name: weight}}]: greedy decoding, recomputing the
                whole sequence at every step; the tokens and each step's next-token logits row
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from moa_trainer.experts_io import read_peft_spec, read_peft_tensors, write_expert_folder
from moa_trainer.hf_folder import load_base_model
from moa_trainer.lora import LoraSpec, StackedLoRA
from moa_trainer.model import CausalLM

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
Adapter = Callable[[int, str, Tensor], Optional[Tensor]]


def make_expert(model: CausalLM, folder: Path, name: str, r: int, alpha: float, seed: int, std: float) -> None:
    lora = StackedLoRA(model.config, LoraSpec(r=r, alpha=alpha, target_modules=TARGETS), 1)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    write_expert_folder(folder, lora, 0, "builtin:moa-tiny", {"domain": name, "steps": 0, "run_id": "parity"})


def read_expert(model: CausalLM, folder: Path) -> StackedLoRA:
    spec = read_peft_spec(folder, "parity")
    lora = StackedLoRA(model.config, spec, 1)
    lora.load_peft_state_dict(0, read_peft_tensors(folder, "parity"), f"parity: {folder}")
    return lora.eval()


def weighted(experts: list[StackedLoRA], weights: Callable[[int], Tensor]) -> Adapter:
    """sum_e w_e · scaling_e · B_e A_e x, each expert at its own rank: the MoA mixture by definition."""
    def apply(layer: int, module: str, x: Tensor) -> Optional[Tensor]:
        w = weights(layer)
        out: Optional[Tensor] = None
        for e, lora in enumerate(experts):
            d = lora.adapter(weights=w[:, e:e + 1])(layer, module, x)
            if d is not None:
                out = d if out is None else out + d
        return out
    return apply


def main() -> None:
    req: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    torch.manual_seed(0)
    model = load_base_model(req["base"]).eval()
    experts_dir = Path(req["experts_dir"])
    for m in req.get("make", []):
        make_expert(model, experts_dir / m["name"], m["name"], m["r"], m["alpha"], m["seed"], m["std"])
    loaded: dict[str, StackedLoRA] = {}

    def expert(name: str) -> StackedLoRA:
        if name not in loaded:
            loaded[name] = read_expert(model, experts_dir / name)
        return loaded[name]

    def fixed(mix: dict[str, float]) -> Optional[Adapter]:
        if not mix:
            return None
        names = list(mix)
        w = torch.tensor([[mix[n] for n in names]], dtype=torch.float32)
        return weighted([expert(n) for n in names], lambda _layer: w)

    answer: dict[str, Any] = {"logits": {}, "greedy": {}}
    with torch.no_grad():
        for case in req.get("logits", []):
            ids = torch.tensor([case["ids"]], dtype=torch.long)
            answer["logits"][case["name"]] = model(ids, adapter=fixed(case["experts"])).logits[0].flatten().tolist()
        for case in req.get("greedy", []):
            prompt: list[int] = list(case["prompt"])
            seq = list(prompt)
            rows: list[list[float]] = []
            for _ in range(case["steps"]):
                ids = torch.tensor([seq], dtype=torch.long)
                logits = model(ids, adapter=fixed(case["experts"])).logits
                row = logits[0, -1]
                rows.append(row.tolist())
                seq.append(int(row.argmax()))
            answer["greedy"][case["name"]] = {"tokens": seq[len(prompt):], "rows": rows}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
