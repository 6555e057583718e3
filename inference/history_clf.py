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

from collections import Counter

import numpy as np

from indexer.graph import ModuleGraph
from indexer.records import Module
from indexer.text import path_words, words

from .base import register
from .bilingual import Bilingual
from .calibration import Calibrator, softmax
from .scoring import ScoredMatcher, self_calibrate

BODY_CHARS = 1500
LR_MAX_CELLS = 100_000  # rows × classes above which SGD replaces LBFGS logistic regression (LBFGS: minutes at 12k × 33)


# Recency: a past change weighs 0.5 ** (age in days / HALF_LIFE_DAYS), its age counted back from the newest change.
# Measured on the temporal splits (bench/README.md; 300 later changes each), history Acc@1 without → with 365 days:
# pytest 0.750 → 0.860, etcd 0.610 → 0.737, ncnn 0.716 → 0.742 (730 days: a little less; 180: worse than 365).
HALF_LIFE_DAYS: float | None = 365.0


def history_ages(history) -> list[float | None]:
    """Each change's age in days before the newest change of the history (None when undated)."""
    from datetime import datetime

    stamps = []
    for h in history:
        try:
            stamps.append(datetime.fromisoformat(str(h.date).replace("Z", "+00:00")).timestamp())
        except (TypeError, ValueError):
            stamps.append(None)
    newest = max((t for t in stamps if t is not None), default=None)
    return [None if t is None or newest is None else max(0.0, (newest - t) / 86400) for t in stamps]


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


class HistoryMatcher(ScoredMatcher):
    name = "history"
    temperature = 1.0

    def __init__(self, graph: ModuleGraph, *, C: float = 10.0, synthetic_weight: float = 1.0,
                 half_life_days: float | None = HALF_LIFE_DAYS, calibrator: Calibrator | None = None, **_ignored):
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer

        super().__init__(graph, calibrator)
        texts, labels, weights, subjects = [], [], [], []
        leaves = set(self.ids)
        ages = history_ages(graph.history)
        for h, age in zip(graph.history, ages):
            mods = [m for m in h.modules if m in leaves]
            decay = 0.5 ** (age / half_life_days) if half_life_days and age is not None else 1.0
            for mid in mods:
                texts.append(example_text(h.subject, h.body))
                labels.append(mid)
                weights.append(decay / len(mods))
                subjects.append(h.subject)
        self.n_history_rows = len(texts)
        for mid in self.ids:
            texts.append(module_text(graph.modules[mid]))
            labels.append(mid)
            weights.append(synthetic_weight)
            subjects.append("")
        self.labels = np.array(labels)
        self.subjects = subjects
        self.bilingual = Bilingual.from_history(graph.history)
        self.word_vec = TfidfVectorizer(analyzer=BilingualAnalyzer(self.bilingual), sublinear_tf=True, min_df=1,
                                        max_features=200_000)
        self.char_vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1,
                                        max_features=300_000, lowercase=True)
        Xw = self.word_vec.fit_transform(texts)
        Xc = self.char_vec.fit_transform(texts)
        self.Xw = Xw
        X = hstack([Xw, Xc * 0.5]).tocsr()
        w = np.asarray(weights)
        counts = Counter(labels)
        mean = np.mean(list(counts.values()))
        cw = {c: (mean / n) ** 0.5 for c, n in counts.items()}
        w = w * np.array([cw[l] for l in labels])
        self.classes = sorted(counts)
        self.model = None
        self.kind = "constant"
        if len(self.classes) >= 2:
            if len(labels) * len(self.classes) <= LR_MAX_CELLS:
                from sklearn.linear_model import LogisticRegression

                self.model = LogisticRegression(C=C, max_iter=300)
                self.kind = "logreg"
            else:
                from sklearn.linear_model import SGDClassifier

                self.model = SGDClassifier(loss="log_loss", alpha=2e-6, max_iter=15, tol=None, random_state=0,
                                           n_jobs=-1)
                self.kind = "sgd"
            self.model.fit(X, self.labels, sample_weight=w)
            self.classes = list(self.model.classes_)
        self._col = np.array([self.index[c] for c in self.classes])
        self._word_names = None

    def _features(self, text: str):
        from scipy.sparse import hstack

        return hstack([self.word_vec.transform([text]), self.char_vec.transform([text]) * 0.5]).tocsr()

    def scores(self, text: str) -> np.ndarray:
        out = np.zeros(len(self.ids))
        if self.model is None:
            out[self._col] = 1.0
            return out
        X = self._features(text)
        if self.kind == "logreg":
            p = self.model.predict_proba(X)[0]
        else:
            p = softmax(self.model.decision_function(X)[0], 1.0)
        out[self._col] = p
        return out

    def probs(self, scores: np.ndarray) -> np.ndarray:
        s = np.clip(scores, 0, None)
        tot = s.sum()
        return s / tot if tot > 0 else np.full(s.shape, 1.0 / max(1, s.size))

    def evidence(self, text: str, mid: str) -> list[str]:
        ev = []
        if self.model is not None:
            ci = self.classes.index(mid)
            xw = self.word_vec.transform([text])
            coef = self.model.coef_[ci if self.model.coef_.shape[0] > 1 else 0][: xw.shape[1]]
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
            q = self.word_vec.transform([text])
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
