"""Indexing speed on a large real source tree.

Builds a temporary git repository from real sources found on this machine, then measures: a full index (cold
parse cache; in a child process, so that its peak memory is its own), files per second and where the time goes, a
full re-index with a warm cache, `refresh` after one-file commits (the median of `--repeat`), and `refresh` after a
commit that adds a file (the paths change, so the graph is rebuilt rather than patched).

    python bench/index_speed.py                      # ~5,000 files from transformers + /usr/include
    python bench/index_speed.py --files 2000 --package torch
    python bench/index_speed.py --profile            # where the one-file refresh spends its time
    python bench/index_speed.py --pool wide --files 50000   # the scale curve: 5,000 / 20,000 / 50,000

`--pool wide` takes files in turn from four sources so that the mix stays alike at every size: the HEAD of each
git repository under `--repos` (Go, Java, C/C++, Rust, TypeScript, Python, ...), this Python's site-packages, its
standard library, the `--headers` tree, and the Google Cloud SDK's Python sources where it is installed.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.build import index, refresh  # noqa: E402
from indexer.config import RepoConfig  # noqa: E402
from indexer.modules import skipped  # noqa: E402
from indexer.store import Store  # noqa: E402

GCLOUD = "/usr/lib/google-cloud-sdk"
Writer = Callable[[Path], None]  # writes one file's content to the given path


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


def _tree_files(root: Path, pattern: str, prefix: str) -> Iterator[tuple[str, Writer]]:
    for p in sorted(root.rglob(pattern)):
        if p.is_file() and not p.is_symlink():
            yield f"{prefix}/{p.relative_to(root)}", (lambda dst, p=p: shutil.copyfile(p, dst))


def _repo_files(repos: Path) -> Iterator[tuple[str, Writer]]:
    """The regular files at HEAD of each git repository under `repos` (blobs a clone lacks are left out)."""
    for repo in sorted(p for p in repos.iterdir() if p.is_dir()):
        out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-z", "HEAD"], capture_output=True).stdout
        items = []
        for rec in out.decode("utf-8", "replace").split("\0"):
            meta, _, path = rec.partition("\t")
            parts = meta.split()
            if len(parts) == 3 and parts[1] == "blob" and parts[0].startswith("100"):
                items.append((parts[2], path))
        proc = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            for sha, path in items:
                proc.stdin.write(sha.encode() + b"\n")
                proc.stdin.flush()
                header = proc.stdout.readline().split()
                if len(header) < 3:
                    continue  # missing from this clone
                data = proc.stdout.read(int(header[2]))
                proc.stdout.read(1)
                yield f"repos/{repo.name}/{path}", (lambda dst, data=data: dst.write_bytes(data))
        finally:
            proc.stdin.close()
            proc.wait()


def collect_wide(repos: str, headers: str, limit: int) -> Iterator[tuple[str, Writer]]:
    """Up to `limit` files that modmatch indexes (skipped ones are not counted), one from each source in turn."""
    sources = [_repo_files(Path(repos)), _tree_files(Path(sysconfig.get_paths()["purelib"]), "*.py", "py"),
               _tree_files(Path(sysconfig.get_paths()["stdlib"]), "*.py", "stdlib"),
               _tree_files(Path(headers), "*.h", "c")]
    if Path(GCLOUD).is_dir():  # 18,000 more Python files where the Cloud SDK is installed
        sources.append(_tree_files(Path(GCLOUD), "*.py", "gcloud"))
    config, n = RepoConfig(), 0
    while sources and n < limit:
        for src in list(sources):
            for rel, write in src:
                if not skipped(rel, config):
                    yield rel, write
                    n += 1
                    break
            else:
                sources.remove(src)
            if n >= limit:
                return


def git(root: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)


class Phases:
    """Seconds between the index's progress stages: listing and planning, reading and parsing, the graph,
    history, and storing it."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, i: int, total: int) -> None:
        now = time.perf_counter()
        self.first.setdefault(stage, now)
        self.last[stage] = now

    def report(self) -> str:
        end = time.perf_counter()
        f, l = self.first, self.last
        parts = [("list+plan", f.get("parse", self.t0) - self.t0), ("read+parse", f["graph"] - f.get("parse", f["graph"])),
                 ("graph", l["graph"] - f["graph"]), ("history", l.get("history", l["graph"]) - l["graph"]),
                 ("save", end - l.get("history", l["graph"]))]
        return ", ".join(f"{k} {v:.1f} s" for k, v in parts)


