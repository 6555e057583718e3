"""`history`: the classic issue labeller — TF-IDF + a linear model trained on past changes.

Features: word 1–2 grams (from `indexer.text.words`, so identifiers are split and Chinese is cut into words),
the English equivalents of the Chinese words (`bilingual.Bilingual`: glossary and pairs learned from this
history, so Chinese and English changes share features) and character 2–5 grams within word boundaries (of the
raw text: cutting them at Chinese word boundaries first was measured on amis, history Acc@1/Acc@3 0.500/0.757
raw against 0.493/0.730 cut). Rows: one per (past change, module it touched), with
weight 1/len(modules) halved for every HALF_LIFE_DAYS of the change's age (what a repository works on
drifts: recent changes predict the next ones better), plus one synthetic row per module made of its path, name, aliases, keywords,
description and symbol names, so modules that never changed can still be predicted (and a graph
with no history at all still gets a working, if weaker, classifier). Class weights are the square
root of "balanced", so rare modules are helped without drowning frequent ones.
"""
from __future__ import annotations

import copy
import re
from collections import Counter

import numpy as np

from indexer.graph import ModuleGraph
from indexer.records import Module
from indexer.text import has_han, path_words, words

from .base import register
from .bilingual import Bilingual, writes_chinese
from .calibration import Calibrator, softmax
from .scoring import ScoredMatcher, answer_ids, self_calibrate

BODY_CHARS = 1500
# A requirement whose text repeats past changes' word for word ("Javadoc", "Sort members", a cherry-pick) is best
# answered by what those changes touched: a one-vs-rest model's margins need not say so (commons-lang: its 155 past
# "Javadoc" changes touched the package root 54 times and `exception` 6, yet the SGD model gave `exception` 0.79).
# The classifier's distribution takes λ = n / (n + REPEAT_PRIOR) of the repeats' module shares, n their
# recency-weighted count (`RepeatIndex`). Chosen on the dev benchmark's pickled hybrids (bench/README.md, "Texts
# that repeat past changes"): a prior, not a law.
REPEAT_PRIOR = 3.0
LR_MAX_CELLS = 100_000  # rows × classes above which SGD replaces LBFGS logistic regression (LBFGS: minutes at 12k × 33)
# rows × classes above which class centroids replace SGD: one-vs-rest SGD costs rows × classes × epochs updates (27 s
# at etcd's 27k × 92) and a dense float64 (classes × 500k features) matrix while fitting (2.4 GB at 600 modules): a
# monorepo's 80k changes over 600 modules would take most of an hour and more memory than the service has
SGD_MAX_CELLS = 10_000_000
SGD_MAX_CLASSES = 200  # and above which (200 × 500k features: 0.8 GB while fitting)
CENTROID_TEMPERATURE = 0.05  # cosine similarities are within [0, 1]
UPDATE_EPOCHS = 1  # partial_fit passes over the new changes in an online update
NEIGHBOURS = 5  # past changes that vote in `neighbours`
# A person's correction (Slack button, label change, POST /api/feedback) says which module a text is about, where a
# commit only says which modules a change touched: it counts as this many past changes. A prior, not measured.
FEEDBACK_WEIGHT = 3.0


# Recency: a past change weighs 0.5 ** (age in days / HALF_LIFE_DAYS), its age counted back from the newest change.
# Measured on the temporal splits (bench/README.md; 300 later changes each), history Acc@1 without → with 365 days:
# pytest 0.750 → 0.860, etcd 0.610 → 0.737, ncnn 0.716 → 0.742 (730 days: a little less; 180: worse than 365).
HALF_LIFE_DAYS: float | None = 365.0


def date_stamp(date) -> float | None:
    """A change's ISO date as a POSIX time (None when it is none)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(date).replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return None


def history_ages(history) -> list[float | None]:
    """Each change's age in days before the newest change of the history (None when undated)."""
    stamps = [date_stamp(h.date) for h in history]
    newest = max((t for t in stamps if t is not None), default=None)
    return [None if t is None or newest is None else max(0.0, (newest - t) / 86400) for t in stamps]


_REF = re.compile(r"\(#\d+\)|#\d+")
_NON_WORD = re.compile(r"[\W_]+")


