"""Evaluation: case files, the honest temporal split of a repository's history, runs, reports.

    cases = load_cases("cases.jsonl", graph)            # {"text": ..., "gold_modules": [...]} per line
    report = evaluate(graph, cases, ["lexical", "hybrid"])
    write_report(report, "out/")                        # report.md, metrics.json, PNG plots

    split = history_split(repo, "2025-06-01", store_dir)   # graph + history as of the cut-off,
    report = evaluate(split.graph, split.cases, ...)        # cases = the changes after it

The split never reads the user's checkout: the graph is built from the cut-off commit's tree in
git's object store, the training history is mined up to that commit only, and the cases come
from the commits after it, mapped onto the cut-off's modules (changes whose modules did not
exist yet are dropped).
"""
from __future__ import annotations

import copy
import json
import logging
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from indexer.graph import ModuleGraph
from indexer.records import HistoryExample

from .base import capabilities, clean_text, create, default_eval_names
from .errors import BadInputError, CasesError, InferenceError
from .evidence import strip_subject_tags  # noqa: F401  (the stripping rule; bench and tests read it here)
from .metrics import CaseResult, compute_metrics, wilson_interval

log = logging.getLogger(__name__)

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?([+-]\d{2}:?\d{2}|Z)?$")


@dataclass
class Case:
    text: str
    gold: tuple[str, ...]
    id: str = ""
    date: str = ""


def load_cases(path: str | Path, graph: ModuleGraph) -> list[Case]:
    """Read JSONL cases; every problem is a CasesError naming the line."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise CasesError(f"cannot read cases file {p}: {e}") from e
    except UnicodeDecodeError as e:
        raise CasesError(f"{p}: not UTF-8 text") from e
    known = set(graph.modules)
    cases = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise CasesError(f"{p}:{no}: not valid JSON ({e.msg})") from None
        if not isinstance(d, dict):
            raise CasesError(f"{p}:{no}: each line must be a JSON object")
        text = d.get("text")
        if not isinstance(text, str) or not text.strip():
            raise CasesError(f"{p}:{no}: 'text' is missing or empty")
        gold = d.get("gold_modules")
        if isinstance(gold, str):
            gold = [gold]
        if not isinstance(gold, list) or not gold or not all(isinstance(g, str) for g in gold):
            raise CasesError(f"{p}:{no}: 'gold_modules' must be a non-empty list of module IDs")
        unknown = [g for g in gold if g not in known]
        if unknown:
            raise CasesError(f"{p}:{no}: unknown module(s) {', '.join(map(repr, unknown))} (not in the graph)")
        cases.append(Case(text, tuple(dict.fromkeys(gold)), str(d.get("id", no)), str(d.get("date", ""))))
    if not cases:
        raise CasesError(f"{p}: no cases")
    return cases


def cases_from_history(examples: Sequence[HistoryExample]) -> list[Case]:
    return [Case(h.text, tuple(h.modules), h.commit, h.date) for h in examples if h.modules and h.text.strip()]


# --- the temporal split ---------------------------------------------------------------------------
@dataclass
class Split:
    graph: ModuleGraph  # as of the cut-off, with the history up to it
    cutoff: str  # the commit
    cutoff_date: str
    cases: list[Case]
    dropped: dict = field(default_factory=dict)
    # every change after the cut-off up to the last case, oldest first: what a service's refreshes would have learned
    # between the cases (`run_refreshed`)
    later: list[HistoryExample] = field(default_factory=list)

    @property
    def train_history(self) -> list[HistoryExample]:
        return self.graph.history


def resolve_cutoff(root: str | Path, cutoff: str, head: str = "HEAD") -> str:
    """A commit-ish, or a date → the last commit on HEAD's first-parent chain at or before it."""
    from indexer.source import git, resolve_commit

    cutoff = cutoff.strip()
    if not cutoff:
        raise InferenceError("the cut-off is empty")
    if DATE_RE.match(cutoff):
        date = cutoff if len(cutoff) > 10 else cutoff + " 23:59:59"
        sha = git(root, "rev-list", "--first-parent", "-1", f"--before={date}", head, check=False).strip()
        if not sha:
            raise InferenceError(f"no commit at or before {cutoff}")
        return sha
    sha = resolve_commit(root, cutoff)
    if not sha:
        raise InferenceError(f"no such commit or date: {cutoff}")
    return sha


