"""A sentence encoder for BERT-family sentence-transformers folders in plain numpy (no torch import).

Why: `modmatch ask` from the command line spent ~6 of its ~9 seconds importing sentence-transformers and
torch just to embed one query. This module reads the same folder (``config.json``, ``model.safetensors``,
``tokenizer.json``, ``modules.json`` / ``1_Pooling``, ``sentence_bert_config.json``) and computes the same
embedding — BERT encoder, mean pooling over the attention mask, L2 normalisation — with numpy and the Rust
`tokenizers` library; the result equals sentence-transformers' to float rounding (tested).

    enc = NumpyBert.maybe("/path/to/all-MiniLM-L6-v2")    # None when the folder is not such a model
    vecs = enc.encode(["crash in the vulkan conv shader"])   # (n, 384) float32, unit length
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BATCH = 32


def unsupported_reason(folder: str | Path) -> str | None:
    """Why `folder` cannot be encoded here (None: it can)."""
    p = Path(folder)
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (p / f).is_file():
            return f"no {f}"
    try:
        cfg = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"unreadable config.json: {e}"
    if cfg.get("model_type") != "bert" or cfg.get("hidden_act", "gelu") != "gelu":
        return f"model type {cfg.get('model_type')!r} / activation {cfg.get('hidden_act')!r}"
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        return "relative position embeddings"
    mods = p / "modules.json"
    if mods.is_file():
        try:
            kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in json.loads(mods.read_text(encoding="utf-8"))]
        except (OSError, ValueError, AttributeError) as e:
            return f"unreadable modules.json: {e}"
        if kinds not in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"]):
            return f"pipeline {kinds}"
    pool = p / "1_Pooling" / "config.json"
    if pool.is_file():
        try:
            pc = json.loads(pool.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            return f"unreadable pooling config: {e}"
        others = [k for k, v in pc.items() if k.startswith("pooling_mode") and v and k != "pooling_mode_mean_tokens"]
        if not pc.get("pooling_mode_mean_tokens") or others:
            return "pooling other than mean"
    return None


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


# erf(z) = 1 - t·(a1 + t·(a2 + ...))·exp(-z²), t = 1 / (1 + p·z), for z >= 0 (Abramowitz & Stegun 7.1.26: absolute
# error below 1.5e-7, under float32's rounding here)
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(np.float32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592))


def _gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU BERT uses, in float32 numpy operations done in place: 3x faster than scipy's erf on a
    layer's activations and within 5e-7 of it (embedding 1,500 of pytest's change subjects: 17.8 -> 15.2 s)."""
    z = np.abs(x) * np.float32(1.0 / math.sqrt(2.0))
    t = np.float32(1.0) / (np.float32(1.0) + _ERF_P * z)
    y = _ERF_A[0] * t
    for a in _ERF_A[1:]:
        y += a
        y *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    y *= z  # 1 - erf(|x| / sqrt 2)
    np.subtract(np.float32(1.0), y, out=y)
    np.copysign(y, x, out=y)  # erf(x / sqrt 2)
    y += np.float32(1.0)
    y *= x
    y *= np.float32(0.5)
    return y


