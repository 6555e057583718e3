"""Where in a module to look (`inference.files`): of the files an answer names in a big module, was one of them
touched by the change the text describes?

    nice -n 10 .venv/bin/python bench/files_benchmark.py --work-dir DEV_WORK_DIR [--only kyuubi brew ...]
        [--manifest bench/dev_repos.toml] [--out bench/results/files]

DEV_WORK_DIR is a `dev_benchmark.py --work-dir` whose builds were kept: per repository, `cases.json` (the later
changes: text, gold modules, commit), `default.pkl` (the hybrid built at the cut-off) and the split's `split-*.db`
(the cut-off graph and its training history). Nothing is rebuilt: the kept hybrid answers each case again, and the
file ranker is built from the cut-off graph as a served matcher builds it.

A case counts when the hybrid's first answer is right, its module holds at least `MIN_FILES` files at the cut-off
(smaller modules name no file), and the change touched at least one of those files (`git show --name-only`; a change
that only added files has nothing to find). Per repository and pooled:
  * named@3 / named@1: one of the (up to three) named files, or the first, is among the touched ones;
  * references: the module's three (one) most changed files in the training history, a text-blind answer, and three
    files at random (the expected share);
  * named: the share of cases where any file was named (none is named without evidence from the text).
Writes `<repo>.json`, `summary.json`, `report.md` and `files.png` to `--out`.

    nice -n 10 .venv/bin/python bench/files_benchmark.py --issues --work-dir ISSUE_WORK_DIR [ISSUE_WORK_DIR ...]
        [--only ...] [--texts /work/bench-data/issue_texts] [--out bench/results/files-issues]

With `--issues`, the real issue texts of `bench/issue_cases.toml` (`issue_benchmark.py`), given the right module:
for each issue and each module of 10 files or more whose files its fix commits touched, the files named for the
issue's text (as `issue_benchmark.py` builds it) against those the fixes touched. The window graphs are read from the
`split-*.db` kept in the work dirs (`issue_benchmark.py --keep`); a window without one is skipped and counted.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import pickle
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dev_benchmark import load_manifest  # noqa: E402
from inference.cache import _attach  # noqa: E402
from inference.files import MIN_FILES, FileRanker  # noqa: E402
from indexer.store import Store  # noqa: E402


def touched(repo: str, commit: str) -> set[str]:
    out = subprocess.run(["git", "-C", repo, "show", "--no-renames", "--name-only", "--format=", commit],
                         capture_output=True, text=True)
    return set(out.stdout.split())


def run_repo(name: str, repo: str, build: Path) -> dict:
    db = next(build.glob("split-*.db"))
    store = Store(db)
    graph = store.load_graph()
    graph.history = list(store.history())
    store.close()
    with open(build / "default.pkl", "rb") as fh:
        kept = pickle.load(fh)
    matcher = kept["matcher"] if isinstance(kept, dict) else kept
    _attach(matcher, graph)
    t0 = time.perf_counter()
    ranker = FileRanker(graph)
    built_s = time.perf_counter() - t0
    prior = _prior(graph, ranker)
    c: Counter = Counter()
    rank_s = 0.0
    for case in json.loads((build / "cases.json").read_text()):
        first = matcher.ranked(case["text"], 1) if hasattr(matcher, "ranked") else None
        mid = first[0][0] if first else None
        if mid is None or mid not in case["gold"] or mid not in ranker.files:
            continue
        hit = touched(repo, case["id"]) & set(ranker.files[mid])
        if not hit:
            continue
        t0 = time.perf_counter()
        named = ranker.rank(case["text"], mid)
        rank_s += time.perf_counter() - t0
        _count(c, named, hit, prior[mid], len(ranker.files[mid]))
    return _row(name, c, len(ranker.files), built_s, rank_s)


def _prior(graph, ranker: FileRanker) -> dict[str, list[str]]:
    """Each big module's three most changed files in the training history: a text-blind answer."""
    out = {}
    for mid, files in ranker.files.items():
        own = set(files)
        counts = Counter(f for h in graph.history for f in h.files if f in own)
        out[mid] = [f for f, _ in counts.most_common(3)]
    return out


