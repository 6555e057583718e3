"""Two real processes on one PostgreSQL database (MODMATCH_DATABASE_URL), as a scaled-out deployment runs them:
two `modmatch serve` API processes get the same signed GitHub deliveries and each issue is labelled once; two
`modmatch serve --worker` processes race for handed-off training jobs and each job runs once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bot.github.verify import sign
from fakes.github_api import TOKEN as GH_TOKEN, FakeGitHub
from test_service_process import REPO, SECRET, Service, make_repo
from waiting import wait_for


def _report(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n  [postgres] {line}", flush=True)


@pytest.fixture
def services():
    started: list = []
    yield started
    for s in started:
        s.stop()


def _deliver(url: str, delivery: str, number: int, title: str) -> int:
    payload = {"action": "opened", "issue": {"number": number, "title": title, "body": "", "labels": []},
               "repository": {"full_name": REPO}, "sender": {"login": "alice", "type": "User"}}
    body = json.dumps(payload).encode()
    r = httpx.post(url + "/github/webhook", content=body, timeout=30, headers={
        "X-GitHub-Event": "issues", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign(body, SECRET),
        "Content-Type": "application/json"})
    return r.status_code


def test_two_api_processes_handle_each_delivery_once(git_repo, postgres_url, services, _modmatch_home, tmp_path,
                                                    capsys):
    make_repo(git_repo)
    issues = {7: "Buttons unreadable in the dark theme", 8: "Disk cache evicts hot pages too early",
              9: "TLS handshake fails behind the proxy", 10: "Dark theme menus flicker",
              11: "Write-ahead log grows without bound"}
    with FakeGitHub() as gh:
        gh.add_repo(REPO)
        for n, title in issues.items():
            gh.repos[REPO].issues[n] = {"title": title, "body": "", "labels": []}
        env = {"MODMATCH_DATABASE_URL": postgres_url, "MODMATCH_GITHUB_TOKEN": GH_TOKEN,
               "MODMATCH_GITHUB_API_URL": gh.url, "MODMATCH_GITHUB_COMMENT": "false"}
        a = Service(git_repo.root, _modmatch_home, **env)
        services.append(a)
        a.start()
        wait_for(a.ready, 120, "the first process to be ready")
        (tmp_path / "home-b").mkdir()
        b = Service(git_repo.root, tmp_path / "home-b", **env)  # another machine: its own home, the same database
        services.append(b)
        b.start()
        wait_for(b.ready, 120, "the second process to be ready")
        for home in (_modmatch_home, tmp_path / "home-b"):  # all state is in PostgreSQL, none in local files
            assert not [p.name for p in home.iterdir() if p.name.endswith(".db") and "service" in p.name
                        or p.name.startswith(("github.db", "slack.db"))]

        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(issues) * 2) as pool:  # each delivery reaches both processes at once
            codes = list(pool.map(lambda job: _deliver(job[0], f"delivery-{job[1]}", job[1], issues[job[1]]),
                                  [(svc.url, n) for n in issues for svc in (a, b)]))
        assert sorted(codes) == [200] * len(issues) + [202] * len(issues), codes  # one queued, one duplicate each

        def labelled():
            return all(gh.repos[REPO].issues[n]["labels"] for n in issues)

        wait_for(labelled, 120, "every issue labelled")
        seconds = time.perf_counter() - t0
        time.sleep(2)  # time enough for a second, wrong labelling to show
        posts = {n: len(gh.requests("POST", f"/repos/{REPO}/issues/{n}/labels")) for n in issues}
        assert posts == {n: 1 for n in issues}, posts
        assert not gh.requests("POST", "/comments")
        for svc in (a, b):  # a redelivery after processing is a duplicate for both
            assert _deliver(svc.url, "delivery-7", 7, issues[7]) == 200
        assert a.proc.poll() is None and b.proc.poll() is None
    _report(capsys, f"{len(issues)} deliveries sent to two API processes at once: {len(issues)} queued, "
                    f"{len(issues)} duplicates, each issue labelled once in {seconds:.1f} s")


def test_two_workers_never_run_one_job_twice(git_repo, postgres_url, services, tmp_path, capsys, monkeypatch):
    """Training jobs handed off by an API process are claimed by two `serve --worker` processes (two machines:
    two homes) racing each other: each job runs exactly once."""
    from bot.jobs import JobLog

    make_repo(git_repo)
    marker = tmp_path / "trained.txt"
    trainer = tmp_path / "trainer.py"
    trainer.write_text("import json, os, sys, time\n"
                       f"open({str(marker)!r}, 'a').write(os.environ['MODMATCH_HOME'] + '\\n')\n"
                       "time.sleep(0.3)\nprint(json.dumps({'published': False}))\n")
    homes = [tmp_path / "home-a", tmp_path / "home-b"]
    for home in homes:  # each machine has the repository indexed
        env = {**os.environ, "MODMATCH_HOME": str(home), "MODMATCH_DATABASE_URL": postgres_url}
        subprocess.run([sys.executable, "-m", "bot.cli", "index", str(git_repo.root)], env=env, check=True,
                       capture_output=True, timeout=300)
    monkeypatch.setenv("MODMATCH_DATABASE_URL", postgres_url)
    log = JobLog()
    # one waiting training per repository (a repository's waiting trainings merge into one row): eight names over
    # the one indexed checkout, each served by both workers
    names = [f"core{i}" for i in range(8)]
    rows = [log.add(f"train:{n}", "train", n, "handed off") for n in names]
    for row in rows:
        log.hand_off(row)  # what an API process (train_worker=false) does
    assert {log.get(r)["state"] for r in rows} == {"waiting"}

    procs, logs = [], []
    for home in homes:
        out = open(home / "worker.log", "ab")
        logs.append(out)
        env = {**os.environ, "MODMATCH_HOME": str(home), "MODMATCH_DATABASE_URL": postgres_url,
               "MODMATCH_TRAIN_COMMAND": f"{sys.executable} {trainer} {{path}}", "MODMATCH_THREADS": "1"}
        repos = [arg for n in names for arg in ("--repo", f"{n}={git_repo.root}")]
        procs.append(subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--worker", *repos], env=env,
                                      stdout=out, stderr=subprocess.STDOUT))
    try:
        t0 = time.perf_counter()
        wait_for(lambda: all(log.get(r)["state"] not in ("waiting", "queued", "running") for r in rows), 180,
                 "every handed-off job to run")
        seconds = time.perf_counter() - t0
        time.sleep(1)
        jobs = [log.get(r) for r in rows]
        assert [j["state"] for j in jobs] == ["ok"] * len(rows), [(j["state"], j["outcome"]) for j in jobs]
        ran = marker.read_text().split()
        assert len(ran) == len(rows), ran  # each job trained once, by one of the two workers
        owners = {j["claimed_by"] for j in jobs}
        assert owners <= {f"{os.uname().nodename}:{p.pid}" for p in procs}, owners
        assert all(p.poll() is None for p in procs), [(h / "worker.log").read_text()[-2000:] for h in homes]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for out in logs:
            out.close()
    _report(capsys, f"{len(rows)} handed-off training jobs, two workers racing: each ran once "
                    f"(worker split {sorted(ran.count(str(h)) for h in homes)}) in {seconds:.1f} s")
