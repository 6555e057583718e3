"""Fault injection on the real service: `python -m bot.cli serve` as an operator starts it, on loopback, killed with
SIGKILL in the middle of a refresh, a training run and a webhook delivery, fed 1,000 mixed requests, and trained
onto a full disk. Nothing is lost, nothing answers 500, and /healthz tells the truth. Each case prints its figures."""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bot.github.verify import sign
from fakes.github_api import TOKEN as GH_TOKEN, FakeGitHub
from waiting import wait_for

API_TOKEN = "process-test-token"
SECRET = "process-webhook-secret"
REPO = "acme/app"
MODULES = {
    "storage": ("Disk cache with least-recently-used eviction and the write-ahead log", ["evict_lru", "write_page"]),
    "network": ("HTTP client with retries, TLS handshake and connection pooling", ["retry_request", "tls_handshake"]),
    "ui": ("Widgets: buttons, menus and the dark theme", ["draw_button", "dark_theme"]),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _report(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n  [fault] {line}", flush=True)


def make_repo(git_repo, files_per_module: int = 3) -> None:
    files = {}
    for mod, (doc, funcs) in MODULES.items():
        files[f"{mod}/README.md"] = f"# {mod}\n\n{doc}.\n"
        for i in range(files_per_module):
            f = funcs[i % len(funcs)]
            files[f"{mod}/part{i}.py"] = f'"""{doc} (part {i})."""\n\n\ndef {f}_{i}(x):\n    """{doc}."""\n    return x\n'
    git_repo.commit("initial layout", files)


class Service:
    """One `modmatch serve` process, started and killed the way an operator (or the OOM killer) would."""

    def __init__(self, repo: Path, home: Path, **env: str):
        self.repo, self.home, self.port = repo, home, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "MODMATCH_HOME": str(home), "MODMATCH_API_TOKEN": API_TOKEN,
                    "MODMATCH_MATCHER": "lexical", "MODMATCH_REFRESH_DELAY": "0", "MODMATCH_POLL_INTERVAL": "0",
                    "MODMATCH_RETRAIN_AT": "", "MODMATCH_RETRAIN_MODULES": "0", "MODMATCH_RETRAIN_FEEDBACK": "0",
                    "MODMATCH_GITHUB_WEBHOOK_SECRET": SECRET, "MODMATCH_THREADS": "1", **env}
        self.proc: subprocess.Popen | None = None
        self.log = home / f"serve-{self.port}.log"

    def start(self) -> "Service":
        self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port",
                                      str(self.port), "--repo", f"core={self.repo}"], env=self.env,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)

        def up():
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 120, "the service to listen")
        return self

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        kw.setdefault("headers", {"Authorization": f"Bearer {API_TOKEN}"})
        return httpx.post(self.url + path, timeout=30, **kw)

    def ready(self) -> bool:
        return self.get("/readyz").status_code == 200

    def jobs(self) -> list[dict]:
        return self.get("/api/jobs", params={"limit": 50}).json()["jobs"]


@pytest.fixture
def services(_modmatch_home):
    started: list[Service] = []

    def make(repo, **env) -> Service:
        s = Service(repo, _modmatch_home, **env)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def test_kill9_during_the_first_index_then_restart(git_repo, services, capsys):
    """Killed while indexing: the restart marks the job interrupted, runs it again and serves the graph at HEAD."""
    files = {}
    for d in range(30):  # big enough that the first index is still running when it is killed
        for i in range(60):
            files[f"pkg{d}/mod{i}.py"] = (f'"""Module {i} of package {d}: handles widget{d} and gadget{i}."""\n\n'
                                          + "".join(f"def f{d}_{i}_{j}(x):\n    return x + {j}\n\n" for j in range(8)))
    head = git_repo.commit("a big tree", files)
    svc = services(git_repo.root).start()
    t0 = time.time()
    running = wait_for(lambda: next((j for j in svc.jobs() if j["state"] == "running"), None), 120, "the index job")
    svc.kill9()
    killed_after = time.time() - t0
    svc.start()
    wait_for(svc.ready, 300, "readiness after the restart")
    jobs = svc.jobs()
    states = {j["id"]: j["state"] for j in jobs}
    assert states[running["id"]] == "interrupted"
    assert any(j["state"] == "ok" and "interruption" in j["reason"] for j in jobs)
    repo = svc.get("/api/repos").json()["repos"][0]
    assert repo["commit"] == head and repo["indexed"] is True
    assert svc.post("/api/match", json={"text": "gadget7 of widget3"}).status_code == 200
    _report(capsys, f"kill -9 during the first index ({killed_after:.1f} s in): job {running['id']} interrupted, "
                    f"re-run ok, ready {time.time() - t0:.1f} s after the first start")


