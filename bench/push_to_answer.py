"""Push → an answer that reflects the new graph, with the real CLI in real processes (issue 14).

A local clone of the repository (hard links, the original is untouched) is indexed as an operator would
(`modmatch index`, which also builds the default matcher); then, `--pushes` times: a commit adds a function with a
name nobody used before to a source file, `modmatch refresh` brings the graph and the matcher up to it (an
incremental update of the cached hybrid), and `modmatch ask` asks about the new function. Printed: wall and CPU
seconds of each step, whether the answer names the module of the changed file, and the CPU of an update against the
full build's.

    python bench/push_to_answer.py /work/bench-repos/etcd --pushes 3
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODMATCH = str(Path(sys.executable).with_name("modmatch"))
SUFFIXES = {".go": "func {name}() int {{ return 42 }}\n", ".py": "def {name}():\n    return 42\n",
            ".c": "int {name}(void) {{ return 42; }}\n", ".rs": "pub fn {name}() -> i32 {{ 42 }}\n",
            ".java": "class {name} {{}}\n", ".ts": "export function {name}() {{ return 42 }}\n"}


def run(cmd: list[str], env: dict, cwd: Path | None = None) -> tuple[str, float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.time()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.time() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout, wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def pick_files(clone: Path, n: int) -> list[str]:
    """`n` tracked source files of different top-level folders, not tests."""
    seen, out = set(), []
    for f in git(clone, "ls-files").splitlines():
        top = f.split("/", 1)[0]
        if Path(f).suffix in SUFFIXES and "/" in f and "test" not in f.lower() and top not in seen \
                and (clone / f).is_file():
            seen.add(top)
            out.append(f)
        if len(out) == n:
            break
    return out


def lineage(home: Path) -> dict:
    """How the cached hybrid was made: its updates since the full build (0: a full build)."""
    import pickle

    (path,) = (home / "cache" / "matchers").glob("*/hybrid-*.pkl")
    with open(path, "rb") as fh:
        return dict(pickle.load(fh).lineage)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo")
    ap.add_argument("--pushes", type=int, default=3)
    ap.add_argument("--out", help="write the numbers as JSON here")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mm-push-"))
    try:
        clone = work / Path(a.repo).name
        subprocess.run(["git", "clone", "-q", a.repo, str(clone)], check=True)
        env = {**os.environ, "MODMATCH_HOME": str(work / "home"), "GIT_AUTHOR_NAME": "Dev",
               "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "Dev",
               "GIT_COMMITTER_EMAIL": "dev@example.com"}
        n_changes = int(git(clone, "rev-list", "--count", "HEAD"))
        _, wall, cpu = run([MODMATCH, "index", str(clone)], env)
        print(f"{clone.name}: {n_changes} commits; index (graph + full matcher build): {wall:.1f} s wall, {cpu:.1f} s CPU")
        out = {"repo": clone.name, "commits": n_changes, "index_wall_s": round(wall, 1), "index_cpu_s": round(cpu, 1),
               "pushes": []}
        os.environ["MODMATCH_HOME"] = env["MODMATCH_HOME"]
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from bot import settings
        from indexer.store import Store, db_path_for

        graph = Store(db_path_for(settings.home(), clone.resolve())).load_graph()
        for i, rel in enumerate(pick_files(clone, a.pushes)):
            name = f"Zq{i}FrobnicateLedger"
            path = clone / rel
            with open(path, "a", encoding="utf-8") as fh:
                fh.write("\n" + SUFFIXES[path.suffix].format(name=name))
            git(clone, "commit", "-q", "-am", f"add {name}")
            refresh, r_wall, r_cpu = run([MODMATCH, "refresh", str(clone)], env)
            ans, a_wall, a_cpu = run([MODMATCH, "ask", "--path", str(clone), "--json",
                                      f"{name} returns the wrong value"], env)
            top = json.loads(ans)["matches"][0]["module"]
            owner = graph.module_of(rel)
            row = {"file": rel, "refresh_wall_s": round(r_wall, 2), "refresh_cpu_s": round(r_cpu, 2),
                   "ask_wall_s": round(a_wall, 2), "top": top, "owner": owner, "lineage": lineage(work / "home")}
            out["pushes"].append(row)
            print(f"push {i + 1} ({rel}): refresh + matcher {r_wall:.1f} s wall / {r_cpu:.1f} s CPU "
                  f"({100 * r_cpu / cpu:.1f} % of the index's CPU), matcher updates since its full build "
                  f"{row['lineage']['updates']}; ask {a_wall:.1f} s; answer {top} (file in {owner})")
        out["load"] = os.getloadavg()[0]
        if a.out:
            Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
