"""The dev benchmark (issue 11): accuracy, tag-free accuracy, mixed-language cases, label trust and
abstention of what `ask` serves by default, on the repositories of a manifest, with a temporal split.

    nice -n 10 .venv/bin/python bench/dev_benchmark.py                     # every repository, 200 cases each
    nice -n 10 .venv/bin/python bench/dev_benchmark.py --only pytest etcd  # some; the others' last results stay
        [--manifest bench/dev_repos.toml] [--max-cases 200] [--foreign 25] [--out bench/results/dev]
        [--work-dir /tmp/modmatch-dev] [--matcher hybrid --matcher lexical ...] [--no-abstention | --abstention-only]
        [--no-refreshed | --refreshed-only | --answers-only] [--code LABEL]

It measures the code it is run from: the working tree, other people's uncommitted changes included
(recorded as "+uncommitted" in the JSON). To measure the last commit alone, run it from an export:

    rm -rf /tmp/mm-head && mkdir /tmp/mm-head && git archive HEAD | tar -x -C /tmp/mm-head
    cd /tmp/mm-head && nice -n 10 /work/main/.venv/bin/python bench/dev_benchmark.py \
        --out /work/main/bench/results/dev --code $(git -C /work/main rev-parse --short HEAD)

For every repository of the manifest (`bench/dev_repos.toml`: name, source, language, local path,
cut-off about a year before the snapshot's last commit) the split of `bench/eval_history.py` is
made (`inference.evaluate.history_split`: graph and history as of the cut-off, read from git's
objects) and the first `--max-cases` changes after the cut-off are the cases. Each matcher
(`hybrid`, what `ask` serves without a trained model, and `lexical` / `history` as references) is
built once on the cut-off graph and scored on:

- the cases as they are: Acc@1, Acc@3, MRR;
- the same cases with leading subject tags stripped (`inference.evaluate.strip_subject_tags`;
  repeatedly, at the start of the text only: a bracketed tag `[OpenCL:Bugfix]` / `[skip ci]` /
  `【优化】`; a prefix `tag:` made of one ASCII token or a comma list of them, with an optional
  conventional-commit scope, at most 40 characters, followed by whitespace (`IoUring: `,
  `net/http: `, `fix(ssr): `, `io, net: `, `*: `); a conventional-commit type or a full-width
  colon needs no space (`fix:fix CI`). A colon after a phrase with spaces is kept. A case whose
  text was only tags is kept with an empty text and counts as a miss);
- the mixed-language cases alone (text with CJK characters; reported where a repository has at
  least `--min-cjk` of them) and the other cases ("english") for comparison;
- label trust of the top-1 confidence: ECE (10 bins; with its floor, the median ECE of a perfectly
  calibrated answerer with the same confidences on as many cases, and the mean confidence minus the
  Acc@1), top-1 precision at coverage 0.60 (the most
  confident 60 %; cases tied at the edge count at their average precision), the lowest threshold
  whose answered cases reach precision 0.95 and the coverage there (none: no threshold reaches it),
  and the share of answers whose five confidences are strictly decreasing; each case's first answer (its
  confidence, whether right) is kept, and the report pools them over the repositories into one calibration table
  (where the ECE's floor is a fraction of one repository's) with reliability, precision/coverage and accuracy
  plots (`--answers-only` records them for an earlier result from its pickled matcher, where that reproduces it);
- kept up to date (default matcher only; `--no-refreshed` skips it, `--refreshed-only` runs it alone on the
  matchers phase one pickled): the same cases asked of the matcher as a service whose git hooks refresh it would
  hold it, every day's changes (cases or not) learned before the next day's texts (`inference.evaluate.
  run_refreshed`: `updated`, or a full build where one is due, as `inference.cache.cached_matcher` does after a
  refresh). Acc@1, Acc@3, ECE and precision at coverage 0.60 of that run, beside the matcher frozen at the cut-off;
- abstention (default matcher only): the texts of the OTHER repositories' cases (the first
  `--foreign` of each, as they are) sent to this repository's matcher; the share whose top-1
  confidence stays below this repository's precision-0.95 threshold, i.e. that would get no label
  (none where there is no such threshold; the share below the coverage-0.60 threshold is given too).
  Each is also given as the labeller acts: no label either below the threshold or where the matcher
  says the text is not about this repository (`bot.state.no_module_reason`), whatever its confidence.
  Both thresholds are read on this repository's later changes, which the service cannot see;
- the labeller as it acts (default matcher only): the threshold the service labels at without a
  configured one (`RepoState.label_threshold`: the operating point the build chose on its held-out
  history for precision 0.95), applied as `bot.github.labeler` applies it (no label where the matcher
  says the text is not about the repository; every answer at or above the threshold a label, two at
  most): the share of this repository's later changes labelled, how often the first label is right
  (with its Wilson 95 % interval), the share of all labels that are right, and the share of the
  other repositories' texts given no label.

Writes `<out>/<name>.json` per repository (kept between runs, so `--only` refreshes some and the
summary still covers all; each records the modmatch commit it ran on), `<out>/summary.json` and
`<out>/report.md`, and prints the tables. Phase two (abstention) needs every repository's cases:
they are kept in `--work-dir` (with the pickled default matcher) by phase one; a repository that
was not run in this call contributes the cases of its last run found there.

Recreating the local clones (outside the project; nothing of them is committed): for each
`[[repo]]` of the manifest, fetch `github:<source>` with the project's fetch tool (it answers with a
bare git directory such as `/work/.mirror/<owner>+<name>/repo`), then

    git clone -q --no-checkout /work/.mirror/pytest-dev+pytest/repo /work/bench-repos/pytest
    git clone -q --no-checkout /work/.mirror/etcd-io+etcd/repo /work/bench-repos/etcd
    git clone -q --no-checkout /work/.mirror/Tencent+ncnn/repo /work/bench-repos/ncnn
    git clone -q --no-checkout /work/.mirror/tokio-rs+tokio/repo /work/bench-repos/tokio
    git clone -q --no-checkout /work/.mirror/sveltejs+svelte/repo /work/bench-repos/svelte
    git clone -q --no-checkout /work/.mirror/nginx+nginx/repo /work/bench-repos/nginx
    git clone -q --no-checkout /work/.mirror/square+okhttp/repo /work/bench-repos/okhttp
    git clone -q --no-checkout /work/.mirror/dromara+hutool/repo /work/bench-repos/hutool
    git clone -q --no-checkout /work/.mirror/ZLMediaKit+ZLMediaKit/repo /work/bench-repos/zlmediakit
    git clone -q --no-checkout /work/.mirror/apache+commons-lang/repo /work/bench-repos/commons-lang
    git clone -q --no-checkout /work/.mirror/laravel+framework/repo /work/bench-repos/laravel
    git clone -q --no-checkout /work/.mirror/jellyfin+jellyfin/repo /work/bench-repos/jellyfin
    git clone -q --no-checkout /work/.mirror/Homebrew+brew/repo /work/bench-repos/brew

(or any clone of the same repository: only commits up to the manifest's `last` date matter for
comparable numbers: a newer clone gives the same cases where the snapshot already had `--max-cases` after
the cut-off).
Another path: edit `path` in the manifest or pass `--path NAME=DIR`.
"""
from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from statistics import mean

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.state import _operating_point, auto_threshold, no_module_reason  # noqa: E402
from inference.base import create  # noqa: E402
from inference.cache import code_version  # noqa: E402
from inference.errors import BadInputError  # noqa: E402
from inference.evaluate import (Case, abstention_share, has_cjk, history_split, labeller_outcome,  # noqa: E402
                                pooled_outcome, precision_at_coverage, run_matcher, run_refreshed,
                                strip_subject_tags, trust_metrics)