def repeat_key(text: str) -> int | None:
    """The key under which texts count as the same: case, punctuation, spacing and pull-request references
    ("(#123)") ignored; None for a text with no words."""
    import hashlib

    norm = " ".join(_NON_WORD.sub(" ", _REF.sub(" ", text.lower())).split())
    if not norm:
        return None
    return int.from_bytes(hashlib.blake2b(norm.encode(), digest_size=8).digest(), "little", signed=True)


class RepeatIndex:
    """Past changes by their text's `repeat_key`: what the changes whose text a requirement repeats touched. Rows as
    the classifier's (`history_rows`: a change's weight, recency-decayed, shared among its modules), in three arrays
    sorted by key (a few bytes per past change)."""

    def __init__(self, n_ids: int, keys=(), mods=(), weights=()):
        self.n_ids = n_ids
        keys, mods, weights = (np.asarray(keys, dtype=np.int64), np.asarray(mods, dtype=np.int32),
                               np.asarray(weights, dtype=np.float32))
        order = np.argsort(keys, kind="stable")
        self.keys, self.mods, self.weights = keys[order], mods[order], weights[order]

    def added(self, texts: list[str], mods: list[int], weights: list[float]) -> "RepeatIndex":
        """A copy that also holds these rows (text, module index, weight); rows of a text with no words are left out."""
        ks = [repeat_key(t) for t in texts]
        keep = [i for i, k in enumerate(ks) if k is not None]
        return RepeatIndex(self.n_ids, np.concatenate([self.keys, np.array([ks[i] for i in keep], dtype=np.int64)]),
                           np.concatenate([self.mods, np.array([mods[i] for i in keep], dtype=np.int32)]),
                           np.concatenate([self.weights, np.array([weights[i] for i in keep], dtype=np.float32)]))

    def distribution(self, text: str) -> tuple[np.ndarray, float] | None:
        """(the modules' shares among the past changes with `text`'s key, their weighted count), or None."""
        key = repeat_key(text)
        if key is None:
            return None
        lo, hi = np.searchsorted(self.keys, key, "left"), np.searchsorted(self.keys, key, "right")
        if hi <= lo:
            return None
        out = np.zeros(self.n_ids)
        np.add.at(out, self.mods[lo:hi], self.weights[lo:hi].astype(np.float64))
        n = float(out.sum())
        return (out / n, n) if n > 0 else None


class BilingualAnalyzer:
    """Word 1–2 grams plus the English equivalents of the text's Chinese words (a picklable callable)."""

    def __init__(self, bilingual: Bilingual):
        self.bilingual = bilingual

    def __call__(self, text: str) -> list[str]:
        ws = words(text)
        return ws + [a + " " + b for a, b in zip(ws, ws[1:])] + self.bilingual.english(ws)


def example_text(subject: str, body: str) -> str:
    return (subject + "\n" + body[:BODY_CHARS]).strip()


def module_text(m: Module) -> str:
    syms = list(dict.fromkeys(s.name for s in m.symbols))[:60]
    return " ".join([
        m.id.replace("/", " "), " ".join(path_words(m.id)), m.name, " ".join(m.aliases), " ".join(m.keywords),
        m.description, " ".join(syms), " ".join(f.rsplit("/", 1)[-1] for f in m.files[:40]),
    ])


def _extend_vocabulary(vec, texts: list[str], n_docs: int):
    """A copy of the fitted TF-IDF vectorizer `vec` that also knows the terms of `texts` it lacks, appended as new
    columns with the smoothed idf a fit over `n_docs` documents gives them; and how many were added."""
    analyze = vec.build_analyzer()
    df: Counter = Counter()
    for t in texts:
        df.update(set(analyze(t)))
    terms = [t for t in df if t not in vec.vocabulary_]
    if not terms:
        return vec, 0
    out = copy.copy(vec)
    out.vocabulary_ = dict(vec.vocabulary_)
    start = len(out.vocabulary_)
    for j, t in enumerate(terms):
        out.vocabulary_[t] = start + j
    out._tfidf = copy.copy(vec._tfidf)
    idf = np.log((1 + n_docs) / (1 + np.array([df[t] for t in terms], dtype=np.float64))) + 1
    out._tfidf.idf_ = np.concatenate([vec._tfidf.idf_, idf.astype(vec._tfidf.idf_.dtype)])
    out._tfidf.n_features_in_ = len(out.vocabulary_)
    return out, len(terms)


