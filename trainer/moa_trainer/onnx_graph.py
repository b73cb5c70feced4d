"""The exported decoder written node by node as an ONNX graph (not traced).

Tracing the PyTorch model records every shape computation of its Python code: for moa-tiny
that was 581 nodes after onnxruntime's optimisations, two thirds of them shape plumbing
(Shape, Gather, Unsqueeze, Concat, Reshape), each paid on every decoded token. Written by hand
the same decoder is about 25 nodes per layer: the q/k/v and gate/up projections packed into
one MatMul each, onnxruntime's fused kernels for attention (`GroupQueryAttention`: KV cache
append, grouped heads, causal and padding masks in one node; `RotaryEmbedding` before it) and
for the residual add + RMSNorm (`SkipSimplifiedLayerNormalization`), and each LoRA group's
experts laid out once per call. onnxruntime-genai's model builder builds its graphs the same way.
The attention is in `onnx_attention.py` (with a standard-op path for head sizes the fused kernel
does not take), the node-by-node builder in `onnx_builder.py`.

Inputs and outputs are the contract of PROTOCOL.md ("ONNX export"); the semantics are the
PyTorch model's (`model.CausalLM`), checked within 1e-4 in `tests/test_onnx_graph.py` (per
architecture feature) and `tests/test_export.py`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper

from .model import CausalLM
from .onnx_attention import FusedAttention, PlainAttention, fused
from .onnx_builder import MS, NEG, ExternalData, Graph
from .onnx_quant import ACCURACY_LEVEL, WEIGHT_TYPES, pack_nbits

OPSET = 17
# A `logits_to_keep` larger than any call's length: every row.
KEEP_ALL = 2**62
# GroupQueryAttention takes the rotary tables as inputs; positions past this need a re-export
# with a longer table (the tables cost 4·head_dim bytes per position).
MAX_ROTARY_POSITIONS = 32768

# LoRA groups: modules whose base projections are packed into one MatMul, in packing order.
GROUPS: dict[str, tuple[str, ...]] = {
    "qkv": ("q_proj", "k_proj", "v_proj"),
    "o": ("o_proj",),
    "gate_up": ("gate_proj", "up_proj"),
    "down": ("down_proj",),
}


def _np(t: object) -> np.ndarray:
    return t.detach().float().cpu().numpy()  # type: ignore[attr-defined]  # torch tensor


class LoraInputs:
    """The `lora.{m}.A|B` inputs, regrouped once per call into per-layer packed matrices.

    For a group (say q/k/v) with targeted modules P: A_l [1, in, |P|·E·r] (the modules' Aᵀ side by
    side) and B_l [1, |P|·E·r, out_group] (each module's Bᵀ in its own rows and its own output
    columns, zeros elsewhere), so that the group's delta is ((x A_l) ⊙ w) B_l: three nodes for
    all of the group's experts, whatever their count and rank.
    """

    def __init__(self, g: Graph, targets: list[str], dims: dict[str, tuple[int, int]], layers: int) -> None:
        self.g = g
        self.dims = dims
        self.count: dict[str, int] = {}
        self.a: dict[str, list[str]] = {}
        self.b: dict[str, list[str]] = {}
        names = {m: (g.input(f"lora.{m}.A", TensorProto.FLOAT, [layers, "experts", "rank", dims[m][0]]),
                     g.input(f"lora.{m}.B", TensorProto.FLOAT, [layers, "experts", dims[m][1], "rank"]))
                 for m in targets}
        # A ones vector of the (padded) rank, to spread each expert's weight over its rank columns.
        self.ones_r: Optional[str] = None
        if targets:
            self.ones_r = g.one("ConstantOfShape", [g.one("Shape", [names[targets[0]][0]], start=2, end=3)],
                                value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))
        for group, members in GROUPS.items():
            present = [m for m in members if m in targets]
            if not present:
                continue
            width = sum(dims[m][1] for m in members)
            a_parts, b_parts = [], []
            for m in present:
                a, b = names[m]
                # [L, E, r, in] -> [L, in, E, r] -> [L, in, E·r]
                a_parts.append(g.one("Reshape", [g.one("Transpose", [a], perm=[0, 3, 1, 2]), g.ints(0, 0, -1)]))
                # [L, E, out, r] -> [L, E, r, out] -> [L, E·r, out], padded to the group's columns
                bt = g.one("Reshape", [g.one("Transpose", [b], perm=[0, 1, 3, 2]), g.ints(0, -1, dims[m][1])])
                before = sum(dims[x][1] for x in members[:members.index(m)])
                after = width - before - dims[m][1]
                if before or after:
                    bt = g.one("Pad", [bt, g.ints(0, 0, before, 0, 0, after)])
                b_parts.append(bt)
            a_all = a_parts[0] if len(a_parts) == 1 else g.one("Concat", a_parts, axis=2)
            b_all = b_parts[0] if len(b_parts) == 1 else g.one("Concat", b_parts, axis=1)
            self.count[group] = len(present)
            self.a[group] = g.per_layer(a_all, layers, "lora_a")
            self.b[group] = g.per_layer(b_all, layers, "lora_b")

    def rank_weights(self, weights: str) -> str:
        """[B, E] routing weights -> [B, 1, E·r]: each expert's weight over its rank columns."""
        g = self.g
        assert self.ones_r is not None, "routing weights without LoRA targets"
        spread = g.one("Mul", [g.one("Unsqueeze", [weights, g.ints(2)]), self.ones_r])
        return g.one("Reshape", [spread, g.ints(0, 1, -1)])

    def delta(self, group: str, layer: int, x: str, w_rank: dict[int, str]) -> Optional[str]:
        if group not in self.count:
            return None
        g = self.g
        n = self.count[group]
        if n not in w_rank:
            w_rank[n] = w_rank[1] if n == 1 else g.one("Concat", [w_rank[1]] * n, axis=2)
        u = g.one("Mul", [g.one("MatMul", [x, self.a[group][layer]]), w_rank[n]])
        return g.one("MatMul", [u, self.b[group][layer]])

