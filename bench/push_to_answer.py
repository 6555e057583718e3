"""Push → an answer that reflects the new graph, with the real CLI in real processes (issue 14).

A local clone of the repository (hard links, the original is untouched) is indexed as an operator would
(`modmatch index`, which also builds the default matcher); then, `--pushes` times: a commit adds a function with a
name nobody used before to a source file, `modmatch refresh` brings the graph and the matcher up to it (an
incremental update of the cached hybrid), and `modmatch ask` asks about the new function. Printed: wall and CPU
seconds of each step, whether the answer names the module of the changed file, and the CPU of an update against the
full build's.

    python bench/push_to_answer.py /work/bench-repos/etcd --pushes 3
    python bench/push_to_answer.py /work/bench-repos/ncnn --pushes 3 --serve   # through a running `modmatch serve`

With `--serve`, the pushes go to a running service instead, as production runs it: each commit is followed by
`POST /api/refresh` (what the post-receive hook and the push webhook send), and `POST /api/match` is asked about the
new function every 0.5 s until an answer comes from the new graph. Printed: push → first answer from the new graph
(the refresh job, the matcher update in the background while the previous matcher answers, the swap).
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


def http(port: int, method: str, path: str, body: dict | None = None, token: str = "bench-token") -> dict:
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"{}")


def serve_pushes(clone: Path, env: dict, files: list[str], graph, out: dict) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**env, "MODMATCH_API_TOKEN": "bench-token"}
    proc = subprocess.Popen([MODMATCH, "serve", "--repo", f"{clone.name}={clone}", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t = time.time()
        while True:
            try:
                if http(port, "GET", "/readyz").get("ready"):
                    break
            except Exception:
                pass
            if time.time() - t > 600:
                sys.exit("the service did not get ready in 10 minutes")
            time.sleep(0.5)
        print(f"serve ready after {time.time() - t:.1f} s (matcher loaded from the cache `index` left)")
        for i, rel in enumerate(files):
            name = f"Zs{i}QuiblerLedger"
            path = clone / rel
            with open(path, "a", encoding="utf-8") as fh:
                fh.write("\n" + SUFFIXES[path.suffix].format(name=name))
            git(clone, "commit", "-q", "-am", f"add {name}")
            old = http(port, "POST", "/api/match", {"text": "x y z", "k": 1})["graph_version"]
            t0 = time.time()
            http(port, "POST", "/api/refresh", {"repo": clone.name, "reason": "bench push"})
            while True:
                ans = http(port, "POST", "/api/match", {"text": f"{name} returns the wrong value", "k": 1})
                if ans["graph_version"] != old:
                    break
                if time.time() - t0 > 600:
                    sys.exit("no answer from the new graph in 10 minutes")
                time.sleep(0.5)
            took = time.time() - t0
            health = http(port, "GET", "/healthz")["repos"][clone.name]
            top, owner = ans["matches"][0]["module"], graph.module_of(rel)
            out["serve_pushes"].append({"file": rel, "push_to_answer_s": round(took, 2), "top": top, "owner": owner,
                                        "matcher_build": health.get("matcher_build")})
            print(f"serve push {i + 1} ({rel}): first answer from the new graph {took:.1f} s after the push; "
                  f"answer {top} (file in {owner}); matcher {health.get('matcher_build')}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo")
    ap.add_argument("--pushes", type=int, default=3)
    ap.add_argument("--serve", action="store_true", help="push to a running `modmatch serve` (see above)")
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
        if a.serve:
            out["serve_pushes"] = []
            serve_pushes(clone, env, pick_files(clone, a.pushes), graph, out)
        for i, rel in enumerate([] if a.serve else pick_files(clone, a.pushes)):
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
