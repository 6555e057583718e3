"""Tests for inference.models: the base-model registry, the GGUF cache, the tiny random model."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from inference.errors import ModelNotFoundError
from inference.models import DEFAULT_MODEL, cached_path, load_base, load_tokenizer, resolve, tiny_random_model

# The de-quantized smollm2 is cached across test runs (the first conversion takes ~30-70 s).
CACHE = Path(os.environ.get("MODMATCH_TEST_CACHE", Path.home() / ".cache" / "modmatch-tests"))


def test_resolve_names():
    spec = resolve(DEFAULT_MODEL)
    assert spec.kind == "gguf" and spec.gguf_file.endswith(".gguf") and Path(spec.source, spec.gguf_file).is_file()
    assert resolve(None).name == DEFAULT_MODEL
    assert resolve("qwen3-0.6b").source == "Qwen/Qwen3-0.6B"
    assert resolve("Qwen/Qwen3-4B").kind == "hub"


@pytest.mark.parametrize("name", ["no-such-model", "./missing/folder", "/definitely/not/here", "a/b/c"])
def test_unknown_names_raise(name):
    with pytest.raises(ModelNotFoundError, match="unknown model|not a model"):
        resolve(name)


def test_folder_without_config_raises(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve(str(tmp_path))


def test_load_default_caches_safetensors_and_is_trainable():
    model, tok = load_base(DEFAULT_MODEL, CACHE)
    cache = cached_path(resolve(DEFAULT_MODEL), CACHE)
    assert (cache / "config.json").is_file() and list(cache.glob("*.safetensors"))
    assert getattr(model, "hf_quantizer", None) is None
    assert getattr(model.config, "quantization_config", None) is None
    assert len(tok) == model.config.vocab_size == 49152
    assert tok.pad_token_id is not None
    # a local folder resolves and loads the same way
    assert resolve(str(cache)).kind == "local"


def test_tiny_random_model_shares_the_vocabulary():
    tok = load_tokenizer(DEFAULT_MODEL, CACHE)
    model, tok2 = tiny_random_model(tok)
    assert model.config.vocab_size == len(tok) and model.config.num_hidden_layers == 2
    assert model.config.hidden_size == 64
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
