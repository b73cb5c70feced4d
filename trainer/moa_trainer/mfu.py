"""Model FLOPs utilisation for LoRA training on a frozen base (reported on CUDA only).

Per token: a frozen weight costs 2 FLOPs/param forward and 2 backward (input gradient only,
no weight gradient), a trainable one 6 (PaLM's 6N); attention scores and values add
12·layers·heads·head_dim·seq (forward + backward, PaLM's convention).
"""

from __future__ import annotations

from typing import Optional

from torch import nn

from .model import CausalLM

# Dense bf16 tensor-core peaks (FLOP/s) by a substring of torch.cuda.get_device_name().
PEAK_BF16 = (("H200", 989e12), ("H100", 989e12), ("GH200", 989e12), ("A100", 312e12), ("L40S", 362e12),
             ("L4", 121e12), ("A10", 125e12), ("RTX 4090", 165e12), ("RTX 3090", 71e12))


def matmul_params(model: CausalLM) -> int:
    # The embedding is a lookup, not a matmul; a tied lm_head still multiplies.
    n = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return n


def flops_per_token(model: CausalLM, trainable: int, seq_len: int) -> float:
    c = model.config
    attention = 12 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * seq_len
    return 4.0 * matmul_params(model) + 6.0 * trainable + attention


def peak_flops(device_name: Optional[str], override_tflops: Optional[float]) -> Optional[float]:
    if override_tflops:
        return override_tflops * 1e12
    if not device_name:
        return None
    for key, peak in PEAK_BF16:
        if key in device_name:
            return peak
    return None
