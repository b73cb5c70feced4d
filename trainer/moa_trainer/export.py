"""`export`: the decoder with KV cache as ONNX, LoRA experts and routing weights as graph inputs.

Names follow Optimum / transformers.js (input_ids, attention_mask, position_ids,
past_key_values.{i}.key|value -> logits, present.{i}.key|value) plus lora.{m}.A
[layers, experts, r, in], lora.{m}.B [layers, experts, out, r] and expert_weights
[batch, experts]. The graph applies no LoRA scaling: the caller folds alpha/r into B, so one
graph serves experts of any rank and alpha, and attaching or mixing never re-exports.

`variant: "hf"` writes the base model alone in the layout transformers.js and Optimum load
(`onnx/model.onnx` with only the standard decoder inputs, `config.json`,
`generation_config.json`, the tokenizer files): runtimes that feed exactly those inputs refuse
a graph with extra required inputs, so the MoA graph is not loadable by them.

Both graphs are written node by node (`onnx_graph.py`), not traced, and use onnxruntime's
com.microsoft kernels (GroupQueryAttention, SkipSimplifiedLayerNormalization): any
onnxruntime build has them, other ONNX runtimes do not.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Optional

import onnx
import torch

from .config import Fields, read_json_config
from .errors import TrainerError
from .fsutil import FILE_MODE, atomic_write_json, temp_name
from .hf_folder import load_base_model
from .model import MODULE_PARENT, CausalLM
from .onnx_attention import fused
from .onnx_builder import ExternalData
from .onnx_graph import MAX_ROTARY_POSITIONS, OPSET, build_decoder
from .onnx_quant import WEIGHT_TYPES
from .protocol import emit
from .runtime import hello

# Past this many bytes of weights they are streamed to a file beside the graph while it is built,
# `<graph name>_data` (the name Optimum and transformers.js use; onnxruntime finds it there): the
# export then holds one copy of the weights, not several (bench/export_memory.py). One protobuf
# cannot pass 2 GB anyway. Small models (the built-in one) stay one self-contained file.
EXTERNAL_DATA_BYTES = 64 * 1024 * 1024


def export_onnx(model: CausalLM, targets: list[str], out: Path, external_data: Optional[bool] = None,
                weights: str = "f32") -> None:
    unknown = [m for m in targets if m not in MODULE_PARENT]
    if unknown:
        raise TrainerError(f"export: unknown target_modules {unknown}",
                           f"choose from {', '.join(MODULE_PARENT)}")
    model = model.float().eval()
    save_to(lambda ext: build_decoder(model, targets, external=ext, weight_type=weights), model, out,
            external_data)


def save_to(build: Callable[[Optional[ExternalData]], onnx.ModelProto], model: CausalLM, out: Path,
            external_data: Optional[bool] = None) -> None:
    """Build the graph and write it (and, past EXTERNAL_DATA_BYTES of weights or when asked, its
    weights file `<out>_data`, streamed while building) in a temp folder beside `out`, then
    rename them into place, the weights first: readers never see a partial model or a graph
    without its weights.

    (No `onnx.checker`: it rejects SimplifiedLayerNormalization, a kernel onnxruntime registers
    in the default domain; the tests load every variant in onnxruntime instead.)"""
    if external_data is None:
        external_data = sum(p.numel() * p.element_size() for p in model.state_dict().values()) > EXTERNAL_DATA_BYTES
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = temp_name(out)
    tmp_dir.mkdir()
    try:
        tmp = tmp_dir / out.name
        data = f"{out.name}_data"
        sink = ExternalData(tmp_dir / data, data) if external_data else None
        try:
            proto = build(sink)
        finally:
            if sink is not None:
                sink.close()
        with open(tmp, "wb") as f:
            f.write(proto.SerializeToString())
        del proto
        if sink is not None:
            os.chmod(tmp_dir / data, FILE_MODE)
            os.replace(tmp_dir / data, out.parent / data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def bytes_on_disk(graph: Path) -> int:
    """The graph's size plus its weights file's, if it has one."""
    data = graph.with_name(f"{graph.name}_data")
    return graph.stat().st_size + (data.stat().st_size if data.is_file() else 0)


HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def hf_byte_tokenizer(moa: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """MoA's byte-level tokenizer as a Hugging Face tokenizer.json (+ tokenizer_config.json).

    A BPE with no merges whose vocabulary is the 256 byte tokens `<0xNN>` at ids 0–255 and
    byte_fallback on: every character falls back to its UTF-8 bytes, so ids are the bytes, as
    in MoA's own tokenizer; BOS is prepended by the post-processor. One difference: the literal
    text "<s>" / "</s>" becomes the special token here (as in any HF tokenizer), bytes in MoA's.
    """
    bos, eos = int(moa.get("bos_token_id", 256)), int(moa.get("eos_token_id", 257))
    vocab: dict[str, int] = {f"<0x{i:02X}>": i for i in range(256)}
    vocab.update({"<s>": bos, "</s>": eos})

    def special(i: int, text: str) -> dict[str, Any]:
        return {"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}

    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [special(bos, "<s>"), special(eos, "</s>")],
        "normalizer": None, "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [bos], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    }
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
              "pad_token": "</s>", "add_bos_token": True, "clean_up_tokenization_spaces": False,
              "model_max_length": 1024}
    return tokenizer, config


def export_hf(model: CausalLM, base_folder: Path, out_dir: Path, external_data: Optional[bool] = None) -> Path:
    """The `hf` variant: `out_dir/onnx/model.onnx` plus the JSON files transformers.js reads.

    A Hugging Face tokenizer is copied; the built-in byte-level tokenizer.json (MoA's own
    format) is written as the equivalent Hugging Face one (`hf_byte_tokenizer`).
    """
    out = out_dir / "onnx" / "model.onnx"
    model = model.float().eval()
    save_to(lambda ext: build_decoder(model, [], experts=False, external=ext), model, out, external_data)
    config = json.loads((base_folder / "config.json").read_text(encoding="utf-8"))
    config["use_cache"] = True
    atomic_write_json(out_dir / "config.json", config)
    cfg = model.config
    atomic_write_json(out_dir / "generation_config.json", {
        "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.eos_token_id, "max_length": cfg.max_position_embeddings})
    tok = base_folder / "tokenizer.json"
    raw = json.loads(tok.read_text(encoding="utf-8")) if tok.is_file() else None
    if isinstance(raw, dict) and isinstance(raw.get("moa"), dict):
        tokenizer, tok_config = hf_byte_tokenizer(raw["moa"])
        atomic_write_json(out_dir / "tokenizer.json", tokenizer)
        atomic_write_json(out_dir / "tokenizer_config.json", tok_config)
    elif raw is not None:
        for name in HF_TOKENIZER_FILES:
            if (base_folder / name).is_file():
                shutil.copyfile(base_folder / name, out_dir / name)
    return out


def model_json(model: CausalLM, targets: list[str], opset: int) -> dict[str, Any]:
    cfg = model.config
    dims = cfg.module_dims()
    return {"v": 1, "num_layers": cfg.num_hidden_layers, "num_heads": cfg.num_attention_heads,
            "num_kv_heads": cfg.num_key_value_heads, "head_dim": cfg.head_dim,
            "hidden_size": cfg.hidden_size, "vocab_size": cfg.vocab_size, "target_modules": targets,
            "modules": {m: {"in": dims[m][0], "out": dims[m][1]} for m in targets},
            "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
            "max_position_embeddings": cfg.max_position_embeddings, "opset": opset,
            "max_positions": min(cfg.max_position_embeddings, MAX_ROTARY_POSITIONS),
            "lora_scaling": "none (fold alpha/r into B)", "kv_in_place": fused(cfg.head_dim)}


def run(config_path: str) -> None:
    start = time.perf_counter()
    raw, source = read_json_config(config_path)
    f = Fields(raw, source)
    base = f.str("base_model", required=True)
    out = Path(f.str("out", required=True))
    targets = [str(m) for m in (f.list("target_modules") or ["q_proj", "k_proj", "v_proj", "o_proj"])]
    opset = f.int("opset", OPSET)
    if opset != OPSET:
        raise TrainerError(f"{source}: opset {opset}: the graph is written for opset {OPSET} (+ com.microsoft 1)", None)
    if "learned_routing" in raw:
        # The graph no longer runs routers: the learned router's decision is made by the reader.
        raise TrainerError(f"{source}: learned_routing is no longer exported: the reader makes the learned "
                           "router's decision (its n-gram table) and passes expert_weights (PROTOCOL.md, export)", None)
    external = raw.get("external_data")
    if external is not None and not isinstance(external, bool):
        raise TrainerError(f"{source}: external_data must be a boolean (default: only past "
                           f"{EXTERNAL_DATA_BYTES >> 20} MiB of weights)", None)
    variant = f.str("variant", "moa")
    if variant not in ("moa", "hf"):
        raise TrainerError(f"{source}: variant must be \"moa\" (expert inputs) or \"hf\" (transformers.js layout)", None)
    weights = f.str("weights", "f32")
    if weights not in WEIGHT_TYPES:
        raise TrainerError(f"{source}: weights must be one of {', '.join(WEIGHT_TYPES)}", None)
    if variant == "hf" and weights != "f32":
        raise TrainerError(f"{source}: the hf variant is written in float only", None)
    hello(torch.device("cpu"))
    model = load_base_model(base)
    if variant == "hf":
        # `out` is the folder to write; the graph goes to out/onnx/model.onnx as transformers.js expects.
        path = export_hf(model, Path(base), out, external)
        emit("artifact", kind="onnx", name=path.name, path=str(path), variant="hf")
        emit("done", stopped=False, elapsed_s=round(time.perf_counter() - start, 3), path=str(path),
             dir=str(out), bytes=bytes_on_disk(path))
        return
    export_onnx(model, targets, out, external, weights)
    meta_path = out.with_suffix(".json")  # model.onnx -> model.json, as PROTOCOL.md names it
    atomic_write_json(meta_path, {**model_json(model, targets, opset), "weights": weights})
    emit("artifact", kind="onnx", name=out.name, path=str(out))
    emit("done", stopped=False, elapsed_s=round(time.perf_counter() - start, 3), path=str(out),
         model_json=str(meta_path), bytes=bytes_on_disk(out))
