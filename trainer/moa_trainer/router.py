"""The learned router (stage 2): one linear map per layer from the prompt's pooled hidden
states to a distribution over the attached experts, top-k renormalised.

Layer l's router reads that layer's normalised input (what its q/k/v projections see), mean
pooled over the prompt tokens only, and its weights route that layer's LoRA deltas for every
position. Once computed for the prompt, the decision is held for the continuation (a cached
decoding step computes nothing new), as the paper's sequence-level routing prescribes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import TrainerError
from .fsutil import atomic_write_bytes, atomic_write_json, publish_dir
from .lora import StackedLoRA, mixed_delta
from .model import Adapter
from .ngram_router import NgramRouter
from .safetensors_io import load_file, serialize


class Routers(nn.Module):
    def __init__(self, num_layers: int, hidden: int, num_experts: int) -> None:
        super().__init__()
        self.num_experts = num_experts
        self.hidden = hidden
        self.layers = nn.ModuleList(nn.Linear(hidden, num_experts) for _ in range(num_layers))

    def logits(self, layer: int, pooled: Tensor) -> Tensor:
        lin: nn.Linear = self.layers[layer]  # type: ignore[assignment]
        return lin(pooled.to(lin.weight.dtype))


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """Mean of h [batch, seq, hidden] over positions where mask [batch, seq] is 1."""
    m = mask.to(h.dtype)[:, :, None]
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def top_k_weights(logits: Tensor, k: int) -> Tensor:
    """Softmax, keep the k largest, renormalise so the kept weights sum to 1."""
    probs = logits.float().softmax(-1)
    k = min(k, probs.shape[-1])
    if k == probs.shape[-1]:
        return probs
    top, idx = probs.topk(k, dim=-1)
    return torch.zeros_like(probs).scatter(-1, idx, top / top.sum(-1, keepdim=True))


class RoutedAdapter:
    """Adapter + route hook for CausalLM.forward with learned routing.

    `prompt_mask` [batch, seq] marks the prompt in the first forward call. The hook stores one
    entry per layer (keyed, not appended, so an activation-checkpoint recompute overwrites
    rather than duplicates) and, once set, holds it for later (cached) calls.
    """

    def __init__(self, lora: StackedLoRA, routers: Routers, prompt_mask: Tensor, top_k: int,
                 oracle: Optional[Tensor] = None) -> None:
        self.lora = lora
        self.routers = routers
        self.prompt_mask = prompt_mask
        self.top_k = top_k
        self.oracle = oracle  # [batch, E] weights to use instead of the router's (true-label routing)
        self.logits: dict[int, Tensor] = {}
        self.weights: dict[int, Tensor] = {}
        self.held = False

    def hold(self) -> None:
        self.held = True

    def route(self, layer: int, h: Tensor) -> None:
        if self.held:
            return
        logits = self.routers.logits(layer, masked_mean(h, self.prompt_mask))
        self.logits[layer] = logits
        self.weights[layer] = self.oracle if self.oracle is not None else top_k_weights(logits, self.top_k)

    def adapter(self) -> Adapter:
        spec = self.lora.spec
        targets = set(spec.target_modules)
        dropout = spec.dropout if self.lora.training else 0.0

        def apply(layer: int, module: str, x: Tensor) -> Optional[Tensor]:
            if module not in targets:
                return None
            st = self.lora.stack(layer, module)
            if dropout:
                x = F.dropout(x, p=dropout, training=True)
            return mixed_delta(x, st.A, st.B, self.weights[layer]) * spec.scaling

        return apply

    def stacked_logits(self) -> Tensor:
        """[layers, batch, E] in layer order."""
        return torch.stack([self.logits[i] for i in sorted(self.logits)])


def decision(logits: Tensor) -> Tensor:
    """The expert a sequence is sent to overall: argmax of the layer-averaged probabilities."""
    return logits.float().softmax(-1).mean(0).argmax(-1)


def router_files(routers: Routers, ngram: Optional[NgramRouter], out_dir: Path, info: dict[str, Any]) -> Path:
    """router.safetensors and router.json (naming the weights' sha256), published together as one
    folder: a reader sees the old router or the new one, never the json of one with the other's
    weights. With `ngram`, the decision is that classifier's (`decision: "ngram"`)."""
    tensors = {f"router.layers.{i}.{k}": v.detach().float().cpu().contiguous()
               for i, lin in enumerate(routers.layers) for k, v in lin.state_dict().items()}
    if ngram is not None:
        tensors.update({f"ngram.{k}": v.detach().float().cpu().contiguous() for k, v in ngram.state_dict().items()})
        info = {**info, "decision": "ngram", "ngram": ngram.info()}
    data = serialize(tensors, {"format": "pt"})

    def write(folder: Path) -> None:
        atomic_write_bytes(folder / "router.safetensors", data)
        atomic_write_json(folder / "router.json", {
            "v": 1, **info, "layers": len(routers.layers), "hidden": routers.hidden,
            "weights": "router.safetensors", "weights_sha256": hashlib.sha256(data).hexdigest(),
            "pooling": "masked_mean", "input": "input_layernorm",
        })
    return publish_dir(out_dir, write)


def load_router(out_dir: Path, num_layers: int, hidden: int, num_experts: int) -> Routers:
    tensors = load_file(out_dir / "router.safetensors")
    routers = Routers(num_layers, hidden, num_experts)
    try:
        routers.load_state_dict({k.removeprefix("router."): v for k, v in tensors.items() if k.startswith("router.")})
    except RuntimeError as e:
        raise TrainerError(f"{out_dir}: router weights do not fit {num_layers} layers × {num_experts} experts "
                           f"of width {hidden} ({e})", None) from None
    return routers


def fit_linear(features: Tensor, labels: Tensor, classes: int, l2: float = 1e-3, iters: int = 100) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression by L-BFGS on standardised features, folded back so that it
    applies to the raw features: (weight [classes, dim], bias [classes]). Deterministic."""
    x = features.float()
    mu = x.mean(0)
    sd = x.std(0, unbiased=False) + 1e-6
    z = (x - mu) / sd
    w = torch.zeros(classes, z.shape[1], requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.t() + b, labels) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        weight = w / sd
        return weight, b - weight @ mu
