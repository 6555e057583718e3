"""The lean forward (inference/fastlm.py) computes what the transformers forward computes.

Tiny random models of each supported family (Llama, Qwen2 with q/k/v biases, Qwen3 with q/k norms and an
explicit head dim, Gemma 3 with its extra norms and a sliding window shorter than the prompts), compared hidden state by hidden state: a prompt in one go and in pieces, tree tokens
with their own positions and mask, a cache grown past its capacity; then whole rankings through the
decoder, and the real SmolLM2-135M with fp16-packed weights.
"""
from __future__ import annotations

import copy
import functools

import pytest
import torch
from test_decode import IDS, shared_model, shared_tokenizer

from inference.decode import ConstrainedDecoder, _Tree
from inference.config import ComputeConfig
from inference.fastlm import FastLM, KVCache, for_compute, fp16_packed_available, unsupported_reason
from inference.prompt import build_prompt
from inference.trie import IdTrie


def _tiny(family: str, seed: int = 0, window: int = 16):
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
        Qwen3Config,
        Qwen3ForCausalLM,
    )

    common = dict(vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True)
    torch.manual_seed(seed)
    if family == "llama":
        m = LlamaForCausalLM(LlamaConfig(**common))
    elif family == "qwen2":
        m = Qwen2ForCausalLM(Qwen2Config(**common, use_sliding_window=False))
        for layer in m.model.layers:  # make the q/k/v biases matter
            for p in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                torch.nn.init.normal_(p.bias, std=0.5)
    elif family == "gemma3":
        from transformers import Gemma3ForCausalLM, Gemma3TextConfig

        m = Gemma3ForCausalLM(Gemma3TextConfig(**common, head_dim=32, query_pre_attn_scalar=24, sliding_window=window,
                                               layer_types=["sliding_attention", "full_attention"],
                                               rope_parameters={"full_attention": {"rope_theta": 1e6,
                                                                                   "rope_type": "default"},
                                                                "sliding_attention": {"rope_theta": 1e4,
                                                                                      "rope_type": "default"}}))
        for name, prm in m.named_parameters():  # Gemma's norms start at zero (scale 1 + w): make them matter
            if "norm" in name:
                torch.nn.init.normal_(prm, mean=0.0, std=0.3)
    else:
        m = Qwen3ForCausalLM(Qwen3Config(**common, head_dim=24, use_sliding_window=False))
        for layer in m.model.layers:  # non-trivial q/k norm weights
            torch.nn.init.normal_(layer.self_attn.q_norm.weight, mean=1.0, std=0.3)
            torch.nn.init.normal_(layer.self_attn.k_norm.weight, mean=1.0, std=0.3)
    return m.eval()


