"""What the retrieval matchers share: score every answerable module, rank, attach confidence.

A `ScoredMatcher` subclass implements `scores(text) -> np.ndarray` over `self.ids` (the graph's
leaf modules) and `evidence(text, mid)`; the base class validates the text, ranks (ties broken
by module ID, so results are deterministic), turns scores into confidences with `softmax` and
the matcher's `Calibrator`, and builds `Match` records. The hybrid reuses `scores` and `probs`.
"""
from __future__ import annotations

import numpy as np

from indexer.graph import ModuleGraph

from .base import Match, clean_text
from .calibration import Calibrator, fit_from_matcher, softmax, validation_split, with_history


def answer_ids(graph: ModuleGraph) -> list[str]:
    ids = graph.leaf_ids()
    return ids if ids else list(graph.modules)


class ScoredMatcher:
    name = "scored"
    temperature = 1.0

    def __init__(self, graph: ModuleGraph, calibrator: Calibrator | None = None):
        self.graph = graph
        self.ids = answer_ids(graph)
        self.index = {mid: i for i, mid in enumerate(self.ids)}
        self.calibrator = calibrator

    def __getstate__(self) -> dict:
        """Pickled without the graph (inference.cache re-attaches the live one)."""
        state = dict(self.__dict__)
        state["graph"] = None
        return state

    def _clone(self):
        """A shallow copy that shares every fitted part (for `updated` matchers that replace a few of them)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    # --- to implement ------------------------------------------------------------------------
    def scores(self, text: str) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def evidence(self, text: str, mid: str) -> list[str]:
        return []

    # --- shared ------------------------------------------------------------------------------
    def probs(self, scores: np.ndarray) -> np.ndarray:
        """Uncalibrated distribution over `self.ids`."""
        return softmax(scores, self.temperature)

    def confidences(self, scores: np.ndarray) -> np.ndarray:
        p = self.probs(scores)
        return self.calibrator.predict(p) if self.calibrator is not None else p

    def rank(self, scores: np.ndarray) -> list[int]:
        return sorted(range(len(self.ids)), key=lambda i: (-float(scores[i]), self.ids[i]))

    def ranked(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        """The top k (module, score) in `match`'s order, without confidences or evidence (cheap: for building
        training rows and tuning, where only the ranking is read)."""
        text = clean_text(text)
        if not self.ids:
            return []
        s = np.asarray(self.scores(text), dtype=np.float64)
        return [(self.ids[i], float(s[i])) for i in self.rank(s)[: max(1, k)]]

    def match(self, text: str, k: int = 5) -> list[Match]:
        text = clean_text(text)
        if not self.ids:
            return []
        s = np.asarray(self.scores(text), dtype=np.float64)
        conf = self.confidences(s)
        out = []
        for i in self.rank(s)[: max(1, k)]:
            mid = self.ids[i]
            out.append(Match(mid, float(s[i]), float(conf[i]), self.evidence(text, mid)))
        return out

    def calibrate_on(self, val: list) -> Calibrator:
        cal, _, _ = fit_from_matcher(self.scores, self.ids, val, self.probs)
        self.calibrator = cal
        return cal


def self_calibrate(cls, graph: ModuleGraph, *, uses_history: bool, **opts) -> Calibrator | None:
    """Fit a calibrator for matcher class `cls` on the latest slice of the history.

    A matcher that learns from the history is rebuilt on the earlier part first, so the slice
    it is calibrated on is unseen; one that does not is scored directly.
    """
    ids = set(answer_ids(graph))
    train, val = validation_split(graph.history, leaves=ids)
    if not val:
        return None
    m = cls(with_history(graph, train) if uses_history else graph, **opts)
    return m.calibrate_on(val)
