"""int8 / int4 base weights (MatMulNBits): the packing against onnxruntime's own kernel, and the
exported graph against the float model, with the experts still exact float inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from conftest import run_trainer, write_config
from moa_trainer.hf_folder import load_base_model
from moa_trainer.onnx_quant import ACCURACY_LEVEL, pack_nbits, unpack_nbits
from test_export import lora_feed, random_lora, run_graph

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (test dependency)")


def one_matmul(b: np.ndarray, s: np.ndarray, k: int, n: int, bits: int, block: int, level: int) -> ort.InferenceSession:
    node = helper.make_node("MatMulNBits", ["x", "b", "s"], ["y"], domain="com.microsoft", K=k, N=n, bits=bits,
                            block_size=block, accuracy_level=level)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(b, "b"), numpy_helper.from_array(s, "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("bits", [4, 8])
def test_packing_is_what_onnxruntime_multiplies_by(bits: int) -> None:
    rng = np.random.default_rng(bits)
    k, n, block = 128, 48, 32
    w = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((5, k)).astype(np.float32)
    b, s = pack_nbits(w, bits, block)
    assert b.shape == (n, k // block, block * bits // 8) and s.shape == (n * k // block,)
    dq = unpack_nbits(b, s, k, n, bits, block)
    # Float compute: exactly x @ the dequantized matrix; and that matrix is w within half a step.
    y = one_matmul(b, s, k, n, bits, block, 0).run(None, {"x": x})[0]
    assert np.abs(y - x @ dq).max() < 1e-4 * np.abs(x @ dq).max()
    step = s.reshape(n, k // block).repeat(block, axis=1).T
    assert np.all(np.abs(dq - w) <= step / 2 + 1e-6)
    # The level the graphs use (activations in int8 per block) stays close to it.
    y4 = one_matmul(b, s, k, n, bits, block, ACCURACY_LEVEL).run(None, {"x": x})[0]
    assert np.abs(y4 - y).max() < 0.02 * np.abs(y).max()


def test_packing_refuses_what_does_not_split_into_blocks() -> None:
    with pytest.raises(ValueError, match="cannot pack"):
        pack_nbits(np.zeros((48, 8), np.float32), 4, 32)


# This fixture is a worst case (hidden size 32, weights of std 0.2, activations quantized per block
# of 32): measured int8 4 % / int4 24 % of the largest logit, the expert's effect within 5 % / 39 %,
# 94 % / 72 % of the argmaxes. A wrong packing is off by the logits' whole size.
@pytest.mark.parametrize("weights, tolerance, agree", [("int8", 0.08, 0.85), ("int4", 0.4, 0.5)])
def test_quantized_export_is_close_to_the_float_model_and_experts_stay_float(tmp_path: Path, onnx_model_dir: Path,
                                                                             weights: str, tolerance: float, agree: float) -> None:
    out = tmp_path / "model.onnx"
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"]
    cfg = {"v": 1, "base_model": str(onnx_model_dir), "out": str(out), "target_modules": targets, "opset": 17, "weights": weights}
    rc, _, _, stderr = run_trainer(["export", "--config", write_config(tmp_path / "export.json", cfg)])
    assert rc == 0, stderr
    model = load_base_model(onnx_model_dir)
    graph = onnx.load(str(out))
    nbits = [n for n in graph.graph.node if n.op_type == "MatMulNBits"]
    # Per layer: q/k/v packed, o, gate/up packed, down; and the output head.
    assert len(nbits) == 4 * model.config.num_hidden_layers + 1
    assert {a.i for n in nbits for a in n.attribute if a.name == "bits"} == {8 if weights == "int8" else 4}
    assert not [n for n in graph.graph.node if n.op_type == "MatMul" and n.input[1] in {i.name for i in graph.graph.initializer}]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ids = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 9, dtype=torch.long)
    pos = torch.arange(9)[None].expand(2, 9).contiguous()
    lora = random_lora(model, 1, 8, seed=2)
    one = np.ones((2, 1), dtype=np.float32)
    with_expert = run_graph(session, model, ids, mask, pos, None, lora_feed(model, lora), one)[0]
    base = run_graph(session, model, ids, mask, pos, None, lora_feed(model, None), np.zeros((2, 1), np.float32))[0]
    with torch.no_grad():
        ref = model(ids, adapter=lora.adapter(weights=torch.tensor(one))).logits.numpy()
        ref_base = model(ids).logits.numpy()
    scale = np.abs(ref).max()
    assert np.abs(with_expert - ref).max() < tolerance * scale, (weights, np.abs(with_expert - ref).max() / scale)
    # The expert is carried in float: what it adds is near what it adds to the float model.
    assert np.abs((with_expert - base) - (ref - ref_base)).max() < 1.5 * tolerance * np.abs(ref - ref_base).max()
    assert (with_expert.argmax(-1) == ref.argmax(-1)).mean() > agree
