"""Chinese → English term expansion: the built-in glossary plus pairs learned from the repository's history.

A Chinese requirement must reach modules whose code, docs and history are English. Two sources of English
equivalents for a Chinese word (as `indexer.text.words` cuts it):

- the glossary of common software terms shipped with the indexer (`indexer/zh_terms.tsv`: 卷积 → conv
  convolution, 后端 → backend, 崩溃 → crash), weight `GLOSSARY_WEIGHT`;
- pairs learned from the history: in the past changes whose text holds Chinese, the English words of the same
  text and the words of the module IDs the change touched. A pair is kept when it co-occurs in at least
  `MIN_PAIR` changes, in at least `MIN_SHARE` of the changes with the Chinese word, and `MIN_LIFT` times more
  often than the English word's base rate; at most `MAX_LEARNED` per word, weighted by their share.

    lex = Bilingual.from_history(graph.history)
    lex.expand(["卷积", "算子", "vulkan"])   # [("conv", 1.0), ("convolution", 1.0), ("op", 1.0), ...]
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable

from indexer.text import glossary, has_cjk, path_words, words

GLOSSARY_WEIGHT = 1.0
MIN_PAIR = 3
MIN_SHARE = 0.2
MIN_LIFT = 3.0
MAX_LEARNED = 3
LEARN_BODY_CHARS = 1500


def is_cjk_word(w: str) -> bool:
    return bool(w) and not w.isascii()


class Bilingual:
    """English equivalents of Chinese words: {chinese: [(english, weight), ...]}."""

    def __init__(self, learned: dict[str, list[tuple[str, float]]] | None = None):
        self.learned = learned or {}
        self.glossary = glossary()

    @classmethod
    def from_history(cls, history: Iterable, *, body_chars: int = LEARN_BODY_CHARS) -> "Bilingual":
        """Learn pairs from past changes (objects with subject, body and modules)."""
        n_zh: Counter = Counter()
        n_en: Counter = Counter()
        pairs: dict[str, Counter] = defaultdict(Counter)
        docs = 0
        for h in history:
            text = (h.subject + "\n" + (h.body or "")[:body_chars])
            if not has_cjk(text):
                continue
            ws = words(text)
            zh = {w for w in ws if is_cjk_word(w)}
            if not zh:
                continue
            en = {w for w in ws if w.isascii() and not w.isdigit()}
            for mid in h.modules:
                en.update(path_words(mid))
            docs += 1
            n_zh.update(zh)
            n_en.update(en)
            for z in zh:
                pairs[z].update(en)
        learned: dict[str, list[tuple[str, float]]] = {}
        for z, co in pairs.items():
            nz = n_zh[z]
            if nz < MIN_PAIR:
                continue
            keep = []
            for e, c in co.items():
                if c < MIN_PAIR:
                    continue
                share = c / nz
                lift = c * docs / (nz * n_en[e])
                if share >= MIN_SHARE and lift >= MIN_LIFT:
                    keep.append((share * math.log(lift), e, share))
            keep.sort(key=lambda x: (-x[0], x[1]))
            if keep:
                learned[z] = [(e, round(min(1.0, share), 3)) for _, e, share in keep[:MAX_LEARNED]]
        return cls(learned)

    def pairs(self, word: str) -> list[tuple[str, float]]:
        """English equivalents of one Chinese word, the glossary's first (its sub-words come from the segmenter:
        search mode also yields 内存 out of 内存池)."""
        out: dict[str, float] = {e: GLOSSARY_WEIGHT for e in self.glossary.get(word, ())}
        for e, w in self.learned.get(word, ()):
            out[e] = max(out.get(e, 0.0), w)
        return list(out.items())

    def expand(self, tokens: Iterable[str]) -> list[tuple[str, float]]:
        """English words (with weights) for the Chinese words among `tokens`; words already present are left out."""
        toks = list(tokens)
        have = set(toks)
        out: dict[str, float] = {}
        for t in toks:
            if not is_cjk_word(t):
                continue
            for e, w in self.pairs(t):
                if e not in have:
                    out[e] = max(out.get(e, 0.0), w)
        return list(out.items())

    def english(self, tokens: Iterable[str]) -> list[str]:
        """The expansion as plain words (for bag-of-words features)."""
        return [e for e, _ in self.expand(tokens)]

    def __len__(self) -> int:
        return len(self.learned)