def test_kill9_during_training_leaves_no_orphan_and_requeues(git_repo, services, capsys, tmp_path):
    make_repo(git_repo)
    pidfile = tmp_path / "trainer.pid"
    trainer = tmp_path / "slow-trainer.sh"
    trainer.write_text(f"#!/bin/sh\necho $$ >> {pidfile}\nexec sleep 120\n")
    trainer.chmod(0o755)
    svc = services(git_repo.root, MODMATCH_TRAIN_COMMAND=f"{trainer} {{path}}", MODMATCH_RETRAIN_FEEDBACK="1")
    svc.start()
    wait_for(svc.ready, 120, "readiness")
    assert svc.post("/api/feedback", json={"text": "buttons look wrong in the dark theme", "modules": ["ui"]}
                    ).status_code == 201
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 60, "the training process")
    first = int(pidfile.read_text().split()[0])
    svc.kill9()

    def gone(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as fh:  # a zombie waiting for its reaper is gone too
            return fh.read().split(") ")[1].split()[0] == "Z"

    wait_for(lambda: gone(first), 30, "the orphaned trainer to end")
    svc.start()
    retry = wait_for(lambda: next((j for j in svc.jobs() if j["kind"] == "train" and "interruption" in j["reason"]),
                                  None), 60, "the training job queued again")
    jobs = svc.jobs()
    assert any(j["kind"] == "train" and j["state"] == "interrupted" for j in jobs)
    wait_for(lambda: len(pidfile.read_text().split()) == 2 or next(
        j for j in svc.jobs() if j["id"] == retry["id"])["state"] not in ("queued",), 60, "the retry to start")
    wait_for(svc.ready, 120, "readiness while the training runs")
    assert svc.post("/api/feedback", json={"text": "x", "modules": ["ui"], "key": "k"}).status_code == 201
    state = next(j for j in svc.jobs() if j["id"] == retry["id"])["state"]
    _report(capsys, "kill -9 during training: the trainer died with the service (no orphan), the job was "
                    f"marked interrupted and queued again after the restart (now {state}); feedback kept")


def test_kill9_after_a_webhook_was_acknowledged_loses_nothing(git_repo, services, capsys):
    make_repo(git_repo)
    with FakeGitHub() as gh:
        gh.add_repo(REPO)
        gh.fail_next[("GET", f"/repos/{REPO}")] = [500] * 1000  # GitHub is down: labelling cannot finish
        svc = services(git_repo.root, MODMATCH_GITHUB_TOKEN=GH_TOKEN, MODMATCH_GITHUB_API_URL=gh.url,
                       MODMATCH_GITHUB_RETRIES="0", MODMATCH_GITHUB_ATTEMPTS="50").start()
        wait_for(svc.ready, 120, "readiness")
        gh.repos[REPO].issues[7] = {"title": "Buttons unreadable in the dark theme", "body": "", "labels": []}
        payload = {"action": "opened", "issue": {"number": 7, "title": "Buttons unreadable in the dark theme",
                                                 "body": "The dark theme makes every button unreadable.",
                                                 "labels": []},
                   "repository": {"full_name": REPO}, "sender": {"login": "alice", "type": "User"}}
        body = json.dumps(payload).encode()
        t0 = time.perf_counter()
        r = httpx.post(svc.url + "/github/webhook", content=body, timeout=30, headers={
            "X-GitHub-Event": "issues", "X-GitHub-Delivery": "kill-1", "X-Hub-Signature-256": sign(body, SECRET)})
        ack = time.perf_counter() - t0
        assert r.status_code == 202 and ack < 1.0
        wait_for(lambda: len(gh.requests("GET", f"/repos/{REPO}")) >= 1, 30, "a first try")
        svc.kill9()
        assert gh.repos[REPO].issues[7]["labels"] == []
        gh.fail_next.clear()  # GitHub is back
        svc.start()
        wait_for(lambda: gh.repos[REPO].issues[7]["labels"] == ["module:ui"], 120, "the label after the restart")
    _report(capsys, f"kill -9 with a delivery acknowledged in {ack * 1000:.0f} ms and not yet labelled: "
                    "labelled after the restart")


def _mixed_requests(svc: Service, n: int, seed: int = 0) -> list[tuple[str, int]]:
    rnd = random.Random(seed)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    good_texts = ["disk cache eviction is slow", "TLS handshake fails", "the dark theme button", "缓存 淘汰 太慢",
                  "x", "a" * 5000]

    def one(i: int) -> tuple[str, int]:
        kind = rnd.choice(["match", "match", "bad-json", "deep", "surrogate", "wrong-type", "huge", "bad-token",
                           "module", "unknown-module", "modules", "health", "metrics", "webhook-bad-sig",
                           "webhook-shape", "refresh", "feedback-unknown", "jobs-bad-limit", "not-found"])
        with httpx.Client(base_url=svc.url, timeout=60) as c:
            if kind == "match":
                r = c.post("/api/match", json={"text": rnd.choice(good_texts), "k": rnd.randint(1, 10)})
            elif kind == "bad-json":
                r = c.post("/api/match", content=b'{"text": "unterminated')
            elif kind == "deep":
                r = c.post("/api/match", content=b'{"text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
            elif kind == "surrogate":
                r = c.post("/api/match", content=b'{"text": "\\ud800\\udc00\\ud800"}')
            elif kind == "wrong-type":
                r = c.post("/api/match", json={"text": ["a"], "k": "3"})
            elif kind == "huge":
                r = c.post("/api/match", content=b'{"text": "' + b"b" * 2_000_000 + b'"}')
            elif kind == "bad-token":
                r = c.post("/api/feedback", json={"text": "t", "modules": ["ui"]}, headers={"Authorization": "Bearer no"})
            elif kind == "module":
                r = c.get("/api/modules/storage")
            elif kind == "unknown-module":
                r = c.get("/api/modules/../../etc/passwd")
            elif kind == "modules":
                r = c.get("/api/modules")
            elif kind == "health":
                r = c.get("/healthz")
            elif kind == "metrics":
                r = c.get("/metrics")
            elif kind == "webhook-bad-sig":
                r = c.post("/github/webhook", content=b"\xff\xfe", headers={
                    "X-GitHub-Event": "issues", "X-GitHub-Delivery": str(i), "X-Hub-Signature-256": "sha256=00"})
            elif kind == "webhook-shape":
                b = json.dumps({"action": "opened", "issue": "not an object"}).encode()
                r = c.post("/github/webhook", content=b, headers={
                    "X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": sign(b, SECRET)})
            elif kind == "refresh":
                r = c.post("/api/refresh", json={"repo": rnd.choice(["core", "nope", 5])}, headers=auth)
            elif kind == "feedback-unknown":
                r = c.post("/api/feedback", json={"text": "t", "modules": ["no/such"]}, headers=auth)
            elif kind == "jobs-bad-limit":
                r = c.get("/api/jobs", params={"limit": rnd.choice(["-1", "abc", "100000"])})
            else:
                r = c.get("/no/such/route")
            if r.headers.get("content-type", "").startswith("application/json"):
                r.json()  # every JSON answer parses
            return kind, r.status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_a_thousand_mixed_requests_never_500_and_health_stays_true(git_repo, services, capsys):
    make_repo(git_repo)
    svc = services(git_repo.root).start()
    wait_for(svc.ready, 120, "readiness")
    t0 = time.perf_counter()
    results = _mixed_requests(svc, 1000)
    seconds = time.perf_counter() - t0
    statuses: dict[int, int] = {}
    for _, code in results:
        statuses[code] = statuses.get(code, 0) + 1
    bad = [(k, c) for k, c in results if c >= 500]
    assert not bad, bad[:10]
    assert statuses.get(200, 0) > 100 and statuses.get(400, 0) > 100
    h = svc.get("/healthz").json()
    assert h["ready"] is True and h["repos"]["core"]["matcher"] == "ready"
    assert svc.proc.poll() is None
    _report(capsys, f"1,000 mixed requests in {seconds:.1f} s: statuses {dict(sorted(statuses.items()))}, no 5xx")


def _tmpfs(path: Path, size: str) -> bool:
    """Mount a small tmpfs at `path` (root only); False where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_training_onto_a_full_disk_fails_cleanly_and_keeps_serving(git_repo, services, capsys, _modmatch_home,
                                                                   tmp_path):
    """The models folder is a 2 MB tmpfs (else the trainer's file size is limited to 2 MB): the real training job
    fails with the disk's error, no model becomes current, and the service answers throughout."""
    from inference.models import tiny_random_model

    model_dir = tmp_path / "tiny"
    model, tok = tiny_random_model(hidden=32)
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    make_repo(git_repo)
    git_repo.commit("trainer settings", {".modmatch.toml": f'[trainer]\nbase_model = "{model_dir}"\nmax_steps = 1\n'
                                         "batch_size = 2\nvariants = 1\neval_rows = 2\ncheckpoint_every = 0\n"})
    models = _modmatch_home / "models"
    mounted = _tmpfs(models, "2m")
    env = {"MODMATCH_RETRAIN_FEEDBACK": "1"}
    if not mounted:
        env["MODMATCH_TRAIN_COMMAND"] = (f"prlimit --fsize=2000000 {sys.executable} -m bot.cli train {{path}} --json")
    try:
        svc = services(git_repo.root, **env).start()
        wait_for(svc.ready, 120, "readiness")
        assert svc.post("/api/feedback", json={"text": "dark theme buttons", "modules": ["ui"]}).status_code == 201
        job = wait_for(lambda: next((j for j in svc.jobs() if j["kind"] == "train"
                                     and j["state"] not in ("queued", "running")), None), 600, "the training job")
        assert job["state"] == "failed", job
        err = json.dumps(job["outcome"])
        assert "No space left" in err or "File too large" in err or "Errno 28" in err or "Errno 27" in err, err[-2000:]
        assert not list(models.rglob("current.json"))
        assert svc.ready() and svc.post("/api/match", json={"text": "dark theme"}).json()["matches"][0]["module"] == "ui"
        _report(capsys, f"training onto a full disk ({'tmpfs 2 MB' if mounted else 'file size limit 2 MB'}): "
                        f"job failed in {job['duration']} s with the disk's error, nothing published, still serving")
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(models)], capture_output=True)


def test_truncated_and_corrupted_databases_at_restart_are_rebuilt(git_repo, services, capsys, _modmatch_home):
    """The repository database is cut in half (then, second round, has pages overwritten) while the service is down:
    the restart reports it, rebuilds from git, and answers again; feedback kept in the service database survives."""
    from indexer.store import db_path_for

    make_repo(git_repo)
    svc = services(git_repo.root).start()
    wait_for(svc.ready, 120, "readiness")
    assert svc.post("/api/feedback", json={"text": "buttons in the dark theme", "modules": ["ui"]}).status_code == 201
    svc.stop()
    db = db_path_for(_modmatch_home, git_repo.root)
    figures = []
    for round_, damage in enumerate(("truncate", "overwrite"), 1):
        import sqlite3

        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        size = db.stat().st_size
        with open(db, "r+b") as fh:
            if damage == "truncate":
                fh.truncate(size // 2 // 4096 * 4096)
            else:
                fh.seek(size // 2 // 4096 * 4096)
                fh.write(os.urandom(3 * 4096))
        t0 = time.time()
        svc.start()
        h = svc.get("/healthz").json()["repos"]["core"]
        assert h.get("database_recoveries", 0) == round_, h
        wait_for(svc.ready, 120, "readiness after the rebuild")
        assert svc.post("/api/match", json={"text": "dark theme buttons"}).json()["matches"][0]["module"] == "ui"
        assert f'modmatch_database_recoveries_total{{repo="core"}} {round_}' in svc.get("/metrics").text
        figures.append(f"{damage}: rebuilt and ready in {time.time() - t0:.1f} s")
        svc.stop()
    from bot.feedback import FeedbackLog

    assert FeedbackLog(f"sqlite:///{_modmatch_home / 'service.db'}").count(db.stem) == 1
    _report(capsys, "damaged database at restart: " + "; ".join(figures) + "; feedback kept")
