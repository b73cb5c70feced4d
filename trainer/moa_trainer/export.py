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
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from .config import Fields, read_json_config
from .errors import TrainerError
from .fsutil import FILE_MODE, atomic_write_json
from .hf_folder import load_base_model
from .router import masked_mean, top_k_weights
from .model import MODULE_PARENT, CausalLM
from .protocol import emit
from .runtime import hello

# The TorchScript exporter writes one protobuf; past 2 GB it needs external data files, which
# the atomic rename below does not cover yet.
MAX_EXPORT_BYTES = 1900 * 1024 * 1024


class OnnxDecoder(nn.Module):
    """The exported graph. With `learned_routing`, the per-layer routers run inside it (their
    weights are inputs too) instead of taking one `expert_weights` row for all layers: see
    PROTOCOL.md, "Learned routing in the ONNX graph"."""

    def __init__(self, model: CausalLM, target_modules: list[str], learned_routing: bool = False,
                 top_k: int = 1) -> None:
        super().__init__()
        self.model = model
        self.targets = list(target_modules)
        self.num_layers = model.config.num_hidden_layers
        self.learned = learned_routing
        self.top_k = top_k

    def forward(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor,
                *rest: Tensor) -> tuple[Tensor, ...]:
        n = self.num_layers
        past = [(rest[2 * i], rest[2 * i + 1]) for i in range(n)]
        raw = {m: (rest[2 * n + 2 * j], rest[2 * n + 2 * j + 1]) for j, m in enumerate(self.targets)}
        extra = rest[2 * n + 2 * len(self.targets):]
        dims = self.model.config.module_dims()
        # Each module's experts as one matrix per layer, laid out once per run rather than once per
        # layer: A [L, E·r, in] and B [L, E·r, out] (reshaped with static sizes: no shape arithmetic).
        stacks = {m: (a.reshape(n, -1, dims[m][0]), b.transpose(2, 3).reshape(n, -1, dims[m][1]))
                  for m, (a, b) in raw.items()}
        routed: dict[int, Tensor] = {}
        # Every stack has the same (padded) rank r, as PROTOCOL.md's shapes write it and
        # stackExperts feeds it: a ones vector of that length spreads a routing
        # weight over its expert's rank columns, computed once per run (or once per layer).
        first = raw[self.targets[0]][0] if self.targets else None
        ones_r = torch.ones_like(first[0, 0, :, 0]) if first is not None else None
        per_rank: dict[int, Tensor] = {}
        route = None
        if self.learned:
            w_router, b_router, prompt_mask, held, hold = extra

            def route(layer: int, h: Tensor) -> None:
                logits = torch.matmul(masked_mean(h, prompt_mask), w_router[layer].t()) + b_router[layer]
                # hold = 1: keep the decision made on the prompt (fed back from `routing`).
                routed[layer] = hold * held[layer] + (1 - hold) * top_k_weights(logits, self.top_k)
        else:
            weights = extra[0]

        def rank_weights(layer: int) -> Tensor:
            key = layer if self.learned else -1
            if key not in per_rank:
                w = routed[layer] if self.learned else weights
                assert ones_r is not None
                per_rank[key] = (w[:, :, None] * ones_r[None, None, :]).flatten(1)[:, None, :]
            return per_rank[key]

        def adapter(layer: int, module: str, x: Tensor) -> Optional[Tensor]:
            if module not in stacks:
                return None
            a, b = stacks[module]
            return lean_delta(x, a[layer], b[layer], rank_weights(layer))

        out = self.model(input_ids, position_ids=position_ids, attention_mask=attention_mask,
                         past_key_values=past, adapter=adapter, use_cache=True, route=route)
        assert out.present is not None
        result = (out.logits, *[t for kv in out.present for t in kv])
        if self.learned:
            result = (*result, torch.stack([routed[i] for i in range(n)]))
        return result


class PlainDecoder(nn.Module):
    """The base decoder with KV cache and nothing else: the `hf` variant's graph."""

    def __init__(self, model: CausalLM) -> None:
        super().__init__()
        self.model = model
        self.num_layers = model.config.num_hidden_layers

    def forward(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor,
                *past_flat: Tensor) -> tuple[Tensor, ...]:
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(self.num_layers)]
        out = self.model(input_ids, position_ids=position_ids, attention_mask=attention_mask,
                         past_key_values=past, use_cache=True)
        assert out.present is not None
        return (out.logits, *[t for kv in out.present for t in kv])