def history_split(root: str | Path, cutoff: str, store_dir: str | Path | None = None, *,
                  head: str = "HEAD", max_cases: int | None = None) -> Split:
    """The graph and history as of `cutoff`; the later changes as evaluation cases."""
    from indexer import build
    from indexer.history import mine_history, mine_moves
    from indexer.source import git, resolve_commit
    from indexer.store import Store

    root = Path(root)
    commit = resolve_cutoff(root, cutoff, head)
    head_sha = resolve_commit(root, head)
    if not head_sha:
        raise InferenceError(f"no such commit: {head}")
    tmp = None
    if store_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="modmatch-split-")
        store_dir = tmp.name
    store = Store(Path(store_dir) / f"split-{root.resolve().name}-{commit[:12]}.db")
    try:
        res = build.index(root, store, rev=commit, full=True)
        graph = res.graph
        graph.history = [h for h in store.history()]
        files = list(store.files())
    finally:
        store.close()
        if tmp is not None:
            tmp.cleanup()
    config = res.config  # the cut-off's, as the index read it
    # a later change to a file moved since the cut-off (llmtuner/ renamed llamafactory/) is a change to the
    # module the file had then, not to the parent folder both lie in
    module_of = build.history_module_of(graph, config, files, mine_moves(root, f"{commit}..{head_sha}", backward=True),
                                        new_folders_only=True)
    stats: dict = {}
    later = mine_history(root, module_of, rev_range=f"{commit}..{head_sha}",
                         max_modules=config.history_max_modules, known_modules=set(graph.leaf_ids()), stats=stats)
    cases = cases_from_history(later)
    if max_cases is not None and len(cases) > max_cases:
        cases = cases[-max_cases:]
    date = git(root, "show", "-s", "--format=%cI", commit).strip()
    ids = {c.id for c in cases}
    upto = sorted(later, key=lambda h: (h.date, h.commit))
    last = max((i for i, h in enumerate(upto) if h.commit in ids), default=-1)
    return Split(graph, commit, date, cases, stats, upto[: last + 1])


# --- running --------------------------------------------------------------------------------------
@dataclass
class MatcherRun:
    name: str
    metrics: dict
    results: list[CaseResult]
    build_seconds: float
    seconds_per_case: float
    notes: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class EvalReport:
    runs: list[MatcherRun]
    n_cases: int
    info: dict = field(default_factory=dict)

    def table(self) -> list[dict]:
        rows = []
        for r in self.runs:
            row = {"matcher": r.name}
            if r.error:
                row["error"] = r.error
            else:
                row.update({k: r.metrics[k] for k in ("acc@1", "acc@3", "acc@5", "mrr", "ece", "ece_floor")
                            if k in r.metrics})
                row["build_s"] = round(r.build_seconds, 2)
                row["ms_per_case"] = round(r.seconds_per_case * 1000, 1)
            rows.append(row)
        return rows

    def to_dict(self) -> dict:
        return {"cases": self.n_cases, "info": self.info,
                "matchers": {r.name: {**({"error": r.error} if r.error else r.metrics),
                                      "build_seconds": round(r.build_seconds, 3),
                                      "seconds_per_case": round(r.seconds_per_case, 5), "notes": r.notes}
                             for r in self.runs}}


def run_matcher(matcher, cases: Sequence[Case], k: int = 5) -> list[CaseResult]:
    out = []
    for c in cases:
        try:
            ms = matcher.match(c.text, k=k)
        except BadInputError:
            ms = []
        out.append(CaseResult(c.gold, [m.module for m in ms], [m.confidence for m in ms]))
    return out


def _timestamp(date: str) -> float:
    """A change's date as a POSIX time (the clock's now where it is no ISO date)."""
    from .history_clf import date_stamp

    stamp = date_stamp(date)
    return time.time() if stamp is None else stamp


