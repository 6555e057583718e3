"""Indexing speed on a large real source tree.

Builds a temporary git repository from real sources found on this machine (the installed Python
sources of a big package plus a C/C++ header tree), then measures: a full index (cold parse
cache), files per second, peak memory, a full re-index with a warm cache, and `refresh` after a
one-file commit.

    python bench/index_speed.py                      # ~5,000 files from transformers + /usr/include
    python bench/index_speed.py --files 2000 --package torch
    python bench/index_speed.py --profile            # where the one-file refresh spends its time
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.build import index, refresh  # noqa: E402
from indexer.store import Store  # noqa: E402


def collect(package: str, headers: str, limit: int) -> list[tuple[Path, str]]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {package} is not installed")
    pkg_root = Path(list(spec.submodule_search_locations)[0])
    out: list[tuple[Path, str]] = []
    for p in sorted(pkg_root.rglob("*.py")):
        out.append((p, f"py/{package}/{p.relative_to(pkg_root)}"))
        if len(out) >= limit * 2 // 3:
            break
    for p in sorted(Path(headers).rglob("*.h")):
        if p.is_file() and not p.is_symlink():
            out.append((p, f"c/{p.relative_to(headers)}"))
        if len(out) >= limit:
            break
    return out


def git(root: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--package", default="transformers")
    ap.add_argument("--headers", default="/usr/include")
    ap.add_argument("--profile", action="store_true", help="profile the one-file refresh (cProfile, top 20 by "
                                                            "cumulative time)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mm-bench-"))
    repo = tmp / "repo"
    try:
        files = collect(args.package, args.headers, args.files)
        for src, rel in files:
            dst = repo / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        git(repo, "init", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "import")
        total_bytes = sum(p.stat().st_size for p, _ in files)
        print(f"repository: {len(files)} files, {total_bytes / 1e6:.1f} MB ({args.package} sources + {args.headers})")

        store = Store(tmp / "db.sqlite")
        t = time.perf_counter()
        res = index(repo, store, full=True)
        cold = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"full index (cold cache): {cold:.2f} s, {res.files / cold:.0f} files/s, {len(res.graph)} modules, "
              f"{sum(m.stats.get('symbols', 0) for m in res.graph.modules.values())} symbols, "
              f"{len(res.graph.depends)} dependency edges, peak RSS {peak_mb:.0f} MB")
        t = time.perf_counter()
        index(repo, Store(tmp / "db.sqlite"), full=True)
        print(f"full index (warm parse cache): {time.perf_counter() - t:.2f} s")

        target = repo / files[0][1]
        target.write_text(target.read_text(errors="replace") + "\n\ndef bench_added():\n    '''Added.'''\n")
        git(repo, "commit", "-qam", "Touch one file")
        prof = None
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        t = time.perf_counter()
        r2 = refresh(repo, Store(tmp / "db.sqlite"))
        took = time.perf_counter() - t
        if prof is not None:
            import pstats

            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(20)
        print(f"refresh after a one-file commit: {took:.2f} s "
              f"(parsed {r2.parsed}, changed modules {r2.changed_modules})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
