"""The hybrid at monorepo scale: the dev benchmark's repositories merged into one graph (issue 14).

Each repository's graph and training history as of its cut-off (the split databases `bench/dev_benchmark.py` leaves
in its work folder) become one folder of a monorepo: module `api` of etcd is `etcd/api`, its past changes keep their
texts and dates with module ids prefixed the same way, and each repository's cases (the changes after its cut-off)
are asked of the merged graph. Measured: the full build of the hybrid (wall, CPU, which history model it chose),
peak RSS of this process, an incremental update with the latest `--new` changes, `ask` latency, and Acc@1 / Acc@3 on
the merged graph against each repository alone (its last dev benchmark results).

    python bench/dev_benchmark.py                       # once: leaves the split databases in /tmp/modmatch-dev
    python bench/monorepo_matcher.py --cases 50 --new 50
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.graph import ModuleGraph  # noqa: E402
from indexer.store import Store  # noqa: E402
from inference.base import clean_text, create  # noqa: E402
from inference.calibration import with_history  # noqa: E402


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prefixed(repo: str, mid: str | None) -> str | None:
    if mid is None:
        return None
    return f"{repo}/{mid}" if mid else repo


def merge(work: Path, names: list[str], tmp: Path) -> tuple[ModuleGraph, list[dict]]:
    modules, history, cases = {}, [], []
    for name in names:
        dbs = sorted((work / name).glob("split-*.db"))
        if not dbs:
            print(f"  {name}: no split database in {work / name}, left out")
            continue
        copy = tmp / dbs[-1].name  # opened (and migrated) as a copy: the benchmark's folder stays as it was
        shutil.copy(dbs[-1], copy)
        g = Store(copy).load_graph()

        def path(p: str) -> str:
            return f"{name}/{p}" if p else name

        for mid, m in g.modules.items():
            new = dataclasses.replace(
                m, id=prefixed(name, mid), paths=[path(p) for p in m.paths], files=[path(f) for f in m.files],
                symbols=[dataclasses.replace(s, path=path(s.path)) for s in m.symbols],
                parent=prefixed(name, m.parent) if m.parent is not None else (name if mid else None))
            modules[new.id] = new
        for h in g.history:
            history.append(dataclasses.replace(h, commit=f"{name}:{h.commit}", files=tuple(path(f) for f in h.files),
                                               modules=tuple(prefixed(name, x) for x in h.modules)))
        for c in json.loads((work / name / "cases.json").read_text()):
            cases.append({"repo": name, "text": c["text"], "gold": [prefixed(name, x) for x in c["gold"]]})
        print(f"  {name}: {len(g.leaf_ids())} answerable modules, {len(g.history)} past changes")
    graph = ModuleGraph(modules, {}, commit="monorepo")
    graph.history = sorted(history, key=lambda h: (h.date, h.commit))
    return graph, cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work-dir", default="/tmp/modmatch-dev", help="the dev benchmark's work folder")
    ap.add_argument("--manifest", default=str(ROOT / "bench" / "dev_repos.toml"))
    ap.add_argument("--cases", type=int, default=50, help="cases asked per repository")
    ap.add_argument("--new", type=int, default=50, help="latest changes held back, then learned by an update")
    ap.add_argument("--out", help="write the numbers as JSON here")
    a = ap.parse_args()
    with open(a.manifest, "rb") as fh:
        names = [r["name"] for r in tomllib.load(fh)["repo"]]
    with tempfile.TemporaryDirectory() as tmp:
        graph, cases = merge(Path(a.work_dir), names, Path(tmp))
    leaves = graph.leaf_ids()
    print(f"monorepo: {len(graph.modules)} modules ({len(leaves)} answerable), "
          f"{sum(len(m.files) for m in graph.modules.values())} files, {len(graph.history)} past changes; "
          f"RSS so far {rss_mb():.0f} MB")
    base = with_history(graph, graph.history[: -a.new])
    c0, w0 = cpu(), time.time()
    m = create("hybrid", base)
    build_cpu, build_wall = cpu() - c0, time.time() - w0
    kind = m.parts["history"].kind
    print(f"full build: {build_wall:.0f} s wall, {build_cpu:.0f} s CPU (history model: {kind}); "
          f"peak RSS {rss_mb():.0f} MB")
    c0, w0 = cpu(), time.time()
    u = m.updated(graph)
    upd_cpu, upd_wall = cpu() - c0, time.time() - w0
    print(f"update with {a.new} changes: {upd_wall:.1f} s wall, {upd_cpu:.1f} s CPU "
          f"({100 * upd_cpu / build_cpu:.1f} % of the full build); peak RSS {rss_mb():.0f} MB")
    matcher = u or m
    per_repo: dict[str, list] = {}
    lat = []
    for c in cases:
        rows = per_repo.setdefault(c["repo"], [])
        if len(rows) >= a.cases:
            continue
        t = time.perf_counter()
        ids = [x.module for x in matcher.match(clean_text(c["text"]), k=3)]
        lat.append(time.perf_counter() - t)
        rows.append((bool(ids) and ids[0] in c["gold"], any(i in c["gold"] for i in ids)))
    lat.sort()
    alone = {}
    for name in per_repo:
        f = ROOT / "bench" / "results" / "dev" / f"{name}.json"
        if f.is_file():
            alone[name] = json.loads(f.read_text())["matchers"]["hybrid"]["acc@1"]
    print(f"ask: p50 {1000 * lat[len(lat) // 2]:.0f} ms, p90 {1000 * lat[int(len(lat) * 0.9)]:.0f} ms "
          f"over {len(lat)} questions")
    res = {}
    for name, rows in per_repo.items():
        a1 = sum(r[0] for r in rows) / len(rows)
        a3 = sum(r[1] for r in rows) / len(rows)
        res[name] = {"n": len(rows), "acc1": round(a1, 3), "acc3": round(a3, 3), "alone_acc1": alone.get(name)}
        print(f"  {name:8s} Acc@1 {a1:.3f} Acc@3 {a3:.3f} (n={len(rows)}; alone, 200 cases: {alone.get(name)})")
    allrows = [r for rows in per_repo.values() for r in rows]
    mean1 = sum(r[0] for r in allrows) / len(allrows)
    print(f"  all      Acc@1 {mean1:.3f} Acc@3 {sum(r[1] for r in allrows) / len(allrows):.3f}")
    if a.out:
        Path(a.out).write_text(json.dumps({
            "modules": len(graph.modules), "answerable": len(leaves), "changes": len(graph.history),
            "history_model": kind, "build_wall_s": round(build_wall), "build_cpu_s": round(build_cpu),
            "update_cpu_s": round(upd_cpu, 1), "peak_rss_mb": round(rss_mb()),
            "ask_p50_ms": round(1000 * lat[len(lat) // 2]), "ask_p90_ms": round(1000 * lat[int(len(lat) * 0.9)]),
            "acc": res, "load": os.getloadavg()[0]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