def run_refreshed(name: str, matcher, graph: ModuleGraph, later: Sequence[HistoryExample], cases: Sequence[Case], *,
                  k: int = 5, opts: dict | None = None,
                  observe: Callable[[int, object], None] | None = None) -> tuple[list[CaseResult], dict]:
    """`cases` answered as a service whose git hooks refresh the graph after every push would answer them, a day
    being one push: each day's cases by the matcher as of the day before, then the day's changes (`later`, every
    change after the cut-off, cases or not) learned the way a refresh learns them (`inference.cache.cached_matcher`:
    `updated(graph)` where the matcher can be brought up to the new graph, a full build where it cannot). The
    graph's modules stay those of the cut-off; only its history grows. A real service refreshes after each push,
    so it knows a day's earlier changes by its later texts: this is the lower bound of that. Time is the history's:
    `matcher` counts as built at the cut-off (its newest change) and a full build as made at the push that needed
    it, so the full builds a service makes when its build grows old (`HybridMatcher.refit_reason`) happen here too.
    `observe(i, matcher)` is called with each case's index and the matcher that answered it (what a benchmark reads
    off the service of that day, as its labeller's threshold). Returns the results in the order of `cases` and
    {"days", "updates", "full_builds", "update_seconds"}."""
    from .calibration import with_history
    from .hybrid import HybridMatcher

    if isinstance(matcher, HybridMatcher) and graph.history:
        matcher = copy.copy(matcher)
        matcher.lineage = {**matcher.lineage, "built_at": max(_timestamp(h.date) for h in graph.history)}

    by_id = {c.id: i for i, c in enumerate(cases)}
    out: list[CaseResult | None] = [None] * len(cases)
    stats = {"days": 0, "updates": 0, "full_builds": 0, "update_seconds": 0.0}
    history, pending, day = list(graph.history), [], None
    left = len(cases)

    def learn(m):
        nonlocal history, pending
        now = _timestamp(pending[-1].date)  # the push's time: what a full build's age is read against
        history, pending = history + pending, []
        g = with_history(graph, history)
        t0 = time.perf_counter()
        if isinstance(m, HybridMatcher):
            q = m.updated(g, now=now)
        else:
            q = m.updated(g) if hasattr(m, "updated") else None
        stats["update_seconds"] += time.perf_counter() - t0
        if q is not None:
            stats["updates"] += 1
            return q
        stats["full_builds"] += 1
        q = create(name, g, **(opts or {}))
        if isinstance(q, HybridMatcher):
            q.lineage["built_at"] = now  # built at the push, as the service would have built it then
        return q

    for h in sorted(later, key=lambda h: (h.date, h.commit)):
        if day is not None and h.date[:10] != day and pending:
            matcher = learn(matcher)
        if h.date[:10] != day:
            stats["days"] += 1
            day = h.date[:10]
        if h.commit in by_id:
            i = by_id[h.commit]
            out[i] = run_matcher(matcher, [cases[i]], k)[0]
            if observe is not None:
                observe(i, matcher)
            left -= 1
            if not left:
                break
        pending.append(h)
    for i in [i for i, r in enumerate(out) if r is None]:  # cases not among `later` (none from a history split)
        out[i] = run_matcher(matcher, [cases[i]], k)[0]
        if observe is not None:
            observe(i, matcher)
    stats["update_seconds"] = round(stats["update_seconds"], 2)
    return out, stats


def evaluate(graph: ModuleGraph, cases: Sequence[Case], matchers: Sequence[str] | None = None, *,
             k: int = 5, opts: dict | None = None, progress: Callable[[str, int, int], None] | None = None,
             info: dict | None = None, lm_opts: dict | None = None,
             later: Sequence[HistoryExample] | None = None) -> EvalReport:
    """Build each matcher on `graph` and score it on `cases` (default: the matchers registered for eval). A matcher
    that fails to build is reported, not fatal. `later` (a temporal split's changes after the cut-off): each matcher
    answers as refreshed after each day's changes (`run_refreshed`), not frozen at the cut-off."""
    k = max(k, 5)
    matchers = list(matchers) if matchers else default_eval_names()
    runs = []
    for name in matchers:
        t0 = time.perf_counter()
        try:
            m = create(name, graph, **((lm_opts or {}) if capabilities(name).needs_model else (opts or {})))
        except InferenceError as e:
            if len(matchers) == 1:
                raise
            runs.append(MatcherRun(name, {}, [], time.perf_counter() - t0, 0.0, error=str(e)))
            continue
        built = time.perf_counter() - t0
        t1 = time.perf_counter()
        results = []
        notes = list(getattr(m, "notes", []))
        if later is not None:
            results, st = run_refreshed(name, m, graph, later, cases, k=k, opts=opts)
            notes.append(f"refreshed after each day's changes: {st['updates']} updates and {st['full_builds']} full "
                         f"builds over {st['days']} days")
            if progress:
                progress(name, len(cases), len(cases))
        else:
            for i, c in enumerate(cases):
                results += run_matcher(m, [c], k)
                if progress and (i % 20 == 0 or i == len(cases) - 1):
                    progress(name, i + 1, len(cases))
        per = (time.perf_counter() - t1) / max(1, len(cases))
        runs.append(MatcherRun(name, compute_metrics(results), results, built, per, notes))
    return EvalReport(runs, len(cases), dict(info or {}))


