"""Where in an answered module to look: the files of a big module that a text is most likely about.

A module is the unit modmatch answers in, and on some repositories a true answer is still a big one: Valkey keeps its
server in one flat folder (`src`, 188 files of C), so "replication backlog grows during failover" is rightly answered
`src`, which tells an engineer nothing they did not know. For an answer whose module holds at least `MIN_FILES`
files, `FileRanker` names the files the text points at, from two kinds of evidence:

  * the words of each file's name and of the symbols it defines (`replication.c`, `feedReplicationBacklog`), weighted
    by how few of the module's files share them. A module keeps the symbols of its first files only
    (`indexer.graph.MAX_SYMBOLS_PER_MODULE`); where it lost some, only a symbol named whole counts, as the words of
    the symbols it kept would favour its first files (Valkey's `acl.c` for "reset", "flag", "count");
  * the past changes of the module most alike the text (word vectors): the files they touched, each change's weight
    shared among its files.

A text's subject (an issue's title, a commit's subject line: `inference.evidence.subject_of`) is read again beside
the whole text, as the hybrid's parts read it: its words count twice, and the past changes alike it have half the
say. On real issue texts, given the right module, that named a touched file among three in 0.680 of 1,319 cases
against 0.650 reading the whole text once; on the dev changes, whose subject is most of the text, 0.829 either way.
Each kind is scaled to its best file and the two are added. A file only the module's change counts would favour is
not named: without evidence from the text, no file is shown.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from indexer.graph import ModuleGraph
from indexer.text import has_han, path_words, words

from .bilingual import Bilingual, writes_chinese
from .evidence import subject_of

MIN_FILES = 10  # a smaller module is read whole
SHOWN = 3
NEAREST = 20  # the module's past changes read for a text
NAME_WEIGHT = 2.0  # a word of the file's name, against one of a symbol it defines
BODY_CHARS = 600
SUBJECT_SHARE = 0.5  # the past changes alike the subject, beside those alike the whole text
GLOSSARY = True
_GLOSSARY = Bilingual()  # the glossary's pairs only


class FileRanker:
    """The files of each module of at least `min_files` files, with what they are named and define, and the past
    changes that touched them."""

    def __init__(self, graph: ModuleGraph, min_files: int = MIN_FILES):
        self.files = {m.id: tuple(m.files) for m in graph.modules.values() if len(m.files) >= min_files}
        owner = {f: mid for mid, fs in self.files.items() for f in fs}
        self.name_words: dict[str, frozenset[str]] = {f: frozenset(path_words(f.rsplit("/", 1)[-1])) for f in owner}
        sym: dict[str, set[str]] = defaultdict(set)
        for mid in self.files:
            m = graph.modules[mid]
            complete = m.stats.get("symbols", 0) <= len(m.symbols)
            for s in m.symbols:
                if s.path in owner:
                    if complete:
                        sym[s.path].update(words(s.name))
                    else:  # the module keeps its first files' symbols only: their words would favour those files
                        sym[s.path].add(s.name.lower().strip("_"))
        # the words of the folders a file lies in below its module (`sfc-playground/src/App.vue` in vuejs/core's
        # `packages-private`): what names a part of a big module, counted as a symbol's word is
        for mid, fs in self.files.items():
            for f in fs:
                sym[f].update(path_words(_below(f, graph.modules[mid].paths).rpartition("/")[0]))
        self.symbol_words = {f: frozenset(ws - self.name_words[f]) for f, ws in sym.items()}
        self.chinese = writes_chinese(graph.history)  # None without a history
        texts, self.touched = [], []
        self.rows: dict[str, list[int]] = defaultdict(list)  # module -> its past changes (rows)
        for h in graph.history:
            fs = tuple(f for f in h.files if f in owner)
            if not fs:
                continue
            for mid in {owner[f] for f in fs}:
                self.rows[mid].append(len(texts))
            texts.append(h.subject + "\n" + h.body[:BODY_CHARS])
            self.touched.append(fs)
        self.vec = self.X = None
        if texts:
            self.vec = TfidfVectorizer(analyzer=words, sublinear_tf=True, min_df=1, dtype=np.float32)
            try:
                self.X = self.vec.fit_transform(texts).tocsr()
            except ValueError:  # no word in any change
                self.vec = None

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_last", None)  # the last text's reading, not worth pickling
        return state

    def rank(self, text: str, mid: str, k: int = SHOWN) -> list[str]:
        """Up to `k` files of `mid` that `text` points at, best first; none for a small module or without evidence."""
        files = self.files.get(mid)
        reading = self._reading(text)
        if not files or not reading[0][0]:
            return []
        (q, vec), said = reading
        lex = self._names(q, files)
        hist = self._history(vec, mid, files)
        if said is not None:  # an issue's title, a commit's subject: read again beside the whole text
            for f, v in self._names(said[0], files).items():
                lex[f] = lex.get(f, 0.0) + v
            again = self._history(said[1], mid, files)
            hist = {f: (1 - SUBJECT_SHARE) * hist.get(f, 0.0) + SUBJECT_SHARE * again.get(f, 0.0)
                    for f in set(hist) | set(again)}
        total: Counter = Counter()
        for part in (lex, hist):
            top = max(part.values(), default=0.0)
            if top > 0:
                for f, v in part.items():
                    total[f] += v / top
        ranked = sorted((f for f in total if total[f] > 0), key=lambda f: (-total[f], f))
        return ranked[:k]

    def _reading(self, text: str) -> tuple:
        """The words and the word vector of `text` (as `_read` gives it), and of its subject where that is not the
        whole text (else None); kept for the last text, which a hybrid answer asks of each of its first answers."""
        key = (text, GLOSSARY)
        last = getattr(self, "_last", None)
        if last is not None and last[0] == key:
            return last[1]
        text = self._read(text)
        subject = subject_of(text)
        reading = (self._parse(text), self._parse(subject) if subject.strip() != text.strip() else None)
        self._last = (key, reading)
        return reading

    def _parse(self, text: str) -> tuple[set[str], object]:
        return set(words(text)), (self.vec.transform([text]) if self.vec is not None else None)

    def _read(self, text: str) -> str:
        """`text`, and where the team does not write Chinese and `text` does, the glossary's English for its Chinese
        words on each line ("缓存失效" + cache): nothing else in such a repository reads Chinese."""
        if not GLOSSARY or getattr(self, "chinese", None) or not has_han(text):
            return text
        return "\n".join(ln + " " + " ".join(_GLOSSARY.english(words(ln))) if has_han(ln) else ln
                         for ln in text.split("\n"))

    def _names(self, q: set[str], files: tuple[str, ...]) -> dict[str, float]:
        hits = {f: (q & self.name_words[f], q & self.symbol_words.get(f, frozenset())) for f in files}
        df = Counter(w for names, syms in hits.values() for w in names | syms)
        n = len(files)
        return {f: sum(NAME_WEIGHT * math.log(1 + n / df[w]) for w in names)
                + sum(math.log(1 + n / df[w]) for w in syms) for f, (names, syms) in hits.items() if names or syms}

    def _history(self, vec, mid: str, files: tuple[str, ...]) -> dict[str, float]:
        rows = self.rows.get(mid)
        if vec is None or not rows:
            return {}
        sims = (self.X[rows] @ vec.T).toarray().ravel()
        own = set(files)
        out: Counter = Counter()
        for r in np.argsort(-sims, kind="stable")[:NEAREST]:
            if sims[r] <= 0:
                break
            fs = [f for f in self.touched[rows[r]] if f in own]
            for f in fs:
                out[f] += float(sims[r]) / math.sqrt(len(fs))
        return out


def _below(path: str, prefixes: list[str]) -> str:
    """`path` relative to the longest of a module's path `prefixes` it lies under ("" is the root)."""
    best = max((p for p in prefixes if not p or path.startswith(p.rstrip("/") + "/")), key=len, default="")
    return path[len(best.rstrip("/")) + 1:] if best else path
