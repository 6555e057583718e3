"""The job queue: coalescing, persistence across a restart, failed refreshes, the retraining policy; every case on
SQLite and on PostgreSQL (the `service_db` fixture)."""
from __future__ import annotations

import json
import sys
import time

import pytest

from bot.jobs import JobRunner, TrainLock, database_url
from bot.state import AppState, RepoState
from waiting import wait_for as _wait_for
from indexer.build import index

pytestmark = pytest.mark.usefixtures("service_db")

FILES = {
    "storage/cache.py": '"""Disk cache."""\n\ndef evict_lru():\n    """Evict the least recently used page."""\n',
    "network/tls.py": '"""TLS."""\n\ndef tls_handshake():\n    """Perform the TLS handshake."""\n',
}


@pytest.fixture
def state(git_repo):
    git_repo.commit("initial", FILES)
    st = AppState()
    rs = st.add(RepoState("core", git_repo.root, matcher="lexical"))
    index(git_repo.root, rs.store, full=True)
    return st


def wait_for(fn, timeout=30.0):
    return _wait_for(fn, timeout, "the job")


def done(runner, kind="refresh"):
    jobs = [j for j in runner.recent() if j["kind"] == kind]
    return jobs if jobs and all(j["state"] not in ("queued", "running") for j in jobs) else None


def test_ten_triggers_one_refresh(state, git_repo, monkeypatch):
    monkeypatch.setenv("MODMATCH_RETRAIN_MODULES", "0")
    runner = JobRunner(state, refresh_delay=1.0, poll_interval=0, retrain_at="").start()
    try:
        git_repo.commit("more", {"ui/button.py": "class Button:\n    pass\n"})
        ids = {state.queue_refresh("core", f"hook:{i}") for i in range(10)}  # the AppState hook is wired
        assert ids == {"refresh:core"}
        jobs = wait_for(lambda: done(runner))
        assert len(jobs) == 1 and jobs[0]["state"] == "ok" and jobs[0]["triggers"] == 10
        assert jobs[0]["outcome"]["added_modules"] == ["ui"]
        assert [r["kind"] for r in state.repo().store.runs()] == ["refresh", "index"]  # one refresh ran
        assert "ui" in state.repo().graph.modules  # reloaded
    finally:
        runner.shutdown()


def test_queued_job_survives_a_restart(state, git_repo, service_db):
    assert database_url() == service_db
    runner = JobRunner(state, refresh_delay=3600, poll_interval=0, retrain_at="").start()
    runner.queue_refresh("core", "push")
    runner.shutdown()
    assert state.queue_refresh is not None

    runner2 = JobRunner(state, refresh_delay=3600, poll_interval=0, retrain_at="").start(paused=True)
    try:
        job = runner2.scheduler.get_job("refresh:core")
        assert job is not None and job.kwargs["repo"] == "core"
        row = runner2.log.get(job.kwargs["row"])
        assert row["state"] == "queued" and row["reason"] == "push"
        runner2.queue_refresh("core", "again")  # joins the persisted job
        assert len(runner2.scheduler.get_jobs()) == 1 and runner2.log.get(job.kwargs["row"])["triggers"] == 2
        job.modify(next_run_time=job.next_run_time.replace(year=2000))  # due now: it runs
        runner2.scheduler.resume()
        jobs = wait_for(lambda: done(runner2))
        assert jobs[0]["state"] == "ok"
    finally:
        runner2.shutdown()


def test_failed_refresh_keeps_the_graph_served(state, git_repo):
    rs = state.repo()
    before = rs.match("evict least recently used page", k=1)
    runner = JobRunner(state, refresh_delay=0, poll_interval=0, retrain_at="").start()
    try:
        broken = git_repo.root.parent / "moved-away"
        git_repo.root.rename(broken)  # the repository disappears: the refresh fails
        runner.queue_refresh("core", "test")
        jobs = wait_for(lambda: done(runner))
        assert jobs[0]["state"] == "failed" and jobs[0]["outcome"]["error"]
        after = rs.match("evict least recently used page", k=1)
        assert after.graph_version == before.graph_version and after.matches[0].module == "storage"
        broken.rename(git_repo.root)
    finally:
        runner.shutdown()


def test_interrupted_job_runs_again(state):
    runner = JobRunner(state, refresh_delay=3600, poll_interval=0, retrain_at="")
    row = runner.log.add("refresh:core", "refresh", "core", "push")
    runner.log.start(row)  # the process died here
    runner.start(paused=True)
    try:
        assert runner.log.get(row)["state"] == "interrupted"
        assert runner.scheduler.get_job("refresh:core") is not None
    finally:
        runner.shutdown()


