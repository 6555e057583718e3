"""Constrained decoding over the module-ID trie: the model can only ever name real module IDs.

Two ways to rank the IDs of a trie after a prompt (both give the same numbers for the IDs they return):

- ``beam``: beam search that walks the trie token by token (one batched forward per step, a few
  beams wide), with an exact early stop: scores only fall as a path grows, so the search ends as soon
  as no live beam can beat the k-th finished ID. Cost grows with the *depth* of the trie, not its size.
- ``score``: score every ID in batched passes that share the prompt's KV cache (the prompt runs once;
  its cache is expanded to a batch of candidate sequences; only the positions whose next token
  matters are projected, and only onto the trie's allowed tokens). Cost grows with the *number* of IDs.

Probabilities are the constrained-decoding distribution: at every trie node the model's next-token
distribution restricted to the allowed tokens and renormalised (the terminal ``;``/``\\n`` tokens are
allowed tokens too, so ``src/layer`` and ``src/layer/vulkan`` compete properly). Over all IDs of a trie
they sum to 1; a top-k sums to at most 1.

``auto`` (the default) scores when the trie is small (a hybrid's candidate list) and beam-searches
otherwise: on the CPU the scoring pass costs roughly one prompt-length forward per ~100 trie tokens,
while a beam step costs one small forward; see bench/latency.py for the measurements.

Reasoning mode writes a short thinking line first (greedy, at most MAX_THINKING_TOKENS, stopping at a
newline), then decodes the IDs under the trie after ``modules:``, as in the completion format.
"""
from __future__ import annotations

import copy
import inspect
import math
import time
from dataclasses import dataclass, field

import torch

from .prompt import MAX_THINKING_TOKENS, MODULES_TAG, THINKING_TAG
from .trie import IdTrie, Node

METHODS = ("auto", "beam", "score")
AUTO_SCORE_MAX_IDS = 32  # "auto" scores tries with at most this many IDs, beam-searches larger ones
DEFAULT_BEAM_WIDTH = 5


@dataclass
class Ranked:
    module: str
    prob: float  # constrained-decoding probability, in [0, 1]
    logprob: float


@dataclass
class DecodeResult:
    ranked: list[Ranked] = field(default_factory=list)
    thinking: str = ""
    method: str = ""
    seconds: float = 0.0
    prompt_tokens: int = 0
    explored: int = 0  # IDs whose probability was computed


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


