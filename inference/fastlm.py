"""A lean forward pass for Llama-family decoders (Llama / SmolLM2, Qwen2, Qwen3, Gemma 3) used by constrained decoding.

Why: on a small CPU a 135M-parameter forward of one token is dominated by two costs that have nothing to do
with the model's arithmetic — the framework's per-call Python work (masks, cache objects, hooks: ~15 ms of
~50 ms measured here) and streaming 424 MB of fp32 weights from memory. This module runs the same
computation with plain tensor ops on the model's own weights and its own KV cache (preallocated tensors;
cropping is moving a length), and on the CPU stores the linear weights as fp16 in fbgemm's packed format
(computation stays fp32; half the bytes to stream). Numbers: ``bench/latency.py``.

    fast = FastLM.maybe(model)          # None when the architecture or device is not supported
    cache = fast.new_cache()
    hidden = fast.forward(ids, cache)   # final-norm hidden states, shape (T, H); the cache grows by T
    hidden = fast.forward(ids, cache, position_ids=pos, mask=additive_mask)   # tree tokens

The result equals the Hugging Face forward up to float rounding (tests compare both, fp32 exactly and fp16
weights within tolerance). Supported: ``model_type`` llama, qwen2, qwen3 with SiLU MLPs, full attention
(no sliding window) and any RoPE whose frequencies the model's own rotary module holds; and gemma3_text
(Gemma 3: scaled embeddings, (1 + w) RMS norms around attention and MLP, q/k norms, GELU-tanh MLP, sliding-window
layers with their own RoPE base, no soft-capping). Anything else — and a PEFT-wrapped model — keeps the Hugging
Face forward.

The settings ``fast_lm=false`` (no lean forward) and ``cpu_weights=fp32`` (fp32 weights on the CPU) reach here
through `ComputeConfig` (inference/config.py): `LoadedModel` asks for no FastLM, or for `fp16_weights=False`.
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from .config import ComputeConfig

log = logging.getLogger(__name__)

SUPPORTED_TYPES = ("llama", "qwen2", "qwen3", "gemma3_text")


def _gemma(cfg) -> bool:
    return getattr(cfg, "model_type", None) == "gemma3_text"


def unsupported_reason(model) -> str | None:
    """Why the lean forward cannot run this model (None: it can)."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED_TYPES:
        return f"model type {getattr(cfg, 'model_type', None)!r} is not one of {', '.join(SUPPORTED_TYPES)}"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(inner, "rotary_emb"):
        return "not a plain Hugging Face causal LM (wrapped, e.g. by PEFT)"
    if _gemma(cfg):
        if getattr(cfg, "hidden_activation", None) != "gelu_pytorch_tanh":
            return f"activation {getattr(cfg, 'hidden_activation', None)!r}"
        if getattr(cfg, "attn_logit_softcapping", None) or getattr(cfg, "final_logit_softcapping", None):
            return "logit soft-capping"
        if getattr(cfg, "use_bidirectional_attention", False):
            return "bidirectional attention"
        types = getattr(inner.rotary_emb, "rope_type", {})
        if any(t != "default" for t in (types.values() if isinstance(types, dict) else [types])):
            return f"rope types {types!r}"
    else:
        if getattr(cfg, "hidden_act", "silu") != "silu":
            return f"activation {cfg.hidden_act!r}"
        if getattr(cfg, "use_sliding_window", False) or \
                "sliding_attention" in (getattr(cfg, "layer_types", None) or ()):
            return "sliding-window attention"
        rope_type = getattr(inner.rotary_emb, "rope_type", "default")
        if rope_type in ("dynamic", "longrope"):  # frequencies that change with the sequence length
            return f"rope type {rope_type!r}"
    if getattr(cfg, "mlp_bias", False):
        return "MLP biases"
    for layer in inner.layers:
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            if not isinstance(getattr(layer.self_attn, name, None), torch.nn.Linear):
                return f"layer {name} is not a plain Linear (adapter or quantized layer)"
        for name in ("gate_proj", "up_proj", "down_proj"):
            if not isinstance(getattr(layer.mlp, name, None), torch.nn.Linear):
                return f"layer {name} is not a plain Linear (adapter or quantized layer)"
    return None


