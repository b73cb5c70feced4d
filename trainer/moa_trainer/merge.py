"""`merge`: one new expert from several, with the semantics of peft's `add_weighted_adapter`.

For runtimes that take one adapter and cannot route (Ollama, a plain peft model), and as a
baseline beside routing. The methods, per targeted module of every layer:

- `linear`, `magnitude_prune`, `ties`, `dare_linear`, `dare_ties`: the experts' A and B are
  combined separately (same rank required), each expert's weight × scaling split as a signed
  square root on A and its magnitude's root on B; the merged rank is the experts'.
- `cat`: A and B concatenated along the rank (A rows weighted by weight × scaling); the merged
  rank is the sum, so the merged ΔW is exactly Σ weight · ΔW.
- `svd` (and `ties_svd`, `dare_linear_svd`, `dare_ties_svd`, `magnitude_prune_svd`): the full
  ΔW = Σ weight · scaling · B A combined, then truncated by SVD to `svd_rank` (default: the
  largest rank).

The merged adapter has lora_alpha = r, so its scaling is 1 (the weights already carry each
expert's scaling). Unlike peft, use_rslora is not inherited: an rsLoRA scaling of √r on top would
change the merged update. DARE draws its random masks from torch's generator seeded by `seed`,
module by module in the model's order (layers, then q, k, v, o, gate, up, down), A before B, as
peft does; `tests/test_merge.py` holds every method to peft on random adapters.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from .config import Fields, read_json_config
from .errors import TrainerError
from .experts_io import now_iso, read_peft_spec, read_peft_tensors
from .fsutil import atomic_write_json, publish_dir
from .lora import LoraSpec
from .model import MODULE_PARENT
from .protocol import emit
from .safetensors_io import save_file

SAME_RANK = ("linear", "magnitude_prune", "ties", "dare_linear", "dare_ties")
SVD = ("svd", "magnitude_prune_svd", "ties_svd", "dare_linear_svd", "dare_ties_svd")
METHODS = SAME_RANK + ("cat",) + SVD
DENSITY = ("magnitude_prune", "ties", "dare_linear", "dare_ties")
KEY = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_([AB])\.weight$")


def _prune_magnitude(t: Tensor, density: float) -> Tensor:
    """Keep the `density` fraction of entries largest in magnitude."""
    keep = int(density * t.numel())
    mask = torch.zeros(t.numel(), dtype=t.dtype)
    mask[t.abs().reshape(-1).topk(keep).indices] = 1
    return t * mask.reshape(t.shape)


def _prune_random(t: Tensor, density: float) -> Tensor:
    """DARE: drop entries at random, keeping `density` of them on average, and rescale the rest."""
    return t * torch.bernoulli(torch.full_like(t, density)) / density


def _prune(t: Tensor, density: float, how: str) -> Tensor:
    if density >= 1:
        return t
    return _prune_magnitude(t, density) if how == "magnitude" else _prune_random(t, density)


def _sign_agreement(stacked: Tensor, rule: str) -> Tensor:
    """TIES: where each expert's entry has the sign the experts agree on (by total mass or by count)."""
    signs = stacked.sign()
    mass = stacked.sum(0) if rule == "total" else signs.sum(0)
    return signs == torch.where(mass >= 0, 1, -1)


def combine(method: str, tensors: list[Tensor], weights: Tensor, density: float, rule: str) -> Tensor:
    """The weighted combination of same-shaped tensors under a task-arithmetic method."""
    base = method.removesuffix("_svd") if method != "svd" else "linear"
    how = "random" if base.startswith("dare") else "magnitude"
    if base != "linear":
        tensors = [_prune(t, density, how) for t in tensors]
    stacked = torch.stack(tensors)
    weighted = stacked * weights.reshape((-1,) + (1,) * (stacked.dim() - 1))
    if base in ("ties", "dare_ties"):
        agree = _sign_agreement(stacked, rule)
        return (weighted * agree).sum(0) / agree.sum(0).clamp(min=1.0)
    return weighted.sum(0)


