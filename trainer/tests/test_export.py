from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import run_trainer, write_config
from moa_trainer.hf_folder import load_base_model
from moa_trainer.lora import LoraSpec, StackedLoRA
from moa_trainer.model import CausalLM

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (test dependency)")

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, onnx_model_dir: Path) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    cfg = {"v": 1, "base_model": str(onnx_model_dir), "out": str(out), "target_modules": TARGETS, "opset": 17}
    rc, events, _, stderr = run_trainer(["export", "--config", write_config(out.parent / "export.json", cfg)])
    assert rc == 0, stderr
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(out), opts, providers=["CPUExecutionProvider"])
    return {"out": out, "events": events, "session": session, "model": load_base_model(onnx_model_dir)}


def test_export_events_and_model_json(exported: dict[str, Any]) -> None:
    events, out = exported["events"], exported["out"]
    assert [e["type"] for e in events] == ["hello", "artifact", "done"]
    assert events[1]["kind"] == "onnx" and events[1]["path"] == str(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["export.json", "model.json", "model.onnx"]
    meta = json.loads((out.parent / "model.json").read_text())
    assert meta["v"] == 1 and meta["num_layers"] == 2 and meta["num_kv_heads"] == 2 and meta["head_dim"] == 16
    assert meta["hidden_size"] == 32 and meta["vocab_size"] == 258 and meta["target_modules"] == TARGETS
    assert meta["modules"]["k_proj"] == {"in": 32, "out": 32} and meta["modules"]["gate_proj"] == {"in": 32, "out": 64}
    assert meta["bos_token_id"] == 256 and meta["eos_token_id"] == 257
    names = [i.name for i in exported["session"].get_inputs()]
    assert names[:5] == ["input_ids", "attention_mask", "position_ids", "past_key_values.0.key",
                         "past_key_values.0.value"]
    assert names[-4:] == ["lora.gate_proj.A", "lora.gate_proj.B", "expert_weights", "logits_to_keep"]
    outs = [o.name for o in exported["session"].get_outputs()]
    assert outs == ["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"]


def lora_feed(model: CausalLM, lora: StackedLoRA | None) -> dict[str, np.ndarray]:
    """Stacks as the graph takes them, scaling folded into B; None = one rank-1 zero expert."""
    cfg = model.config
    dims = cfg.module_dims()
    feed = {}
    for m in TARGETS:
        i, o = dims[m]
        if lora is None:
            a, b = torch.zeros(cfg.num_hidden_layers, 1, 1, i), torch.zeros(cfg.num_hidden_layers, 1, o, 1)
        else:
            a = torch.stack([lora.stack(layer, m).A.detach() for layer in range(cfg.num_hidden_layers)])
            b = torch.stack([lora.stack(layer, m).B.detach() for layer in range(cfg.num_hidden_layers)])
            b = b * lora.spec.scaling
        feed[f"lora.{m}.A"], feed[f"lora.{m}.B"] = a.numpy(), b.numpy()
    return feed


def run_graph(session: Any, model: CausalLM, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor,
              past: list[np.ndarray] | None, lora: dict[str, np.ndarray], weights: np.ndarray) -> list[np.ndarray]:
    cfg = model.config
    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "position_ids": pos.numpy(),
            "expert_weights": weights.astype(np.float32), "logits_to_keep": np.array([ids.shape[1]]), **lora}
    for i in range(cfg.num_hidden_layers):
        for j, kv in enumerate(("key", "value")):
            feed[f"past_key_values.{i}.{kv}"] = (past[2 * i + j] if past is not None else
                                                 np.zeros((ids.shape[0], cfg.num_key_value_heads, 0, cfg.head_dim),
                                                          dtype=np.float32))
    return session.run(None, feed)


def random_lora(model: CausalLM, experts: int, r: int, seed: int) -> StackedLoRA:
    torch.manual_seed(seed)
    lora = StackedLoRA(model.config, LoraSpec(r=r, alpha=2.0 * r, target_modules=tuple(TARGETS)), experts)
    with torch.no_grad():
        for p in lora.parameters():
            p.normal_(0, 0.2)
    return lora.eval()


@pytest.mark.parametrize("case", ["no-expert", "one-expert", "two-mixed", "three-rank5"])
def test_onnx_matches_pytorch(exported: dict[str, Any], case: str) -> None:
    model, session = exported["model"], exported["session"]
    batch, seq = 3, 11
    ids = torch.randint(0, 256, (batch, seq), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(batch, seq, dtype=torch.long)
    pos = torch.arange(seq)[None].expand(batch, seq).contiguous()
    lora, weights = None, np.zeros((batch, 1), dtype=np.float32)
    if case == "one-expert":
        lora, weights = random_lora(model, 1, 8, seed=2), np.ones((batch, 1), dtype=np.float32)
    elif case == "two-mixed":
        lora, weights = random_lora(model, 2, 8, seed=3), np.array([[0.7, 0.3], [0.0, 1.0], [0.5, 0.5]])
    elif case == "three-rank5":  # expert count and rank differ from the traced ones (2, 3)
        lora, weights = random_lora(model, 3, 5, seed=4), np.array([[1, 0, 0], [0.2, 0.3, 0.5], [0, 0, 2.0]])
    logits = run_graph(session, model, ids, mask, pos, None, lora_feed(model, lora), weights)[0]
    with torch.no_grad():
        adapter = None if lora is None else lora.adapter(weights=torch.tensor(weights, dtype=torch.float32))
        ref = model(ids, adapter=adapter).logits.numpy()
    assert np.abs(logits - ref).max() < 1e-3
    if lora is not None:
        assert np.abs(ref - model(ids).logits.detach().numpy()).max() > 1e-2


def test_cached_decode_equals_full_recompute(exported: dict[str, Any]) -> None:
    model, session = exported["model"], exported["session"]
    lora = random_lora(model, 2, 4, seed=5)
    feed = lora_feed(model, lora)
    weights = np.array([[1.0, 0.0], [0.4, 0.6]], dtype=np.float32)
    ids = torch.randint(0, 256, (2, 10), generator=torch.Generator().manual_seed(6))
    # Row 0 is left-padded by 2, as a batch of prompts of different lengths would be.
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[0, :2] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    full = run_graph(session, model, ids, mask, pos, None, feed, weights)
    prompt = run_graph(session, model, ids[:, :6], mask[:, :6], pos[:, :6], None, feed, weights)
    past = prompt[1:]
    step_logits = []
    for t in range(6, 10):  # one token at a time, as inline completion decodes
        out = run_graph(session, model, ids[:, t:t + 1], mask[:, :t + 1], pos[:, t:t + 1], past, feed, weights)
        step_logits.append(out[0])
        past = out[1:]
        assert past[0].shape == (2, 2, t + 1, 16)
    decoded = np.concatenate(step_logits, axis=1)
    assert np.abs(decoded - full[0][:, 6:]).max() < 1e-4
    assert np.abs(prompt[0][:, 2:] - full[0][:, 2:6]).max() < 1e-4
    with torch.no_grad():
        ref = model(ids, attention_mask=mask, position_ids=pos,
                    adapter=lora.adapter(weights=torch.tensor(weights))).logits.numpy()
    real = mask.bool().numpy()
    assert np.abs(full[0][real] - ref[real]).max() < 1e-3