def fp16_packed_available() -> bool:
    try:
        w = torch.zeros(8, 8)
        torch.ops.quantized.linear_dynamic_fp16(torch.zeros(1, 8), torch.ops.quantized.linear_prepack_fp16(w, None))
        return True
    except Exception:  # a torch build without fbgemm
        return False


def _release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc's malloc_trim; a no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _Linear:
    """y = x W^T (+ b), with W either kept as is or packed as fp16 for fbgemm (CPU)."""

    __slots__ = ("b", "out", "packed", "w")

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor | None], fp16: bool):
        w = weights[0] if len(weights) == 1 else torch.cat(weights, 0)
        b = None
        if any(x is not None for x in biases):
            b = torch.cat([x if x is not None else torch.zeros(wi.shape[0], dtype=wi.dtype, device=wi.device)
                           for x, wi in zip(biases, weights)])
        self.out = w.shape[0]
        self.packed = None
        if fp16 and bool(torch.isfinite(w.half()).all()):
            self.packed = torch.ops.quantized.linear_prepack_fp16(w.float().contiguous(),
                                                                  None if b is None else b.float().contiguous())
            self.w, self.b = None, None
        else:
            self.w, self.b = w, b

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.quantized.linear_dynamic_fp16(x, self.packed)
        return F.linear(x, self.w, self.b)


