"""`lexical`: BM25 (bm25s) over one document per answerable module.

A module's document is a weighted bag of words: its path and name (strongly), aliases and
keywords, file names, split identifiers of its symbols and their docs, its description (README or
headers), and the texts of past changes that touched it. Change texts are weighted so long,
templated commit bodies cannot drown the code: each subject counts in full, each body only for its
first `BODY_WORDS` words, and all history of a module together for at most `HISTORY_WORDS` words
(the most recent changes first). Words come from `indexer.text.words`, which segments Chinese text into words.
Chinese words reach English vocabulary through `bilingual.Bilingual`: a query's Chinese words that no module
document holds are replaced by their English equivalents (glossary and history pairs), each scored at
`EXPANSION_WEIGHT` times the pair's weight. Chinese words the index holds match as themselves: on a
repository that writes Chinese (hutool, bench/README.md) translating them too, or adding the glossary's
English to Chinese documents, cost 1-3 points of Acc@1 on the Chinese cases. Where most change texts are English
(fewer than `TRANSLATE_KNOWN_BELOW` of the subjects hold Chinese), the Chinese words the index holds are translated
as well: there they come from a corner of the code, not from how the team talks (alibaba/nacos writes 95 % of its
changes in English and its integration tests' descriptions in Chinese, so "服务注册后实例健康检查一直失败" matched
those tests alone, 54 % first, and never reached `naming`'s register, instance, health, check).
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter

import numpy as np

from indexer.graph import ModuleGraph
from indexer.records import Module
from indexer.text import path_words, words

from .base import query_head, register
from .bilingual import Bilingual, chinese_share, is_cjk_word
from .calibration import Calibrator
from .scoring import ScoredMatcher, self_calibrate

BODY_WORDS = 60
HISTORY_WORDS = 3000
SYMBOL_LIMIT = 400
FILE_LIMIT = 400
HISTORY_SHARE = 0.5  # one change's words are split among the modules it touched, but never below this
EXPANSION_WEIGHT = 0.5  # an English word reached through a Chinese one counts this much of a word typed
TRANSLATE_KNOWN_BELOW = 0.5  # see the module's docstring


def module_tokens(m: Module, history_texts: list[tuple[str, str, int]] | None = None) -> list[str]:
    """The document of one module (repetition encodes weight)."""
    toks: list[str] = []
    ident = path_words(m.id)
    toks += ident * 3
    toks += words(m.name) * 3
    for a in m.aliases:
        toks += words(a) * 4
    toks += [w for kw in m.keywords for w in words(kw)] * 2
    toks += words(m.description)
    for f in m.files[:FILE_LIMIT]:
        toks += path_words(f.rsplit("/", 1)[-1])
    for s in m.symbols[:SYMBOL_LIMIT]:
        toks += words(s.name)
        if s.doc:
            toks += words(s.doc[:200])
    if history_texts:
        budget = HISTORY_WORDS
        for subject, body, n_mods in reversed(history_texts):  # newest first
            part = words(subject) + words(body)[:BODY_WORDS]
            if n_mods > 2:  # a change spread over many modules says little about each
                part = part[: max(8, int(len(part) * max(HISTORY_SHARE, 2 / n_mods)))]
            part = part[:budget]
            toks += part
            budget -= len(part)
            if budget <= 0:
                break
    return toks


def document_key(m: Module, history_texts: list[tuple[str, str, int]]) -> str:
    """A digest of everything `module_tokens` reads: equal keys, equal documents."""
    h = hashlib.blake2b(digest_size=16)
    for part in (m.id, m.name, *m.aliases, *m.keywords, m.description, *m.files[:FILE_LIMIT]):
        h.update(part.encode("utf-8", "replace") + b"\0")
    for sym in m.symbols[:SYMBOL_LIMIT]:
        h.update(f"{sym.name}\0{(sym.doc or '')[:200]}\1".encode("utf-8", "replace"))
    for subject, body, n_mods in history_texts:
        h.update(f"{subject}\0{body}\0{n_mods}\1".encode("utf-8", "replace"))
    return h.hexdigest()


class LexicalMatcher(ScoredMatcher):
    name = "lexical"
    temperature = 0.12  # on scores divided by the best score

    def __init__(self, graph: ModuleGraph, *, k1: float = 1.2, b: float = 0.75, use_history: bool = True,
                 calibrator: Calibrator | None = None, reuse: dict[str, list[str]] | None = None, **_ignored):
        import bm25s

        super().__init__(graph, calibrator)
        self.params = {"k1": k1, "b": b, "use_history": use_history}
        hist: dict[str, list[tuple[str, str, int]]] = {mid: [] for mid in self.ids}
        if use_history:
            for h in sorted(graph.history, key=lambda h: (h.date, h.commit)):
                for mid in h.modules:
                    if mid in hist:
                        hist[mid].append((h.subject, h.body, len(h.modules)))
        self.bilingual = Bilingual.from_history(graph.history if use_history else [])
        share = chinese_share(graph.history) if use_history else None
        self.translate_known = share is not None and share < TRANSLATE_KNOWN_BELOW
        # a document is cut into words again only when what it is made of changed (`reuse`: key -> words)
        self.keys = [document_key(graph.modules[mid], hist[mid]) for mid in self.ids]
        reuse = reuse or {}
        self.docs = [reuse[k] if k in reuse else module_tokens(graph.modules[mid], hist[mid])
                     for mid, k in zip(self.ids, self.keys)]
        # bm25s needs at least one token per document
        corpus = [d if d else ["__empty__"] for d in self.docs]
        self.bm25 = None
        if corpus:
            logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
            self.bm25 = bm25s.BM25(k1=k1, b=b)
            self.bm25.index(corpus, show_progress=False)
            self.vocab = self.bm25.vocab_dict
        else:
            self.vocab = {}
        self._counts: list[Counter] | None = None

    def updated(self, graph: ModuleGraph) -> "LexicalMatcher":
        """The index of `graph`, with this one's calibrator (the calibrator is what took a held-out fit); only the
        documents of modules whose content or history changed are cut into words again."""
        return LexicalMatcher(graph, calibrator=self.calibrator, reuse=dict(zip(self.keys, self.docs)), **self.params)

    def weighted_tokens(self, text: str) -> list[tuple[str, float]]:
        """The query's words in the index (weight 1 each occurrence) and the English equivalents of its Chinese
        words that the index lacks (of all its Chinese words where the team writes English: `translate_known`). A
        long text is read by its head (`query_head`)."""
        ws = words(query_head(text))
        every = self.__dict__.get("translate_known", False)  # a matcher pickled before it: False
        have = set(ws)
        out, english = [], {}
        for w in ws:
            if is_cjk_word(w) and (every or w not in self.vocab):
                pairs = [(e, x) for e, x in self.bilingual.expand([w]) if e in self.vocab and e not in have]
                for e, x in pairs:
                    english[e] = max(english.get(e, 0.0), x)
                if pairs:
                    continue
            if w in self.vocab:
                out.append((w, 1.0))
        return out + [(e, EXPANSION_WEIGHT * x) for e, x in english.items()]

    def scores(self, text: str) -> np.ndarray:
        toks = self.weighted_tokens(text)
        if not toks or self.bm25 is None:
            return np.zeros(len(self.ids))
        plain = [t for t, w in toks if w == 1.0]
        out = np.asarray(self.bm25.get_scores(plain), dtype=np.float64) if plain else np.zeros(len(self.ids))
        for t, w in toks:
            if w != 1.0:
                out += w * np.asarray(self.bm25.get_scores([t]), dtype=np.float64)
        return out

    def probs(self, scores: np.ndarray) -> np.ndarray:
        top = float(scores.max()) if scores.size else 0.0
        if top <= 0:
            return np.full(scores.shape, 1.0 / max(1, scores.size))
        return super().probs(scores / top)

    def word_contributions(self, text: str, mid: str) -> list[tuple[str, float]]:
        i = self.index[mid]
        seen: dict[str, float] = {}
        for w, wt in self.weighted_tokens(text):
            seen.setdefault(w, wt)
        contrib = []
        for w, wt in list(seen.items())[:64]:
            s = wt * float(self.bm25.get_scores([w])[i])
            if s > 0:
                contrib.append((w, s))
        return sorted(contrib, key=lambda x: -x[1])

    def evidence(self, text: str, mid: str) -> list[str]:
        ev = []
        contrib = self.word_contributions(text, mid)
        if contrib:
            ev.append("words: " + ", ".join(w for w, _ in contrib[:6]))
        qs = set(w for w, _ in contrib)
        m = self.graph.modules[mid]
        syms = []
        for s in m.symbols:
            if qs & set(words(s.name)):
                syms.append(f"{s.name} ({s.path}:{s.line})")
            if len(syms) >= 3:
                break
        if syms:
            ev.append("symbols: " + ", ".join(syms))
        files = [f for f in m.files if qs & set(path_words(f.rsplit("/", 1)[-1]))][:3]
        if files:
            ev.append("files: " + ", ".join(files))
        return ev


@register("lexical", default_eval=True)
def _make(graph: ModuleGraph, *, calibrate: bool = True, **opts) -> LexicalMatcher:
    cal = self_calibrate(LexicalMatcher, graph, uses_history=True, **opts) if calibrate else None
    return LexicalMatcher(graph, calibrator=cal, **opts)