def merge_module(method: str, parts: list[tuple[Tensor, Tensor, float, float]], new_rank: int, density: float,
                 rule: str, clamp: Optional[float]) -> tuple[Tensor, Tensor]:
    """One module's merged (A [new_rank, in], B [out, new_rank]) from (A, B, weight, scaling) of
    each expert that targets it."""
    if method == "cat":
        a = torch.cat([a * w * sc for a, _, w, sc in parts], 0)
        b = torch.cat([b for _, b, _, _ in parts], 1)
        a_out = torch.zeros(new_rank, a.shape[1])
        b_out = torch.zeros(b.shape[0], new_rank)
        a_out[:a.shape[0]] = a
        b_out[:, :b.shape[1]] = b
        return a_out, b_out
    if method in SVD:
        # Each expert's ΔW with its scaling, then weighted: pruning and sign votes see the scaled updates.
        delta = combine(method, [(b @ a) * sc for a, b, _, sc in parts], torch.tensor([w for _, _, w, _ in parts]),
                        density, rule)
        u, s, vh = torch.linalg.svd(delta, full_matrices=True)
        u = u[:, :new_rank] @ torch.diag(s[:new_rank])
        vh = vh[:new_rank, :]
        if clamp is not None:
            hi = torch.quantile(torch.cat([u.flatten(), vh.flatten()]), clamp)
            u, vh = u.clamp(-hi, hi), vh.clamp(-hi, hi)
        return vh, u
    # weight × scaling as √ on each side; the sign on A only, or the two would cancel.
    ws = [w * sc for _, _, w, sc in parts]
    w_a = torch.tensor([math.sqrt(abs(x)) * (1.0 if x >= 0 else -1.0) for x in ws])
    w_b = torch.tensor([math.sqrt(abs(x)) for x in ws])
    a = combine(method, [a for a, _, _, _ in parts], w_a, density, rule)
    b = combine(method, [b for _, b, _, _ in parts], w_b, density, rule)
    return a, b


def _module_order(key: tuple[int, str]) -> tuple[int, int]:
    return key[0], list(MODULE_PARENT).index(key[1])


def merge_experts(folders: list[Path], names: list[str], weights: list[float], method: str,
                  density: Optional[float] = None, svd_rank: Optional[int] = None, rule: str = "total",
                  clamp: Optional[float] = None, seed: int = 0) -> tuple[dict[str, Tensor], LoraSpec]:
    """The merged adapter's PEFT tensors and shape. Pure but for reading the folders."""
    if method not in METHODS:
        raise TrainerError(f"merge: unknown method {method!r}", f"choose from {', '.join(METHODS)}")
    if not folders or len(folders) != len(weights):
        raise TrainerError(f"merge: {len(folders)} experts but {len(weights)} weights", "give one weight per expert")
    if len(folders) == 1:
        method = "linear"  # as peft: one adapter can only be scaled
    base = method.removesuffix("_svd")
    if base in DENSITY and (density is None or not 0.0 <= density <= 1.0):
        raise TrainerError(f"merge: method {method} needs a density in [0, 1] (got {density})",
                           "--density 0.5 keeps half the entries")
    if rule not in ("total", "frequency"):
        raise TrainerError(f"merge: majority sign method {rule!r}", "choose total or frequency")
    specs = [read_peft_spec(f, n) for f, n in zip(folders, names)]
    ranks = [s.r for s in specs]
    if method in SAME_RANK and len(set(ranks)) != 1:
        raise TrainerError(f"merge: {method} needs experts of one rank; {', '.join(f'{n} r={r}' for n, r in zip(names, ranks))}",
                           "use --method cat or svd to merge different ranks")
    new_rank = sum(ranks) if method == "cat" else (svd_rank or max(ranks)) if method in SVD else ranks[0]
    modules: dict[tuple[int, str], list[tuple[Tensor, Tensor, float, float]]] = {}
    for folder, name, spec, w in zip(folders, names, specs, weights):
        tensors = read_peft_tensors(folder, name)
        pairs: dict[tuple[int, str], dict[str, Tensor]] = {}
        for k, t in tensors.items():
            m = KEY.match(k)
            if not m or MODULE_PARENT.get(m.group(3)) != m.group(2):
                raise TrainerError(f"{name}: {folder}: tensor {k!r} is not a LoRA matrix of a decoder layer", None)
            pairs.setdefault((int(m.group(1)), m.group(3)), {})[m.group(4)] = t
        for key, ab in pairs.items():
            if set(ab) != {"A", "B"}:
                raise TrainerError(f"{name}: {folder}: layer {key[0]} {key[1]} has lora_{''.join(ab)} without its pair", None)
            modules.setdefault(key, []).append((ab["A"], ab["B"], w, spec.scaling))
    torch.manual_seed(seed)
    out: dict[str, Tensor] = {}
    for key in sorted(modules, key=_module_order):
        layer, module = key
        a, b = merge_module(method, modules[key], new_rank, density if density is not None else 1.0, rule, clamp)
        prefix = f"base_model.model.model.layers.{layer}.{MODULE_PARENT[module]}.{module}"
        out[f"{prefix}.lora_A.weight"] = a.contiguous()
        out[f"{prefix}.lora_B.weight"] = b.contiguous()
    targets = tuple(m for m in MODULE_PARENT if any(k[1] == m for k in modules))
    return out, LoraSpec(r=new_rank, alpha=float(new_rank), target_modules=targets)