def run_issue_repo(name: str, repo: str, spec: dict, texts: dict, dbs: dict[str, Path]) -> dict:
    from bot.github.text import issue_text
    from inference.evaluate import resolve_cutoff

    c: Counter = Counter()
    loaded: dict = {}
    rank_s = 0.0
    for case in spec.get("case", []):
        commit = resolve_cutoff(repo, case.get("cutoff", spec["cutoff"]))
        db = dbs.get(f"split-{name}-{commit[:12]}.db")
        if db is None or int(case["number"]) not in texts:
            c["skipped: no kept window" if db is None else "skipped: no text"] += 1
            continue
        if db not in loaded:
            store = Store(db)
            graph = store.load_graph()
            graph.history = list(store.history())
            store.close()
            ranker = FileRanker(graph)
            loaded[db] = (graph, ranker, _prior(graph, ranker), {f: m for m, fs in ranker.files.items() for f in fs})
        graph, ranker, prior, owner = loaded[db]
        t = texts[int(case["number"])]
        body = t["text"][len(t["title"]):] if t["text"].startswith(t["title"]) else t["text"]
        text = issue_text(t["title"], body)
        fixed = set().union(*(touched(repo, sha) for sha in case["fixes"]))
        for mid in sorted({owner[f] for f in fixed if f in owner}):
            hit = fixed & set(ranker.files[mid])
            t0 = time.perf_counter()
            named = ranker.rank(text, mid)
            rank_s += time.perf_counter() - t0
            _count(c, named, hit, prior[mid], len(ranker.files[mid]))
    return _row(name, c, len(loaded), 0.0, rank_s)


def _count(c: Counter, named: list[str], hit: set[str], prior: list[str], size: int) -> None:
    c["cases"] += 1
    c["named"] += bool(named)
    c["named@3"] += bool(set(named) & hit)
    c["named@1"] += bool(named and named[0] in hit)
    c["prior@3"] += bool(set(prior) & hit)
    c["prior@1"] += bool(prior and prior[0] in hit)
    c["random@3"] += min(1.0, 3 * len(hit) / size)
    c["files"] += size


def _row(name: str, c: Counter, big: int, built_s: float, rank_s: float) -> dict:
    n = max(c["cases"], 1)
    return {"name": name, "cases": c["cases"], "big_modules": big, "min_files": MIN_FILES,
            **{k: round(c[k] / n, 3) for k in ("named", "named@3", "named@1", "prior@3", "prior@1", "random@3")},
            "mean_module_files": round(c["files"] / n, 1), "counts": dict(c),
            "build_seconds": round(built_s, 2), "rank_ms": round(1000 * rank_s / n, 2)}