# --- reports --------------------------------------------------------------------------------------
def format_table(report: EvalReport) -> str:
    head = ("| matcher | Acc@1 | Acc@3 | Acc@5 | MRR | ECE (floor) | build s | ms/case |\n"
            "|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in report.runs:
        if r.error:
            lines.append(f"| {r.name} | error: {r.error} | | | | | | |")
            continue
        m = r.metrics
        lines.append(f"| {r.name} | {m['acc@1']:.3f} | {m['acc@3']:.3f} | {m['acc@5']:.3f} | {m['mrr']:.3f} | "
                     f"{m['ece']:.3f} ({m.get('ece_floor', 0.0):.3f}) | {r.build_seconds:.1f} | "
                     f"{r.seconds_per_case * 1000:.0f} |")
    return "\n".join(lines)


def plot_reliability(ax, curves: Sequence[tuple[str, list[dict]]]) -> None:
    """Reliability diagram on a matplotlib axis: for each (label, `metrics.reliability` bins), the bins' mean
    confidence against their accuracy, each point as large as its share of the cases, with the diagonal of a
    calibrated answerer."""
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for label, bins in curves:
        if not bins:
            continue
        total = sum(b["cases"] for b in bins)
        line, = ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], linewidth=1, label=label)
        ax.scatter([b["confidence"] for b in bins], [b["accuracy"] for b in bins], color=line.get_color(),
                   s=[10 + 300 * b["cases"] / total for b in bins], alpha=0.7)
    ax.set_xlabel("top-1 confidence (bin mean)")
    ax.set_ylabel("share of top-1 answers right")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)


