"""Attention for the written decoder graph (`onnx_graph.py`): onnxruntime's fused
GroupQueryAttention where it applies, the same computation in standard ONNX ops where it does not."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from onnx import TensorProto

from .onnx_builder import MS, NEG, Graph

# GroupQueryAttention's kernel takes head sizes in multiples of this; others get PlainAttention.
GQA_HEAD_MULTIPLE = 16


def fused(head_dim: int) -> bool:
    """Whether the graph's attention is GroupQueryAttention, which can also append to a KV cache
    buffer given as both input and output (model.json's `kv_in_place`)."""
    return head_dim % GQA_HEAD_MULTIPLE == 0


class FusedAttention:
    """onnxruntime's GroupQueryAttention: KV append, grouped heads, causal and sliding-window
    masks in one node per layer; the padding arrives as an additive bias."""

    def __init__(self, g: Graph, ids: str, mask: str, pad_bias: str, heads: int, kv_heads: int, head_dim: int,
                 window: Optional[int]) -> None:
        self.g, self.H, self.Hkv, self.D, self.window = g, heads, kv_heads, head_dim, window
        self.total = g.one("Cast", [g.one("Squeeze", [g.one("Shape", [mask], start=1, end=2), g.ints(0)])],
                           to=TensorProto.INT32)
        # Every row "has" all `total` positions; padded ones are masked by the bias instead.
        self.seqlens = g.one("Expand", [g.one("Sub", [self.total, g.const("one", np.array(1, np.int32))]),
                                        g.one("Shape", [mask], start=0, end=1)])
        # [B, 1, S, T]: one row per query (the kernel does not broadcast that axis), shared by the heads
        shape = g.one("Concat", [g.one("Shape", [mask], start=0, end=1), g.ints(1), g.one("Shape", [ids], start=1, end=2),
                                 g.one("Shape", [mask], start=1, end=2)], axis=0)
        self.bias = g.one("Expand", [pad_bias, shape])

    def attend(self, q: str, k: str, v: str, past_k: str, past_v: str) -> tuple[str, str, str]:
        out, present_k, present_v = self.g.op(
            "GroupQueryAttention", [q, k, v, past_k, past_v, self.seqlens, self.total, "", "", "", self.bias], "attn",
            outputs=3, domain=MS, num_heads=self.H, kv_num_heads=self.Hkv, scale=1.0 / math.sqrt(self.D),
            local_window_size=-1 if self.window is None else self.window)
        return out, present_k, present_v


class PlainAttention:
    """Attention in standard ONNX ops, for head sizes GroupQueryAttention does not take (it needs
    multiples of 16): the same semantics as model.attention_bias + SDPA, about 15 nodes per layer
    instead of one. Query heads are grouped over their shared KV head ([B, kv_heads, rep·S, D]),
    so the cache is never repeated per query head."""

    def __init__(self, g: Graph, ids: str, mask: str, pad_bias: str, heads: int, kv_heads: int, head_dim: int,
                 window: Optional[int]) -> None:
        self.g, self.H, self.Hkv, self.D = g, heads, kv_heads, head_dim
        seq = g.one("Squeeze", [g.one("Shape", [ids], start=1, end=2), g.ints(0)])
        total = g.one("Squeeze", [g.one("Shape", [mask], start=1, end=2), g.ints(0)])
        zero, one = g.const("zero", np.array(0, np.int64)), g.const("one", np.array(1, np.int64))
        q_at = g.one("Unsqueeze", [g.one("Add", [g.one("Range", [zero, seq, one]), g.one("Sub", [total, seq])]), g.ints(1)])
        k_at = g.one("Range", [zero, total, one])
        allowed = g.one("LessOrEqual", [k_at, q_at])  # [S, T]: a query sees itself and the past
        if window is not None:  # Mistral: and only the last `window` keys
            allowed = g.one("And", [allowed, g.one("Less", [g.one("Sub", [q_at, k_at]), g.ints(window)])])
        causal = g.one("Where", [allowed, g.const("zero", np.array(0.0, np.float32)), g.const("neg", np.array(NEG, np.float32))])
        bias = g.one("Min", [pad_bias, causal])  # [B, 1, S, T]; Min, not Add: two NEGs would overflow to -inf
        rep = heads // kv_heads
        self.bias = g.one("Tile", [bias, g.ints(1, 1, rep, 1)]) if rep > 1 else bias  # [B, 1, rep·S, T]

    def attend(self, q: str, k: str, v: str, past_k: str, past_v: str) -> tuple[str, str, str]:
        g, H, Hkv, D = self.g, self.H, self.Hkv, self.D

        def heads(x: str, n: int) -> str:  # [B, S, n·D] -> [B, n, S, D]
            return g.one("Transpose", [g.one("Reshape", [x, g.ints(0, 0, n, D)])], perm=[0, 2, 1, 3])

        present_k = g.one("Concat", [past_k, heads(k, Hkv)], axis=2)
        present_v = g.one("Concat", [past_v, heads(v, Hkv)], axis=2)
        grouped = g.one("Reshape", [heads(q, H), g.ints(0, Hkv, -1, D)])
        scores = g.one("FusedMatMul", [grouped, present_k], domain=MS, transB=1, alpha=1.0 / math.sqrt(D))
        probs = g.one("Softmax", [g.one("Add", [scores, self.bias])], axis=-1)
        out = g.one("Reshape", [g.one("MatMul", [probs, present_v]), g.ints(0, H, -1, D)])
        out = g.one("Reshape", [g.one("Transpose", [out], perm=[0, 2, 1, 3]), g.ints(0, 0, H * D)])
        return out, present_k, present_v