def _hf_hidden(model, ids, mask=None, pos=None, past=None):
    kw = {}
    if mask is not None:
        kw["attention_mask"] = mask
    if pos is not None:
        kw["position_ids"] = pos
    with torch.inference_mode():
        out = model.model(input_ids=torch.tensor([ids]), use_cache=True, cache=past, **kw)
    return out.last_hidden_state[0], out.past_key_values


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "gemma3"])
def test_prompt_and_pieces_equal_transformers(family):
    model = _tiny(family)
    assert unsupported_reason(model) is None
    fast = FastLM(model, fp16_weights=False)
    ids = torch.randint(3, 500, (40,), generator=torch.Generator().manual_seed(1)).tolist()
    ref, _ = _hf_hidden(model, ids)
    whole = fast.forward(ids, fast.new_cache())
    torch.testing.assert_close(whole, ref, atol=1e-5, rtol=1e-4)
    cache = fast.new_cache(capacity=8)  # grows three times on the way
    parts = [fast.forward(ids[:17], cache), fast.forward(ids[17:18], cache), fast.forward(ids[18:], cache)]
    assert cache.get_seq_length() == 40 and cache.k.shape[2] >= 40
    torch.testing.assert_close(torch.cat(parts), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma3"])
def test_tree_tokens_equal_transformers(family):
    """Tree tokens (own positions, ancestor-only mask) after a prompt, as the decoder feeds them."""
    model = _tiny(family, seed=3, window=64)  # transformers' own sliding cache keeps no more than the window
    fast = FastLM(model, fp16_weights=False)
    prompt = list(range(5, 25))
    _, past = _hf_hidden(model, prompt)
    cache = fast.new_cache()
    fast.forward(prompt, cache)
    tree = _Tree(len(prompt), "cpu", torch.float32)
    runs = [(-1, [40, 41, 42]), (-1, [50]), (0, [60, 61])]  # the third run hangs under the first run's first token
    ids, pos, mask, _ = tree.add(runs)
    ref, _ = _hf_hidden(model, ids[0].tolist(), mask=mask, pos=pos, past=past)
    got = fast.forward(ids[0], cache, position_ids=pos, mask=mask)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    # each tree token equals running its own path after the prompt
    for path, at in (([40, 41, 42], 2), ([50], 3), ([40, 60, 61], 5)):
        seq, _ = _hf_hidden(model, prompt + path)
        torch.testing.assert_close(got[at], seq[-1], atol=1e-5, rtol=1e-4)


def test_cache_crop_copy_and_hf_semantics():
    c = KVCache(2, 1, 4, torch.float32, "cpu", capacity=4)
    c.reserve(10)
    c.k[:, :, :10] = torch.arange(10.0)[None, None, :, None]
    c.n = 10
    d = copy.deepcopy(c)
    c.crop(-3)
    assert c.get_seq_length() == 7 and d.get_seq_length() == 10
    c.crop(5)  # non-negative: keep 5
    assert c.get_seq_length() == 5
    c.crop(-50)
    assert c.get_seq_length() == 0
    d.k[0, 0, 0, 0] = 99.0  # the copy owns its tensors
    assert c.k[0, 0, 0, 0] == 0.0 and float(d.k[1, 0, 9, 0]) == 9.0


@pytest.mark.skipif(not fp16_packed_available(), reason="this torch build has no fbgemm fp16 kernels")
def test_fp16_packed_weights_stay_close():
    model = _tiny("llama", seed=5)
    ids = list(range(3, 60))
    ref, _ = _hf_hidden(model, ids)
    fast = FastLM(model, fp16_weights=True)
    assert fast.fp16_weights
    got = fast.forward(ids, fast.new_cache())
    assert float((got - ref).abs().max()) < 2e-2 * float(ref.abs().max())


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft's own read, as in add_lora
def test_unsupported_models_keep_the_transformers_forward():
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=100))
    assert "gpt2" in unsupported_reason(gpt2) and FastLM.maybe(gpt2) is None
    with pytest.raises(ValueError, match="unsupported"):
        FastLM(gpt2)
    from transformers import LlamaConfig, LlamaForCausalLM

    dyn = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2, rope_scaling={"rope_type": "dynamic", "factor": 2.0}))
    assert "dynamic" in unsupported_reason(dyn)  # frequencies that change with the length: not reproduced
    peft = get_peft_model(_tiny("llama"), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert unsupported_reason(peft) is not None and FastLM.maybe(peft) is None
    model, tok = shared_model(0)
    assert FastLM.maybe(model) is not None
    off = for_compute(model, ComputeConfig(fast_lm=False))  # the setting fast_lm=false
    assert off is False and ConstrainedDecoder(model, tok, fast=off).fast is None
    assert for_compute(model, ComputeConfig(cpu_weights="fp32")).fp16_weights is False  # cpu_weights=fp32


@pytest.mark.parametrize("method,reasoning", [("beam", False), ("score", False), ("beam", True)])
def test_decoder_rankings_equal_with_and_without_the_lean_forward(method, reasoning):
    model, tok = shared_model(1)
    slow = ConstrainedDecoder(model, tok, fast=False)
    fast = ConstrainedDecoder(model, tok, fast=FastLM(model, fp16_weights=False))
    trie = IdTrie(IDS, tok)
    for q in ("crash in the vulkan conv shader", "docs typo"):
        p = build_prompt(q, "ncnn")
        a = slow.rank(p, trie, 5, method=method, reasoning=reasoning)
        b = fast.rank(p, trie, 5, method=method, reasoning=reasoning)
        assert [x.module for x in a.ranked] == [x.module for x in b.ranked]
        assert a.thinking == b.thinking
        for x, y in zip(a.ranked, b.ranked):
            assert x.logprob == pytest.approx(y.logprob, abs=1e-4)


@functools.lru_cache(maxsize=1)
def _real():
    from inference.models import load_base

    model, tok = load_base("smollm2-135m")
    return model.eval(), tok


@pytest.mark.skipif(not fp16_packed_available(), reason="this torch build has no fbgemm fp16 kernels")
def test_real_model_fp16_weights_rank_like_fp32():
    """SmolLM2-135M (its GGUF is 4-bit, so fp16 holds its weights almost exactly): the served
    fp16-packed lean forward ranks like the fp32 transformers forward."""
    model, tok = _real()
    slow = ConstrainedDecoder(model, tok, fast=False)
    fast = ConstrainedDecoder(model, tok)
    assert fast.fast is not None and fast.fast.fp16_weights
    trie = IdTrie(IDS, shared_tokenizer())
    for q in ("crash in the vulkan conv shader", "python bindings fail to import", "update the docs"):
        p = build_prompt(q, "ncnn")
        a = slow.rank(p, trie, 5, method="beam")
        b = fast.rank(p, trie, 5, method="beam")
        assert [x.module for x in a.ranked] == [x.module for x in b.ranked]
        for x, y in zip(a.ranked, b.ranked):
            assert x.prob == pytest.approx(y.prob, abs=5e-3)
