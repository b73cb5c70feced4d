"""Stacked-expert LoRA: one A/B pair per expert for every targeted projection, routed per sequence.

For layer l and module m the stacks are A [E, r, in] and B [E, out, r]; the delta for a
batch with routing weights w [batch, E] is  scaling · Σ_e w[b,e] · (x A_eᵀ) B_eᵀ.
The base model stays frozen; only these stacks train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import TrainerError
from .model import MODULE_PARENT, Adapter, ModelConfig


@dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    use_rslora: bool = False

    @property
    def scaling(self) -> float:
        # rsLoRA (Kalajdzievski 2023): alpha/√r keeps the update's scale stable as r grows.
        return self.alpha / math.sqrt(self.r) if self.use_rslora else self.alpha / self.r

    def validate(self, source: str) -> None:
        if self.r < 1:
            raise TrainerError(f"{source}: lora.r must be >= 1 (got {self.r})", None)
        if not 0.0 <= self.dropout < 1.0:
            raise TrainerError(f"{source}: lora.dropout must be in [0, 1) (got {self.dropout})", None)
        unknown = [m for m in self.target_modules if m not in MODULE_PARENT]
        if unknown or not self.target_modules:
            raise TrainerError(f"{source}: unknown lora.target_modules {unknown or '[]'}",
                               f"choose from {', '.join(MODULE_PARENT)}")


def mixed_delta(x: Tensor, a: Tensor, b: Tensor, weights: Tensor) -> Tensor:
    """Σ_e weights[:, e] · (x A_eᵀ) B_eᵀ without scaling; x [batch, seq, in].

    Experts are folded into one [batch, seq, E·r] @ [E·r, out] product so the cost is one
    rank-(E·r) LoRA, and the ops are plain MatMul/Reshape for the ONNX export.
    """
    h = torch.matmul(x.unsqueeze(1), a.transpose(1, 2).unsqueeze(0))  # [batch, E, seq, r]
    h = h * weights[:, :, None, None].to(h.dtype)
    h = h.transpose(1, 2).flatten(2)  # [batch, seq, E*r]
    return torch.matmul(h, b.transpose(1, 2).flatten(0, 1).to(h.dtype))  # B: [E, r, out] -> [E*r, out]


def indexed_delta(x: Tensor, a: Tensor, b: Tensor, index: Tensor) -> Tensor:
    """One expert per sequence (one-hot routing given as expert ids [batch]); unscaled."""
    return torch.bmm(torch.bmm(x, a[index].transpose(1, 2)), b[index].transpose(1, 2))


def grouped_delta(x: Tensor, a: Tensor, b: Tensor, counts: Sequence[int]) -> Tensor:
    """Rows in blocks per expert (counts[e] rows for expert e, in order); unscaled.

    The expert weights are used as they are (no per-row gather of A and B), so forward and
    backward are plain batched matmuls; with equal blocks it is a single bmm pair.
    """
    if len(set(counts)) == 1:
        e, c = len(counts), counts[0]
        xs = x.reshape(e, c * x.shape[1], x.shape[2])
        y = torch.bmm(torch.bmm(xs, a.transpose(1, 2)), b.transpose(1, 2))
        return y.reshape(x.shape[0], x.shape[1], -1)
    parts = [torch.matmul(torch.matmul(xe, a[e].t()), b[e].t())
             for e, xe in enumerate(x.split(list(counts))) if counts[e]]
    return torch.cat(parts)


class ExpertStack(nn.Module):
    def __init__(self, num_experts: int, r: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.empty(num_experts, r, in_features))
        self.B = nn.Parameter(torch.zeros(num_experts, out_features, r))
        for e in range(num_experts):
            # PEFT's init: kaiming_uniform(a=√5) on each [r, in] A, i.e. U(±1/√in); B = 0.
            nn.init.kaiming_uniform_(self.A.data[e], a=math.sqrt(5))


class StackedLoRA(nn.Module):
    def __init__(self, cfg: ModelConfig, spec: LoraSpec, num_experts: int) -> None:
        super().__init__()
        self.spec = spec
        self.num_experts = num_experts
        self.num_layers = cfg.num_hidden_layers
        dims = cfg.module_dims()
        self.layers = nn.ModuleList(
            nn.ModuleDict({m: ExpertStack(num_experts, spec.r, *dims[m]) for m in spec.target_modules})
            for _ in range(cfg.num_hidden_layers))

    def stack(self, layer: int, module: str) -> ExpertStack:
        return self.layers[layer][module]  # type: ignore[index,return-value]

    def adapter(self, weights: Optional[Tensor] = None, index: Optional[Tensor] = None,
                groups: Optional[Sequence[int]] = None) -> Adapter:
        """Adapter for CausalLM.forward: routing `weights` [batch, E]; or `index` [batch] when
        routing is one-hot, which gathers each sequence's expert instead of mixing; or `groups`
        (rows per expert, rows laid out expert by expert, as the training batches are)."""
        if sum(v is not None for v in (weights, index, groups)) != 1:
            raise ValueError("give exactly one of weights, index or groups")
        scaling = self.spec.scaling
        dropout = self.spec.dropout if self.training else 0.0
        targets = set(self.spec.target_modules)

        def apply(layer: int, module: str, x: Tensor) -> Optional[Tensor]:
            if module not in targets:
                return None
            st = self.stack(layer, module)
            if dropout:
                x = F.dropout(x, p=dropout, training=True)
            if groups is not None:
                return grouped_delta(x, st.A, st.B, groups) * scaling
            if index is not None:
                return indexed_delta(x, st.A, st.B, index) * scaling
            assert weights is not None
            return mixed_delta(x, st.A, st.B, weights) * scaling

        return apply

    # PEFT layout: one expert's pair per projection, names as peft.get_peft_model gives them.
    def peft_state_dict(self, expert: int) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for i in range(self.num_layers):
            for m in self.spec.target_modules:
                st = self.stack(i, m)
                prefix = f"base_model.model.model.layers.{i}.{MODULE_PARENT[m]}.{m}"
                out[f"{prefix}.lora_A.weight"] = st.A.detach()[expert].float().contiguous().cpu()
                out[f"{prefix}.lora_B.weight"] = st.B.detach()[expert].float().contiguous().cpu()
        return out

    def load_peft_state_dict(self, expert: int, tensors: dict[str, Tensor], source: str) -> None:
        """Seam for importing an existing expert into a slot (e.g. to continue training it)."""
        with torch.no_grad():
            for i in range(self.num_layers):
                for m in self.spec.target_modules:
                    st = self.stack(i, m)
                    prefix = f"base_model.model.model.layers.{i}.{MODULE_PARENT[m]}.{m}"
                    for part, dst in (("lora_A", st.A), ("lora_B", st.B)):
                        key = f"{prefix}.{part}.weight"
                        t = tensors.get(key)
                        if t is None or t.shape != dst.shape[1:]:
                            raise TrainerError(f"{source}: {key} is missing or has shape "
                                               f"{None if t is None else list(t.shape)}, expected "
                                               f"{list(dst.shape[1:])}", None)
                        dst[expert].copy_(t)

    def expert_grad_clip_(self, max_norm: float) -> Tensor:
        """Clip each expert's gradient to `max_norm` on its own; returns the norms [E].

        A global norm would let one domain's large gradient shrink every other expert's
        update, coupling experts that stage 1 keeps independent.
        """
        params = [p for p in self.parameters() if p.grad is not None]
        if not params:
            return torch.zeros(self.num_experts)
        sq = torch.stack([p.grad.float().pow(2).flatten(1).sum(1) for p in params]).sum(0)
        norms = sq.sqrt()
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for p in params:
            p.grad.mul_(coef.to(p.grad.dtype).view(-1, *([1] * (p.grad.dim() - 1))))
        return norms


def one_hot_index(num_experts: int, per_expert: int, device: torch.device | str) -> Tensor:
    """Expert ids for a batch laid out as [expert 0 × per_expert, expert 1 × per_expert, …]."""
    return torch.arange(num_experts, device=device).repeat_interleave(per_expert)


def parse_spec(raw: object, source: str) -> LoraSpec:
    if not isinstance(raw, dict):
        raise TrainerError(f"{source}: lora must be an object", None)
    try:
        tm: Sequence[str] = raw.get("target_modules", LoraSpec.target_modules)
        rslora = raw.get("use_rslora", False)
        if not isinstance(rslora, bool):
            raise TypeError("use_rslora must be a boolean")
        spec = LoraSpec(r=int(raw.get("r", 8)), alpha=float(raw.get("alpha", 16)),
                        dropout=float(raw.get("dropout", 0.0)), target_modules=tuple(str(m) for m in tm),
                        use_rslora=rslora)
    except (TypeError, ValueError) as e:
        raise TrainerError(f"{source}: invalid lora settings ({e})", None) from None
    spec.validate(source)
    return spec
