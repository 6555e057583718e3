"""Faults the service must survive with the truth told: malformed input, damaged databases, open reads, file modes."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import time

import pytest
from starlette.testclient import TestClient

from bot.github import routes as github_routes
from bot.github.client import GitHubClients
from bot.github.router import Options
from bot.github.verify import sign
from bot.jobs import JobRunner
from bot.service import create_app
from bot.state import AppState, RepoState
from indexer.build import index
from waiting import wait_for

FILES = {
    "storage/cache.py": '"""Disk cache with least-recently-used eviction."""\n\ndef evict_lru():\n    """Evict a page."""\n',
    "network/http_client.py": '"""HTTP client with retries."""\n\ndef retry_request(url):\n    """Retry."""\n',
    "ui/widgets.py": '"""Widgets."""\n\nclass Button:\n    """A clickable button in the dark theme."""\n',
}
TOKEN = "tok-for-faults"


@pytest.fixture
def state(git_repo):
    git_repo.commit("initial layout", FILES)
    st = AppState()
    rs = st.add(RepoState("core", git_repo.root, matcher="lexical"))
    index(git_repo.root, rs.store, full=True)
    return st


def corrupt(path, fraction=0.5, size=8192):
    """Overwrite pages in the middle of a SQLite file with random bytes (the header stays valid)."""
    n = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.seek(max(4096, int(n * fraction) // 4096 * 4096))
        fh.write(os.urandom(size))


def test_malformed_api_bodies_are_400_never_500(state, monkeypatch):
    monkeypatch.setenv("MODMATCH_API_TOKEN", TOKEN)
    c = TestClient(create_app(state, warm=False))
    deep = b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    cases = [deep, b'{"text": "\\ud800 cache"}', b'{"text": "ok", "repo": {"a": 1}}', b"\xff\xfe{", b"null",
             b'{"text": "' + "缓存".encode() + b'", "k": 1e999}']
    for body in cases:
        r = c.post("/api/match", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (body[:40], r.text)
        assert r.json()["error"]
    r = c.post("/api/feedback", content=b'{"text": "\\udfff", "modules": ["storage"]}',
               headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and "Unicode" in r.json()["error"]


def test_malformed_github_deliveries_are_400_after_the_signature(state, monkeypatch):
    monkeypatch.setenv("MODMATCH_GITHUB_WEBHOOK_SECRET", "s")
    rts = github_routes(state, clients=GitHubClients(base_url="http://127.0.0.1:9", token="t"), options=Options())
    c = TestClient(create_app(state, rts, warm=False))

    def post(body: bytes, secret="s", event="issues"):
        return c.post("/github/webhook", content=body, headers={
            "X-GitHub-Event": event, "X-GitHub-Delivery": str(time.time()), "X-Hub-Signature-256": sign(body, secret)})

    assert post(b"\xff\xfe not utf-8", secret="wrong").status_code == 401  # signature first
    assert post(b"\xff\xfe not utf-8").status_code == 400
    assert post(json.dumps({"action": "opened", "issue": "a string"}).encode()).status_code == 400
    assert post(json.dumps({"action": "opened", "issue": {"number": 1}, "repository": [1]}).encode()).status_code == 400
    assert post(b"[" * 100_000 + b"]" * 100_000).status_code == 400
    assert post(b'{"action": "opened", "issue": {"title": "\\ud800"}}').status_code == 400
    rts[0].webhook.stop()


def test_slack_body_is_verified_before_it_is_parsed(state):
    from bot.slack_app import build_app, slack_routes, verify_signature
    from slack_sdk import WebClient

    app, _ = build_app(state, client=WebClient(token="xoxb-x", base_url="http://127.0.0.1:9/"), mode="http",
                       signing_secret="sig", token_verification_enabled=False)
    c = TestClient(create_app(state, slack_routes(app), warm=False))

    def signed(body: bytes, secret="sig"):
        ts = str(int(time.time()))
        mac = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + mac}

    body = b"\xff\xfe\xfd payload=%7B"
    assert c.post("/slack/events", content=body).status_code == 401
    assert c.post("/slack/events", content=body, headers=signed(body, "other")).status_code == 401
    assert c.post("/slack/events", content=body, headers=signed(body)).status_code == 400
    old = {"X-Slack-Request-Timestamp": str(int(time.time()) - 3600), "X-Slack-Signature": "v0=00"}
    assert c.post("/slack/events", content=b"x", headers=old).status_code == 401
    assert verify_signature(b"x", "1", "v0=1", "") is False  # no secret: nothing is valid


def test_reads_need_a_token_beyond_loopback(state, monkeypatch):
    monkeypatch.delenv("MODMATCH_API_TOKEN", raising=False)
    assert TestClient(create_app(state, warm=False)).get("/api/modules").status_code == 200  # loopback: open
    c = TestClient(create_app(state, warm=False, host="0.0.0.0"))
    r = c.get("/api/modules/storage")
    assert r.status_code == 403 and "read_token" in r.json()["error"]  # no token configured: closed
    monkeypatch.setenv("MODMATCH_READ_TOKEN", "reader")
    assert c.get("/api/modules/storage").status_code == 401
    assert c.post("/api/match", json={"text": "disk cache"}).status_code == 401
    assert c.get("/metrics").status_code == 401
    assert c.get("/api/modules/storage", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/modules/storage", headers={"Authorization": "Bearer reader"}).status_code == 200
    assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200
    monkeypatch.setenv("MODMATCH_API_TOKEN", "writer")  # the write token reads too
    assert c.get("/api/modules", headers={"Authorization": "Bearer writer"}).status_code == 200
    monkeypatch.delenv("MODMATCH_READ_TOKEN")
    monkeypatch.delenv("MODMATCH_API_TOKEN")
    monkeypatch.setenv("MODMATCH_OPEN_READS", "true")
    assert TestClient(create_app(state, warm=False, host="0.0.0.0")).get("/api/modules").status_code == 200


def test_databases_are_created_owner_only(state, monkeypatch, _modmatch_home):
    from bot.github.db import GitHubDB
    from bot.listeners.core import SlackDB

    monkeypatch.setenv("MODMATCH_API_TOKEN", TOKEN)
    c = TestClient(create_app(state, warm=False))
    assert c.post("/api/feedback", json={"text": "cache evicts", "modules": ["storage"]},
                  headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 201
    GitHubDB()
    SlackDB()
    files = [state.repo().store.path, _modmatch_home / "service.db"]  # GitHub and Slack state live in service.db
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_damaged_database_found_at_start_is_rebuilt_from_git(state, git_repo, monkeypatch):
    """The service restarts on a damaged repository database: it says so, rebuilds it, and answers again; feedback
    given before the damage is still there."""
    monkeypatch.setenv("MODMATCH_API_TOKEN", TOKEN)
    rs = state.repo()
    assert rs.add_feedback("the cache evicts hot pages", ["storage"], "test")
    path = rs.store.path
    rs.store.close()
    corrupt(path, 0.6)

    st = AppState()  # a restart
    rs2 = st.add(RepoState("core", git_repo.root, matcher="lexical", check=True))
    assert rs2.store.recovered and rs2.recoveries() and rs2.status == "rebuilding"
    runner = JobRunner(st, refresh_delay=0.0, poll_interval=0, retrain_at="")
    with TestClient(create_app(st, runner=runner)) as c:
        h = c.get("/healthz").json()
        assert h["live"] is True and h["repos"]["core"]["database_recoveries"] == 1
        wait_for(lambda: c.get("/readyz").status_code == 200, 60, "the rebuild")
        r = c.post("/api/match", json={"text": "disk cache eviction"})
        assert r.status_code == 200 and r.json()["matches"][0]["module"] == "storage"
        assert 'modmatch_database_recoveries_total{repo="core"} 1' in c.get("/metrics").text
    assert rs2.feedback_count() == 1 and rs2.feedback()[0].modules == ("storage",)


def test_database_damaged_while_serving_is_rebuilt_by_the_next_refresh(state, monkeypatch):
    monkeypatch.setenv("MODMATCH_API_TOKEN", TOKEN)
    rs = state.repo()
    runner = JobRunner(state, refresh_delay=0.0, poll_interval=0, retrain_at="")
    with TestClient(create_app(state, runner=runner)) as c:
        wait_for(lambda: c.get("/readyz").status_code == 200, 60, "the first build")
        rs.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, then ruin it
        with open(rs.store.path, "r+b") as fh:  # the whole file overwritten: not a database any more
            fh.write(os.urandom(os.path.getsize(rs.store.path)))
        assert c.post("/api/refresh", json={}, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 202
        wait_for(lambda: any(j["state"] == "ok" for j in runner.log.recent(5, kind="refresh")), 60, "the rebuild")
        assert c.get("/healthz").json()["repos"]["core"]["database_recoveries"] == 1
        assert c.get("/readyz").status_code == 200  # the old matcher answered meanwhile; the new one is ready
        assert c.get("/api/runs").status_code == 200 and c.get("/api/runs").json()["runs"][0]["kind"] in (
            "index", "refresh")
        assert c.post("/api/match", json={"text": "retry request"}).json()["matches"][0]["module"] == "network"


def test_read_that_hits_damage_answers_503_and_queues_the_rebuild(state):
    rs = state.repo()
    queued = []
    state.queue_refresh = lambda name, reason: queued.append((name, reason)) or "job"
    e = rs.damaged(__import__("sqlite3").DatabaseError("database disk image is malformed"))
    assert e.status == "rebuilding" and queued == [("core", "database damaged: rebuild from git")]
    c = TestClient(create_app(state, warm=False))
    r = c.post("/api/match", json={"text": "disk cache"})
    assert r.status_code == 503 and r.headers["Retry-After"]  # the fresh file is empty until the rebuild ran
    h = c.get("/healthz").json()
    assert h["ready"] is False and h["repos"]["core"]["database_recoveries"] == 1


def test_doctor_fails_loudly_on_what_the_operator_probe_found(state, git_repo, monkeypatch):
    from click.testing import CliRunner

    from bot import hooks
    from bot.doctor_cmd import doctor_cmd

    monkeypatch.delenv("MODMATCH_API_TOKEN", raising=False)
    monkeypatch.setenv("MODMATCH_HOST", "0.0.0.0")
    hooks.install(git_repo.root)  # installed with no token anywhere
    rs = state.repo()
    rs.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rs.store.close()
    corrupt(rs.store.path, 0.7, 4096 * 3)
    r = CliRunner().invoke(doctor_cmd, ["--repo", f"core={git_repo.root}", "--json"])
    assert r.exit_code == 1
    checks = {c["name"]: c for c in json.loads(r.output)}
    assert checks["reads"]["status"] == "fail"
    assert checks["repo core"]["status"] == "fail" and "damaged" in checks["repo core"]["message"]
    assert checks["training command"]["status"] == "ok" and checks["hook fallback"]["status"] == "ok"

    token = git_repo.root.parent / "token"
    token.write_text("t0k\n")
    monkeypatch.setenv("MODMATCH_API_TOKEN_FILE", str(token))
    hooks.install(git_repo.root)  # records the token file's path
    monkeypatch.delenv("MODMATCH_API_TOKEN_FILE")  # the doctor's own shell lacks it: the hooks still find it
    monkeypatch.setenv("MODMATCH_OPEN_READS", "true")
    checks = {c["name"]: c for c in json.loads(
        CliRunner().invoke(doctor_cmd, ["--repo", f"core={git_repo.root}", "--json"]).output)}
    assert checks["hooks core"]["status"] == "ok" and checks["reads"]["status"] == "warn"
    monkeypatch.setenv("MODMATCH_TRAIN_COMMAND", "/no/such/trainer {path}")
    checks = {c["name"]: c for c in json.loads(
        CliRunner().invoke(doctor_cmd, ["--repo", f"core={git_repo.root}", "--json"]).output)}
    assert checks["training command"]["status"] == "fail"
