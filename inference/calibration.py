"""Confidence: from a matcher's raw scores to a probability that the answer is right.

Two steps. `softmax` turns the scores of the candidates into a distribution (with a matcher-
specific temperature); a `Calibrator`, fitted on held-out examples (the latest slice of the
history), maps that probability to the observed rate of being right, so that "0.9" means the
top answer was right about nine times in ten on the validation slice.

The map is isotonic regression (monotone, no shape assumed) when there are enough examples,
Platt scaling (a logistic curve) when there are few, and the identity when there are almost none
or only one outcome. It is a table of points, so it saves to JSON and applies with `np.interp`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

MIN_PLATT = 8
MIN_ISOTONIC = 40


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s
    t = max(float(temperature), 1e-6)
    z = (s - s.max()) / t
    e = np.exp(z)
    return e / e.sum()


@dataclass
class Calibrator:
    """A monotone map from a raw confidence in [0, 1] to a calibrated one."""

    xs: list[float] = field(default_factory=lambda: [0.0, 1.0])
    ys: list[float] = field(default_factory=lambda: [0.0, 1.0])
    method: str = "identity"
    n: int = 0

    def __call__(self, p) -> np.ndarray:
        return self.predict(p)

    def predict(self, p) -> np.ndarray:
        arr = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
        return np.clip(np.interp(arr, self.xs, self.ys), 0.0, 1.0)

    def to_dict(self) -> dict:
        return {"xs": [float(x) for x in self.xs], "ys": [float(y) for y in self.ys], "method": self.method, "n": self.n}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibrator":
        return cls(list(d["xs"]), list(d["ys"]), d.get("method", "isotonic"), int(d.get("n", 0)))

    @classmethod
    def identity(cls) -> "Calibrator":
        return cls()

    @classmethod
    def fit(cls, raw: Sequence[float], correct: Sequence[bool | int]) -> "Calibrator":
        """Fit on (raw top-1 confidence, was the top-1 right) pairs."""
        x = np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)
        y = np.asarray(correct, dtype=np.float64)
        n = int(x.size)
        if n < MIN_PLATT or y.min(initial=0) == y.max(initial=0) or np.ptp(x) < 1e-9:
            if n and y.min() == y.max():
                # one outcome only: shrink toward it, keep the ordering
                rate = (y.sum() + 1) / (n + 2)
                return cls([0.0, 1.0], [rate * 0.5, rate], "constant", n)
            return cls(method="identity", n=n)
        grid = np.linspace(0.0, 1.0, 51)
        if n < MIN_ISOTONIC:
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1.0)
            lr.fit(x.reshape(-1, 1), y.astype(int))
            ys = lr.predict_proba(grid.reshape(-1, 1))[:, 1]
            return cls(grid.tolist(), ys.tolist(), "platt", n)
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
        # a little smoothing: each outcome is pulled toward the base rate by one pseudo-count per 20
        prior = y.mean()
        iso.fit(x, y)
        ys = iso.predict(grid)
        # counts per grid cell, to shrink thinly supported steps toward the base rate
        idx = np.clip(np.searchsorted(grid, x), 0, grid.size - 1)
        counts = np.bincount(idx, minlength=grid.size).astype(float)
        support = np.convolve(counts, np.ones(5), mode="same")
        ys = (ys * support + prior * 2.0) / (support + 2.0)
        ys = np.maximum.accumulate(ys)  # keep it monotone after shrinking
        return cls(grid.tolist(), ys.tolist(), "isotonic", n)


def expected_calibration_error(conf: Sequence[float], correct: Sequence[bool | int], bins: int = 10) -> float:
    c = np.asarray(conf, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if c.size == 0:
        return 0.0
    edges = np.linspace(0, 1, bins + 1)
    err = 0.0
    for i in range(bins):
        m = (c >= edges[i]) & ((c < edges[i + 1]) if i < bins - 1 else (c <= edges[i + 1]))
        if m.any():
            err += m.sum() / c.size * abs(c[m].mean() - y[m].mean())
    return float(err)


def validation_split(history: list, frac: float = 0.15, min_val: int = 10, max_val: int = 400,
                     leaves: set[str] | None = None) -> tuple[list, list]:
    """The latest `frac` of the history (by date) as validation, the rest as training.

    Returns ([], []) when the history is too small to hold anything out.
    """
    hist = sorted(history, key=lambda h: (h.date, h.commit))
    n_val = int(min(max_val, max(min_val, round(len(hist) * frac))))
    if len(hist) < 3 * min_val or n_val >= len(hist):
        return [], []
    train, val = hist[:-n_val], hist[-n_val:]
    if leaves is not None:
        val = [h for h in val if any(m in leaves for m in h.modules)]
    return train, val


def with_history(graph, history: list):
    """A shallow copy of `graph` that sees only `history` (the modules are shared, not copied)."""
    import copy

    g = copy.copy(graph)
    g.history = list(history)
    return g


def fit_from_matcher(scorer: Callable[[str], np.ndarray], ids: list[str], val: list,
                     to_conf: Callable[[np.ndarray], np.ndarray]) -> tuple["Calibrator", list[float], list[bool]]:
    """Score every validation example, and fit a calibrator on (top-1 raw confidence, top-1 right)."""
    raws, oks = [], []
    for h in val:
        s = scorer(h.text)
        if s.size == 0:
            continue
        p = to_conf(s)
        top = int(np.argmax(s))
        raws.append(float(p[top]))
        oks.append(ids[top] in h.modules)
    return Calibrator.fit(raws, oks), raws, oks