def lean_delta(x: Tensor, a: Tensor, b: Tensor, w_rank: Tensor) -> Tensor:
    """`mixed_delta` in fewer graph nodes: the decoder pays for these on every decoded token.

    a [E·r, in] and b [E·r, out] are one layer's experts side by side (A_e's rows, B_eᵀ's rows);
    w_rank [batch, 1, E·r] is each expert's routing weight repeated over its rank, so that
    Σ_e w_e (x A_eᵀ) B_eᵀ = ((x Aᵀ) ⊙ w) B.
    """
    return torch.matmul(torch.matmul(x, a.t()) * w_rank, b)


def io_names(num_layers: int, targets: list[str], learned: bool = False) -> tuple[list[str], list[str]]:
    inputs = ["input_ids", "attention_mask", "position_ids"]
    inputs += [f"past_key_values.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]
    inputs += [f"lora.{m}.{ab}" for m in targets for ab in ("A", "B")]
    inputs += ROUTER_INPUTS if learned else ["expert_weights"]
    outputs = ["logits"] + [f"present.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]
    if learned:
        outputs.append("routing")
    return inputs, outputs


ROUTER_INPUTS = ["router.weight", "router.bias", "router.prompt_mask", "router.held", "router.hold"]


def dynamic_axes(num_layers: int, targets: list[str], learned: bool = False) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "seq"},
        "attention_mask": {0: "batch", 1: "total"},
        "position_ids": {0: "batch", 1: "seq"},
        "logits": {0: "batch", 1: "seq"},
    }
    if learned:
        axes.update({"router.weight": {1: "experts"}, "router.bias": {1: "experts"},
                     "router.prompt_mask": {0: "batch", 1: "seq"}, "router.held": {1: "batch", 2: "experts"},
                     "routing": {1: "batch", 2: "experts"}})
    else:
        axes["expert_weights"] = {0: "batch", 1: "experts"}
    for i in range(num_layers):
        for kv in ("key", "value"):
            axes[f"past_key_values.{i}.{kv}"] = {0: "batch", 2: "past"}
            axes[f"present.{i}.{kv}"] = {0: "batch", 2: "total"}
    for m in targets:
        axes[f"lora.{m}.A"] = {1: "experts", 2: "rank"}
        axes[f"lora.{m}.B"] = {1: "experts", 3: "rank"}
    return axes


def sample_inputs(model: CausalLM, targets: list[str], batch: int = 2, seq: int = 3, past: int = 4,
                  experts: int = 2, rank: int = 3) -> tuple[Tensor, ...]:
    """Trace inputs; every dynamic size differs from the others so none gets baked in."""
    cfg = model.config
    dims = cfg.module_dims()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=g)
    mask = torch.ones(batch, past + seq, dtype=torch.long)
    pos = (torch.arange(seq) + past)[None].expand(batch, seq).contiguous()
    kv = [torch.randn(batch, cfg.num_key_value_heads, past, cfg.head_dim, generator=g)
          for _ in range(2 * cfg.num_hidden_layers)]
    lora: list[Tensor] = []
    for m in targets:
        i, o = dims[m]
        lora.append(torch.randn(cfg.num_hidden_layers, experts, rank, i, generator=g) * 0.01)
        lora.append(torch.randn(cfg.num_hidden_layers, experts, o, rank, generator=g) * 0.01)
    weights = torch.rand(batch, experts, generator=g)
    return (ids, mask, pos, *kv, *lora, weights)


def router_sample_inputs(model: CausalLM, batch: int, seq: int, experts: int) -> tuple[Tensor, ...]:
    cfg = model.config
    g = torch.Generator().manual_seed(1)
    return (torch.randn(cfg.num_hidden_layers, experts, cfg.hidden_size, generator=g),
            torch.randn(cfg.num_hidden_layers, experts, generator=g),
            torch.ones(batch, seq), torch.rand(cfg.num_hidden_layers, batch, experts, generator=g),
            torch.zeros(1))


def check_size(model: CausalLM) -> None:
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    if size > MAX_EXPORT_BYTES:
        raise TrainerError(f"export: the model has {size / 2**30:.1f} GiB of weights; ONNX export "
                           "over 2 GB (external data) is not supported yet", None)


def export_onnx(model: CausalLM, targets: list[str], out: Path, opset: int = 17, learned_routing: bool = False,
                top_k: int = 1) -> None:
    """Export to a temp file beside `out`, then rename: readers never see a partial model."""
    unknown = [m for m in targets if m not in MODULE_PARENT]
    if unknown:
        raise TrainerError(f"export: unknown target_modules {unknown}",
                           f"choose from {', '.join(MODULE_PARENT)}")
    check_size(model)
    model = model.float().eval()
    wrapper = OnnxDecoder(model, targets, learned_routing, top_k)
    inputs, outputs = io_names(model.config.num_hidden_layers, targets, learned_routing)
    # More experts in the trace than top_k, so the top-k branch (not "keep all") is recorded.
    experts = max(2, top_k + 1)
    sample = sample_inputs(model, targets, experts=experts)
    if learned_routing:
        sample = (*sample[:-1], *router_sample_inputs(model, 2, 3, experts))
    trace_to(wrapper, sample, out, inputs, outputs,
             dynamic_axes(model.config.num_hidden_layers, targets, learned_routing), opset)