@pytest.fixture
def fake_train(tmp_path, monkeypatch):
    """A stand-in for `modmatch train PATH`: records its arguments, prints JSON."""
    marker = tmp_path / "trained.jsonl"
    script = tmp_path / "train.py"
    script.write_text("import json, sys\n"
                      f"open({str(marker)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                      "print(json.dumps({'published': False, 'reason': 'fake'}))\n")
    monkeypatch.setenv("MODMATCH_TRAIN_COMMAND", f"{sys.executable} {script} {{path}} --json")
    return marker


def test_big_refresh_queues_training(state, git_repo, fake_train, monkeypatch):
    monkeypatch.setenv("MODMATCH_RETRAIN_MODULES", "2")
    runner = JobRunner(state, refresh_delay=0, poll_interval=0, retrain_at="").start()
    try:
        git_repo.commit("two new modules", {"ui/a.py": "x = 1\n", "payment/b.py": "y = 2\n"})
        runner.queue_refresh("core", "test")
        jobs = wait_for(lambda: done(runner, "train"))
        assert jobs[0]["state"] == "ok", jobs
        assert jobs[0]["reason"] == "refresh changed 2 modules"
        assert jobs[0]["outcome"]["result"] == {"published": False, "reason": "fake"}
        assert json.loads(fake_train.read_text()) == [str(git_repo.root), "--json"]
    finally:
        runner.shutdown()


def test_feedback_threshold_queues_training(state, fake_train, monkeypatch):
    monkeypatch.setenv("MODMATCH_RETRAIN_FEEDBACK", "2")
    runner = JobRunner(state, refresh_delay=3600, poll_interval=0, retrain_at="").start(paused=True)
    try:
        rs = state.repo()
        rs.add_feedback("cache evicts too early", ["storage"], "test")
        runner.on_feedback("core")
        assert runner.scheduler.get_job("train:core") is None
        rs.add_feedback("handshake fails", ["network"], "test")
        runner.on_feedback("core")
        assert runner.scheduler.get_job("train:core") is not None
    finally:
        runner.shutdown()


def test_one_training_per_machine(state, fake_train, tmp_path):
    other = TrainLock(JobRunner(state, poll_interval=0, retrain_at="").home / "train.lock")
    assert other.acquire()
    runner = JobRunner(state, refresh_delay=3600, poll_interval=0, retrain_at="").start(paused=True)
    try:
        row = runner.log.add("train:core", "train", "core", "test")
        runner.run_train("core", row)
        assert runner.log.get(row)["state"] == "skipped"
        assert not fake_train.exists()
        assert runner.scheduler.get_job("train:core") is not None  # queued again, later
        other.release()
        row2 = runner.log.add("train:x", "train", "core", "test")
        runner.run_train("core", row2)
        assert runner.log.get(row2)["state"] == "ok" and fake_train.exists()
    finally:
        other.release()
        runner.shutdown()


def test_training_worker_claims_handed_off_jobs(state, fake_train):
    api = JobRunner(state, refresh_delay=3600, poll_interval=0, retrain_at="", train_worker=False)
    row = api.log.add("train:core", "train", "core", "nightly")
    api.run_train("core", row)
    assert api.log.get(row)["state"] == "waiting"
    worker = JobRunner(state, poll_interval=0, retrain_at="", train_worker=True)
    assert worker.work_once() is True
    assert worker.log.get(row)["state"] == "ok" and fake_train.exists()
    assert worker.work_once() is False
    api.shutdown()
    worker.shutdown()


def test_poll_refreshes_when_head_moved(state, git_repo):
    runner = JobRunner(state, refresh_delay=3600, poll_interval=0, retrain_at="").start(paused=True)
    try:
        runner.poll()
        assert runner.scheduler.get_job("refresh:core") is None
        git_repo.commit("change", {"storage/cache.py": "# changed\n"})
        runner.poll()
        assert runner.scheduler.get_job("refresh:core") is not None
    finally:
        runner.shutdown()


def test_a_job_another_process_claimed_runs_there_only(state):
    """Processes sharing the database share the scheduler's store: the one whose `start` claim wins runs the job;
    the other neither runs it nor loses its scheduler over the job being gone."""
    runner = JobRunner(state, refresh_delay=3600, poll_interval=0, retrain_at="").start(paused=True)
    try:
        row = runner.log.add("refresh:core", "refresh", "core", "push")
        assert runner.log.start(row) and not runner.log.start(row)  # the other process claimed it: once
        runner.run_refresh("core", row)
        assert [r["kind"] for r in state.repo().store.runs()] == ["index"]  # no second refresh here
        assert runner.log.get(row)["state"] == "running"
        runner.scheduler._lookup_jobstore("default").remove_job("refresh:removed-elsewhere")  # no JobLookupError
    finally:
        runner.shutdown()


def test_poll_serves_a_refresh_another_process_made(state, git_repo):
    """Two API processes sharing one home: the one that did not run the refresh serves the new graph after its poll."""
    from indexer.build import refresh

    other = AppState()
    ors = other.add(RepoState("core", git_repo.root, matcher="lexical"))
    before = ors.graph.version
    git_repo.commit("more", {"ui/button.py": "class Button:\n    pass\n"})
    refresh(git_repo.root, state.repo().store)  # the first process refreshed the shared repository database
    runner = JobRunner(other, refresh_delay=3600, poll_interval=0, retrain_at="").start(paused=True)
    try:
        runner.poll()
        assert ors.graph.version != before and "ui" in ors.graph.modules
        assert runner.scheduler.get_job("refresh:core") is None  # nothing left to refresh
    finally:
        runner.shutdown()


def _served(tmp_path, names) -> AppState:
    from conftest import GitRepo

    st = AppState()
    for i, name in enumerate(names):
        g = GitRepo(tmp_path / "many" / name)
        g.commit("initial", {f"pkg{i}/mod.py": f'"""Module {i}."""\n\ndef f{i}():\n    pass\n'})
        rs = st.add(RepoState(name, g.root, matcher="lexical"))
        index(g.root, rs.store, full=True)
    return st


def test_a_busy_repository_does_not_hold_the_workers(tmp_path, monkeypatch):
    """Two repositories whose refreshes run long, pushed to again and again: their next refreshes wait in the queue
    (one each, the triggers joined), not in the four workers, so a third repository's refresh runs at once."""
    monkeypatch.setenv("MODMATCH_RETRAIN_MODULES", "0")
    st = _served(tmp_path, ["busy1", "busy2", "other"])
    runner = JobRunner(st, refresh_delay=0.2, poll_interval=0, retrain_at="").start()
    held = [runner._repo_lock(n) for n in ("busy1", "busy2")]
    for lock in held:
        lock.acquire()  # a refresh of each runs (for as long as the test holds it)
    try:
        for round_ in range(3):  # a push to each every half second; each job is due before the next push
            for n in ("busy1", "busy2"):
                runner.queue_refresh(n, f"push {round_}")
            time.sleep(0.6)
        runner.queue_refresh("other", "push")
        other = wait_for(lambda: [j for j in runner.recent(repo="other") if j["state"] == "ok"], 15)
        assert other[0]["triggers"] == 1
        for n in ("busy1", "busy2"):
            rows = runner.recent(repo=n)
            waiting = [j for j in rows if j["state"] == "queued"]
            # a row merged into a later one (a push landed while its refresh was being re-queued) ends `skipped`
            # and its triggers count on the one that runs: every push counted once
            counted = sum(j["triggers"] for j in rows if j["state"] != "skipped")
            assert len(waiting) == 1 and counted == 3, rows
            # in the scheduler: one job (ids are unique); a worker that just found the repository busy takes it out
            # for the moment it puts it back, so look until it is there
            assert len(wait_for(lambda: [p for p in runner.pending() if p["id"] == f"refresh:{n}"], 10)) == 1
    finally:
        for lock in held:
            lock.release()
    for n in ("busy1", "busy2"):  # once the long refresh ends, the waiting one runs: once, for all three pushes
        rows = wait_for(lambda: [j for j in runner.recent(repo=n) if j["state"] == "ok"], 30)
        assert len(rows) == 1
        assert all(j["state"] in ("ok", "skipped") for j in runner.recent(repo=n))
    runner.shutdown()


def test_handed_off_trainings_of_one_repository_wait_as_one(state, fake_train):
    api = JobRunner(state, refresh_delay=3600, poll_interval=0, retrain_at="", train_worker=False)
    rows = [api.log.add("train:core", "train", "core", why) for why in ("nightly", "feedback", "refresh")]
    for row in rows:
        api.run_train("core", row)
    states = [api.log.get(r)["state"] for r in rows]
    assert states == ["waiting", "skipped", "skipped"] and api.log.get(rows[0])["triggers"] == 3
    assert api.log.get(rows[1])["outcome"] == {"joined": rows[0]}
    worker = JobRunner(state, poll_interval=0, retrain_at="", train_worker=True)
    assert worker.work_once() is True and worker.work_once() is False
    assert len(fake_train.read_text().splitlines()) == 1  # one training for the three requests
    api.shutdown()
    worker.shutdown()
