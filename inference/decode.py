"""Constrained decoding over the module-ID trie: the model can only ever name real module IDs.

Two ways to rank the IDs of a trie after a prompt (both give the same numbers for the IDs they return):

- ``beam``: beam search that walks the trie (one forward per step, a few beams wide), with an exact
  early stop: scores only fall as a path grows, so the search ends as soon as no live beam can beat the
  k-th finished ID. Forced runs (nodes with a single child) are fed in the same step, so cost grows with
  the number of *branching* levels, not with the trie's size or token depth.
- ``score``: every trie node with children is fed once (shared prefixes run once), in forwards of up to
  CHUNK_TOKENS tokens. Cost grows with the number of trie tokens.

Both append tokens to the prompt's KV cache as a *tree* in one batch row (each token attends to the prompt
and to its own ancestors, at position prompt length + depth; see _Tree), then crop the cache back: no
padding, no cache copies. Prompt caches are kept (PREFIX_CACHE_ENTRIES) so that a later prompt only runs
the tokens after their common prefix (the fixed "Task: ... repository X." head, identical candidates).

Probabilities are the constrained-decoding distribution: at every trie node the model's next-token
distribution restricted to the allowed tokens and renormalised (the terminal ``;``/``\\n`` tokens are
allowed tokens too, so ``src/layer`` and ``src/layer/vulkan`` compete properly). Over all IDs of a trie
they sum to 1; a top-k sums to at most 1.

``auto`` (the default) scores when the trie is small (a hybrid's candidate list) and beam-searches
otherwise: on this 2-core CPU (one thread, the lean forward of fastlm.py) one forward of SmolLM2-135M costs
~25 ms (streaming the fp16 weights, per-op overhead) plus ~2.5 ms per token (fp32 arithmetic at the core's
peak); see bench/latency.py for the measurements.

Reasoning mode writes a short thinking line first (greedy, at most MAX_THINKING_TOKENS, stopping at a
newline), then decodes the IDs under the trie after ``modules:``, as in the completion format.
"""
from __future__ import annotations

import copy
import inspect
import math
import threading
import time
from dataclasses import dataclass, field

import torch

from .fastlm import FastLM
from .prompt import MAX_THINKING_TOKENS, MODULES_TAG, THINKING_TAG
from .trie import IdTrie, Node

METHODS = ("auto", "beam", "score")
AUTO_SCORE_MAX_IDS = 32  # "auto" scores tries with at most this many IDs, beam-searches larger ones
DEFAULT_BEAM_WIDTH = 5
CHUNK_TOKENS = 512  # score: trie tokens per forward
PREFIX_CACHE_ENTRIES = 4  # prompt caches kept for the next prompts' shared prefix
MIN_PREFIX_TOKENS = 4  # reuse a stored prompt cache only when at least this many tokens match


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


class _Tree:
    """Token positions appended to a prompt's KV cache as a *tree* (one batch row): each token attends to the
    whole prompt and to its own ancestors only, at position ``prompt length + depth``. Beams (or all the
    trie's nodes) then share one cache row and one forward per step, whatever their run lengths: no
    padding, no cache copies or reorders; cropping the cache back to the prompt undoes everything."""

    def __init__(self, plen: int, device, dtype):
        self.plen = plen
        self.n = 0
        self.depth: list[int] = []
        self.anc = torch.zeros((0, 0), dtype=torch.bool)
        self.device, self.dtype = device, dtype

    def _grow(self, need: int) -> None:
        cap = self.anc.shape[0]
        if need <= cap:
            return
        new = max(need, 2 * cap, 64)
        a = torch.zeros((new, new), dtype=torch.bool)
        a[:cap, :cap] = self.anc
        self.anc = a

    def add(self, runs: list[tuple[int, list[int]]]):
        """runs: (parent position, -1 for the prompt's end; tokens, each the parent of the next).
        Returns (input ids, position ids, 4D additive mask, position of each run's last token)."""
        total = sum(len(r) for _, r in runs)
        s = self.n
        self._grow(s + total)
        toks, pos, lasts = [], [], []
        i = s
        anc = self.anc
        for parent, run in runs:
            for t in run:
                if parent >= 0:
                    anc[i, :i] = anc[parent, :i]
                    d = self.depth[parent] + 1
                else:
                    d = 0
                anc[i, i] = True
                self.depth.append(d)
                toks.append(t)
                pos.append(self.plen + d)
                parent = i
                i += 1
            lasts.append(i - 1)
        self.n = i
        m = torch.zeros((total, self.plen + i), dtype=self.dtype)
        m[:, self.plen:].masked_fill_(~anc[s:i, :i], torch.finfo(self.dtype).min)
        dev = self.device
        return (torch.tensor([toks], dtype=torch.long, device=dev), torch.tensor([pos], dtype=torch.long, device=dev),
                m[None, None].to(dev), lasts)