def trace_to(wrapper: nn.Module, sample: tuple[Tensor, ...], out: Path, inputs: list[str], outputs: list[str],
             axes: dict[str, dict[int, str]], opset: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, FILE_MODE)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Tracer warnings about shape-dependent Python values are expected here: every
            # such value is derived from an input shape and recorded as a Shape op.
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(wrapper, sample, tmp, input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def export_hf(model: CausalLM, base_folder: Path, out_dir: Path, opset: int = 17) -> Path:
    """The `hf` variant: `out_dir/onnx/model.onnx` plus the JSON files transformers.js reads.

    A Hugging Face tokenizer is copied; the built-in byte-level tokenizer.json (MoA's own
    format) is written as the equivalent Hugging Face one (`hf_byte_tokenizer`).
    """
    check_size(model)
    model = model.float().eval()
    n = model.config.num_hidden_layers
    inputs = ["input_ids", "attention_mask", "position_ids"]
    inputs += [f"past_key_values.{i}.{kv}" for i in range(n) for kv in ("key", "value")]
    outputs = ["logits"] + [f"present.{i}.{kv}" for i in range(n) for kv in ("key", "value")]
    axes = {k: v for k, v in dynamic_axes(n, []).items() if k in inputs or k in outputs}
    sample = sample_inputs(model, [])[:3 + 2 * n]  # ids, mask, positions, past: no expert inputs
    out = out_dir / "onnx" / "model.onnx"
    trace_to(PlainDecoder(model), sample, out, inputs, outputs, axes, opset)
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


def model_json(model: CausalLM, targets: list[str], opset: int, learned_routing: bool = False,
               top_k: int = 1) -> dict[str, Any]:
    cfg = model.config
    dims = cfg.module_dims()
    return {"v": 1, "num_layers": cfg.num_hidden_layers, "num_heads": cfg.num_attention_heads,
            "num_kv_heads": cfg.num_key_value_heads, "head_dim": cfg.head_dim,
            "hidden_size": cfg.hidden_size, "vocab_size": cfg.vocab_size, "target_modules": targets,
            "modules": {m: {"in": dims[m][0], "out": dims[m][1]} for m in targets},
            "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
            "max_position_embeddings": cfg.max_position_embeddings, "opset": opset,
            "lora_scaling": "none (fold alpha/r into B)",
            **({"learned_routing": True, "top_k": top_k} if learned_routing else {})}


def run(config_path: str) -> None:
    start = time.perf_counter()
    raw, source = read_json_config(config_path)
    f = Fields(raw, source)
    base = f.str("base_model", required=True)
    out = Path(f.str("out", required=True))
    targets = [str(m) for m in (f.list("target_modules") or ["q_proj", "k_proj", "v_proj", "o_proj"])]
    opset = f.int("opset", 17, minimum=14)
    learned = raw.get("learned_routing", False)
    if not isinstance(learned, bool):
        raise TrainerError(f"{source}: learned_routing must be a boolean", None)
    top_k = f.int("top_k", 1, minimum=1)
    variant = f.str("variant", "moa")
    if variant not in ("moa", "hf"):
        raise TrainerError(f"{source}: variant must be \"moa\" (expert inputs) or \"hf\" (transformers.js layout)", None)
    if variant == "hf" and learned:
        raise TrainerError(f"{source}: the hf variant is the base model alone; it has no routers", None)
    hello(torch.device("cpu"))
    model = load_base_model(base)
    if variant == "hf":
        # `out` is the folder to write; the graph goes to out/onnx/model.onnx as transformers.js expects.
        path = export_hf(model, Path(base), out, opset)
        emit("artifact", kind="onnx", name=path.name, path=str(path), variant="hf")
        emit("done", stopped=False, elapsed_s=round(time.perf_counter() - start, 3), path=str(path),
             dir=str(out), bytes=path.stat().st_size)
        return
    export_onnx(model, targets, out, opset, learned, top_k)
    meta_path = out.with_suffix(".json")  # model.onnx -> model.json, as PROTOCOL.md names it
    atomic_write_json(meta_path, model_json(model, targets, opset, learned, top_k))
    emit("artifact", kind="onnx", name=out.name, path=str(out))
    emit("done", stopped=False, elapsed_s=round(time.perf_counter() - start, 3), path=str(out),
         model_json=str(meta_path), bytes=out.stat().st_size)
