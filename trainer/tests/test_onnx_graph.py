"""The hand-written ONNX decoder (`onnx_graph.py`) against the PyTorch model, per architecture
feature: Qwen2's q/k/v bias, Mistral's sliding window (exceeded), llama3 RoPE scaling, an untied
lm_head, LoRA on all seven projections, left padding, a multi-token step on a cache, and head
sizes onnxruntime's GroupQueryAttention does not take (the standard-op attention)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from conftest import ONNX_TINY, random_model
from moa_trainer.lora import LoraSpec, StackedLoRA
from moa_trainer.model import MODULE_PARENT, CausalLM
from moa_trainer.onnx_graph import build_decoder

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (test dependency)")

ALL = list(MODULE_PARENT)
CASES = {
    "llama-untied-all-modules": replace(ONNX_TINY, tie_word_embeddings=False),
    "qwen2-qkv-bias": replace(ONNX_TINY, model_type="qwen2", qkv_bias=True),
    "mistral-window-3": replace(ONNX_TINY, model_type="mistral", sliding_window=3),
    "llama3-rope": replace(ONNX_TINY, rope_type="llama3", rope_factor=8.0, rope_original_max_position=64,
                           rope_low_freq_factor=1.0, rope_high_freq_factor=4.0),
    "mqa-mlp-bias": replace(ONNX_TINY, num_key_value_heads=1, mlp_bias=True, attention_bias=True),
    # Head sizes GroupQueryAttention does not take: the standard-op attention instead.
    "head-8-plain-attention": replace(ONNX_TINY, head_dim=8),
    "head-8-mistral-window-3": replace(ONNX_TINY, head_dim=8, model_type="mistral", sliding_window=3),
}


def session_for(model: CausalLM, targets: list[str]) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    proto = build_decoder(model, targets)
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def feeds(model: CausalLM, lora: StackedLoRA, weights: np.ndarray, ids: np.ndarray, mask: np.ndarray,
          pos: np.ndarray, past: list[np.ndarray] | None) -> dict[str, np.ndarray]:
    cfg = model.config
    f = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "expert_weights": weights,
         "logits_to_keep": np.array([ids.shape[1]])}
    for i in range(cfg.num_hidden_layers):
        for j, kv in enumerate(("key", "value")):
            f[f"past_key_values.{i}.{kv}"] = (past[2 * i + j] if past is not None else np.zeros(
                (ids.shape[0], cfg.num_key_value_heads, 0, cfg.head_dim), np.float32))
    for m in ALL:
        layers = range(cfg.num_hidden_layers)
        f[f"lora.{m}.A"] = torch.stack([lora.stack(i, m).A.detach() for i in layers]).numpy()
        f[f"lora.{m}.B"] = (torch.stack([lora.stack(i, m).B.detach() for i in layers]) * lora.spec.scaling).numpy()
    return f


@pytest.mark.parametrize("case", list(CASES))
def test_graph_matches_pytorch_full_padded_and_cached(case: str) -> None:
    model = random_model(CASES[case], seed=3)
    torch.manual_seed(4)
    lora = StackedLoRA(model.config, LoraSpec(r=4, alpha=8.0, target_modules=tuple(ALL)), 2)
    with torch.no_grad():
        for p in lora.parameters():
            p.normal_(0, 0.2)
    lora.eval()
    session = session_for(model, ALL)
    weights = np.array([[0.3, 0.7], [1.0, 0.0]], np.float32)
    ids = np.random.default_rng(5).integers(0, 256, (2, 12)).astype(np.int64)
    mask = np.ones((2, 12), np.int64)
    mask[1, :3] = 0  # row 1 left-padded
    pos = np.clip(mask.cumsum(-1) - 1, 0, None)
    with torch.no_grad():
        ref = model(torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=torch.tensor(pos),
                    adapter=lora.adapter(weights=torch.tensor(weights))).logits.numpy()
    real = mask.astype(bool)
    full = session.run(None, feeds(model, lora, weights, ids, mask, pos, None))
    assert np.abs(full[0][real] - ref[real]).max() < 1e-4
    assert np.isfinite(full[0]).all()  # padded positions stay finite too

    prompt = session.run(None, feeds(model, lora, weights, ids[:, :7], mask[:, :7], pos[:, :7], None))
    past = prompt[1:]
    for t in range(7, 12):  # token by token on the cache
        out = session.run(None, feeds(model, lora, weights, ids[:, t:t + 1], mask[:, :t + 1], pos[:, t:t + 1], past))
        assert np.abs(out[0][:, 0] - ref[:, t]).max() < 1e-4
        past = out[1:]
    # `logits_to_keep`: only the last rows, the same numbers.
    last3 = session.run(["logits"], {**feeds(model, lora, weights, ids, mask, pos, None),
                                     "logits_to_keep": np.array([3], np.int64)})[0]
    assert last3.shape == (2, 3, model.config.vocab_size) and np.array_equal(last3, full[0][:, -3:])
    # Several new tokens on a cache (batch 1: what onnxruntime's GroupQueryAttention allows).
    head = session.run(None, feeds(model, lora, weights[:1], ids[:1, :5], mask[:1, :5], pos[:1, :5], None))
    rest = session.run(None, feeds(model, lora, weights[:1], ids[:1, 5:], mask[:1], pos[:1, 5:], head[1:]))
    assert np.abs(rest[0][0] - ref[0, 5:]).max() < 1e-4
    assert rest[1].shape == (1, model.config.num_key_value_heads, 12, model.config.head_dim)


def test_graph_is_lean() -> None:
    """The point of writing the graph by hand: a small, fixed node count per layer."""
    two = build_decoder(random_model(ONNX_TINY), ALL)
    one = build_decoder(random_model(replace(ONNX_TINY, num_hidden_layers=1)), ALL)
    assert len(two.graph.node) - len(one.graph.node) <= 40  # the traced graph had about 140


def test_attention_kernel_follows_the_head_size() -> None:
    ops = {h: {n.op_type for n in build_decoder(random_model(replace(ONNX_TINY, head_dim=h)), ALL).graph.node}
           for h in (8, 16)}
    assert "GroupQueryAttention" in ops[16] and "Softmax" not in ops[16]
    assert "GroupQueryAttention" not in ops[8] and "Softmax" in ops[8]


def test_kv_cache_in_place_matches_pytorch() -> None:
    """`kv_in_place`: the cache as one buffer per layer, long enough for the whole request, bound as
    both `past_key_values.*` and `present.*` (onnxruntime's IO binding: the same memory), so
    GroupQueryAttention appends to it instead of copying it; a prompt, then token by token and a
    two-token step, each equal to PyTorch's logits."""
    from moa_trainer.export import model_json

    assert model_json(random_model(replace(ONNX_TINY, head_dim=8)), ALL, 17)["kv_in_place"] is False
    model = random_model(ONNX_TINY, seed=6)
    assert model_json(model, ALL, 17)["kv_in_place"] is True
    cfg = model.config
    lora = StackedLoRA(cfg, LoraSpec(r=4, alpha=8.0, target_modules=tuple(ALL)), 1)
    lora.eval()
    session = session_for(model, ALL)
    ids = np.random.default_rng(7).integers(0, 256, (1, 12)).astype(np.int64)
    weights = np.ones((1, 1), np.float32)
    with torch.no_grad():
        ref = model(torch.tensor(ids), adapter=lora.adapter(weights=torch.tensor(weights))).logits.numpy()
    cap = 16
    cache = [ort.OrtValue.ortvalue_from_numpy(np.zeros((1, cfg.num_key_value_heads, cap, cfg.head_dim), np.float32))
             for _ in range(2 * cfg.num_hidden_layers)]
    for start, end in ((0, 7), (7, 8), (8, 10), (10, 11), (11, 12)):
        f = feeds(model, lora, weights, ids[:, start:end], np.ones((1, end), np.int64),
                  np.arange(start, end)[None], None)
        binding = session.io_binding()
        binding.bind_output("logits")  # outputs come back in the order bound
        for name, value in f.items():
            if not name.startswith("past_key_values."):
                binding.bind_cpu_input(name, value)
        for i in range(cfg.num_hidden_layers):
            for j, kv in enumerate(("key", "value")):
                binding.bind_ortvalue_input(f"past_key_values.{i}.{kv}", cache[2 * i + j])
                binding.bind_ortvalue_output(f"present.{i}.{kv}", cache[2 * i + j])
        session.run_with_iobinding(binding)
        logits = binding.copy_outputs_to_cpu()[0]
        assert np.abs(logits[0] - ref[0, start:end]).max() < 1e-4, (start, end)
    # Written in place: the buffer holds every position so far, and nothing past them.
    k0 = cache[0].numpy()
    assert np.abs(k0[0, :, :12]).sum() > 0 and not k0[0, :, 12:].any()