class CentroidModel:
    """A class-centroid (Rocchio) classifier over the TF-IDF rows: each module's weighted sum of its rows,
    normalised; a text scores its cosine with each. Fitting is one pass over the rows (O(non-zeros)), the model is
    as sparse as the rows, and learning new rows online is exact (sums add)."""

    def __init__(self):
        self.classes_ = np.array([])
        self.sums = None

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.array(sorted(set(y)))
        self.sums = None
        return self.partial_fit(X, y, sample_weight)

    def partial_fit(self, X, y, sample_weight=None):
        from scipy.sparse import csr_matrix

        index = {c: i for i, c in enumerate(self.classes_)}
        keep = np.array([c in index for c in y])
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        rows = np.array([index[c] for c in np.asarray(y)[keep]], dtype=np.int64)
        onehot = csr_matrix((w[keep], (rows, np.nonzero(keep)[0])), shape=(len(self.classes_), X.shape[0]))
        add = (onehot @ X).tocsr()
        self.sums = add if self.sums is None else (self.sums + add).tocsr()
        self._normalise()
        return self

    def _normalise(self) -> None:
        from scipy.sparse import diags

        norms = np.sqrt(np.asarray(self.sums.multiply(self.sums).sum(axis=1)).ravel())
        self.coef_ = (diags(1.0 / np.maximum(norms, 1e-12)) @ self.sums).tocsc()  # column slices for scoring
        self.intercept_ = np.zeros(len(self.classes_))
        self.n_features_in_ = self.sums.shape[1]

    def widen(self, n_words: int, add_words: int, add_chars: int) -> "CentroidModel":
        """A copy with zero columns for `add_words` new word features (after the first `n_words`) and `add_chars`
        new character features (at the end)."""
        from scipy.sparse import csr_matrix, hstack

        k = self.sums.shape[0]
        out = CentroidModel()
        out.classes_ = self.classes_
        out.sums = hstack([self.sums[:, :n_words], csr_matrix((k, add_words)), self.sums[:, n_words:],
                           csr_matrix((k, add_chars))]).tocsr()
        out._normalise()
        return out


def change_weight(h, age: float | None, half_life_days: float | None = HALF_LIFE_DAYS) -> float:
    """What a past change counts for in a classifier: halved for every `half_life_days` of its age (None: undated,
    1), FEEDBACK_WEIGHT times for a person's correction."""
    decay = 0.5 ** (age / half_life_days) if half_life_days and age is not None else 1.0
    return decay * FEEDBACK_WEIGHT if h.kind == "feedback" else decay


def history_rows(history, leaves: set[str], half_life_days: float | None):
    """(text, module, weight, subject) of every past change, one row per leaf module it touched: weight
    1/len(modules), halved for every `half_life_days` of the change's age; a person's correction (feedback)
    counts FEEDBACK_WEIGHT times."""
    for h, age in zip(history, history_ages(history)):
        mods = [m for m in h.modules if m in leaves]
        decay = change_weight(h, age, half_life_days)
        for mid in mods:
            yield example_text(h.subject, h.body), mid, decay / len(mods), h.subject


def change_key(h, leaves: set[str]) -> str:
    """What identifies a past change for the classifier: its commit, text and the leaf modules it touched (a
    change whose modules were re-mapped, e.g. after a move, is a different change)."""
    import hashlib

    mods = ",".join(sorted(m for m in h.modules if m in leaves))
    return hashlib.blake2b(f"{h.kind}\0{h.commit}\0{h.subject}\0{mods}".encode(), digest_size=10).hexdigest()


