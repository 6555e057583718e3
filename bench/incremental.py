"""Incremental matcher updates against full builds, on a real repository's history (issue 14).

The repository must be indexed (`modmatch index PATH`). Its past changes, by date, are cut into a base, a batch of
`--new` changes that arrive after the base (a push, or a day of merges) and the latest `--test` changes. Three
hybrids are compared on the test changes' texts:

- `full(base)`: the matcher before the push;
- `updated`: `full(base).updated(base + new)`, what a refresh now serves;
- `full(base + new)`: what a full build after the push would serve.

Printed: CPU seconds of the full build and of the update (the bar: an update < 10 % of a full build), Acc@1 and
Acc@3 of the three, and how often `updated` and `full(base + new)` give the same first answer.

    python bench/incremental.py /work/bench-repos/etcd --new 50 --test 200
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import settings  # noqa: E402
from indexer.store import Store, db_path_for  # noqa: E402
from inference.base import clean_text, create  # noqa: E402
from inference.calibration import with_history  # noqa: E402


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def timed(fn):
    c, w = cpu(), time.time()
    out = fn()
    return out, cpu() - c, time.time() - w


def accuracy(m, cases) -> tuple[float, float, list[str]]:
    top1, top3, firsts = 0, 0, []
    for h in cases:
        ids = [x.module for x in m.match(clean_text(h.text), k=3)]
        firsts.append(ids[0] if ids else "")
        top1 += bool(ids) and ids[0] in h.modules
        top3 += any(i in h.modules for i in ids)
    n = max(1, len(cases))
    return top1 / n, top3 / n, firsts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo")
    ap.add_argument("--new", type=int, default=50, help="changes that arrive after the base")
    ap.add_argument("--test", type=int, default=200, help="latest changes whose texts are asked")
    ap.add_argument("--out", help="write the numbers as JSON here")
    a = ap.parse_args()
    graph = Store(db_path_for(settings.home(), Path(a.repo).resolve())).load_graph()
    hist = sorted(graph.history, key=lambda h: (h.date, h.commit))
    leaves = set(graph.leaf_ids())
    test = [h for h in hist[-a.test:] if any(m in leaves for m in h.modules)]
    base, new = hist[: -(a.new + a.test)], hist[-(a.new + a.test): -a.test]
    g_base, g_new = with_history(graph, base), with_history(graph, base + new)
    print(f"{Path(a.repo).name}: {len(base)} base changes, {len(new)} new, {len(test)} test; {len(leaves)} modules")
    before, full_cpu, full_wall = timed(lambda: create("hybrid", g_base))
    print(f"full build (base): {full_cpu:.1f} s CPU, {full_wall:.1f} s wall")
    updated, upd_cpu, upd_wall = timed(lambda: before.updated(g_new))
    if updated is None:
        sys.exit("the update declined (a full build was due): nothing to compare")
    print(f"update (+{len(new)} changes): {upd_cpu:.1f} s CPU, {upd_wall:.1f} s wall "
          f"({100 * upd_cpu / full_cpu:.1f} % of the full build's CPU)")
    after, after_cpu, after_wall = timed(lambda: create("hybrid", g_new))
    print(f"full build (base + new): {after_cpu:.1f} s CPU, {after_wall:.1f} s wall")
    size = len(pickle.dumps(updated, protocol=pickle.HIGHEST_PROTOCOL)) / 2**20
    rows = {}
    for label, m in (("full(base)", before), ("updated", updated), ("full(base+new)", after)):
        a1, a3, firsts = accuracy(m, test)
        rows[label] = {"acc1": round(a1, 4), "acc3": round(a3, 4), "firsts": firsts}
        print(f"{label:>15}: Acc@1 {a1:.3f}  Acc@3 {a3:.3f}")
    same = sum(x == y for x, y in zip(rows["updated"]["firsts"], rows["full(base+new)"]["firsts"])) / max(1, len(test))
    print(f"updated vs full(base+new): same first answer on {same:.3f} of {len(test)} texts; pickle {size:.0f} MB")
    if a.out:
        out = {"repo": Path(a.repo).name, "base": len(base), "new": len(new), "test": len(test),
               "full_cpu_s": round(full_cpu, 1), "update_cpu_s": round(upd_cpu, 1), "update_wall_s": round(upd_wall, 1),
               "full_after_cpu_s": round(after_cpu, 1), "same_first": round(same, 4), "pickle_mb": round(size, 1),
               "acc": {k: {"acc1": v["acc1"], "acc3": v["acc3"]} for k, v in rows.items()},
               "lineage": updated.lineage, "load": os.getloadavg()[0]}
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