def run(config_path: str) -> None:
    start = time.perf_counter()
    raw, source = read_json_config(config_path)
    f = Fields(raw, source)
    experts = f.list("experts", required=True)
    if not experts or not all(isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("dir"), str)
                              for e in experts):
        raise TrainerError(f"{source}: experts must be a list of {{name, dir}}", None)
    weights = f.list("weights") or [1.0] * len(experts)
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights):
        raise TrainerError(f"{source}: weights must be finite numbers", None)
    density = raw.get("density")
    if density is not None and (not isinstance(density, (int, float)) or isinstance(density, bool)):
        raise TrainerError(f"{source}: density must be a number", None)
    svd_rank = raw.get("svd_rank")
    if svd_rank is not None and (not isinstance(svd_rank, int) or isinstance(svd_rank, bool) or svd_rank < 1):
        raise TrainerError(f"{source}: svd_rank must be an integer >= 1", None)
    out_dir = Path(f.str("out_dir", required=True))
    name = f.str("name", required=True)
    method = f.str("method", "linear")
    tensors, spec = merge_experts([Path(e["dir"]) for e in experts], [e["name"] for e in experts],
                                  [float(w) for w in weights], method, density, svd_rank,
                                  f.str("majority_sign_method", "total"), None, f.int("seed", 0))
    base_model = f.str("base_model_name", "")

    def write(staging: Path) -> None:
        save_file(tensors, staging / "adapter_model.safetensors", metadata={"format": "pt"})
        atomic_write_json(staging / "adapter_config.json", {
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": spec.r, "lora_alpha": spec.alpha,
            "lora_dropout": 0.0, "target_modules": list(spec.target_modules), "base_model_name_or_path": base_model,
            "bias": "none", "use_rslora": False, "fan_in_fan_out": False, "inference_mode": True,
            "modules_to_save": None, "init_lora_weights": True})
        atomic_write_json(staging / "expert.json", {
            "v": 1, "domain": name, "base_model": base_model, "created": now_iso(),
            "merged_from": [e["name"] for e in experts], "method": method, "weights": weights,
            **({"density": density} if density is not None else {}),
            "lora": {"r": spec.r, "alpha": spec.alpha, "target_modules": list(spec.target_modules)}})
    publish_dir(out_dir, write)
    emit("artifact", kind="expert", name=name, path=str(out_dir))
    emit("done", stopped=False, elapsed_s=round(time.perf_counter() - start, 3), path=str(out_dir))

