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

The other way round (`chinese`): the Chinese words whose equivalents an English word is (or its plural or -ing /
-ed form's stem is), for an English requirement against a repository whose change texts are Chinese.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable

from indexer.text import glossary, has_cjk, has_han, path_words, words

GLOSSARY_WEIGHT = 1.0
MIN_PAIR = 3
MIN_SHARE = 0.2
MIN_LIFT = 3.0
MAX_LEARNED = 3
LEARN_BODY_CHARS = 1500
MAX_REVERSE = 2  # the glossary's Chinese words read for one English word (`chinese`)
WRITES_CHINESE = 0.01  # the share of past change subjects in Chinese from which a team is taken to write Chinese


def chinese_share(history) -> float | None:
    """The share of past change subjects that hold Chinese; None without a history."""
    hist = list(history)
    if not hist:
        return None
    return sum(1 for h in hist if has_han(h.subject)) / len(hist)


def writes_chinese(history) -> bool | None:
    """Whether the team writes its change texts in Chinese (at least `WRITES_CHINESE` of the subjects hold Chinese);
    None without a history. A repository's documents can hold Chinese that nobody writes there: jellyfin's
    translations of its interface (2 of its 17,994 change texts hold Chinese), and its Chinese issue titles were
    read as foreign for words no glossary holds."""
    share = chinese_share(history)
    return None if share is None else share >= WRITES_CHINESE


def english_forms(w: str) -> list[str]:
    """`w` and the stems its English inflection may hide (logs -> log, switching -> switch / switche, renewed -> renew):
    the glossary and the learned pairs hold base forms."""
    out = [w]
    if len(w) > 4 and w.endswith("ies"):
        out.append(w[:-3] + "y")
    if len(w) > 3 and w.endswith("es"):
        out.append(w[:-2])
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        out.append(w[:-1])
    if len(w) > 5 and w.endswith("ing"):
        out += [w[:-3], w[:-3] + "e"]
    if len(w) > 4 and w.endswith("ed"):
        out += [w[:-2], w[:-1]]
    return out


def is_cjk_word(w: str) -> bool:
    return bool(w) and not w.isascii()


class Bilingual:
    """English equivalents of Chinese words: {chinese: [(english, weight), ...]}."""

    def __init__(self, learned: dict[str, list[tuple[str, float]]] | None = None,
                 counts: dict[str, int] | None = None):
        self.learned = learned or {}
        self.counts = counts or {}  # how many past changes hold each Chinese word of `learned`
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
        return cls(learned, {z: n_zh[z] for z in learned})

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

    def _reverse(self) -> dict[str, tuple[list[str], list[str]]]:
        """English word -> (the glossary's Chinese words for it, the learned ones). A learned pair ties a Chinese
        word to the English words and module-path words of the changes it is written in, so an English word is
        "learned" from every rare Chinese word of its module's changes (1Panel: website ← 名单 0.75, 流量 0.67, 网站
        0.49): they are ranked by share × log(1 + the Chinese word's count), the common word first."""
        cached = self.__dict__.get("_rev")
        if cached is not None and cached[0] is self.glossary:
            return cached[1]
        gl: dict[str, list[str]] = defaultdict(list)
        for z, es in self.glossary.items():
            for e in es:
                gl[e].append(z)
        counts = self.__dict__.get("counts") or {}
        le: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for z, pairs in self.learned.items():
            for e, w in pairs:
                le[e].append((w * math.log1p(counts.get(z, MIN_PAIR)), z))
        rev = {e: (sorted(gl.get(e, ()), key=lambda z: (len(z), z)),
                   [z for _, z in sorted(le.get(e, ()), key=lambda x: (-x[0], x[1]))]) for e in set(gl) | set(le)}
        self._rev = (self.glossary, rev)
        return rev

    def chinese(self, tokens: Iterable[str], known=None, per_word: int = MAX_REVERSE) -> list[str]:
        """Chinese equivalents of the English words among `tokens`: the glossary's (at most `per_word`), else the
        first learned one; with `known`, only words it contains (those the repository's texts use)."""
        rev = self._reverse()
        out: dict[str, None] = {}
        for t in tokens:
            if not t.isascii() or t.isdigit():
                continue
            for form in english_forms(t):
                gl, le = rev.get(form, ((), ()))
                zs = [z for z in gl if known is None or z in known][:per_word] or \
                    [z for z in le if known is None or z in known][:1]
                if zs:
                    out.update(dict.fromkeys(zs))
                    break
        return list(out)

    def __len__(self) -> int:
        return len(self.learned)
