"""`export` with `variant: "hf"`: the base model alone in the layout transformers.js loads.

The MoA graph (test_export.py) has required expert inputs that transformers.js never feeds; this
variant has exactly the standard decoder inputs and outputs, and the JSON files beside it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import ONNX_TINY, REPO_ROOT, random_model, run_trainer, write_config, write_model_dir
from moa_trainer.hf_folder import load_base_model

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (test dependency)")

STANDARD_INPUTS = ["input_ids", "attention_mask", "position_ids"]


@pytest.fixture(scope="module")
def hf_export(tmp_path_factory: pytest.TempPathFactory, onnx_model_dir: Path) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("hf") / "moa-tiny-hf"
    cfg = {"v": 1, "base_model": str(onnx_model_dir), "out": str(out), "variant": "hf"}
    rc, events, _, stderr = run_trainer(["export", "--config", write_config(out.parent / "export.json", cfg)])
    assert rc == 0, stderr
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(out / "onnx" / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    return {"out": out, "events": events, "session": session, "model": load_base_model(onnx_model_dir),
            "base": onnx_model_dir}


def test_layout_and_io_names_are_the_standard_decoder_ones(hf_export: dict[str, Any]) -> None:
    out, events = hf_export["out"], hf_export["events"]
    assert [e["type"] for e in events] == ["hello", "artifact", "done"]
    assert events[1]["variant"] == "hf" and events[1]["path"] == str(out / "onnx" / "model.onnx")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "generation_config.json", "onnx",
                                                     "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((out / "config.json").read_text())
    base = json.loads((hf_export["base"] / "config.json").read_text())
    assert config == {**base, "use_cache": True}
    assert config["model_type"] == "llama"
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == 257 and gen["bos_token_id"] == 256
    layers = hf_export["model"].config.num_hidden_layers
    session = hf_export["session"]
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    assert [i.name for i in session.get_inputs()] == STANDARD_INPUTS + past
    assert [o.name for o in session.get_outputs()] == ["logits"] + [p.replace("past_key_values", "present") for p in past]


def feed(model: Any, ids: torch.Tensor, start: int, past: list[np.ndarray] | None) -> dict[str, np.ndarray]:
    cfg = model.config
    b, s = ids.shape
    f = {"input_ids": ids.numpy(), "attention_mask": np.ones((b, start + s), dtype=np.int64),
         "position_ids": (torch.arange(s) + start)[None].expand(b, s).numpy()}
    for i in range(cfg.num_hidden_layers):
        for j, kv in enumerate(("key", "value")):
            f[f"past_key_values.{i}.{kv}"] = (past[2 * i + j] if past is not None else
                                             np.zeros((b, cfg.num_key_value_heads, 0, cfg.head_dim), np.float32))
    return f


def test_logits_match_pytorch_and_cached_decoding_matches_full_recompute(hf_export: dict[str, Any]) -> None:
    model, session = hf_export["model"], hf_export["session"]
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(3))
    full = session.run(None, feed(model, ids, 0, None))
    with torch.no_grad():
        ref = model(ids).logits.numpy()
    assert np.abs(full[0] - ref).max() < 1e-3
    out = session.run(None, feed(model, ids[:, :8], 0, None))
    steps = []
    for t in range(8, 12):
        out = session.run(None, feed(model, ids[:, t:t + 1], t, out[1:]))
        steps.append(out[0])
    assert np.abs(np.concatenate(steps, axis=1) - full[0][:, 8:]).max() < 1e-4


def test_the_byte_tokenizer_becomes_a_hugging_face_one_that_encodes_to_the_same_ids(hf_export: dict[str, Any]) -> None:
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers not installed (comes with transformers)")
    tok = tokenizers.Tokenizer.from_file(str(hf_export["out"] / "tokenizer.json"))
    for text in ["def f(x):\n    return x * 2\n", "Ünïcödé 日本語 🚀\t\r\n", ""]:
        assert tok.encode(text, add_special_tokens=False).ids == list(text.encode("utf-8"))
        assert tok.encode(text).ids == [256, *text.encode("utf-8")], "BOS first, as MoA prompts start"
        assert tok.decode(list(text.encode("utf-8"))) == text
    assert tok.decode([256, 104, 105, 257]) == "hi", "special tokens are not text"


def test_a_hugging_face_tokenizer_is_copied_beside_the_graph(tmp_path: Path) -> None:
    base = write_model_dir(tmp_path / "base", random_model(ONNX_TINY))
    fixture = REPO_ROOT / "test" / "fixtures" / "tokenizers" / "bytelevel-bpe"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(fixture / name, base / name)
    out = tmp_path / "hf"
    cfg = {"v": 1, "base_model": str(base), "out": str(out), "variant": "hf"}
    rc, _, _, stderr = run_trainer(["export", "--config", write_config(tmp_path / "export.json", cfg)])
    assert rc == 0, stderr
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (out / name).read_bytes() == (fixture / name).read_bytes()


@pytest.mark.parametrize("extra, message", [({"variant": "onnx"}, "variant must be"),
                                            ({"learned_routing": True}, "learned_routing is no longer exported")])
def test_bad_variants_are_refused(tmp_path: Path, onnx_model_dir: Path, extra: dict[str, Any], message: str) -> None:
    cfg = {"v": 1, "base_model": str(onnx_model_dir), "out": str(tmp_path / "x"), **extra}
    rc, events, _, _ = run_trainer(["export", "--config", write_config(tmp_path / "export.json", cfg)])
    assert rc == 1
    assert events[-1]["type"] == "error" and message in events[-1]["message"]


@pytest.mark.parametrize("variant", ["moa", "hf"])
def test_weights_past_the_protobuf_limit_go_to_a_data_file_beside_the_graph(tmp_path: Path, onnx_model_dir: Path,
                                                                            variant: str) -> None:
    """`external_data: true` takes the path a model over 64 MiB of weights takes on its own (the
    weights streamed while the graph is built): the graph plus `model.onnx_data`, loaded by path."""
    outs = {}
    for external in (False, True):
        target = tmp_path / f"{variant}-{external}"
        out = target / "model.onnx" if variant == "moa" else target
        cfg = {"v": 1, "base_model": str(onnx_model_dir), "out": str(out), "variant": variant, "external_data": external}
        rc, events, _, stderr = run_trainer(["export", "--config", write_config(tmp_path / f"e-{variant}-{external}.json", cfg)])
        assert rc == 0, stderr
        graph = out if variant == "moa" else out / "onnx" / "model.onnx"
        data = graph.with_name("model.onnx_data")
        assert data.is_file() == external
        assert not [p for p in graph.parent.iterdir() if p.name.startswith(".")], "no temp files left"
        assert events[-1]["bytes"] == graph.stat().st_size + (data.stat().st_size if external else 0)
        outs[external] = graph
    assert outs[True].stat().st_size < outs[False].stat().st_size / 10, "the weights left the graph"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    model = load_base_model(onnx_model_dir)
    ids = torch.randint(0, 256, (1, 9), generator=torch.Generator().manual_seed(4))
    f = feed(model, ids, 0, None)
    if variant == "moa":
        dims = model.config.module_dims()
        for m in ("q_proj", "k_proj", "v_proj", "o_proj"):
            f[f"lora.{m}.A"] = np.zeros((model.config.num_hidden_layers, 1, 1, dims[m][0]), np.float32)
            f[f"lora.{m}.B"] = np.zeros((model.config.num_hidden_layers, 1, dims[m][1], 1), np.float32)
        f["expert_weights"] = np.zeros((1, 1), np.float32)
        f["logits_to_keep"] = np.array([ids.shape[1]])
    logits = [ort.InferenceSession(str(outs[e]), opts, providers=["CPUExecutionProvider"]).run(["logits"], f)[0]
              for e in (False, True)]
    assert np.array_equal(logits[0], logits[1])
    with torch.no_grad():
        assert np.abs(logits[1] - model(ids).logits.numpy()).max() < 1e-3


def test_external_data_must_be_a_boolean(tmp_path: Path, onnx_model_dir: Path) -> None:
    cfg = {"v": 1, "base_model": str(onnx_model_dir), "out": str(tmp_path / "m.onnx"), "external_data": "yes"}
    rc, events, _, _ = run_trainer(["export", "--config", write_config(tmp_path / "e.json", cfg)])
    assert rc != 0 and events[-1]["type"] == "error" and "external_data must be a boolean" in events[-1]["message"]