class KVCache:
    """Keys and values of every layer in preallocated tensors, (layers, kv heads, capacity, head dim).
    ``crop`` is moving the length; copies take only the used part. Quacks like the Hugging Face cache for
    what the decoder uses (get_seq_length, crop)."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, dtype, device, capacity: int = 256):
        self.shape = (layers, kv_heads, head_dim)
        self.dtype, self.device = dtype, device
        self.n = 0
        self.k = torch.empty((layers, kv_heads, capacity, head_dim), dtype=dtype, device=device)
        self.v = torch.empty_like(self.k)
        self.pos = torch.empty(capacity, dtype=torch.long, device=device)  # each entry's position (sliding windows)

    def get_seq_length(self) -> int:
        return self.n

    def crop(self, m: int) -> None:
        """Hugging Face semantics: a negative m removes -m tokens, a non-negative m keeps m tokens."""
        self.n = max(0, self.n + m) if m < 0 else min(self.n, m)

    def reserve(self, need: int) -> None:
        cap = self.k.shape[2]
        if need <= cap:
            return
        new = max(need, 2 * cap)
        for name in ("k", "v"):
            old = getattr(self, name)
            t = torch.empty((old.shape[0], old.shape[1], new, old.shape[3]), dtype=self.dtype, device=self.device)
            t[:, :, :self.n] = old[:, :, :self.n]
            setattr(self, name, t)
        pos = torch.empty(new, dtype=torch.long, device=self.device)
        pos[:self.n] = self.pos[:self.n]
        self.pos = pos

    def __deepcopy__(self, memo):
        c = KVCache(*self.shape, self.dtype, self.device, capacity=self.n + 64)
        c.k[:, :, :self.n] = self.k[:, :, :self.n]
        c.v[:, :, :self.n] = self.v[:, :, :self.n]
        c.pos[:self.n] = self.pos[:self.n]
        c.n = self.n
        return c


class FastLM:
    """The lean forward of one model (see the module doc). Thread-safe as long as each call has its own cache."""

    def __init__(self, model, fp16_weights: bool | None = None):
        why = unsupported_reason(model)
        if why:
            raise ValueError(f"lean forward unsupported: {why}")
        cfg = model.config
        inner = model.model
        self.device = model.get_input_embeddings().weight.device
        self.dtype = model.get_input_embeddings().weight.dtype
        if fp16_weights is None:
            fp16_weights = self.device.type == "cpu" and self.dtype == torch.float32 and fp16_packed_available()
        self.fp16_weights = bool(fp16_weights)
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.gemma = _gemma(cfg)
        self.scale = (cfg.query_pre_attn_scalar ** -0.5) if self.gemma else 1.0 / math.sqrt(self.head_dim)
        self.embed = model.get_input_embeddings().weight
        self.embed_scale = float(cfg.hidden_size ** 0.5) if self.gemma else 1.0
        rot = inner.rotary_emb
        if self.gemma:  # one RoPE per layer type (sliding layers use a lower base)
            self.rope = {t: (getattr(rot, f"{t}_inv_freq").detach().float().to(self.device),
                             float(getattr(rot, f"{t}_attention_scaling", 1.0) or 1.0)) for t in set(cfg.layer_types)}
            self.layer_types = list(cfg.layer_types)
            self.window = int(cfg.sliding_window or 0)
        else:
            self.rope = {"": (rot.inv_freq.detach().float().to(self.device),
                              float(getattr(rot, "attention_scaling", 1.0) or 1.0))}
            self.layer_types = [""] * len(inner.layers)
            self.window = 0
        self.final_norm = self._norm_of(inner.norm)
        self.layers = []
        for layer in inner.layers:
            at, mlp = layer.self_attn, layer.mlp
            self.layers.append({
                "in_norm": self._norm_of(layer.input_layernorm),
                "post_norm": self._norm_of(getattr(layer, "pre_feedforward_layernorm", None) or
                                           layer.post_attention_layernorm),  # before the MLP
                "attn_out_norm": self._norm_of(layer.post_attention_layernorm) if self.gemma else None,
                "mlp_out_norm": self._norm_of(layer.post_feedforward_layernorm) if self.gemma else None,
                "qkv": _Linear([at.q_proj.weight, at.k_proj.weight, at.v_proj.weight],
                               [at.q_proj.bias, at.k_proj.bias, at.v_proj.bias], self.fp16_weights),
                "o": _Linear([at.o_proj.weight], [at.o_proj.bias], self.fp16_weights),
                "gate_up": _Linear([mlp.gate_proj.weight, mlp.up_proj.weight], [None, None], self.fp16_weights),
                "down": _Linear([mlp.down_proj.weight], [None], self.fp16_weights),
                "q_norm": self._norm_of(at.q_norm) if hasattr(at, "q_norm") else None,
                "k_norm": self._norm_of(at.k_norm) if hasattr(at, "k_norm") else None,
            })
        self.inter = self.layers[0]["gate_up"].out // 2
        _release_freed_memory()  # packing leaves ~100 MB of freed fp32 temporaries in the allocator
        self.q_size = self.heads * self.head_dim
        self.kv_size = self.kv_heads * self.head_dim

    @classmethod
    def maybe(cls, model, fp16_weights: bool | None = None) -> FastLM | None:
        """The lean forward for `model`, or None (unsupported). `fp16_weights`: as for the constructor.
        The weights are read (and, on the CPU, packed) now: a model changed afterwards needs a new FastLM."""
        why = unsupported_reason(model)
        if why:
            log.info("lean forward not used: %s", why)
            return None
        dev = model.get_input_embeddings().weight.device
        if dev.type != "cpu":  # written for the CPU's overheads; GPUs keep the framework's fused kernels
            return None
        try:
            return cls(model, fp16_weights)
        except Exception as e:  # never let the fast path break serving
            log.warning("lean forward unavailable: %s", e)
            return None

    def new_cache(self, capacity: int = 256) -> KVCache:
        return KVCache(len(self.layers), self.kv_heads, self.head_dim, self.dtype, self.device, capacity)

    def _norm_of(self, norm) -> tuple[torch.Tensor, float]:
        """(weight, eps) of an RMS norm as F.rms_norm takes it: Gemma's norms scale by (1 + w)."""
        if self.gemma:
            return (1.0 + norm.weight.detach().float()).to(norm.weight.dtype), norm.eps
        return norm.weight, norm.variance_epsilon

    @staticmethod
    def _rms(x: torch.Tensor, norm) -> torch.Tensor:
        w, eps = norm
        return F.rms_norm(x, (x.shape[-1],), w, eps)

    def _rope(self, pos: torch.Tensor, kind: str = ""):
        """cos and a signed sin for `roll`: rotate_half(x) * sin == roll(x, half) * cat(-sin1, sin2)."""
        inv_freq, scale = self.rope[kind]
        freqs = pos[:, None].float() * inv_freq[None, :]
        cos = torch.cat((freqs, freqs), dim=-1).cos() * scale
        sin = freqs.sin() * scale
        return cos[:, None].to(self.dtype), torch.cat((-sin, sin), dim=-1)[:, None].to(self.dtype)

    @torch.inference_mode()
    def forward(self, ids, cache: KVCache, position_ids=None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run `ids` (T tokens; a list, or a (T,) / (1, T) tensor) after `cache`, appending them to it.
        position_ids: (T,) or (1, T), default cache length + 0..T-1; mask: additive, (T, L) or (1, 1, T, L)
        with L = cache length + T, default causal. Returns the final-norm hidden states, (T, H)."""
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.device).reshape(-1)
        T = ids.shape[0]
        n = cache.n
        L = n + T
        pos = (torch.arange(n, L, device=self.device) if position_ids is None
               else torch.as_tensor(position_ids, device=self.device).reshape(-1))
        if mask is None:
            if T > 1:
                m = torch.full((T, L), float("-inf"), dtype=self.dtype, device=self.device)
                mask = torch.triu(m, diagonal=n + 1)
        else:
            mask = mask.reshape(T, L).to(self.dtype)
        ropes = {kind: self._rope(pos, kind) for kind in self.rope}  # (T, 1, hd) each
        cache.reserve(L)
        cache.pos[n:L] = pos
        local_mask = mask
        if self.window and L > self.window:  # sliding layers: keys at least `window` positions back are out
            far = (pos[:, None] - cache.pos[None, :L]) >= self.window
            base = mask if mask is not None else torch.zeros((T, L), dtype=self.dtype, device=self.device)
            local_mask = base.masked_fill(far, float("-inf"))
        x = self.embed[ids]  # (T, H)
        if self.gemma:
            x = x * self.embed_scale
        nh, kvh, hd = self.heads, self.kv_heads, self.head_dim
        half = hd // 2
        for li, p in enumerate(self.layers):
            kind = self.layer_types[li]
            cos, sin = ropes[kind]
            qkv = p["qkv"](self._rms(x, p["in_norm"])).view(T, nh + 2 * kvh, hd)
            if p["q_norm"] is not None:
                qk = torch.cat((self._rms(qkv[:, :nh], p["q_norm"]), self._rms(qkv[:, nh:nh + kvh], p["k_norm"])), 1)
            else:
                qk = qkv[:, :nh + kvh]
            qk = (qk * cos + torch.roll(qk, half, -1) * sin).transpose(0, 1)  # (nh + kvh, T, hd), rotated
            cache.k[li, :, n:L] = qk[nh:]
            cache.v[li, :, n:L] = qkv[:, nh + kvh:].transpose(0, 1)
            o = F.scaled_dot_product_attention(qk[None, :nh], cache.k[li, None, :, :L], cache.v[li, None, :, :L],
                                               attn_mask=local_mask if kind == "sliding_attention" else mask,
                                               scale=self.scale, enable_gqa=True)
            o = p["o"](o[0].transpose(0, 1).reshape(T, nh * hd))
            x = x + (self._rms(o, p["attn_out_norm"]) if self.gemma else o)
            gu = p["gate_up"](self._rms(x, p["post_norm"]))
            if self.gemma:
                m = p["down"](F.gelu(gu[:, :self.inter], approximate="tanh") * gu[:, self.inter:])
                x = x + self._rms(m, p["mlp_out_norm"])
            else:
                x = x + p["down"](F.silu(gu[:, :self.inter]) * gu[:, self.inter:])
        cache.n = L
        return self._rms(x, self.final_norm)


def for_compute(model, compute: ComputeConfig) -> FastLM | bool:
    """What a ConstrainedDecoder's `fast=` should be under `compute`: a FastLM, or False (turned off by
    fast_lm=false, or unsupported)."""
    return (FastLM.maybe(model, compute.fp16_weights) if compute.fast_lm else None) or False
