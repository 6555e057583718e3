"""Scores for a matcher's answers against gold modules.

A case's answer is the ranked list of module IDs (with the top answer's confidence). Acc@k: a
gold module is among the first k. MRR: 1 / rank of the first gold module (0 when absent from the
list). The precision/coverage curve: as the confidence threshold rises, the share of cases still
answered (coverage) and how often their top-1 answer is right (precision). Per-module recall: for
every gold module, how often it was the top-1 answer of the cases naming it. Reliability: the cases binned by
their top answer's confidence, each bin's mean confidence beside how often its answers were right (what the ECE
sums up; a calibrated answerer's bins lie on the diagonal).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

from .calibration import ece_noise_floor, expected_calibration_error, reliability

THRESHOLDS = [round(i / 20, 2) for i in range(20)]  # 0.0, 0.05, ... 0.95


@dataclass
class CaseResult:
    gold: tuple[str, ...]
    predicted: list[str]  # ranked module IDs
    confidences: list[float] = field(default_factory=list)

    def rank(self) -> int | None:
        """1-based rank of the first gold module, or None."""
        g = set(self.gold)
        for i, m in enumerate(self.predicted, 1):
            if m in g:
                return i
        return None

    @property
    def top_confidence(self) -> float:
        return float(self.confidences[0]) if self.confidences else 0.0


def accuracy_at(results: Sequence[CaseResult], k: int) -> float:
    if not results:
        return 0.0
    return sum(1 for r in results if (rk := r.rank()) is not None and rk <= k) / len(results)


def wilson_interval(right: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion `right` / `n` (95 % at z 1.96), or None when n is 0. Unlike the normal
    approximation it stays within [0, 1] and is not empty at 0 or n: 19 right of 20 is 0.95 (0.76-0.99)."""
    if n <= 0:
        return None
    p = right / n
    d = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, mid - half), min(1.0, mid + half)


def mrr(results: Sequence[CaseResult]) -> float:
    if not results:
        return 0.0
    return sum(1.0 / rk if (rk := r.rank()) else 0.0 for r in results) / len(results)


def coverage_curve(results: Sequence[CaseResult], thresholds: Sequence[float] = THRESHOLDS) -> list[dict]:
    """[{threshold, coverage, precision, answered}] for the top-1 answer (precision None when none answered)."""
    out = []
    n = len(results)
    for t in thresholds:
        kept = [r for r in results if r.top_confidence >= t]
        right = sum(1 for r in kept if r.rank() == 1)
        out.append({"threshold": float(t), "coverage": (len(kept) / n) if n else 0.0,
                    "precision": (right / len(kept)) if kept else None, "answered": len(kept)})
    return out


def per_module_recall(results: Sequence[CaseResult]) -> dict[str, dict]:
    """{module: {"cases": n, "recall@1": share of its cases whose top-1 answer was it}}."""
    n: dict[str, int] = defaultdict(int)
    hit: dict[str, int] = defaultdict(int)
    for r in results:
        top = r.predicted[0] if r.predicted else None
        for g in set(r.gold):
            n[g] += 1
            hit[g] += int(top == g)
    return {m: {"cases": n[m], "recall@1": hit[m] / n[m]} for m in sorted(n)}


def compute_metrics(results: Sequence[CaseResult], ks: Sequence[int] = (1, 3, 5)) -> dict:
    out: dict = {"cases": len(results)}
    for k in ks:
        out[f"acc@{k}"] = accuracy_at(results, k)
    out["mrr"] = mrr(results)
    out["ece"] = expected_calibration_error([r.top_confidence for r in results], [r.rank() == 1 for r in results])
    out["ece_floor"] = ece_noise_floor([r.top_confidence for r in results])  # what a calibrated answerer would show
    out["mean_confidence"] = (sum(r.top_confidence for r in results) / len(results)) if results else 0.0
    out["coverage_curve"] = coverage_curve(results)
    out["reliability"] = reliability([r.top_confidence for r in results], [r.rank() == 1 for r in results])
    out["per_module_recall"] = per_module_recall(results)
    return out


def labelled_interval(precision: float, coverage: float, total: int) -> tuple[int, tuple[float, float] | None]:
    """How many of `total` answers a threshold with this coverage labelled, and the Wilson interval of its
    precision over them."""
    n = round(coverage * total)
    return n, wilson_interval(round(precision * n), n)
