"""Temporal-split benchmark: learn from a repository up to a cut-off, score on the changes after it.

    python bench/eval_history.py REPO_PATH --cutoff 2025-01-01 [--report DIR] [--matcher NAME ...]
        [--max-cases N] [--store-dir DIR]

Prints the table (Acc@1/3/5, MRR, ECE, build time, time per case) for every matcher.
The repository's checkout is never touched: everything is read from git's object store.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.base import default_eval_names  # noqa: E402
from inference.evaluate import evaluate, format_table, history_split, write_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo")
    ap.add_argument("--cutoff", required=True, help="commit or date (YYYY-MM-DD)")
    ap.add_argument("--report", help="write report.md, metrics.json and plots here")
    ap.add_argument("--matcher", action="append", help="default: " + ", ".join(default_eval_names()))
    ap.add_argument("--max-cases", type=int, default=None, help="only the first N changes after the cut-off")
    ap.add_argument("--store-dir", default=None, help="keep the cut-off index here (default: a temporary folder)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    split = history_split(a.repo, a.cutoff, a.store_dir)
    cases = split.cases[: a.max_cases] if a.max_cases else split.cases
    g = split.graph
    print(f"cut-off {split.cutoff[:10]} ({split.cutoff_date}): {len(g.leaf_ids())} modules, "
          f"{len(g.history)} training changes, {len(cases)} cases; split in {time.perf_counter() - t0:.1f}s",
          file=sys.stderr)
    rep = evaluate(g, cases, a.matcher,
                   info={"repo": a.repo, "cutoff": split.cutoff, "cutoff_date": split.cutoff_date,
                         "training_history": len(g.history), "modules": len(g.leaf_ids())})
    if a.report:
        write_report(rep, a.report)
    if a.json:
        print(json.dumps(rep.to_dict(), indent=1))
    else:
        print(format_table(rep))
        for r in rep.runs:
            if r.notes:
                print(f"{r.name}: " + "; ".join(r.notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