def write_report(out: Path, rows: list[dict], issues: bool = False) -> dict:
    tot: Counter = Counter()
    for r in rows:
        tot.update({k: v for k, v in r["counts"].items() if not k.startswith("skipped")})
    n = max(tot["cases"], 1)
    pooled = {k: round(tot[k] / n, 3) for k in ("named", "named@3", "named@1", "prior@3", "prior@1", "random@3")}
    summary = {"repos": len(rows), "cases": tot["cases"], "pooled": pooled,
               "mean": {k: round(sum(r[k] for r in rows) / max(len(rows), 1), 3)
                        for k in ("named@3", "named@1", "prior@3", "prior@1", "random@3")}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    what = (f"{tot['cases']} (issue, module) pairs: real issues whose fixes touched a module of {MIN_FILES} files or "
            "more, the module taken as answered right (`bench/files_benchmark.py --issues`)" if issues else
            f"{tot['cases']} later changes whose first answer was right, in a module of {MIN_FILES} files or more "
            "(`bench/files_benchmark.py`)")
    lines = ["# Where in a module to look: named files against the files each "
             + ("issue's fixes" if issues else "change") + " touched", "",
             f"{len(rows)} repositories, {what}.", "",
             "| repository | cases | module files (mean) | named@3 | named@1 | most changed @3 | @1 | random @3 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['cases']} | {r['mean_module_files']:.0f} | {r['named@3']:.3f} | "
                     f"{r['named@1']:.3f} | {r['prior@3']:.3f} | {r['prior@1']:.3f} | {r['random@3']:.3f} |")
    lines.append(f"| **pooled** | {tot['cases']} | | **{pooled['named@3']:.3f}** | {pooled['named@1']:.3f} | "
                 f"{pooled['prior@3']:.3f} | {pooled['prior@1']:.3f} | {pooled['random@3']:.3f} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(rows) + 2), 4))
    xs = range(len(rows))
    for off, key, label in ((-0.27, "named@3", "named files"), (0.0, "prior@3", "most changed files"),
                            (0.27, "random@3", "random files")):
        ax.bar([x + off for x in xs], [r[key] for r in rows], width=0.27, label=label)
    ax.set_xticks(list(xs), [r["name"] for r in rows], rotation=60, ha="right")
    ax.set_ylabel("one of 3 files touched")
    ax.set_ylim(0, 1.15)
    ax.legend(loc="upper center", ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(out / "files.png", dpi=100)
    plt.close(fig)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", required=True, nargs="+",
                    help="a dev_benchmark.py --work-dir with the builds kept (with --issues: issue_benchmark.py "
                         "--keep work dirs, any number)")
    ap.add_argument("--issues", action="store_true", help="real issue texts (bench/issue_cases.toml)")
    ap.add_argument("--manifest", default=str(Path(__file__).with_name("dev_repos.toml")))
    ap.add_argument("--cases", default=str(Path(__file__).with_name("issue_cases.toml")))
    ap.add_argument("--texts", default="/work/bench-data/issue_texts")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", default=None, help="default: bench/results/files (files-issues with --issues)")
    args = ap.parse_args(argv)
    out = Path(args.out or Path(__file__).parent / "results" / ("files-issues" if args.issues else "files"))
    out.mkdir(parents=True, exist_ok=True)
    specs, dbs = {}, {}
    if args.issues:
        from issue_benchmark import load_cases

        specs = load_cases(args.cases)
        for w in args.work_dir:  # glob follows a composed work dir's links to other work dirs (Path.glob does not)
            for db in sorted(glob.glob(os.path.join(w, "**", "split-*.db"), recursive=True)):
                dbs.setdefault(os.path.basename(db), Path(db))
    rows = []
    for repo in load_manifest(args.manifest):
        if args.only and repo["name"] not in args.only:
            continue
        if args.issues:
            if repo["name"] not in specs:
                continue
            from issue_benchmark import read_texts

            texts = read_texts(Path(args.texts), repo["name"])
            row = run_issue_repo(repo["name"], os.path.expanduser(repo["path"]), specs[repo["name"]], texts, dbs)
            if not row["cases"]:
                print(f"{repo['name']}: no case ({row['counts']})", file=sys.stderr)
                continue
        else:
            build = Path(args.work_dir[0]) / repo["name"]
            if not (build / "default.pkl").is_file() or not (build / "cases.json").is_file():
                print(f"{repo['name']}: no kept build in {build}", file=sys.stderr)
                continue
            row = run_repo(repo["name"], os.path.expanduser(repo["path"]), build)
        (out / f"{repo['name']}.json").write_text(json.dumps(row, indent=1) + "\n")
        print(f"{row['name']:14s} {row['cases']:4d} cases  named@3 {row['named@3']:.3f}  named@1 {row['named@1']:.3f}  "
              f"most changed@3 {row['prior@3']:.3f}  random@3 {row['random@3']:.3f}  ({row['rank_ms']:.1f} ms a case)",
              flush=True)
        rows.append(row)
    if rows:
        s = write_report(out, rows, args.issues)
        print(f"pooled {s['cases']} cases: named@3 {s['pooled']['named@3']:.3f} named@1 {s['pooled']['named@1']:.3f} "
              f"most changed@3 {s['pooled']['prior@3']:.3f} random@3 {s['pooled']['random@3']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
