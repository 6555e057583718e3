"""Many repositories in one service (issue 14): 30 real indexed repositories served by one `modmatch serve`.

Each repository is a real git repository made from one folder of the clones in /work/bench-repos: the last
`--history` commits that touched the folder, replayed with their authors, dates and messages (`git commit-tree`
on the folder's tree at each commit; objects shared through git alternates, nothing copied but the checkout).
Every one is indexed with `modmatch index` (which also builds its default matcher into the on-disk cache, as an
operator's index does). Then two `modmatch serve` processes serve all of them side by side:

- no bound (max_loaded_repos=0): every repository keeps its graph and matcher;
- a bound (max_loaded_repos=8 by default): the least recently asked ones are unloaded.

Both wait for /readyz; then both are asked the same questions in turn (so both see the same load from whatever
else runs on the machine): real commit subjects of each repository over the HTTP API, round robin, `--rounds`
rounds, two per repository and round. Round robin over 30 repositories under a bound of 8 is the worst order for an
LRU: each first question finds its repository unloaded in the bounded service, the second (another subject: a
matcher keeps the last text's scores) finds it loaded. Reported: each process's peak RSS (VmHWM) and RSS, both
latencies, and per first question the bounded minus the unbounded time (what loading from the cache costs).
`--keep DIR` keeps the repositories and the home: a second run skips making them and re-indexes from the caches.

    nice .venv/bin/python bench/many_repos.py                      # 30 repositories, bound 8 (5-14 min on 2 cores)
    nice .venv/bin/python bench/many_repos.py --repos 10 --bound 3 --rounds 1
    nice .venv/bin/python bench/many_repos.py --big /work/bench-repos/ncnn     # and one full-size repository
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SOURCES = Path("/work/bench-repos")
# (clone, folder): folders of 60-500 files with their own history, several languages
SUBTREES = [
    ("commons-lang", "src/main"), ("commons-lang", "src/test"),
    ("etcd", "server/etcdserver"), ("etcd", "server/storage"), ("etcd", "client/v3"), ("etcd", "pkg"),
    ("etcd", "tools"),
    ("hutool", "hutool-extra"), ("hutool", "hutool-json"), ("hutool", "hutool-db"), ("hutool", "hutool-poi"),
    ("ncnn", "tests"), ("ncnn", "python"),
    ("nginx", "src/http"), ("nginx", "src/os"), ("nginx", "src/core"), ("nginx", "src/event"), ("nginx", "auto"),
    ("okhttp", "okhttp"), ("okhttp", "samples"),
    ("pytest", "src/_pytest"), ("pytest", "testing"),
    ("redis", "deps/lua"), ("redis", "deps/hiredis"), ("redis", "tests/unit"), ("redis", "deps/jemalloc"),
    ("svelte", "documentation"),
    ("tokio", "tokio-util"), ("tokio", "tokio-stream"), ("tokio", "tokio/tests"),
]
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


def git(cwd: Path, *args: str, input: str | None = None, env: dict | None = None) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True, input=input,
                          env={**os.environ, **GIT_ENV, **(env or {})}).stdout


def make_repo(clone: str, folder: str, dst: Path, history: int) -> int:
    """A repository holding `folder` of `clone` with the last `history` commits that touched it; commits made."""
    src = SOURCES / clone
    git_dir = Path(git(src, "rev-parse", "--absolute-git-dir").strip())
    git(dst.parent, "init", "-q", "-b", "main", dst.name)
    (dst / ".git" / "objects" / "info" / "alternates").write_text(str(git_dir / "objects") + "\n")
    log = git(src, "log", "--first-parent", f"-n{history}", "--format=%H%x00%an%x00%ae%x00%aI%x00%cI%x00%B%x01",
              "HEAD", "--", folder)
    entries = [e.strip("\n") for e in log.split("\x01") if e.strip()]
    parent, last_tree, n = None, None, 0
    for entry in reversed(entries):
        sha, name, email, adate, cdate, message = entry.split("\x00", 5)
        tree = git(src, "rev-parse", f"{sha}:{folder}").strip()
        if tree == last_tree:
            continue
        env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": adate,
               "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, "GIT_COMMITTER_DATE": cdate}
        args = ["commit-tree", tree] + (["-p", parent] if parent else []) + ["-F", "-"]
        parent, last_tree = git(dst, *args, input=message or "(no message)", env=env).strip(), tree
        n += 1
    git(dst, "update-ref", "refs/heads/main", parent)
    git(dst, "reset", "-q", "--hard", "main")
    return n


def questions(repo: Path, n: int) -> list[str]:
    """Real commit subjects of the repository (its newest changes, long enough to be a question)."""
    subjects = git(repo, "log", "--format=%s", "-n200").splitlines()
    return [s for s in subjects if len(s.split()) >= 4][:n] or subjects[:n]


def index_one(repo: Path, env: dict) -> float:
    t = time.perf_counter()
    r = subprocess.run(["nice", sys.executable, "-m", "bot.cli", "index", str(repo), "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"index of {repo} failed: {r.stderr[-2000:]}")
    return time.perf_counter() - t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_mem(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(val.split()[0]) // 1024  # MiB
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


class Service:
    """One `modmatch serve` process over every repository, with `max_loaded_repos=bound`."""

    def __init__(self, repos: dict[str, Path], env: dict, bound: int, log_path: Path):
        self.bound, self.log_path = bound, log_path
        port = free_port()
        args = ["nice", sys.executable, "-m", "bot.cli", "serve", "--port", str(port)]
        for name, path in repos.items():
            args += ["--repo", f"{name}={path}"]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**env, "MODMATCH_MAX_LOADED_REPOS": str(bound)},
                                     stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited: {log_path.read_text()[-3000:]}")
            try:
                if self.client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.ready_s = time.perf_counter() - t0
        self.mem_ready = proc_mem(self.proc.pid)
        self.first: list[tuple[float, float]] = []
        self.again: list[tuple[float, float]] = []
        self.statuses: list[int] = []

    def ask(self, repo: str, text: str, second: bool) -> float:
        t = time.perf_counter()
        r = self.client.post("/api/match", json={"text": text, "repo": repo, "k": 5})
        dt = time.perf_counter() - t
        self.statuses.append(r.status_code)
        (self.again if second else self.first).append((dt, r.json().get("seconds", 0.0)))
        return dt

    def finish(self) -> dict:
        health = self.client.get("/healthz").json()
        mem_end = proc_mem(self.proc.pid)
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        matchers: dict[str, int] = {}
        for v in health["repos"].values():
            matchers[v["matcher"]] = matchers.get(v["matcher"], 0) + 1
        return {"bound": self.bound, "ready_s": round(self.ready_s, 1), "peak_rss_mib": mem_end["VmHWM"],
                "rss_ready_mib": self.mem_ready["VmRSS"], "rss_end_mib": mem_end["VmRSS"],
                "loaded_at_end": health["loaded"], "matchers_at_end": matchers,
                "statuses": {str(s): self.statuses.count(s) for s in sorted(set(self.statuses))},
                "first_ask_ms": latency(self.first), "second_ask_ms": latency(self.again),
                "questions": len(self.first) + len(self.again)}


def serve_both(repos: dict[str, Path], qs: dict[str, list[str]], env: dict, bound: int, rounds: int,
               work: Path) -> list[dict]:
    """The unbounded and the bounded service side by side, asked the same questions in turn (so both see the same
    load from whatever else runs on the machine): per repository and round, a first question (the bounded one
    finds the repository unloaded) and a second (loaded in both)."""
    services = [Service(repos, env, 0, work / "serve-0.log")]
    try:
        services.append(Service(repos, env, bound, work / f"serve-{bound}.log"))
        extra = []  # bounded minus unbounded, per first question: what loading from the cache costs
        for round_ in range(rounds):
            for name, texts in qs.items():
                for i in range(2):  # never the text just asked (a matcher keeps the last text's scores)
                    text = texts[(2 * round_ + i) % len(texts)]
                    a, b = (svc.ask(name, text, second=i == 1) for svc in services)
                    if i == 0:
                        extra.append(b - a)
    finally:
        results = [svc.finish() for svc in services]
    results[-1]["first_ask_extra_ms"] = {"p50": round(1000 * statistics.median(extra)),
                                         "p90": round(1000 * pct(extra, 0.9))}
    return results


def latency(samples: list[tuple[float, float]]) -> dict:
    """HTTP round trip (p50, p90, max) and the service's own `seconds` (p50), in ms."""
    wall = [w for w, _ in samples]
    return {"p50": round(1000 * statistics.median(wall)), "p90": round(1000 * pct(wall, 0.9)),
            "max": round(1000 * max(wall)), "service_p50": round(1000 * statistics.median(s for _, s in samples))}