def write_report(report: EvalReport, folder: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(report.to_dict(), indent=1, sort_keys=True))
    ok = [r for r in report.runs if not r.error]

    # accuracy by matcher
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.2
    for j, key in enumerate(("acc@1", "acc@3", "acc@5", "mrr")):
        ax.bar([i + j * width for i in range(len(ok))], [r.metrics[key] for r in ok], width, label=key)
    ax.set_xticks([i + 1.5 * width for i in range(len(ok))], [r.name for r in ok])
    ax.set_ylim(0, 1)
    ax.set_title(f"Accuracy by matcher ({report.n_cases} cases)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "accuracy.png", dpi=100)
    plt.close(fig)

    # precision / coverage
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in ok:
        pts = [(p["coverage"], p["precision"]) for p in r.metrics["coverage_curve"] if p["precision"] is not None]
        if pts:
            ax.plot([c for c, _ in pts], [p for _, p in pts], marker=".", label=r.name)
    ax.set_xlabel("coverage (share of cases answered)")
    ax.set_ylabel("precision of the top-1 answer")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title("Precision vs coverage as the confidence threshold rises")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "precision_coverage.png", dpi=100)
    plt.close(fig)

    # reliability: each confidence bin's mean confidence against how often its answers were right
    fig, ax = plt.subplots(figsize=(5, 5))
    plot_reliability(ax, [(r.name, r.metrics.get("reliability", [])) for r in ok])
    ax.set_title("Reliability of the top-1 confidence")
    fig.tight_layout()
    fig.savefig(folder / "reliability.png", dpi=100)
    plt.close(fig)

    # per-module recall
    mods = sorted({m for r in ok for m in r.metrics["per_module_recall"]},
                  key=lambda m: -max(r.metrics["per_module_recall"].get(m, {"cases": 0})["cases"] for r in ok))[:30]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(mods) + 2), 4.5))
    width = 0.8 / max(1, len(ok))
    for j, r in enumerate(ok):
        pm = r.metrics["per_module_recall"]
        ax.bar([i + j * width for i in range(len(mods))], [pm.get(m, {"recall@1": 0})["recall@1"] for m in mods],
               width, label=r.name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(mods))], mods, rotation=70, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("recall@1")
    ax.set_title("Per-module recall@1 (most frequent gold modules)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "per_module_recall.png", dpi=100)
    plt.close(fig)

    md = ["# modmatch evaluation", "", f"{report.n_cases} cases."]
    for key, val in report.info.items():
        md.append(f"- {key}: {val}")
    md += ["", format_table(report), "", "![accuracy](accuracy.png)", "",
           "## Precision vs coverage", "", "Top-1 precision and the share of cases answered at each confidence "
           "threshold.", ""]
    md.append("| threshold | " + " | ".join(r.name for r in ok) + " |")
    md.append("|---|" + "---|" * len(ok))
    for i, t in enumerate([0.0, 0.3, 0.5, 0.7, 0.9]):
        cells = []
        for r in ok:
            p = next(p for p in r.metrics["coverage_curve"] if abs(p["threshold"] - t) < 1e-9)
            cells.append(f"{p['precision']:.2f} @ {p['coverage']:.0%}" if p["precision"] is not None else "–")
        md.append(f"| {t:.1f} | " + " | ".join(cells) + " |")
    md += ["", "![precision/coverage](precision_coverage.png)", "", "## Calibration", "",
           "The cases binned by the top answer's confidence: each bin's mean confidence against how often its answers "
           "were right (a calibrated answerer's points lie on the diagonal; the ECE is their case-weighted mean "
           "distance from it, read against its floor: what a calibrated answerer shows on as many cases).", ""]
    for r in ok:
        bins = r.metrics.get("reliability", [])
        md.append(f"- {r.name}: ECE {r.metrics['ece']:.3f} (floor {r.metrics.get('ece_floor', 0.0):.3f}); "
                  + ", ".join(f"{b['lo']:.1f}–{b['hi']:.1f}: {b['accuracy']:.2f} right at {b['confidence']:.2f} "
                              f"({b['cases']})" for b in bins))
    md += ["", "![reliability](reliability.png)", "", "## Per-module recall@1", "",
           "![per-module recall](per_module_recall.png)", ""]
    for r in ok:
        if r.notes:
            md.append(f"- {r.name}: " + "; ".join(r.notes))
    (folder / "report.md").write_text("\n".join(md) + "\n")
    return folder


def check_text(text: str) -> str:
    return clean_text(text)


# --- subject tags: the rule is `inference.evidence.strip_subject_tags` (how issues and Slack questions read)

# --- label trust ----------------------------------------------------------------------------------
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")


def has_cjk(text: str) -> bool:
    """Whether the text holds CJK characters (Chinese, also kana and hangul): a 'mixed-language' case."""
    return bool(_CJK_RE.search(text))


def precision_at_coverage(results: Sequence[CaseResult], coverage: float = 0.60) -> float | None:
    """Top-1 precision of the most confident `coverage` share of the cases.

    Cases tied at the cut-off confidence cannot be told apart by a threshold, so they count with their
    average precision (the expected value of breaking the tie at random): a constant confidence gives
    the overall Acc@1, not a lucky order.
    """
    n = len(results)
    k = int(round(coverage * n))
    if not n or k <= 0:
        return None
    conf = sorted((r.top_confidence for r in results), reverse=True)
    edge = conf[k - 1]
    above = [r for r in results if r.top_confidence > edge]
    tied = [r for r in results if r.top_confidence == edge]
    right_above = sum(r.rank() == 1 for r in above)
    right_tied = sum(r.rank() == 1 for r in tied)
    return (right_above + (k - len(above)) * right_tied / len(tied)) / k


def threshold_for_precision(results: Sequence[CaseResult], precision: float = 0.95) -> dict:
    """The lowest top-1 confidence threshold whose answered cases (confidence >= it) reach `precision`.

    {"threshold": t or None, "coverage": share answered at t, "precision": their precision, "answered": n};
    the threshold is None (coverage 0) when no threshold reaches the precision.
    """
    n = len(results)
    best = {"threshold": None, "coverage": 0.0, "precision": None, "answered": 0}
    for t in sorted({r.top_confidence for r in results}):
        kept = [r for r in results if r.top_confidence >= t]
        p = sum(r.rank() == 1 for r in kept) / len(kept)
        if p >= precision:
            return {"threshold": t, "coverage": len(kept) / n, "precision": p, "answered": len(kept)}
    return best


def distinct_rank_share(results: Sequence[CaseResult], k: int = 5) -> float:
    """The share of answers whose first `k` confidences are strictly decreasing (answers with fewer
    than two ranks do not count as distinct)."""
    if not results:
        return 0.0
    ok = 0
    for r in results:
        c = list(r.confidences[:k])
        ok += int(len(c) >= 2 and all(a > b for a, b in zip(c, c[1:])))
    return ok / len(results)


def trust_metrics(results: Sequence[CaseResult], coverage: float = 0.60, precision: float = 0.95) -> dict:
    """ECE of the top-1 confidence (with the floor a perfectly calibrated answerer would show on as many cases, and
    the mean confidence minus the accuracy: above 0 overconfident), precision at `coverage`, the threshold for
    `precision`, distinct ranks."""
    from .calibration import ece_noise_floor, expected_calibration_error

    thr = threshold_for_precision(results, precision)
    conf = [r.top_confidence for r in results]
    right = [r.rank() == 1 for r in results]
    gap = (sum(conf) - sum(right)) / len(results) if results else 0.0
    return {"ece": expected_calibration_error(conf, right), "ece_floor": ece_noise_floor(conf),
            "confidence_gap": gap,
            f"precision@cov{coverage:.2f}": precision_at_coverage(results, coverage),
            f"threshold@p{precision:.2f}": thr["threshold"], f"coverage@p{precision:.2f}": thr["coverage"],
            "distinct_ranks": distinct_rank_share(results)}


def abstention_share(top_confidences: Sequence[float], threshold: float | None,
                     flagged: Sequence[bool] | None = None) -> float | None:
    """The share of (foreign) texts that get no label: their top-1 confidence stays below `threshold`, or (with
    `flagged`) the matcher said the text is not about the repository, which the labeller heeds whatever the
    confidence (`bot.state.no_module_reason`)."""
    if threshold is None or not top_confidences:
        return None
    flags = flagged if flagged is not None else [False] * len(top_confidences)
    return sum(c < threshold or f for c, f in zip(top_confidences, flags, strict=True)) / len(top_confidences)


def labeller_outcome(results: Sequence[CaseResult], threshold: float | None, flagged: Sequence[bool] | None = None,
                     max_labels: int = 2) -> dict | None:
    """What the GitHub labeller does with these answers at `threshold` (`bot.github.labeler`): a text the matcher says
    is not about the repository (`flagged`, `bot.state.no_module_reason`) gets no label; otherwise every answer at or
    above the threshold becomes a label, `max_labels` at most. Returns the share of texts labelled, how often the
    first label is right (with its Wilson 95 % interval: on a few dozen labels the precision is a wide guess), the
    share of all labels given that name a gold module, and how many texts were said not to be about the repository
    (`no_module`). None without a threshold."""
    if threshold is None:
        return None
    flags = flagged if flagged is not None else [False] * len(results)
    labelled = right = given = good = 0
    for r, f in zip(results, flags, strict=True):
        if f:
            continue
        labels = [m for m, c in zip(r.predicted, r.confidences) if c >= threshold][:max_labels]
        if not labels:
            continue
        labelled += 1
        right += labels[0] in r.gold
        given += len(labels)
        good += sum(m in r.gold for m in labels)
    return _outcome(threshold, len(results), labelled, right, given, good, sum(map(bool, flags)))


def _outcome(threshold, texts: int, labelled: int, right: int, given: int, good: int, no_module: int) -> dict:
    return {"threshold": threshold, "texts": texts, "no_module": no_module, "labelled": labelled, "right": right,
            "coverage": labelled / texts if texts else 0.0, "precision": right / labelled if labelled else None,
            "precision_interval": wilson_interval(right, labelled), "labels": given, "right_labels": good,
            "label_precision": good / given if given else None}


def pooled_outcome(outcomes: Sequence[dict | None]) -> dict | None:
    """`labeller_outcome`s of several builds (each at its own threshold: the windows of a repository, or
    repositories) pooled over their texts; None where none had a threshold."""
    got = [o for o in outcomes if o is not None]
    if not got:
        return None
    return _outcome(None, *(sum(o[k] for o in got)
                            for k in ("texts", "labelled", "right", "labels", "right_labels", "no_module")))