def cold_index_in_child(repo: Path, db: Path) -> None:
    """The first full index, in a forked child: its peak RSS is the index's own, not the tree builder's. (Not its
    children's: a git process's maximum counts the forked copy of its parent from before its exec.)"""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            phases = Phases()
            t = time.perf_counter()
            res = index(repo, Store(db), full=True, progress=phases)
            cold = time.perf_counter() - t
            own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"full index (cold cache): {cold:.2f} s, {res.files / cold:.0f} files/s, {len(res.graph)} modules, "
                  f"{sum(m.stats.get('symbols', 0) for m in res.graph.modules.values())} symbols, "
                  f"{len(res.graph.depends)} dependency edges; peak RSS {own:.0f} MB\n  phases: {phases.report()}",
                  flush=True)
        except BaseException as e:  # noqa: BLE001 - reported, then the parent stops
            print(f"full index failed: {e}", flush=True)
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status:
        sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--pool", choices=["package", "wide"], default="package",
                    help="package: --package's sources, then --headers (the 5,000-file figure); wide: see above")
    ap.add_argument("--package", default="transformers")
    ap.add_argument("--headers", default="/usr/include")
    ap.add_argument("--repos", default="/work/bench-repos", help="git repositories for --pool wide")
    ap.add_argument("--repeat", type=int, default=3, help="one-file refreshes to time (the median is reported)")
    ap.add_argument("--profile", action="store_true", help="profile the last one-file refresh (cProfile, top 20 by "
                                                            "cumulative time)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mm-bench-"))
    repo = tmp / "repo"
    try:
        t = time.perf_counter()
        if args.pool == "package":
            picked = [(rel, (lambda dst, src=src: shutil.copyfile(src, dst))) for src, rel in collect(args.package, args.headers, args.files)]
            what = f"{args.package} sources + {args.headers}"
        else:
            picked = collect_wide(args.repos, args.headers, args.files)
            what = f"repositories under {args.repos}, site-packages, the standard library, {args.headers}"
        rels = []
        for rel, write in picked:
            dst = repo / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            write(dst)
            rels.append(rel)
        git(repo, "init", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "import")
        total_bytes = sum((repo / rel).stat().st_size for rel in rels)
        print(f"repository: {len(rels)} files, {total_bytes / 1e6:.1f} MB ({what}), built in "
              f"{time.perf_counter() - t:.0f} s", flush=True)

        cold_index_in_child(repo, tmp / "db.sqlite")
        t = time.perf_counter()
        index(repo, Store(tmp / "db.sqlite"), full=True)
        print(f"full index (warm parse cache): {time.perf_counter() - t:.2f} s", flush=True)

        touch = [rel for rel in rels if rel.endswith(".py")] or rels
        took = []
        for i in range(args.repeat):
            target = repo / touch[i * 7 % len(touch)]
            target.write_text(target.read_text(errors="replace") + f"\n\ndef bench_added_{i}():\n    '''Added.'''\n")
            git(repo, "commit", "-qam", f"Touch one file ({i})")
            prof = None
            if args.profile and i == args.repeat - 1:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            t = time.perf_counter()
            r2 = refresh(repo, Store(tmp / "db.sqlite"))
            took.append(time.perf_counter() - t)
            if prof is not None:
                import pstats

                prof.disable()
                pstats.Stats(prof).sort_stats("cumulative").print_stats(20)
        print(f"refresh after a one-file commit: median {statistics.median(took):.2f} s of "
              f"{', '.join(f'{x:.2f}' for x in took)} (last: parsed {r2.parsed}, changed modules {r2.changed_modules})")
        new = repo / touch[0]
        new = new.with_name("bench_new_file.py")
        new.write_text("def bench_new():\n    '''A new file.'''\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "Add one file")
        t = time.perf_counter()
        r3 = refresh(repo, Store(tmp / "db.sqlite"))
        print(f"refresh after a commit adding one file (rebuild): {time.perf_counter() - t:.2f} s "
              f"(parsed {r3.parsed}, added modules {r3.added_modules})")
        print(f"load average: {open('/proc/loadavg').read().split()[0]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
