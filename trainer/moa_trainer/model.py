"""Llama-family decoder in plain PyTorch; module names mirror HF so state_dict keys are HF's.

RMSNorm, RoPE (rope_theta), grouped-query attention, SwiGLU MLP, optional attention/MLP bias,
tied embeddings. LoRA is not built in: every projection goes through an optional `adapter`
callable (layer index, module name, input) -> delta, so training (stacked experts), export
(experts as graph inputs) and the learned router all plug in without touching the model. The
router sees each layer's normalised input through an optional `route` hook called before the
layer's projections, so a layer's routing decision can depend on that layer's hidden states.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import math
from typing import Any, Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as activation_checkpoint
from torch import Tensor, nn

from .errors import TrainerError

Adapter = Callable[[int, str, Tensor], Optional[Tensor]]
# (layer index, normalised layer input [batch, seq, hidden]) -> None; the router's entry point.
RouteHook = Callable[[int, Tensor], None]
KV = tuple[Tensor, Tensor]

ATTN_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
MODULE_PARENT = {**{m: "self_attn" for m in ATTN_MODULES}, **{m: "mlp" for m in MLP_MODULES}}

# Same block structure; Qwen2 adds q/k/v bias (never o_proj), Mistral a sliding attention window.
SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "mistral")
ROPE_TYPES = ("default", "linear", "llama3")
# Far above any released Llama-family model, far below what would exhaust memory while the
# module tree is built: a config.json outside them is refused before anything is allocated.
DIM_BOUNDS = {"vocab_size": 1 << 21, "hidden_size": 1 << 16, "intermediate_size": 1 << 18,
              "num_hidden_layers": 1024, "num_attention_heads": 1024, "num_key_value_heads": 1024,
              "head_dim": 1024, "max_position_embeddings": 1 << 24}


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int] = None
    model_type: str = "llama"
    qkv_bias: bool = False  # Qwen2: bias on q/k/v only (attention_bias covers all four)
    sliding_window: Optional[int] = None
    rope_type: str = "default"
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_position: int = 8192

    @classmethod
    def from_hf(cls, d: dict[str, Any], source: str) -> "ModelConfig":
        mt = d.get("model_type")
        if mt not in SUPPORTED_MODEL_TYPES:
            raise TrainerError(f"{source}: model_type {mt!r} is not supported yet "
                               f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})",
                               "use a Llama-family model folder (llama, qwen2 or mistral)")
        act = d.get("hidden_act", "silu")
        if act != "silu":
            raise TrainerError(f"{source}: hidden_act {act!r} is not supported (only silu)", None)
        rope = d.get("rope_scaling") or d.get("rope_parameters") or {}
        if not isinstance(rope, dict):
            raise TrainerError(f"{source}: rope_scaling must be an object", None)
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ROPE_TYPES:
            raise TrainerError(f"{source}: rope scaling {rope_type!r} is not supported "
                               f"(supported: {', '.join(ROPE_TYPES)})", None)
        theta = d.get("rope_theta", rope.get("rope_theta", 10000.0))
        # Qwen2 configs carry sliding_window but only use it when use_sliding_window is true.
        window = d.get("sliding_window")
        if mt == "qwen2":
            if d.get("use_sliding_window", False):
                # Qwen2 windows only some layers (max_window_layers / layer_types); not modelled.
                raise TrainerError(f"{source}: Qwen2 with use_sliding_window is not supported", None)
            window = None
        if mt == "llama":
            window = None
        try:
            heads = int(d["num_attention_heads"])
            hidden = int(d["hidden_size"])
            cfg = cls(
                vocab_size=int(d["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(d["intermediate_size"]),
                num_hidden_layers=int(d["num_hidden_layers"]),
                num_attention_heads=heads,
                num_key_value_heads=int(d.get("num_key_value_heads") or heads),
                head_dim=int(d.get("head_dim") or hidden // heads),
                rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
                rope_theta=float(theta),
                max_position_embeddings=int(d.get("max_position_embeddings", 2048)),
                tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
                attention_bias=bool(d.get("attention_bias", False)),
                mlp_bias=bool(d.get("mlp_bias", False)),
                bos_token_id=_opt_int(d.get("bos_token_id")),
                eos_token_id=_opt_int(d.get("eos_token_id")),
                model_type=str(mt),
                qkv_bias=mt == "qwen2",
                sliding_window=None if window is None else int(window),
                rope_type=str(rope_type),
                rope_factor=float(rope.get("factor", 1.0)),
                rope_low_freq_factor=float(rope.get("low_freq_factor", 1.0)),
                rope_high_freq_factor=float(rope.get("high_freq_factor", 4.0)),
                rope_original_max_position=int(rope.get("original_max_position_embeddings", 8192)),
            )
        except KeyError as e:
            raise TrainerError(f"{source}: missing required field {e.args[0]!r}", None) from None
        except (TypeError, ValueError) as e:
            raise TrainerError(f"{source}: invalid field value ({e})", None) from None
        for key, bound in DIM_BOUNDS.items():
            value = getattr(cfg, key)
            if not 1 <= value <= bound:
                raise TrainerError(f"{source}: {key} {value} is outside the supported range 1..{bound}",
                                   "is this config.json from a Llama-family model?")
        if cfg.num_attention_heads % cfg.num_key_value_heads:
            raise TrainerError(f"{source}: num_attention_heads {cfg.num_attention_heads} is not a "
                               f"multiple of num_key_value_heads {cfg.num_key_value_heads}", None)
        return cfg

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every weight's HF name and shape, from the config alone: what the files must hold,
        checked before any module or tensor is allocated (tied heads appear once)."""
        h, i = self.hidden_size, self.intermediate_size
        out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (self.vocab_size, h),
                                           "model.norm.weight": (h,)}
        if not self.tie_word_embeddings:
            out["lm_head.weight"] = (self.vocab_size, h)
        dims = self.module_dims()
        for layer in range(self.num_hidden_layers):
            pre = f"model.layers.{layer}."
            out[pre + "input_layernorm.weight"] = (h,)
            out[pre + "post_attention_layernorm.weight"] = (h,)
            for m, (fan_in, fan_out) in dims.items():
                key = f"{pre}{MODULE_PARENT[m]}.{m}"
                out[key + ".weight"] = (fan_out, fan_in)
                has_bias = (self.attention_bias and m in ATTN_MODULES) or (self.mlp_bias and m in MLP_MODULES) \
                    or (self.qkv_bias and m in ("q_proj", "k_proj", "v_proj"))
                if has_bias:
                    out[key + ".bias"] = (fan_out,)
        return out

    def to_hf(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("qkv_bias", "rope_type", "rope_factor", "rope_low_freq_factor", "rope_high_freq_factor",
                  "rope_original_max_position"):
            d.pop(k)
        if self.rope_type != "default":
            d["rope_scaling"] = {"rope_type": self.rope_type, "factor": self.rope_factor,
                                 "low_freq_factor": self.rope_low_freq_factor,
                                 "high_freq_factor": self.rope_high_freq_factor,
                                 "original_max_position_embeddings": self.rope_original_max_position}
        arch = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}
        d.update(architectures=[arch[self.model_type]], hidden_act="silu", initializer_range=0.02,
                 attention_dropout=0.0, use_cache=True, torch_dtype="float32")
        if self.model_type == "qwen2":
            d["use_sliding_window"] = self.sliding_window is not None
        return d

    def inv_freq(self) -> Tensor:
        """RoPE inverse frequencies after scaling, as HF's rope init functions compute them."""
        inv = 1.0 / (self.rope_theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        if self.rope_type == "linear":
            return inv / self.rope_factor
        if self.rope_type == "llama3":
            # Long wavelengths are slowed by `factor`, short ones kept, the band between blended.
            low_wl = self.rope_original_max_position / self.rope_low_freq_factor
            high_wl = self.rope_original_max_position / self.rope_high_freq_factor
            wavelen = 2 * math.pi / inv
            scaled = torch.where(wavelen > low_wl, inv / self.rope_factor, inv)
            smooth = ((self.rope_original_max_position / wavelen - self.rope_low_freq_factor)
                      / (self.rope_high_freq_factor - self.rope_low_freq_factor))
            blended = (1 - smooth) * scaled / self.rope_factor + smooth * scaled
            medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
            return torch.where(medium, blended, scaled)
        return inv

    def module_dims(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each projection that LoRA may target."""
        h, q, kv, i = (self.hidden_size, self.num_attention_heads * self.head_dim,
                       self.num_key_value_heads * self.head_dim, self.intermediate_size)
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def _opt_int(v: Any) -> Optional[int]:
    if isinstance(v, list):  # some configs list several eos ids; the first is the canonical one
        v = v[0] if v else None
    return None if v is None else int(v)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in float32 and cast back before the weight, exactly as HF Llama does.
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def rope_cos_sin(position_ids: Tensor, inv_freq: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    inv_freq = inv_freq.to(position_ids.device)
    freqs = position_ids.float()[:, :, None] * inv_freq[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def attention_bias(attention_mask: Optional[Tensor], q_len: int, kv_len: int, batch: int,
                   device: torch.device, dtype: torch.dtype, window: Optional[int] = None) -> Tensor:
    """Additive mask [batch, 1, q_len, kv_len]: causal (queries are the last q_len positions)
    and, when given, the padding mask [batch, kv_len].

    A large finite negative instead of -inf keeps fully padded rows finite: a NaN there would
    leak into real rows through 0 * NaN in the value product.
    """
    past = kv_len - q_len
    q_idx = torch.arange(q_len, device=device)[:, None] + past
    k_idx = torch.arange(kv_len, device=device)[None, :]
    allowed = k_idx <= q_idx
    if window is not None:  # Mistral: a query sees only the last `window` keys (itself included)
        allowed = allowed & (q_idx - k_idx < window)
    allowed = allowed[None, None]
    if attention_mask is not None:
        allowed = allowed & (attention_mask[:, None, None, :] != 0)
    else:
        allowed = allowed.expand(batch, 1, q_len, kv_len)
    zero = torch.zeros((), dtype=dtype, device=device)
    neg = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=device)
    return torch.where(allowed, zero, neg)


def _project(linear: nn.Linear, layer: int, name: str, x: Tensor, adapter: Optional[Adapter]) -> Tensor:
    y = linear(x)
    if adapter is not None:
        delta = adapter(layer, name, x)
        if delta is not None:
            y = y + delta
    return y


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads
        self.head_dim = cfg.head_dim
        dims = cfg.module_dims()
        for name in ATTN_MODULES:
            i, o = dims[name]
            bias = cfg.attention_bias or (cfg.qkv_bias and name != "o_proj")
            setattr(self, name, nn.Linear(i, o, bias=bias))

    def _proj(self, name: str, x: Tensor, adapter: Optional[Adapter]) -> Tensor:
        return _project(getattr(self, name), self.layer_idx, name, x, adapter)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, bias: Optional[Tensor],
                past: Optional[KV], adapter: Optional[Adapter]) -> tuple[Tensor, KV]:
        lead = x.shape[:-1]
        q, k, v = (self._proj(m, x, adapter) for m in ("q_proj", "k_proj", "v_proj"))
        q = q.view(*lead, self.num_heads, self.head_dim).transpose(1, 2)
        k = k.view(*lead, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(*lead, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        n_rep = self.num_heads // self.num_kv_heads
        kr, vr = _repeat_kv(k, n_rep), _repeat_kv(v, n_rep)
        if bias is None:
            out = F.scaled_dot_product_attention(q, kr, vr, is_causal=True)
        else:
            out = F.scaled_dot_product_attention(q, kr, vr, attn_mask=bias.to(q.dtype))
        out = out.transpose(1, 2).reshape(*lead, self.num_heads * self.head_dim)
        return self._proj("o_proj", out, adapter), present


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        dims = cfg.module_dims()
        for name in MLP_MODULES:
            i, o = dims[name]
            setattr(self, name, nn.Linear(i, o, bias=cfg.mlp_bias))

    def _proj(self, name: str, x: Tensor, adapter: Optional[Adapter]) -> Tensor:
        return _project(getattr(self, name), self.layer_idx, name, x, adapter)

    def forward(self, x: Tensor, adapter: Optional[Adapter]) -> Tensor:
        h = F.silu(self._proj("gate_proj", x, adapter)) * self._proj("up_proj", x, adapter)
        return self._proj("down_proj", h, adapter)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = Attention(cfg, layer_idx)
        self.mlp = MLP(cfg, layer_idx)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, bias: Optional[Tensor],
                past: Optional[KV], adapter: Optional[Adapter],
                route: Optional[RouteHook] = None) -> tuple[Tensor, KV]:
        normed = self.input_layernorm(x)
        if route is not None:
            route(self.self_attn.layer_idx, normed)
        a, present = self.self_attn(normed, cos, sin, bias, past, adapter)
        h = x + a
        return h + self.mlp(self.post_attention_layernorm(h), adapter), present


class Backbone(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class DecoderOutput(NamedTuple):
    logits: Tensor
    present: Optional[list[KV]]


class CausalLM(nn.Module):
    """Module tree mirrors HF LlamaForCausalLM so state_dict keys are the HF names."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.register_buffer("rope_inv_freq", cfg.inv_freq(), persistent=False)
        # Recompute each layer's activations in backward instead of keeping them (memory for time).
        self.activation_checkpointing = False
        self.tie()

    def tie(self) -> None:
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, input_ids: Tensor, position_ids: Optional[Tensor] = None,
                attention_mask: Optional[Tensor] = None, past_key_values: Optional[list[KV]] = None,
                adapter: Optional[Adapter] = None, use_cache: bool = False,
                route: Optional[RouteHook] = None) -> DecoderOutput:
        cfg = self.config
        batch, q_len = input_ids.shape
        past_len = past_key_values[0][0].shape[2] if past_key_values else 0
        if position_ids is None:
            position_ids = (torch.arange(q_len, device=input_ids.device) + past_len)[None].expand(batch, q_len)
        x = self.model.embed_tokens(input_ids)
        cos, sin = rope_cos_sin(position_ids, self.rope_inv_freq, x.dtype)
        bias: Optional[Tensor] = None
        kv_len = past_len + q_len
        windowed = cfg.sliding_window is not None and kv_len > cfg.sliding_window
        if attention_mask is not None or past_key_values or windowed:
            # Training (no cache, no padding, short sequences) keeps the fused is_causal path.
            bias = attention_bias(attention_mask, q_len, kv_len, batch, input_ids.device, torch.float32,
                                  cfg.sliding_window if windowed else None)
        presents: list[KV] = []
        checkpointing = self.activation_checkpointing and torch.is_grad_enabled() and not use_cache
        for i, layer in enumerate(self.model.layers):
            past = past_key_values[i] if past_key_values else None
            if checkpointing:
                x, present = activation_checkpoint.checkpoint(layer, x, cos, sin, bias, past, adapter, route,
                                                              use_reentrant=False)
            else:
                x, present = layer(x, cos, sin, bias, past, adapter, route)
            if use_cache:
                presents.append(present)
        logits = self.lm_head(self.model.norm(x))
        return DecoderOutput(logits, presents if use_cache else None)

    def hf_state_dict(self) -> dict[str, Tensor]:
        sd = {k: v.detach() for k, v in self.state_dict().items()}
        if self.config.tie_word_embeddings:
            sd.pop("lm_head.weight", None)
        return sd


def init_weights(model: CausalLM, std: float = 0.02) -> None:
    """HF Llama's init (normal(0, initializer_range), zero bias, unit norms), for pretraining."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, RMSNorm):
            nn.init.ones_(m.weight)


def count_params(model: nn.Module) -> int:
    # parameters() yields a tied weight once, so tied embeddings are not counted twice.
    return sum(p.numel() for p in model.parameters())