def _crop_to(cache, n: int) -> None:
    extra = cache.get_seq_length() - n
    if extra > 0:
        cache.crop(-extra)


class ConstrainedDecoder:
    """Wraps a causal LM and its tokenizer; thread-safe for concurrent calls (the only shared state is the
    prompt-prefix store, behind a lock, whose caches are copied out, never handed out)."""

    def __init__(self, model, tokenizer, *, max_cache_tokens: int = 8192, auto_score_max_ids: int = AUTO_SCORE_MAX_IDS,
                 chunk_tokens: int = CHUNK_TOKENS, prefix_cache: int = PREFIX_CACHE_ENTRIES, fast: bool | FastLM | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.max_cache_tokens = max_cache_tokens  # kept for callers; the tree decoders no longer chunk by it
        self.chunk_tokens = max(1, int(chunk_tokens))  # score: tree tokens per forward
        self.auto_score_max_ids = auto_score_max_ids
        self.base = model.base_model if getattr(model, "base_model", None) is not model else model
        head = model.get_output_embeddings()
        self.head_w = head.weight  # (V, H)
        self.head_b = getattr(head, "bias", None)
        params = inspect.signature(self.base.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        # the lean forward (fastlm) where the model and device allow it (its weights are read now: build a new
        # decoder after changing the model); fast=False keeps the framework's forward; a FastLM is shared
        self.fast = fast if isinstance(fast, FastLM) else FastLM.maybe(model) if fast is not False else None
        self.eos = tokenizer.eos_token_id
        self._prefix_max = max(0, int(prefix_cache))
        self._prefixes: list[tuple[tuple[int, ...], object]] = []  # (prompt tokens, their cache), newest last
        self._prefix_lock = threading.Lock()
        self.prefix_hits = 0  # prompt tokens served from the prefix store (for benchmarks)

    @property
    def device(self) -> torch.device:
        return self.head_w.device

    # --- model plumbing --------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _forward(self, ids: torch.Tensor, cache=None, **kw):
        if self.fast is not None:
            if cache is None:
                cache = self.fast.new_cache()
            hid = self.fast.forward(ids, cache, position_ids=kw.get("position_ids"), mask=kw.get("attention_mask"))
            return hid[None], cache
        out = self.base(input_ids=ids.to(self.device), use_cache=True, **{self._cache_kw: cache}, **kw)
        new_cache = out.get("cache") if hasattr(out, "get") else None
        if new_cache is None:
            new_cache = out.past_key_values
        return out.last_hidden_state, new_cache

    def _tree_forward(self, cache, tree: _Tree, runs: list[tuple[int, list[int]]]):
        """Feed `runs` as tree tokens after the cache; (hidden states of the runs' last tokens, their positions)."""
        ids, pos, mask, lasts = tree.add(runs)
        hid, _ = self._forward(ids, cache, attention_mask=mask, position_ids=pos)
        idx = torch.tensor([p - (tree.n - ids.shape[1]) for p in lasts], dtype=torch.long, device=hid.device)
        return hid[0, idx], lasts

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
        _crop_to(cache, n)
        hid, cache = self._forward(torch.tensor([ids[n:]], dtype=torch.long), cache)
        return cache, hid[0, -1]

    # --- prompt-prefix store: consecutive prompts share their head ("Task: ... repository X.\n...") ----
    def prefill_cached(self, ids: list[int]):
        """Like prefill, but starts from the stored cache sharing the longest token prefix with `ids`
        (copied, then cropped to the common prefix), so only the new tail is run."""
        best, best_n = None, 0
        with self._prefix_lock:
            for key, c in self._prefixes:
                n = 0
                for a, b in zip(key, ids):
                    if a != b:
                        break
                    n += 1
                if n > best_n:
                    best, best_n = c, n
            best_n = min(best_n, len(ids) - 1)
            if best is not None and best_n >= MIN_PREFIX_TOKENS:
                cache = copy.deepcopy(best)
            else:
                cache = None
        if cache is None:
            return self.prefill(ids)
        _crop_to(cache, best_n)
        self.prefix_hits += best_n
        hid, cache = self._forward(torch.tensor([ids[best_n:]], dtype=torch.long), cache)
        return cache, hid[0, -1]

    def _remember(self, ids: list[int], cache) -> None:
        """Keep (a cache of exactly `ids`) for later prompts; the caller gives the cache up."""
        if self._prefix_max <= 0 or cache is None or cache.get_seq_length() != len(ids):
            return
        key = tuple(ids)
        with self._prefix_lock:
            self._prefixes = [(k, c) for k, c in self._prefixes if k != key]
            self._prefixes.append((key, cache))
            del self._prefixes[:-self._prefix_max]

    def clear_prefix_cache(self) -> None:
        with self._prefix_lock:
            self._prefixes.clear()

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

    def _tree(self, cache) -> _Tree:
        return _Tree(cache.get_seq_length(), self.device, self.head_w.dtype)

    # --- ranking ---------------------------------------------------------------------------------
    def beam(self, trie: IdTrie, prefill, k: int = 5, beam_width: int | None = None) -> dict[str, float]:
        """{id: logprob} of the IDs the search finished (at least min(k, len(trie)) of them).

        Forced runs are collapsed: after a chosen token, the chain of nodes with a single child (and no ID
        ending there) has probability 1 under the renormalised distribution, so the whole run is fed in
        the same forward. All beams of a step go in one forward as tree tokens on the prompt's cache row
        (ragged runs need no padding); the cache is cropped back to the prompt afterwards."""
        cache, h0 = prefill
        plen = cache.get_seq_length()
        tree = self._tree(cache)
        width = max(int(beam_width or DEFAULT_BEAM_WIDTH), k)
        beams: list[tuple[Node, float, int]] = [(trie.root, 0.0, -1)]  # node, score, tree position of its last token
        hs = h0[None]
        finished: dict[str, float] = {}
        try:
            while beams:
                lps = self._child_logprobs(hs, [b[0] for b in beams])
                cands = []
                for bi, (node, s, last) in enumerate(beams):
                    for t, lp in lps[bi].items():
                        child, sc, run = node.children[t], s + lp, [t]
                        while len(child.children) == 1 and not child.ends:  # forced: probability 1
                            (t2, child), = child.children.items()
                            run.append(t2)
                        for mid in child.ends:
                            finished[mid] = _logaddexp(finished.get(mid, -math.inf), sc)
                        if child.children:
                            cands.append((sc, last, run, child))
                if not cands:
                    break
                cands.sort(key=lambda c: -c[0])
                cands = cands[:width]
                if len(finished) >= k:  # exact stop: a live path's score can only fall
                    kth = sorted(finished.values(), reverse=True)[k - 1]
                    cands = [c for c in cands if c[0] > kth]
                    if not cands:
                        break
                hs, lasts = self._tree_forward(cache, tree, [(c[1], c[2]) for c in cands])
                beams = [(c[3], c[0], p) for c, p in zip(cands, lasts)]
        finally:
            _crop_to(cache, plen)  # the caller's prompt cache, as it was
        return finished

    def score(self, trie: IdTrie, prefill) -> dict[str, float]:
        """{id: logprob} for every ID of the trie. Every trie node with children is fed once, as a tree token
        on the prompt's cache row (shared prefixes run once), in forwards of `chunk_tokens` tokens."""
        cache, h0 = prefill
        plen = cache.get_seq_length()
        node_lp: dict[int, dict[int, float]] = {trie.root.index: self._child_logprobs(h0[None], [trie.root])[0]}
        # nodes needing a distribution, parents first (a node's index is larger than its parent's)
        todo: list[tuple[Node, int, int]] = []  # (node, token leading to it, parent's index), feeding order
        for node in trie.nodes:
            for t, c in node.children.items():
                if c.children:
                    todo.append((c, t, node.index))
        pos: dict[int, int] = {trie.root.index: -1}  # node index -> tree position of its token
        try:
            tree = self._tree(cache)
            for i in range(0, len(todo), self.chunk_tokens):
                chunk = todo[i:i + self.chunk_tokens]
                runs = []
                for j, (c, t, par) in enumerate(chunk):  # a parent may be in this very chunk, just before
                    runs.append((pos[par], [t]))
                    pos[c.index] = tree.n + j
                hs, _ = self._tree_forward(cache, tree, runs)
                nodes = [c for c, _, _ in chunk]
                for c, d in zip(nodes, self._child_logprobs(hs, nodes)):
                    node_lp[c.index] = d
        finally:
            _crop_to(cache, plen)
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
        thinking, pre, target = self._think(prompt, max_tokens)
        return thinking, pre, len(target)

    def _think(self, prompt: str, max_tokens: int):
        ids = self.encode(prompt + THINKING_TAG)
        cache, h = self.prefill_cached(ids)
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
        return thinking, (cache, h), target

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
            res.thinking, pre, ids = self._think(prompt, max_thinking_tokens)
        else:
            ids = self.encode(prompt + MODULES_TAG)
            pre = self.prefill_cached(ids)
        res.prompt_tokens = len(ids)
        if method == "auto":
            method = "score" if len(trie) <= self.auto_score_max_ids else "beam"
        lps = self.score(trie, pre) if method == "score" else self.beam(trie, pre, k, beam_width)
        self._remember(ids, pre[0])  # beam/score leave the prompt cache exactly as prefilled
        best = sorted(lps.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        res.ranked = [Ranked(mid, float(math.exp(lp)), float(lp)) for mid, lp in best]
        res.method, res.explored = method, len(lps)
        res.seconds = time.perf_counter() - t0
        return res