class ConstrainedDecoder:
    """Wraps a causal LM and its tokenizer; thread-safe for concurrent calls (no shared state)."""

    def __init__(self, model, tokenizer, *, max_cache_tokens: int = 8192, auto_score_max_ids: int = AUTO_SCORE_MAX_IDS):
        self.model = model
        self.tokenizer = tokenizer
        self.max_cache_tokens = max_cache_tokens
        self.auto_score_max_ids = auto_score_max_ids
        self.base = model.base_model if getattr(model, "base_model", None) is not model else model
        head = model.get_output_embeddings()
        self.head_w = head.weight  # (V, H)
        self.head_b = getattr(head, "bias", None)
        params = inspect.signature(self.base.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self.eos = tokenizer.eos_token_id

    @property
    def device(self) -> torch.device:
        return self.head_w.device

    # --- model plumbing --------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _forward(self, ids: torch.Tensor, cache=None):
        out = self.base(input_ids=ids.to(self.device), use_cache=True, **{self._cache_kw: cache})
        new_cache = out.get("cache") if hasattr(out, "get") else None
        if new_cache is None:
            new_cache = out.past_key_values
        return out.last_hidden_state, new_cache

    def prefill(self, ids: list[int]):
        """(cache, hidden state of the last prompt token)."""
        hid, cache = self._forward(torch.tensor([ids], dtype=torch.long))
        return cache, hid[0, -1]

    def _extend(self, cache, cached: list[int], ids: list[int]):
        """Reuse the cache of `cached` tokens for `ids` (crop to their common prefix, feed the rest)."""
        n = 0
        for a, b in zip(cached, ids):
            if a != b:
                break
            n += 1
        n = min(n, len(ids) - 1)
        if n <= 0:
            return self.prefill(ids)
        if n < len(cached):
            cache.crop(n - len(cached))
        hid, cache = self._forward(torch.tensor([ids[n:]], dtype=torch.long), cache)
        return cache, hid[0, -1]

    def _logits(self, h: torch.Tensor, toks: torch.Tensor | None = None) -> torch.Tensor:
        w = self.head_w if toks is None else self.head_w[toks]
        out = h @ w.T
        if self.head_b is not None:
            out = out + (self.head_b if toks is None else self.head_b[toks])
        return out.float()

    def _child_logprobs(self, hs: torch.Tensor, nodes: list[Node]) -> list[dict[int, float]]:
        """For each (hidden state, trie node): log-probabilities of the node's children, renormalised
        over those children. Projects only onto the allowed tokens (no full-vocabulary head)."""
        toks, rows, counts = [], [], []
        for i, n in enumerate(nodes):
            ch = list(n.children)
            toks.extend(ch)
            rows.extend([i] * len(ch))
            counts.append(len(ch))
        if not toks:
            return [{} for _ in nodes]
        t = torch.tensor(toks, dtype=torch.long, device=hs.device)
        r = torch.tensor(rows, dtype=torch.long, device=hs.device)
        logit = (hs[r].float() * self.head_w[t].float()).sum(-1)
        if self.head_b is not None:
            logit = logit + self.head_b[t].float()
        seg_max = torch.full((len(nodes),), -math.inf, device=hs.device).scatter_reduce(0, r, logit, "amax")
        z = torch.zeros(len(nodes), device=hs.device).index_add(0, r, torch.exp(logit - seg_max[r]))
        lp = (logit - seg_max[r] - torch.log(z[r])).tolist()
        out, i = [], 0
        for n, c in zip(nodes, counts):
            out.append(dict(zip(toks[i:i + c], lp[i:i + c])))
            i += c
        return out

    # --- ranking ---------------------------------------------------------------------------------
    def beam(self, trie: IdTrie, prefill, k: int = 5, beam_width: int | None = None) -> dict[str, float]:
        """{id: logprob} of the IDs the search finished (at least min(k, len(trie)) of them)."""
        cache, h0 = prefill
        width = max(int(beam_width or DEFAULT_BEAM_WIDTH), k)
        beams: list[tuple[Node, float]] = [(trie.root, 0.0)]
        hs = h0[None]
        finished: dict[str, float] = {}
        own_cache = None
        while beams:
            lps = self._child_logprobs(hs, [n for n, _ in beams])
            cands = []
            for bi, (node, s) in enumerate(beams):
                for t, lp in lps[bi].items():
                    child, sc = node.children[t], s + lp
                    for mid in child.ends:
                        finished[mid] = _logaddexp(finished.get(mid, -math.inf), sc)
                    if child.children:
                        cands.append((sc, bi, t, child))
            if not cands:
                break
            cands.sort(key=lambda c: -c[0])
            cands = cands[:width]
            if len(finished) >= k:  # exact stop: a live path's score can only fall
                kth = sorted(finished.values(), reverse=True)[k - 1]
                cands = [c for c in cands if c[0] > kth]
                if not cands:
                    break
            idx = torch.tensor([c[1] for c in cands], dtype=torch.long, device=self.device)
            if own_cache is None:  # leave the caller's prompt cache untouched
                own_cache = copy.deepcopy(cache)
            own_cache.reorder_cache(idx)
            toks = torch.tensor([[c[2]] for c in cands], dtype=torch.long)
            hid, own_cache = self._forward(toks, own_cache)
            hs = hid[:, -1]
            beams = [(c[3], c[0]) for c in cands]
        return finished

    def score(self, trie: IdTrie, prefill) -> dict[str, float]:
        """{id: logprob} for every ID of the trie, in batched passes sharing the prompt's cache."""
        cache, h0 = prefill
        node_lp: dict[int, dict[int, float]] = {trie.root.index: self._child_logprobs(h0[None], [trie.root])[0]}
        # rows: each sequence minus its last token (whose logits are never needed); a row that is a
        # prefix of another row is covered by it (causal attention), so only maximal rows are run
        rows = sorted({s[:-1] for seqs in trie.sequences.values() for s in seqs if len(s) > 1})
        rows = [r for i, r in enumerate(rows) if not (i + 1 < len(rows) and rows[i + 1][:len(r)] == r)]
        rows.sort(key=len)
        plen = cache.get_seq_length()
        i = 0
        while i < len(rows):
            lmax_guess = len(rows[min(len(rows) - 1, i)])
            b = max(1, self.max_cache_tokens // (plen + lmax_guess))
            chunk = rows[i:i + b]
            i += len(chunk)
            lmax = max(len(r) for r in chunk)
            ids = torch.tensor([list(r) + [r[-1]] * (lmax - len(r)) for r in chunk], dtype=torch.long)
            c = copy.deepcopy(cache)
            c.batch_repeat_interleave(len(chunk))
            hid, _ = self._forward(ids, c)
            del c
            bi, pos, nodes = [], [], []
            for ri, r in enumerate(chunk):
                node = trie.root
                for j, t in enumerate(r):
                    node = node.children[t]
                    if node.children and node.index not in node_lp:
                        node_lp[node.index] = {}  # claimed; filled below
                        bi.append(ri)
                        pos.append(j)
                        nodes.append(node)
            if nodes:
                hs = hid[torch.tensor(bi), torch.tensor(pos)]
                for node, d in zip(nodes, self._child_logprobs(hs, nodes)):
                    node_lp[node.index] = d
        out: dict[str, float] = {}
        for mid, seqs in trie.sequences.items():
            total = -math.inf
            for s in seqs:
                node, lp = trie.root, 0.0
                for t in s:
                    lp += node_lp[node.index][t]
                    node = node.children[t]
                total = _logaddexp(total, lp)
            out[mid] = total
        return out

    def think(self, prompt: str, max_tokens: int = MAX_THINKING_TOKENS):
        """Greedy thinking line after the prompt; then the cache positioned after ``modules:``.
        Returns (thinking, (cache, last hidden state), prompt token count)."""
        ids = self.encode(prompt + THINKING_TAG)
        cache, h = self.prefill(ids)
        fed = list(ids)
        gen: list[int] = []
        for _ in range(max_tokens):
            t = int(torch.argmax(self._logits(h)).item())
            if t == self.eos:
                break
            gen.append(t)
            if "\n" in self.tokenizer.decode(gen):
                break
            hid, cache = self._forward(torch.tensor([[t]], dtype=torch.long), cache)
            fed.append(t)
            h = hid[0, -1]
        thinking = " ".join(self.tokenizer.decode(gen, skip_special_tokens=True).split("\n")[0].split())
        if thinking:
            target = self.encode(prompt + THINKING_TAG + " " + thinking + "\n" + MODULES_TAG.lstrip(" "))
        else:  # nothing usable: the plain completion format
            target = self.encode(prompt + MODULES_TAG)
        cache, h = self._extend(cache, fed, target)
        return thinking, (cache, h), len(target)

    @torch.inference_mode()
    def rank(self, prompt: str, trie: IdTrie, k: int = 5, *, method: str = "auto", reasoning: bool = False,
             beam_width: int | None = None, max_thinking_tokens: int = MAX_THINKING_TOKENS) -> DecodeResult:
        """The top-k IDs of `trie` after `prompt` (a prompt.build_prompt text), best first."""
        if method not in METHODS:
            raise ValueError(f"unknown decoding method {method!r}; one of {', '.join(METHODS)}")
        t0 = time.perf_counter()
        res = DecodeResult()
        if len(trie) == 0 or k <= 0:
            res.method = method
            return res
        if reasoning:
            res.thinking, pre, res.prompt_tokens = self.think(prompt, max_thinking_tokens)
        else:
            ids = self.encode(prompt + MODULES_TAG)
            pre, res.prompt_tokens = self.prefill(ids), len(ids)
        if method == "auto":
            method = "score" if len(trie) <= self.auto_score_max_ids else "beam"
        lps = self.score(trie, pre) if method == "score" else self.beam(trie, pre, k, beam_width)
        best = sorted(lps.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        res.ranked = [Ranked(mid, float(math.exp(lp)), float(lp)) for mid, lp in best]
        res.method, res.explored = method, len(lps)
        res.seconds = time.perf_counter() - t0
        return res