def big_run(small: tuple[str, Path], big: Path, env: dict, log_path: Path, asks: int = 5) -> dict:
    """One full-size repository beside a small one under a bound of one: what loading it adds to the serve
    process's RSS, what unloading it gives back, and the latency of its questions loaded and unloaded."""
    index_s = index_one(big, env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**env, "MODMATCH_MAX_LOADED_REPOS": "1"}
    args = ["nice", sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--repo", f"small={small[1]}",
            "--repo", f"big={big}"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    texts = {"small": questions(small[1], asks), "big": questions(big, 2 * asks)}
    out: dict = {"repo": str(big), "files": len(git(big, "ls-tree", "-r", "--name-only", "HEAD").splitlines()),
                 "index_s": round(index_s, 1)}
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"serve exited: {log_path.read_text()[-3000:]}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)

            def ask(repo: str, text: str) -> float:
                t = time.perf_counter()
                r = client.post("/api/match", json={"text": text, "repo": repo, "k": 5})
                assert r.status_code == 200, r.text
                return time.perf_counter() - t

            unloaded, loaded, rss = [], [], {}
            for i in range(asks):
                ask("small", texts["small"][i % len(texts["small"])])  # the big one is unloaded now
                rss.setdefault("small_loaded", proc_mem(proc.pid)["VmRSS"])
                unloaded.append(ask("big", texts["big"][(2 * i) % len(texts["big"])]))
                loaded.append(ask("big", texts["big"][(2 * i + 1) % len(texts["big"])]))
                rss.setdefault("big_loaded", proc_mem(proc.pid)["VmRSS"])
            ask("small", texts["small"][0])
            rss["big_unloaded_again"] = proc_mem(proc.pid)["VmRSS"]
            rss["peak"] = proc_mem(proc.pid)["VmHWM"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    out.update({"rss_mib": rss, "big_adds_mib": rss["big_loaded"] - rss["small_loaded"],
                "ask_unloaded_ms": [round(1000 * x) for x in unloaded],
                "ask_loaded_ms": [round(1000 * x) for x in loaded]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repos", type=int, default=30)
    ap.add_argument("--history", type=int, default=150, help="commits per repository")
    ap.add_argument("--bound", type=int, default=8, help="max_loaded_repos of the bounded run")
    ap.add_argument("--rounds", type=int, default=3, help="round-robin passes over the repositories")
    ap.add_argument("--keep", help="build the repositories and home here and keep them (default: a temp folder)")
    ap.add_argument("--json", dest="json_out", help="also write the results here")
    ap.add_argument("--big", help="also measure one full-size clone (e.g. /work/bench-repos/ncnn): RSS it adds when "
                                  "loaded, gives back when unloaded, ask latency loaded and unloaded")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mm-many-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    env = {**os.environ, **GIT_ENV, "MODMATCH_HOME": str(home), "PYTHONPATH": str(ROOT), "MODMATCH_THREADS": "1",
           "MODMATCH_POLL_INTERVAL": "0", "MODMATCH_RETRAIN_AT": "", "MODMATCH_RETRAIN_MODULES": "0",
           "MODMATCH_RETRAIN_FEEDBACK": "0", "MODMATCH_MATCH_WAIT": "120", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    try:
        t = time.perf_counter()
        repos: dict[str, Path] = {}
        commits = {}
        for clone, folder in SUBTREES[: args.repos]:
            name = f"{clone}-{folder.replace('/', '-')}"
            dst = work / "repos" / name
            if not (dst / ".git").is_dir():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(dst, ignore_errors=True)
                commits[name] = make_repo(clone, folder, dst, args.history)
            repos[name] = dst
        made_s = time.perf_counter() - t
        files = {n: len(git(p, "ls-files").splitlines()) for n, p in repos.items()}
        print(f"{len(repos)} repositories ({min(files.values())}-{max(files.values())} files, "
              f"{sum(files.values())} in all; up to {args.history} commits each) made in {made_s:.0f} s", flush=True)

        t = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:  # two at a time: the machine has two cores
            index_s = list(pool.map(lambda p: index_one(p, env), repos.values()))
        print(f"indexed (and matchers built into the cache) in {time.perf_counter() - t:.0f} s wall; per repository "
              f"p50 {statistics.median(index_s):.1f} s, max {max(index_s):.1f} s", flush=True)
        from indexer.store import db_path_for

        cache = home / "cache" / "matchers"
        cached = sum(1 for p in repos.values() if any((cache / db_path_for(home, p).stem).glob("*.pkl")))
        print(f"repositories with a cached matcher: {cached} of {len(repos)}", flush=True)

        qs = {n: questions(p, 2 * args.rounds) for n, p in repos.items()}
        results = serve_both(repos, qs, env, args.bound, args.rounds, work)
        for res in results:
            print(json.dumps(res), flush=True)
        big = None
        if args.big:
            name = next(iter(repos))
            big = big_run((name, repos[name]), Path(args.big).resolve(), env, work / "serve-big.log")
            print(json.dumps(big), flush=True)
        print(f"load average: {Path('/proc/loadavg').read_text().split()[:3]}")
        if args.json_out:
            Path(args.json_out).write_text(json.dumps({"repos": len(repos), "files": files, "results": results,
                                                       "big": big}, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