from inference.metrics import CaseResult, accuracy_at, mrr  # noqa: E402

DEFAULT = "hybrid"  # what `ask` serves without a trained model
MATCHERS = ("hybrid", "lexical", "history")
COVERAGE, PRECISION = 0.60, 0.95
THR, COV = f"threshold@p{PRECISION:.2f}", f"coverage@p{PRECISION:.2f}"
PCOV = f"precision@cov{COVERAGE:.2f}"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_manifest(path: str | Path) -> list[dict]:
    with open(path, "rb") as fh:
        repos = tomllib.load(fh).get("repo", [])
    for r in repos:
        missing = [k for k in ("name", "path", "cutoff", "language") if not r.get(k)]
        if missing:
            raise SystemExit(f"{path}: a [[repo]] lacks {', '.join(missing)}")
    return repos


def accuracy(results) -> dict:
    return {"n": len(results), "acc@1": accuracy_at(results, 1), "acc@3": accuracy_at(results, 3),
            "mrr": mrr(results)} if results else {"n": 0}


def top_confidence_at_coverage(results, coverage: float = COVERAGE) -> float | None:
    conf = sorted((r.top_confidence for r in results), reverse=True)
    k = int(round(coverage * len(conf)))
    return conf[k - 1] if k > 0 else None


def code_commit() -> str:
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "inference",
                                "indexer"], capture_output=True, text=True).stdout.strip()
        return sha + ("+uncommitted inference/indexer changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --- phase one: one repository ----------------------------------------------------------------------
def run_repo(entry: dict, a: argparse.Namespace) -> dict:
    name = entry["name"]
    work = Path(a.work_dir) / name
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    split = history_split(entry["path"], entry["cutoff"], work)
    graph = split.graph
    cases = split.cases[: a.max_cases] if a.max_cases else split.cases
    split_s = time.perf_counter() - t0
    log(f"{name}: cut-off {split.cutoff[:10]} ({split.cutoff_date}), {len(graph.leaf_ids())} modules, "
        f"{len(graph.history)} training changes, {len(cases)} of {len(split.cases)} cases; split {split_s:.0f}s")
    stripped = [Case(strip_subject_tags(c.text), c.gold, c.id, c.date) for c in cases]
    cjk = [i for i, c in enumerate(cases) if has_cjk(c.text)]
    english = [i for i in range(len(cases)) if i not in set(cjk)]
    out = {"name": name, "source": entry.get("source", ""), "language": entry["language"], "path": entry["path"],
           "cutoff": entry["cutoff"], "cutoff_commit": split.cutoff, "cutoff_date": split.cutoff_date,
           "modules": len(graph.leaf_ids()), "training_changes": len(graph.history), "cases": len(cases),
           "cases_after_cutoff": len(split.cases), "cjk_cases": len(cjk),
           "tags_stripped": sum(s.text != c.text for s, c in zip(stripped, cases)),
           "emptied_by_stripping": sum(not s.text.strip() for s in stripped),
           "code": a.code or code_commit(), "date": time.strftime("%Y-%m-%d %H:%M"), "split_seconds": round(split_s, 1),
           "matchers": {}}
    (work / "cases.json").write_text(json.dumps([{"text": c.text, "gold": list(c.gold), "id": c.id}
                                                 for c in cases], ensure_ascii=False))
    for mname in a.matcher:
        t1 = time.perf_counter()
        m = create(mname, graph)
        build_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        res = run_matcher(m, cases)
        res_s = run_matcher(m, stripped)
        per = (time.perf_counter() - t2) / max(1, 2 * len(cases))
        row = {**accuracy(res), "stripped": accuracy(res_s), "cjk": accuracy([res[i] for i in cjk]),
               "english": accuracy([res[i] for i in english]), **trust_metrics(res, COVERAGE, PRECISION),
               "confidence@cov0.60": top_confidence_at_coverage(res),
               "stripped_trust": trust_metrics(res_s, COVERAGE, PRECISION),
               "build_seconds": round(build_s, 1), "ms_per_case": round(per * 1000, 1)}
        if mname == DEFAULT:
            row["answers"] = answers_of(res)
        if mname == DEFAULT and not a.no_refreshed:
            row["refreshed"] = refreshed(m, graph, split.later, cases)
            log(f"{name}/{mname} refreshed after each day: Acc@1 {row['refreshed']['acc@1']:.3f} Acc@3 "
                f"{row['refreshed']['acc@3']:.3f}; {row['refreshed']['updates']} updates, "
                f"{row['refreshed']['full_builds']} full builds")
        if getattr(m, "notes", None):  # what the build chose on its held-out slice (weights, vote shares) and why
            row["build_notes"] = list(m.notes)
        out["matchers"][mname] = row
        log(f"{name}/{mname}: Acc@1 {row['acc@1']:.3f} Acc@3 {row['acc@3']:.3f}, stripped "
            f"{row['stripped']['acc@1']:.3f}; ECE {row['ece']:.3f}; build {build_s:.0f}s, {per * 1000:.0f} ms/case")
        if mname == DEFAULT:
            with open(work / "default.pkl", "wb") as fh:
                pickle.dump({"graph": graph, "matcher": m, "code": out["code"], "matcher_code": code_version()}, fh,
                            protocol=pickle.HIGHEST_PROTOCOL)
        del m
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def answers_of(results) -> dict:
    """Each case's top-1 confidence and whether that answer was right, in case order: what the pooled calibration
    (`calibration_section`) and the plots read."""
    return {"confidence": [round(r.top_confidence, 5) for r in results],
            "right": [int(r.rank() == 1) for r in results]}


def results_of(answers: dict) -> list[CaseResult]:
    """`answers_of`'s record as top-1 results (for the trust metrics of `inference.evaluate`)."""
    return [CaseResult(gold=("right",), predicted=["right" if y else "wrong"], confidences=[c])
            for c, y in zip(answers["confidence"], answers["right"], strict=True)]


def answers_only(entry: dict, row: dict, a: argparse.Namespace) -> dict | None:
    """The per-case answers of a result from before they were recorded, re-read from the matcher phase one pickled
    in --work-dir; kept only where they give the recorded Acc@1 and Acc@3 exactly (the same build and code)."""
    from inference.cache import _attach

    pkl, cases_f = Path(a.work_dir) / entry["name"] / "default.pkl", Path(a.work_dir) / entry["name"] / "cases.json"
    if not (pkl.is_file() and cases_f.is_file()):
        log(f"{entry['name']}: no pickled matcher and cases in {a.work_dir}; answers not recorded")
        return None
    with open(pkl, "rb") as fh:
        d = pickle.load(fh)
    _attach(d["matcher"], d["graph"])
    cases = [Case(c["text"], tuple(c["gold"]), c["id"]) for c in json.loads(cases_f.read_text())]
    res = run_matcher(d["matcher"], cases)
    h = row["matchers"][DEFAULT]
    got = accuracy(res)
    if len(res) != h["n"] or abs(got["acc@1"] - h["acc@1"]) > 1e-9 or abs(got["acc@3"] - h["acc@3"]) > 1e-9:
        log(f"{entry['name']}: the pickled matcher gives Acc@1 {got['acc@1']:.3f} / Acc@3 {got['acc@3']:.3f} on "
            f"{len(res)} cases, not the recorded {h['acc@1']:.3f} / {h['acc@3']:.3f} on {h['n']}; not recorded")
        return None
    return answers_of(res)


def refreshed(m, graph, later, cases) -> dict:
    """The cases answered by the matcher as the service's refreshes would have kept it (`run_refreshed`: a day's
    changes learned before the next day's texts), and its labeller on them two ways: (a) at the last full build's
    threshold moved with the online lift (so it labels what the last full build would; what the service did until
    December 2026), and (b) at that threshold kept in confidence terms (labelling less where the latest answers
    were worth less than promised; what the service does)."""
    from inference.calibration import operating_of, relift

    seen: dict[int, tuple[float, float, bool]] = {}

    def observe(i: int, cur) -> None:
        op = operating_of(cur)  # what the service's threshold is read from (`RepoState.label_threshold`)
        kept = auto_threshold(op)
        rc, lin = getattr(cur, "rank_calibrator", None), getattr(cur, "lineage", {}) or {}
        moved = kept
        if op and op.get("coverage", 0) > 0 and rc is not None:
            moved = relift(kept, rc.lift - lin.get("build_lift", rc.lift))
        try:
            flag = no_module_reason(cur, cases[i].text) is not None
        except BadInputError:
            flag = True
        seen[i] = (moved, kept, flag)

    t0 = time.perf_counter()
    res, stats = run_refreshed(DEFAULT, m, graph, later, cases, observe=observe)
    trust = trust_metrics(res, COVERAGE, PRECISION)

    def labeller(pick: int) -> dict | None:
        return pooled_outcome([labeller_outcome([r], seen[i][pick], [seen[i][2]]) for i, r in enumerate(res)])

    return {**accuracy(res), "ece": trust["ece"], "ece_floor": trust.get("ece_floor"), PCOV: trust[PCOV], **stats,
            "labeller": labeller(0), "labeller_kept_threshold": labeller(1),
            "seconds": round(time.perf_counter() - t0, 1)}


def refreshed_only(entry: dict, a: argparse.Namespace) -> dict | None:
    """The refreshed run alone, for a repository whose frozen matcher phase one pickled in --work-dir."""
    from inference.cache import _attach

    pkl = Path(a.work_dir) / entry["name"] / "default.pkl"
    if not pkl.is_file():
        return None
    split = history_split(entry["path"], entry["cutoff"], Path(a.work_dir) / entry["name"])
    cases = split.cases[: a.max_cases] if a.max_cases else split.cases
    with open(pkl, "rb") as fh:
        d = pickle.load(fh)
    _attach(d["matcher"], d["graph"])
    return {**refreshed(d["matcher"], d["graph"], split.later, cases), "code": a.code or code_commit()}


# --- phase two: abstention --------------------------------------------------------------------------
def abstention(name: str, row: dict, repos: list[dict], a: argparse.Namespace) -> dict | None:
    from inference.cache import _attach

    pkl = Path(a.work_dir) / name / "default.pkl"
    if not pkl.is_file():
        return None
    foreign: list[tuple[str, str]] = []
    for other in repos:
        f = Path(a.work_dir) / other["name"] / "cases.json"
        if other["name"] != name and f.is_file():
            foreign += [(other["name"], c["text"]) for c in json.loads(f.read_text())[: a.foreign]]
    if not foreign:
        return None
    with open(pkl, "rb") as fh:
        d = pickle.load(fh)
    m = d["matcher"]
    _attach(m, d["graph"])
    t0 = time.perf_counter()

    def asked(texts: list[str]) -> tuple[list, list[bool]]:
        res, flags = [], []
        for text in texts:
            try:
                ms = m.match(text, k=5)
                # the labeller gives no label to a text the matcher says is not about this repository, whatever
                # the confidence: the same call the service makes
                flags.append(bool(ms) and no_module_reason(m, text) is not None)
            except BadInputError:
                ms = []
                flags.append(True)
            res.append(ms)
        return res, flags

    answers, flagged = asked([t for _, t in foreign])
    tops = [float(ms[0].confidence) if ms else 0.0 for ms in answers]
    # the threshold the service labels at without a configured one (`RepoState.label_threshold`)
    op = _operating_point(m)
    served = auto_threshold(op)
    own = json.loads((Path(a.work_dir) / name / "cases.json").read_text())
    own_answers, own_flags = asked([c["text"] for c in own])
    own_res = [CaseResult(tuple(c["gold"]), [x.module for x in ms], [x.confidence for x in ms])
               for c, ms in zip(own, own_answers)]
    thr = row[THR]
    per_source: dict[str, list[float]] = {}
    for (src, _), c in zip(foreign, tops):
        per_source.setdefault(src, []).append(c)
    log(f"{name}: abstention on {len(foreign)} foreign texts in {time.perf_counter() - t0:.0f}s")
    return {"texts": len(foreign), "sources": sorted(per_source), "threshold": thr,
            "abstain@p0.95": abstention_share(tops, thr),
            "abstain@cov0.60": abstention_share(tops, row.get("confidence@cov0.60")),
            "labelled_abstain@p0.95": abstention_share(tops, thr, flagged),
            "labelled_abstain@cov0.60": abstention_share(tops, row.get("confidence@cov0.60"), flagged),
            "flagged": sum(flagged),
            "served": {"operating_point": op, "own": labeller_outcome(own_res, served, own_flags),
                       "foreign_no_label": abstention_share(tops, served, flagged)},
            "mean_top_confidence": mean(tops),
            "by_source@p0.95": {s: abstention_share(c, thr) for s, c in per_source.items()}}


# --- tables -----------------------------------------------------------------------------------------
def f3(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def sgn(x) -> str:
    return "–" if x is None else f"{x:+.3f}"


def outcome_cells(o: dict) -> str:
    """Three table cells of a `labeller_outcome`: labelled, first label right [interval], labels right (labels)."""
    iv = o["precision_interval"]
    return (f"{o['labelled']} of {o['texts']} ({o['coverage']:.3f}) | {f3(o['precision'])} "
            f"{f'[{iv[0]:.3f}–{iv[1]:.3f}]' if iv else ''} | {f3(o['label_precision'])} ({o['labels']})")


def mean_of(vals) -> float | None:
    vals = [v for v in vals if v is not None]
    return mean(vals) if vals else None


def tables(rows: list[dict], a: argparse.Namespace) -> str:
    rows = [r for r in rows if DEFAULT in r["matchers"]]
    refs = [m for m in ("lexical", "history") if any(m in r["matchers"] for r in rows)]
    out = [f"### Accuracy of `{DEFAULT}` (what `ask` serves), {a.max_cases or 'all'} cases per repository", "",
           "| repository (language) | cut-off | modules | train | cases | Acc@1 | Acc@3 | stripped Acc@1 | stripped Acc@3 "
           "| mixed n | mixed Acc@1 | mixed Acc@3 | English Acc@1 | "
           + " | ".join(f"{m} Acc@1 / Acc@3 / stripped Acc@1" for m in refs) + " |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(refs)]

    def mixed(r, key):
        x = r["matchers"][DEFAULT]
        return x["cjk"].get(key) if r["cjk_cases"] >= a.min_cjk else None

    for r in rows:
        h = r["matchers"][DEFAULT]
        ref = " | ".join(
            f"{f3(r['matchers'][m]['acc@1'])} / {f3(r['matchers'][m]['acc@3'])} / "
            f"{f3(r['matchers'][m]['stripped']['acc@1'])}" if m in r["matchers"] else "–" for m in refs)
        out.append(f"| {r['name']} ({r['language'].split(' (')[0]}) | {r['cutoff']} | {r['modules']} | "
                   f"{r['training_changes']} | {r['cases']} | **{f3(h['acc@1'])}** | {f3(h['acc@3'])} | "
                   f"{f3(h['stripped']['acc@1'])} | {f3(h['stripped']['acc@3'])} | {r['cjk_cases']} | "
                   f"{f3(mixed(r, 'acc@1'))} | {f3(mixed(r, 'acc@3'))} | {f3(h['english'].get('acc@1'))} | {ref} |")

    def mcol(get):
        return f3(mean_of([get(r) for r in rows]))

    ref_mean = " | ".join(
        f"{mcol(lambda r, m=m: r['matchers'].get(m, {}).get('acc@1'))} / "
        f"{mcol(lambda r, m=m: r['matchers'].get(m, {}).get('acc@3'))} / "
        f"{mcol(lambda r, m=m: r['matchers'].get(m, {}).get('stripped', {}).get('acc@1'))}" for m in refs)
    out.append(f"| **mean** ({len(rows)}) | | | | | **{mcol(lambda r: r['matchers'][DEFAULT]['acc@1'])}** | "
               f"{mcol(lambda r: r['matchers'][DEFAULT]['acc@3'])} | "
               f"{mcol(lambda r: r['matchers'][DEFAULT]['stripped']['acc@1'])} | "
               f"{mcol(lambda r: r['matchers'][DEFAULT]['stripped']['acc@3'])} | | {mcol(lambda r: mixed(r, 'acc@1'))} | "
               f"{mcol(lambda r: mixed(r, 'acc@3'))} | {mcol(lambda r: r['matchers'][DEFAULT]['english'].get('acc@1'))} "
               f"| {ref_mean} |")
    out += ["", f"Mixed: cases whose text holds CJK characters, where a repository has at least {a.min_cjk}; "
            "English: the other cases of the same repository.", ""]
    fresh = [r for r in rows if r["matchers"][DEFAULT].get("refreshed")]
    if fresh:
        out += [f"### `{DEFAULT}` kept up to date: refreshed after each day's changes, as the service's git hooks "
                "keep it", "",
                "| repository | built at the cut-off: Acc@1 / Acc@3 | refreshed: Acc@1 / Acc@3 | refreshed: ECE / "
                "P@cov0.60 | days, updates, full builds | seconds per update | labeller: labelled, first right ((a) "
                "the threshold moved with the lift / (b) the build's kept, as served) | code |",
                "|---|---|---|---|---|---|---|---|"]

        def lab(o: dict | None) -> str:
            return f"{o['labelled']}, {f3(o['precision'])}" if o else "–"

        for r in fresh:
            h, x = r["matchers"][DEFAULT], r["matchers"][DEFAULT]["refreshed"]
            out.append(f"| {r['name']} | {f3(h['acc@1'])} / {f3(h['acc@3'])} | **{f3(x['acc@1'])}** / "
                       f"{f3(x['acc@3'])} | {f3(x['ece'])} / {f3(x[PCOV])} | {x['days']}, {x['updates']}, "
                       f"{x['full_builds']} | {x['update_seconds'] / max(1, x['updates']):.1f} | "
                       f"{lab(x.get('labeller'))} / {lab(x.get('labeller_kept_threshold'))} | {x.get('code', '–')} |")
        out.append(f"| **mean** ({len(fresh)}) | {f3(mean_of(r['matchers'][DEFAULT]['acc@1'] for r in fresh))} / "
                   f"{f3(mean_of(r['matchers'][DEFAULT]['acc@3'] for r in fresh))} | "
                   f"**{f3(mean_of(r['matchers'][DEFAULT]['refreshed']['acc@1'] for r in fresh))}** / "
                   f"{f3(mean_of(r['matchers'][DEFAULT]['refreshed']['acc@3'] for r in fresh))} | "
                   f"{f3(mean_of(r['matchers'][DEFAULT]['refreshed']['ece'] for r in fresh))} / "
                   f"{f3(mean_of(r['matchers'][DEFAULT]['refreshed'][PCOV] for r in fresh))} | | | | |")
        out += ["", "A day's changes are learned (`HybridMatcher.updated`, a full build where it is due) before the "
                "next day's texts are asked; the modules stay those of the cut-off (`inference.evaluate."
                "run_refreshed`).", ""]
    out += [
            f"### Label trust and abstention of `{DEFAULT}`", "",
            "| repository | ECE (floor; mean confidence − Acc@1) | precision @ coverage 0.60 | "
            "threshold for precision 0.95 (read on these cases) | coverage there | "
            "ranks 1–5 distinct | abstention at that threshold (other repos' texts below it / given no label by the "
            "labeller) | the same at the cov-0.60 threshold | stripped: ECE / P@cov0.60 |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        h = r["matchers"][DEFAULT]
        ab = r.get("abstention") or {}
        out.append(f"| {r['name']} | {f3(h['ece'])} ({f3(h.get('ece_floor'))}; {sgn(h.get('confidence_gap'))}) | "
                   f"{f3(h[PCOV])} | {f3(h[THR])} | {f3(h[COV])} | "
                   f"{f3(h['distinct_ranks'])} | {f3(ab.get('abstain@p0.95'))} / "
                   f"{f3(ab.get('labelled_abstain@p0.95'))} ({ab.get('texts', 0)} texts) | "
                   f"{f3(ab.get('abstain@cov0.60'))} / {f3(ab.get('labelled_abstain@cov0.60'))} | "
                   f"{f3(h['stripped_trust']['ece'])} / {f3(h['stripped_trust'][PCOV])} |")
    out.append(f"| **mean** | {mcol(lambda r: r['matchers'][DEFAULT]['ece'])} | "
               f"{mcol(lambda r: r['matchers'][DEFAULT][PCOV])} | | {mcol(lambda r: r['matchers'][DEFAULT][COV])} | "
               f"{mcol(lambda r: r['matchers'][DEFAULT]['distinct_ranks'])} | "
               f"{mcol(lambda r: (r.get('abstention') or {}).get('abstain@p0.95'))} / "
               f"{mcol(lambda r: (r.get('abstention') or {}).get('labelled_abstain@p0.95'))} | "
               f"{mcol(lambda r: (r.get('abstention') or {}).get('abstain@cov0.60'))} / "
               f"{mcol(lambda r: (r.get('abstention') or {}).get('labelled_abstain@cov0.60'))} | "
               f"{mcol(lambda r: r['matchers'][DEFAULT]['stripped_trust']['ece'])} / "
               f"{mcol(lambda r: r['matchers'][DEFAULT]['stripped_trust'][PCOV])} |")
    out += ["", "### The labeller as it acts: the threshold the service chose on held-out history", "",
            "| repository | threshold (its held-out precision, coverage) | later changes labelled | "
            "first label right [95 % interval] | labels right (labels) | later changes said not about the repository | "
            "other repos' texts given no label |",
            "|---|---|---|---|---|---|---|"]

    def served(r) -> dict:
        return (r.get("abstention") or {}).get("served") or {}

    for r in rows:
        sv = served(r)
        op, own = sv.get("operating_point") or {}, sv.get("own")
        if own is None:  # a result from before this table
            out.append(f"| {r['name']} | – | – | – | – | – | – |")
            continue
        out.append(f"| {r['name']} | {own['threshold']:.3f} ({f3(op.get('precision'))}, {f3(op.get('coverage'))}) | "
                   f"{outcome_cells(own)} | {own.get('no_module', '–')} | {f3(sv.get('foreign_no_label'))} |")
    pooled = pooled_outcome([served(r).get("own") for r in rows])
    if pooled:
        out.append(f"| **pooled** | | {outcome_cells(pooled)} | {pooled['no_module']} | "
                   f"{mcol(lambda r: served(r).get('foreign_no_label'))} (mean) |")
    out += calibration_section(answered(rows))
    out[-1] += " ![accuracy](accuracy.png)"
    if refs:
        out += ["", "### Label trust of the references", "",
                "| repository | matcher | ECE | precision @ cov 0.60 | threshold for precision 0.95 | coverage there | "
                "ranks distinct |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            for m in refs:
                if m in r["matchers"]:
                    x = r["matchers"][m]
                    out.append(f"| {r['name']} | {m} | {f3(x['ece'])} | {f3(x[PCOV])} | {f3(x[THR])} | "
                               f"{f3(x[COV])} | {f3(x['distinct_ranks'])} |")
    codes = sorted({r["code"] for r in rows})
    out += ["", f"modmatch code: {', '.join(codes)}; runs: "
            + ", ".join(f"{r['name']} {r['date']} ({r['seconds']:.0f} s)" for r in rows) + "."]
    return "\n".join(out)


def answered(rows: list[dict]) -> list[tuple[str, dict]]:
    """(repository, `answers_of` record) of the results that carry per-case first answers."""
    return [(r["name"], r["matchers"][DEFAULT]["answers"]) for r in rows
            if DEFAULT in r["matchers"] and r["matchers"][DEFAULT].get("answers")]


def pooled(named: list[tuple[str, dict]]) -> tuple[list[float], list[int]]:
    """The first answers of all the repositories (`answered`) as one list of confidences and one of outcomes."""
    return [c for _, a in named for c in a["confidence"]], [y for _, a in named for y in a["right"]]


def calibration_section(named: list[tuple[str, dict]], per_repo: str = "200 cases") -> list[str]:
    """The first answers' calibration pooled over the repositories' answers (`answered`): one repository's 200
    cases put the ECE of a perfectly calibrated answerer near 0.05 (its floor), so the mean of per-repository ECEs
    cannot show an ECE below that; pooled, the floor is a fraction of it."""
    from inference.calibration import ece_noise_floor, expected_calibration_error, reliability

    out = ["", "### Calibration of the first answer, pooled over the repositories", ""]
    if not named:
        return out + ["No result carries per-case answers yet (`--answers-only` records them from pickled matchers)."]
    conf, right = pooled(named)
    gap = (sum(conf) - sum(right)) / len(conf)
    out += [f"{len(conf)} cases of {len(named)} repositories ({', '.join(n for n, _ in named)}): ECE "
            f"**{expected_calibration_error(conf, right):.3f}** (floor {ece_noise_floor(conf):.3f}: what a perfectly "
            f"calibrated answerer shows on as many cases), mean confidence − Acc@1 {gap:+.3f}. Each repository's "
            f"confidences are fitted on its own held-out history, so the pool mixes {len(named)} calibrations; the "
            f"per-repository ECEs above are each read on {per_repo}, where the floor is far higher.", "",
            "| top-1 confidence | cases | mean confidence | share right |", "|---|---|---|---|"]
    for b in reliability(conf, right):
        out.append(f"| {b['lo']:.1f}–{b['hi']:.1f} | {b['cases']} | {b['confidence']:.3f} | {b['accuracy']:.3f} |")
    return out + ["", "![reliability](reliability.png) ![precision and coverage](precision_coverage.png)"]


def calibration_plots(named: list[tuple[str, dict]], out: Path) -> None:
    """reliability.png (the first answers' calibration pooled, `calibration_section`) and precision_coverage.png
    (each repository's top-1 precision against the share of its cases answered as the threshold rises)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inference.calibration import reliability
    from inference.evaluate import plot_reliability
    from inference.metrics import coverage_curve

    conf, right = pooled(named)
    fig, ax = plt.subplots(figsize=(5, 5))
    plot_reliability(ax, [(f"pooled, {len(named)} repositories", reliability(conf, right))] if conf else [])
    ax.set_title("First answer: confidence and share right")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, a in named:
        pts = coverage_curve(results_of(a), sorted(set(a["confidence"]), reverse=True))  # each case's as a threshold
        ax.plot([p["coverage"] for p in pts], [p["precision"] for p in pts], linewidth=0.8, alpha=0.7, label=name)
    ax.axhline(0.95, color="grey", linestyle="--", linewidth=1)
    ax.axvline(0.60, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("coverage (share of cases answered)")
    ax.set_ylabel("top-1 precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title("Precision against coverage (bar: 0.95 at 0.60)")
    ax.legend(fontsize=5, ncol=3, loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "precision_coverage.png", dpi=100)
    plt.close(fig)


def plots(rows: list[dict], out: Path) -> None:
    """accuracy.png (each repository's Acc@1 as is, stripped and of `lexical`) and `calibration_plots`, under
    `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if DEFAULT in r["matchers"]]
    fig, ax = plt.subplots(figsize=(max(7, 0.45 * len(rows) + 2), 4))
    width = 0.27
    series = [("Acc@1", lambda r: r["matchers"][DEFAULT]["acc@1"]),
              ("stripped Acc@1", lambda r: r["matchers"][DEFAULT]["stripped"]["acc@1"]),
              ("lexical Acc@1", lambda r: r["matchers"].get("lexical", {}).get("acc@1", 0.0))]
    for j, (label, get) in enumerate(series):
        ax.bar([i + j * width for i in range(len(rows))], [get(r) for r in rows], width, label=label)
    ax.axhline(0.85, color="grey", linestyle="--", linewidth=1, label="issue 11's bar (0.85)")
    ax.set_xticks([i + width for i in range(len(rows))], [r["name"] for r in rows], rotation=60, ha="right")
    ax.set_ylim(0, 1.15)
    ax.set_title(f"{DEFAULT}: first answer right, per repository")
    ax.legend(fontsize=7, loc="upper center", ncol=4)
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=100)
    plt.close(fig)
    calibration_plots(answered(rows), out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", default=str(ROOT / "bench" / "dev_repos.toml"))
    ap.add_argument("--only", nargs="*", help="run these repositories (names); the others keep their last results")
    ap.add_argument("--path", action="append", default=[], help="NAME=DIR: another local clone")
    ap.add_argument("--max-cases", type=int, default=200, help="the first N changes after the cut-off (0: all)")
    ap.add_argument("--foreign", type=int, default=25, help="abstention: texts taken from each other repository")
    ap.add_argument("--min-cjk", type=int, default=10, help="report mixed-language cases where at least this many")
    ap.add_argument("--matcher", action="append", help="default: " + ", ".join(MATCHERS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "dev"))
    ap.add_argument("--work-dir", default="/tmp/modmatch-dev", help="split databases, cases, pickled matchers")
    ap.add_argument("--no-abstention", action="store_true")
    ap.add_argument("--abstention-only", action="store_true",
                    help="only phase two, for the repositories given (--only; default: all) with results and a "
                         "pickled matcher in --work-dir")
    ap.add_argument("--answers-only", action="store_true",
                    help="only record the per-case answers of the repositories given (--only) whose results lack "
                         "them, from the matcher phase one pickled in --work-dir")
    ap.add_argument("--no-refreshed", action="store_true", help="skip the run refreshed after each day's changes")
    ap.add_argument("--refreshed-only", action="store_true",
                    help="only the refreshed run, for the repositories given (--only) with a pickled matcher")
    ap.add_argument("--code", help="the modmatch version to record (default: git HEAD of this checkout)")
    a = ap.parse_args(argv)
    a.matcher = a.matcher or list(MATCHERS)
    if DEFAULT not in a.matcher:
        a.matcher.insert(0, DEFAULT)
    repos = load_manifest(a.manifest)
    paths = dict(p.split("=", 1) for p in a.path)
    for r in repos:
        r["path"] = paths.get(r["name"], r["path"])
    names = [r["name"] for r in repos]
    todo = [r for r in repos if not a.only or r["name"] in a.only]
    unknown = set(a.only or ()) - set(names)
    if unknown:
        raise SystemExit(f"not in the manifest: {', '.join(sorted(unknown))}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for r in (todo if a.answers_only else []):
        f = out / f"{r['name']}.json"
        if not f.is_file():
            continue
        row = json.loads(f.read_text())
        if row["matchers"][DEFAULT].get("answers"):
            continue
        ans = answers_only(r, row, a)
        if ans is not None:
            row["matchers"][DEFAULT]["answers"] = ans
            f.write_text(json.dumps(row, indent=1, sort_keys=True, ensure_ascii=False))
            log(f"{r['name']}: {len(ans['right'])} answers recorded")
    for r in (todo if a.refreshed_only else []):
        f = out / f"{r['name']}.json"
        ref = refreshed_only(r, a) if f.is_file() else None
        if ref is None:
            log(f"{r['name']}: no results or pickled matcher to refresh; skipped")
            continue
        row = json.loads(f.read_text())
        row["matchers"][DEFAULT]["refreshed"] = ref
        f.write_text(json.dumps(row, indent=1, sort_keys=True, ensure_ascii=False))
        log(f"{r['name']} refreshed after each day: Acc@1 {ref['acc@1']:.3f} Acc@3 {ref['acc@3']:.3f}; "
            f"{ref['updates']} updates, {ref['full_builds']} full builds, {ref['seconds']:.0f} s")
    for r in ([] if a.abstention_only or a.refreshed_only or a.answers_only else todo):
        if not Path(r["path"]).exists():
            log(f"{r['name']}: no clone at {r['path']} (see this script's docstring); skipped")
            continue
        row = run_repo(r, a)
        (out / f"{r['name']}.json").write_text(json.dumps(row, indent=1, sort_keys=True, ensure_ascii=False))
    rows = [json.loads((out / f"{n}.json").read_text()) for n in names if (out / f"{n}.json").is_file()]
    if not (a.no_abstention or a.refreshed_only or a.answers_only):
        chosen = {r["name"] for r in todo}  # every repository without --only
        for row in rows:
            if row["name"] in chosen or (not a.abstention_only and not row.get("abstention")):
                ab = abstention(row["name"], row["matchers"][DEFAULT], repos, a)
                if ab is not None:
                    row["abstention"] = ab
                    (out / f"{row['name']}.json").write_text(
                        json.dumps(row, indent=1, sort_keys=True, ensure_ascii=False))
    text = tables(rows, a)
    summary = {"manifest": str(Path(a.manifest).resolve().relative_to(ROOT)) if Path(a.manifest).resolve()
               .is_relative_to(ROOT) else a.manifest, "max_cases": a.max_cases, "foreign_per_repo": a.foreign,
               "default_matcher": DEFAULT, "repos": {r["name"]: r for r in rows}}
    plots(rows, out)
    write_outputs(out, summary, text, "bench/dev_benchmark.py", "Dev benchmark (issue 11)", argv)
    return 0


def write_outputs(out: Path, summary: dict, text: str, script: str, title: str, argv: list[str] | None) -> None:
    """`summary.json` and `report.md` (with the command that made them) under `out`; the tables to stdout."""
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True, ensure_ascii=False))
    args = [x for x in (sys.argv[1:] if argv is None else argv)]
    cmd = f"nice -n 10 .venv/bin/python {script}" + "".join(" " + x for x in args)
    (out / "report.md").write_text(f"# {title}\n\n`{cmd}`\n\n{text}\n")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