class HistoryMatcher(ScoredMatcher):
    name = "history"
    temperature = 1.0

    def __init__(self, graph: ModuleGraph, *, C: float = 10.0, synthetic_weight: float = 1.0,
                 half_life_days: float | None = HALF_LIFE_DAYS, repeat_prior: float | None = REPEAT_PRIOR,
                 calibrator: Calibrator | None = None, **_ignored):
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer

        super().__init__(graph, calibrator)
        self.params = {"C": C, "synthetic_weight": synthetic_weight, "half_life_days": half_life_days,
                       "repeat_prior": repeat_prior}
        texts, labels, weights, subjects = [], [], [], []
        leaves = set(self.ids)
        for text, mid, weight, subject in history_rows(graph.history, leaves, half_life_days):
            texts.append(text)
            labels.append(mid)
            weights.append(weight)
            subjects.append(subject)
        self.n_history_rows = len(texts)
        self.repeats = RepeatIndex(len(self.ids)).added(texts, [self.index[m] for m in labels], weights)
        self.seen = {change_key(h, leaves) for h in graph.history}
        self.synthetic = [module_text(graph.modules[mid]) for mid in self.ids]
        texts += self.synthetic
        labels += self.ids
        weights += [synthetic_weight] * len(self.ids)
        subjects += [""] * len(self.ids)
        self.labels = np.array(labels)
        self.subjects = subjects
        self.bilingual = Bilingual.from_history(graph.history)
        self.writes_chinese = bool(writes_chinese(graph.history))
        self.word_vec = TfidfVectorizer(analyzer=BilingualAnalyzer(self.bilingual), sublinear_tf=True, min_df=1,
                                        max_features=200_000)
        self.char_vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1,
                                        max_features=300_000, lowercase=True)
        self.n_docs = len(texts)
        Xw = self.word_vec.fit_transform(texts)
        Xc = self.char_vec.fit_transform(texts)
        self.Xw = Xw
        X = hstack([Xw, Xc * 0.5]).tocsr()
        counts = Counter(labels)
        mean = np.mean(list(counts.values()))
        self.class_weight = {c: float((mean / n) ** 0.5) for c, n in counts.items()}
        w = np.asarray(weights) * np.array([self.class_weight[l] for l in labels])
        self.classes = sorted(counts)
        self.model = None
        self.kind = "constant"
        if len(self.classes) >= 2:
            if len(labels) * len(self.classes) <= LR_MAX_CELLS:
                from sklearn.linear_model import LogisticRegression

                self.model = LogisticRegression(C=C, max_iter=300)
                self.kind = "logreg"
            elif len(labels) * len(self.classes) <= SGD_MAX_CELLS and len(self.classes) <= SGD_MAX_CLASSES:
                from sklearn.linear_model import SGDClassifier

                self.model = SGDClassifier(loss="log_loss", alpha=2e-6, max_iter=15, tol=None, random_state=0,
                                           n_jobs=-1)
                self.kind = "sgd"
            else:
                self.model = CentroidModel()
                self.kind = "centroid"
            self.model.fit(X, self.labels, sample_weight=w)
            self.classes = list(self.model.classes_)
            if self.kind == "sgd":  # half the memory and the pickle (92 modules × 500k features: 370 MB in float64)
                self.model.coef_ = self.model.coef_.astype(np.float32)
        self._col = np.array([self.index[c] for c in self.classes])
        self._word_names = None

    def new_changes(self, graph: ModuleGraph) -> tuple[set[str], list] | None:
        """(the keys of `graph`'s past changes, those of them this classifier has not learned), or None when one it
        learned is gone or was re-mapped (e.g. by a move): then only a full fit will do."""
        leaves = set(answer_ids(graph))
        keys = [change_key(h, leaves) for h in graph.history]
        known = set(keys)
        if not self.seen <= known:
            return None
        return known, [h for h, k in zip(graph.history, keys) if k not in self.seen]

    def updated(self, graph: ModuleGraph, changes: tuple[set[str], list] | None = None) -> "HistoryMatcher | None":
        """This classifier with what `graph` adds to its history learned online, or None when only a full fit will
        do (the answerable modules changed, or a change it learned from is gone or was re-mapped, e.g. by a move).
        `changes`: what `new_changes(graph)` returned, when the caller already has it.

        An SGD model (long histories) keeps the vocabulary and class weights of its full fit, and takes one
        `partial_fit` pass over the new changes' rows and the synthetic rows of modules whose text changed. A
        logistic-regression model (short histories: at most LR_MAX_CELLS rows × classes) is refitted in full, which
        is cheap by construction."""
        from scipy.sparse import hstack, vstack

        ids = answer_ids(graph)
        if ids != self.ids:
            return None
        if self.kind not in ("sgd", "centroid"):
            return HistoryMatcher(graph, calibrator=self.calibrator, **self.params)
        changes = changes if changes is not None else self.new_changes(graph)
        if changes is None:
            return None
        keys, fresh = changes
        rows = list(history_rows(fresh, set(ids), self.params["half_life_days"]))
        synthetic = [module_text(graph.modules[mid]) for mid in ids]
        changed = [i for i, (a, b) in enumerate(zip(self.synthetic, synthetic)) if a != b]
        texts = [r[0] for r in rows] + [synthetic[i] for i in changed]
        labels = [r[1] for r in rows] + [ids[i] for i in changed]
        new = self._clone()
        new.graph, new.seen, new.synthetic = graph, keys, synthetic
        n_words = len(self.word_vec.vocabulary_)
        if texts:
            # words the full fit never saw get columns of their own (idf as a fit over all rows would give them)
            new.n_docs = self.n_docs + len(texts)
            new.word_vec, add_w = _extend_vocabulary(self.word_vec, texts, new.n_docs)
            new.char_vec, add_c = _extend_vocabulary(self.char_vec, texts, new.n_docs)
            X = hstack([new.word_vec.transform(texts), new.char_vec.transform(texts) * 0.5]).tocsr()
            w = np.array([r[2] for r in rows] + [self.params["synthetic_weight"]] * len(changed))
            w = w * np.array([self.class_weight.get(c, 1.0) for c in labels])
            if self.kind == "centroid":  # exact: the new rows add to their modules' sums
                model = self.model.widen(n_words, add_w, add_c)
                model.partial_fit(X, np.array(labels), sample_weight=w)
            else:
                model = copy.deepcopy(self.model)
                k = model.coef_.shape[0]
                model.coef_ = np.hstack([model.coef_[:, :n_words], np.zeros((k, add_w)), model.coef_[:, n_words:],
                                         np.zeros((k, add_c))]).astype(np.float64)
                model.n_features_in_ = model.coef_.shape[1]
                for _ in range(UPDATE_EPOCHS):
                    model.partial_fit(X, np.array(labels), sample_weight=w)
                model.coef_ = model.coef_.astype(np.float32)
            new.model, new._word_names = model, None
        n = self.n_history_rows
        old = self.Xw[:n].tocsr(copy=True)
        old.resize((n, len(new.word_vec.vocabulary_)))
        parts = [old] + ([new.word_vec.transform([r[0] for r in rows])] if rows else [])
        new.Xw = vstack(parts + [new.word_vec.transform(synthetic)]).tocsr()
        new.labels = np.concatenate([self.labels[:n], np.array([r[1] for r in rows], dtype=self.labels.dtype),
                                     np.array(ids, dtype=self.labels.dtype)])
        new.subjects = self.subjects[:n] + [r[3] for r in rows] + [""] * len(ids)
        new.repeats = self.repeats.added([r[0] for r in rows], [self.index[r[1]] for r in rows], [r[2] for r in rows])
        new.n_history_rows = n + len(rows)
        return new

    def _words(self, text: str):
        """The text's word TF-IDF row, remembered for the last text and vectorizer: one question's scores, nearest
        past changes and evidence all read it. An English text asked of a repository that writes Chinese is read
        with the Chinese words its English words stand for (`query_text`)."""
        last = self.__dict__.get("_last_words")
        if last is not None and last[0] == text and last[1] is self.word_vec:
            return last[2]
        xw = self.word_vec.transform([self.query_text(text)])
        self._last_words = (text, self.word_vec, xw)
        return xw

    def query_text(self, text: str) -> str:
        """`text`, and where it holds no Chinese and this repository's change texts are Chinese (`writes_chinese`),
        the Chinese words its English words stand for (`Bilingual.chinese`: glossary and pairs learned from this
        history; only words the past changes use) on a line after it. The training rows of a Chinese change text
        carry its English equivalents, so a Chinese question reaches English changes; an English question reached
        Chinese changes only through the few equivalents it shared word for word ("website logs" is not "log"), and
        through none of the Chinese words themselves. 1Panel's issues asked by English titles scored 0.292 against
        0.496 by their Chinese titles (bench/README.md, stop 49)."""
        if not self.__dict__.get("writes_chinese") or has_han(text):
            return text
        vocab = self.word_vec.vocabulary_
        zh = self.bilingual.chinese(words(text), known=vocab)
        return text + "\n" + " ".join(zh) if zh else text

    def _features(self, text: str):
        from scipy.sparse import hstack

        return hstack([self._words(text), self.char_vec.transform([text]) * 0.5]).tocsr()

    def scores(self, text: str) -> np.ndarray:
        out = np.zeros(len(self.ids))
        if self.model is None:
            out[self._col] = 1.0
            return self._with_repeats(text, out)
        X = self._features(text)
        if self.kind == "logreg":
            p = self.model.predict_proba(X)[0]
        else:  # the text's few non-zero features only: a full (modules × features) product copies the whole matrix
            coef = self.model.coef_
            if self.kind == "centroid":
                z = np.asarray(coef[:, X.indices] @ X.data, dtype=np.float64).ravel() / CENTROID_TEMPERATURE
            else:
                z = np.asarray(coef[:, X.indices], dtype=np.float64) @ X.data + self.model.intercept_
            p = softmax(np.array([0.0, z[0]]) if coef.shape[0] == 1 else z, 1.0)
        out[self._col] = p
        return self._with_repeats(text, out)

    def _repeats_of(self, text: str) -> tuple[np.ndarray, float] | None:
        """`RepeatIndex.distribution(text)` where repeats are used (None otherwise), remembered for the last text and
        index: one question's scores (its subject and its whole text) and each answer's evidence read it."""
        if self.params.get("repeat_prior") is None:
            return None
        last = self.__dict__.get("_last_repeats")
        if last is not None and last[0] == text and last[1] is self.repeats:
            return last[2]
        rep = self.repeats.distribution(text)
        self._last_repeats = (text, self.repeats, rep)
        return rep

    def _with_repeats(self, text: str, p: np.ndarray) -> np.ndarray:
        """`p` with λ = n / (n + repeat_prior) of it given to what the n past changes of the same text touched
        (REPEAT_PRIOR)."""
        rep = self._repeats_of(text)
        if rep is None:
            return p
        lam = rep[1] / (rep[1] + self.params["repeat_prior"])
        return (1.0 - lam) * p + lam * rep[0]

    def neighbours(self, text: str, k: int = NEIGHBOURS) -> np.ndarray | None:
        """A distribution over the modules from the `k` past changes nearest to `text` (cosine of their word TF-IDF),
        each voting for its module by its similarity; None when there is no history or nothing is near."""
        n = self.n_history_rows
        if not n:
            return None
        sims = (self.Xw[:n] @ self._words(text).T).toarray().ravel()
        top = np.argpartition(-sims, k)[:k] if n > k else np.arange(n)
        top = top[sims[top] > 0]
        if not top.size:
            return None
        out = np.zeros(len(self.ids))
        np.add.at(out, [self.index[m] for m in self.labels[top]], sims[top])
        return out / out.sum()

    def probs(self, scores: np.ndarray) -> np.ndarray:
        s = np.clip(scores, 0, None)
        tot = s.sum()
        return s / tot if tot > 0 else np.full(s.shape, 1.0 / max(1, s.size))

    def evidence(self, text: str, mid: str) -> list[str]:
        ev = []
        rep = self._repeats_of(text)
        if rep is not None and rep[0][self.index[mid]] >= 0.005:  # what rounds to 0 % is not evidence
            ev.append(f"past changes with this same text: {rep[0][self.index[mid]]:.0%} of them touched it")
        if self.model is not None:
            ci = self.classes.index(mid)
            xw = self._words(text)
            coef = self.model.coef_[ci if self.model.coef_.shape[0] > 1 else 0]
            coef = (coef.toarray().ravel() if hasattr(coef, "toarray") else coef)[: xw.shape[1]]
            if self.model.coef_.shape[0] == 1 and ci == 0:
                coef = -coef
            if self._word_names is None:
                self._word_names = self.word_vec.get_feature_names_out()
            contrib = [(self._word_names[j], float(coef[j] * v)) for j, v in zip(xw.indices, xw.data)]
            top = [f for f, c in sorted(contrib, key=lambda x: -x[1]) if c > 0][:5]
            if top:
                ev.append("learned words: " + ", ".join(top))
        rows = np.where(self.labels[: self.n_history_rows] == mid)[0]
        if rows.size:
            q = self._words(text)
            sims = (self.Xw[rows] @ q.T).toarray().ravel()
            best = [rows[i] for i in np.argsort(-sims)[:2] if sims[i] > 0]
            if best:
                ev.append("similar past changes: " + " | ".join(self.subjects[i][:80] for i in best))
        elif not self.n_history_rows:
            ev.append("no history: predicted from the module's description")
        return ev


@register("history", default_eval=True)
def _make(graph: ModuleGraph, *, calibrate: bool = True, **opts) -> HistoryMatcher:
    cal = self_calibrate(HistoryMatcher, graph, uses_history=True, **opts) if calibrate else None
    return HistoryMatcher(graph, calibrator=cal, **opts)