def build_decoder(model: CausalLM, targets: list[str], experts: bool = True, external: Optional[ExternalData] = None, weight_type: str = "f32",
                  block: int = 32) -> onnx.ModelProto:
    """The decoder graph. `experts=False`: the base model alone (no LoRA or routing inputs), the
    `hf` variant's graph. `weight_type` int8 / int4: the base's projections and output
    head as MatMulNBits in blocks of `block` (onnx_quant.py); embeddings, norms and experts float."""
    cfg = model.config
    sd = {k: _np(v) for k, v in model.state_dict().items()}
    L, H, Hkv, D = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    g = Graph(external)
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    ids = g.input("input_ids", i64, ["batch", "seq"])
    mask = g.input("attention_mask", i64, ["batch", "total"])
    pos = g.input("position_ids", i64, ["batch", "seq"])
    past = [(g.input(f"past_key_values.{i}.key", f32, ["batch", Hkv, "past", D]),
             g.input(f"past_key_values.{i}.value", f32, ["batch", Hkv, "past", D])) for i in range(L)]
    if not experts:
        # transformers.js starts from an empty cache of batch 0 ([0, kv_heads, 0, head_dim]), which
        # GroupQueryAttention refuses; a reshape to the batch of input_ids fixes that and is free
        # on a real cache.
        shape = g.one("Concat", [g.one("Shape", [ids], start=0, end=1), g.ints(Hkv, -1, D)], axis=0)
        past = [(g.one("Reshape", [k, shape]), g.one("Reshape", [v, shape])) for k, v in past]
    lora = LoraInputs(g, targets if experts else [], cfg.module_dims(), L)
    w_rank: dict[int, str] = {}
    if experts:
        weights = g.input("expert_weights", f32, ["batch", "experts"])
        if targets:
            w_rank[1] = lora.rank_weights(weights)

    # Every row attends to all `total` positions; the padding is masked by an additive bias (any
    # pattern: left padding too), the future causally.
    pad_bias = g.one("Mul", [g.one("Cast", [g.one("Sub", [g.ints(1), mask])], to=f32), g.const("neg", np.array(NEG, np.float32))])
    pad_bias = g.one("Unsqueeze", [pad_bias, g.ints(1, 2)])  # [B, 1, 1, T]
    kind = FusedAttention if fused(D) else PlainAttention
    attention = kind(g, ids, mask, pad_bias, H, Hkv, D, cfg.sliding_window)

    inv = cfg.inv_freq().double().numpy()
    positions = min(cfg.max_position_embeddings, MAX_ROTARY_POSITIONS)
    freqs = np.arange(positions, dtype=np.float64)[:, None] * inv[None, :]
    cos = g.const("rope_cos", np.cos(freqs).astype(np.float32))
    sin = g.const("rope_sin", np.sin(freqs).astype(np.float32))
    eps = float(cfg.rms_norm_eps)
    qkv_split = g.ints(H * D, Hkv * D, Hkv * D)

    bits = WEIGHT_TYPES[weight_type]

    def matmul(x: str, weight: np.ndarray, hint: str) -> str:
        """x @ weight ([K, N]); quantized when asked and the rows split into whole blocks."""
        k, n = weight.shape
        if bits == 32 or k % block:
            return g.one("MatMul", [x, g.const(hint, weight)])
        packed, scales = pack_nbits(weight, bits, block)
        return g.one("MatMulNBits", [x, g.const(f"{hint}_q{bits}", packed), g.const(f"{hint}_scales", scales)], domain=MS,
                     K=k, N=n, bits=bits, block_size=block, accuracy_level=ACCURACY_LEVEL)

    def linear(x: str, weight: np.ndarray, bias: Optional[np.ndarray], group: str, layer: int) -> str:
        y = matmul(x, weight, f"w_{group}")
        if bias is not None:
            y = g.one("Add", [y, g.const(f"b_{group}", bias)])
        d = lora.delta(group, layer, x, w_rank) if experts else None
        return g.one("Add", [y, d]) if d is not None else y

    def packed(layer: int, names: tuple[str, ...], parent: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
        pre = f"model.layers.{layer}.{parent}"
        w = np.concatenate([sd[f"{pre}.{m}.weight"].T for m in names], axis=1)
        has_bias = [f"{pre}.{m}.bias" in sd for m in names]
        if not any(has_bias):
            return w, None
        return w, np.concatenate([sd.get(f"{pre}.{m}.bias", np.zeros(sd[f"{pre}.{m}.weight"].shape[0], np.float32))
                                  for m in names])

    embed = g.const("embed", sd["model.embed_tokens.weight"])
    x = g.one("Gather", [embed, ids])
    normed = g.one("SimplifiedLayerNormalization", [x, g.const("norm", sd["model.layers.0.input_layernorm.weight"])],
                   axis=-1, epsilon=eps, stash_type=1)
    presents: list[str] = []
    for i in range(L):
        pre = f"model.layers.{i}"
        w, b = packed(i, GROUPS["qkv"], "self_attn")
        qkv = linear(normed, w, b, "qkv", i)
        # Rotary outside GroupQueryAttention: its own (do_rotary) takes one position for every row
        # of a batched decoding step (onnxruntime 1.30), so left-padded rows would be misplaced.
        q, k, v = g.op("Split", [qkv, qkv_split], "qkv", outputs=3, axis=-1)
        q = g.one("RotaryEmbedding", [q, pos, cos, sin], domain=MS, num_heads=H, interleaved=0)
        k = g.one("RotaryEmbedding", [k, pos, cos, sin], domain=MS, num_heads=Hkv, interleaved=0)
        attn, k, v = attention.attend(q, k, v, past[i][0], past[i][1])
        presents += [k, v]
        w, b = packed(i, GROUPS["o"], "self_attn")
        a = linear(attn, w, b, "o", i)
        normed2, _, _, h = g.op("SkipSimplifiedLayerNormalization",
                                [a, x, g.const("norm", sd[f"{pre}.post_attention_layernorm.weight"])], "ln", outputs=4,
                                domain=MS, epsilon=eps)
        w, b = packed(i, GROUPS["gate_up"], "mlp")
        gate, up = g.op("Split", [linear(normed2, w, b, "gate_up", i)], "gate_up", outputs=2, axis=-1)
        act = g.one("Mul", [g.one("QuickGelu", [gate], domain=MS, alpha=1.0), up])  # silu(gate) · up
        w, b = packed(i, GROUPS["down"], "mlp")
        m = linear(act, w, b, "down", i)
        gamma = sd[f"model.layers.{i + 1}.input_layernorm.weight"] if i + 1 < L else sd["model.norm.weight"]
        normed, _, _, x = g.op("SkipSimplifiedLayerNormalization", [m, h, g.const("norm", gamma)], "ln", outputs=4,
                               domain=MS, epsilon=eps)
    if experts:
        # Logits for the last `logits_to_keep` positions only: a prefill needs one row, not one per
        # prompt token (with a 150k vocabulary, 600 KB each). A required input: onnxruntime-node
        # drops feeds that are not graph inputs, so an overridable default could not be changed.
        # (The hf variant keeps the standard inputs: transformers.js refuses unknown required ones.)
        keep = g.input("logits_to_keep", i64, [1])
        normed = g.one("Slice", [normed, g.one("Neg", [keep]), g.ints(KEEP_ALL), g.ints(1)])
    if cfg.tie_word_embeddings and bits == 32:
        logits = g.one("FusedMatMul", [normed, embed], domain=MS, transB=1)
    else:
        # Quantized, a tied head gets its own packed copy (the embedding stays float for Gather).
        head = sd["model.embed_tokens.weight"] if cfg.tie_word_embeddings else sd["lm_head.weight"]
        logits = matmul(normed, head.T, "lm_head")

    g.output(logits, "logits", f32, ["batch", "seq", cfg.vocab_size])
    for i in range(L):
        g.output(presents[2 * i], f"present.{i}.key", f32, ["batch", Hkv, "total", D])
        g.output(presents[2 * i + 1], f"present.{i}.value", f32, ["batch", Hkv, "total", D])
    graph = helper.make_graph(g.nodes, "moa_decoder", g.inputs, g.outputs, g.inits)
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
                                    producer_name="moa_trainer")
    model_proto.ir_version = 8
    return model_proto