class NumpyBert:
    def __init__(self, folder: str | Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        why = unsupported_reason(folder)
        if why:
            raise ValueError(f"not a BERT sentence-transformers folder ({why}): {folder}")
        p = Path(folder)
        cfg = json.loads((p / "config.json").read_text(encoding="utf-8"))
        sb = p / "sentence_bert_config.json"
        st = json.loads(sb.read_text(encoding="utf-8")) if sb.is_file() else {}
        self.max_len = int(st.get("max_seq_length") or cfg.get("max_position_embeddings", 512))
        self.lower = bool(st.get("do_lower_case", False))
        mods = p / "modules.json"
        self.normalize = (not mods.is_file()) or "Normalize" in mods.read_text(encoding="utf-8")
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        w = load_file(str(p / "model.safetensors"))
        w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in w.items()}
        e = "embeddings."
        self.word, self.pos = w[e + "word_embeddings.weight"], w[e + "position_embeddings.weight"]
        self.type0 = w[e + "token_type_embeddings.weight"][0]
        self.emb_ln = (w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"])
        self.layers = []
        for i in range(int(cfg["num_hidden_layers"])):
            L = f"encoder.layer.{i}."
            a = L + "attention."
            self.layers.append({
                "qkv_w": np.concatenate([w[a + f"self.{n}.weight"] for n in ("query", "key", "value")]).T.copy(),
                "qkv_b": np.concatenate([w[a + f"self.{n}.bias"] for n in ("query", "key", "value")]),
                "o_w": w[a + "output.dense.weight"].T.copy(), "o_b": w[a + "output.dense.bias"],
                "ln1": (w[a + "output.LayerNorm.weight"], w[a + "output.LayerNorm.bias"]),
                "i_w": w[L + "intermediate.dense.weight"].T.copy(), "i_b": w[L + "intermediate.dense.bias"],
                "f_w": w[L + "output.dense.weight"].T.copy(), "f_b": w[L + "output.dense.bias"],
                "ln2": (w[L + "output.LayerNorm.weight"], w[L + "output.LayerNorm.bias"]),
            })
        self.tok = Tokenizer.from_file(str(p / "tokenizer.json"))
        self.tok.enable_truncation(self.max_len)
        self.tok.no_padding()
        self.dim = self.word.shape[1]

    @classmethod
    def maybe(cls, folder: str | Path) -> "NumpyBert | None":
        why = unsupported_reason(folder)
        if why:
            log.info("numpy encoder not used for %s: %s", folder, why)
            return None
        try:
            return cls(folder)
        except Exception as e:  # a broken folder: the caller falls back to sentence-transformers
            log.warning("numpy encoder unavailable for %s: %s", folder, e)
            return None

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """ids, mask: (B, T) → mean-pooled (B, H)."""
        B, T = ids.shape
        x = self.word[ids] + self.pos[:T][None] + self.type0
        x = _layer_norm(x, *self.emb_ln, self.eps)
        H = x.shape[-1]
        nh, hd = self.heads, H // self.heads
        bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
        for p in self.layers:
            qkv = x @ p["qkv_w"] + p["qkv_b"]  # (B, T, 3H)
            q, k, v = (qkv[..., i * H:(i + 1) * H].reshape(B, T, nh, hd).transpose(0, 2, 1, 3) for i in range(3))
            s = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(hd) + bias  # (B, nh, T, T)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            o = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, H)
            x = _layer_norm(x + o @ p["o_w"] + p["o_b"], *p["ln1"], self.eps)
            f = _gelu(x @ p["i_w"] + p["i_b"]) @ p["f_w"] + p["f_b"]
            x = _layer_norm(x + f, *p["ln2"], self.eps)
        m = mask[..., None].astype(np.float32)
        return (x * m).sum(1) / np.clip(m.sum(1), 1e-9, None)

    def encode(self, texts: list[str], batch_size: int = BATCH, normalize_embeddings: bool | None = None,
               show_progress_bar: bool = False) -> np.ndarray:
        """(len(texts), H) float32 sentence embeddings, unit length when the model's pipeline normalises
        (or `normalize_embeddings`); the signature follows SentenceTransformer.encode."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        texts = [t.lower() if self.lower else t for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            encs = self.tok.encode_batch([texts[i] for i in idx])
            T = max(len(e.ids) for e in encs)
            ids = np.zeros((len(idx), T), dtype=np.int64)
            mask = np.zeros((len(idx), T), dtype=np.int64)
            for r, e in enumerate(encs):
                ids[r, :len(e.ids)] = e.ids
                mask[r, :len(e.ids)] = 1
            out[idx] = self._forward(ids, mask)
        if self.normalize or normalize_embeddings:
            out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out
