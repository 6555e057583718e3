"""The service database on SQLite and on a real PostgreSQL server (the `service_db` fixture): migrations from every
earlier schema version, atomic migrations, github.db / slack.db of earlier versions imported, claims that hold
under concurrency, passwords never shown."""
from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time

import pytest
import sqlalchemy as sa

from bot import servicedb
from bot.feedback import FeedbackLog
from bot.github.db import GitHubDB
from bot.jobs import JobLog
from bot.listeners.core import SlackDB

pytestmark = pytest.mark.usefixtures("service_db")

TABLES = {"schema_version", "jobs", "feedback", "apscheduler_jobs", "github_deliveries", "github_bot_labels",
          "github_comments", "github_human_labels", "slack_channel_repos", "slack_questions"}


def tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def columns(engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def db_version(engine) -> int:
    with engine.connect() as c:
        return servicedb.version(c)


# --- the schema of each earlier version, as the code of that time made it ---------------------------------------
def make_version_0(engine) -> None:
    """Before migrations: `_meta.create_all` of bot/jobs.py and bot/feedback.py, and APScheduler's own table."""
    m = sa.MetaData()
    sa.Table("jobs", m,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("job_id", sa.String(200), nullable=False, index=True),
             sa.Column("kind", sa.String(20), nullable=False),
             sa.Column("repo", sa.String(200), nullable=False),
             sa.Column("reason", sa.String(500), nullable=False, default=""),
             sa.Column("triggers", sa.Integer, nullable=False, default=1),
             sa.Column("state", sa.String(20), nullable=False),
             sa.Column("queued_at", sa.Float, nullable=False),
             sa.Column("started_at", sa.Float),
             sa.Column("finished_at", sa.Float),
             sa.Column("outcome", sa.Text, nullable=False, default=""))
    sa.Table("feedback", m,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("repo_key", sa.String(200), nullable=False, index=True),
             sa.Column("created_at", sa.String(40), nullable=False),
             sa.Column("source", sa.String(50), nullable=False),
             sa.Column("text", sa.Text, nullable=False),
             sa.Column("modules", sa.Text, nullable=False),
             sa.Column("key", sa.String(300)),
             sa.UniqueConstraint("repo_key", "key", name="feedback_repo_key_key"))
    sa.Table("apscheduler_jobs", m,
             sa.Column("id", sa.Unicode(191), primary_key=True),
             sa.Column("next_run_time", sa.Float(25), index=True),
             sa.Column("job_state", sa.LargeBinary, nullable=False))
    m.create_all(engine)


def make_at(url: str, version: int) -> sa.Engine:
    engine = servicedb.make_engine(url)
    if version == 0:
        make_version_0(engine)
    else:
        assert servicedb.migrate(engine, target=version) == version
    return engine


def insert_rows_of_version_0_and_1(engine) -> None:
    """Rows any version from 0 on can hold (the columns of version 0)."""
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO jobs (job_id, kind, repo, reason, triggers, state, queued_at, started_at, "
                          "finished_at, outcome) VALUES ('refresh:core', 'refresh', 'core', 'push', 3, 'ok', 1.0, "
                          "2.0, 5.5, '{\"version\": \"v1\"}')"))
        c.execute(sa.text("INSERT INTO jobs (job_id, kind, repo, reason, triggers, state, queued_at, outcome) "
                          "VALUES ('train:core', 'train', 'core', 'nightly', 1, 'waiting', 6.0, '')"))
        c.execute(sa.text("INSERT INTO feedback (repo_key, created_at, source, text, modules, key) VALUES "
                          "('core-1', '2026-01-01T00:00:00+00:00', 'slack', 'cache evicts\nhot pages', "
                          "'[\"storage\"]', 'C1/1.1/U1')"))
        c.execute(sa.text("INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES ('refresh:x', 9.0, "
                          ":s)"), {"s": b"\x80\x05pickled"})


@pytest.mark.parametrize("start", range(servicedb.LATEST))
def test_upgrade_from_every_earlier_version_keeps_the_rows(service_db, start):
    engine = make_at(service_db, start)
    insert_rows_of_version_0_and_1(engine)
    assert db_version(engine) == start
    engine.dispose()

    db = servicedb.open(service_db)
    assert db_version(db.engine) == servicedb.LATEST and tables(db.engine) >= TABLES
    with db.engine.connect() as c:
        names = [r.name for r in c.execute(sa.select(servicedb.schema_version).order_by("version"))]
    assert names == [m.__name__ for m in servicedb.MIGRATIONS]
    log = JobLog(service_db)
    done, waiting = log.recent()[::-1]
    assert (done["state"], done["triggers"], done["outcome"], done["duration"]) == ("ok", 3, {"version": "v1"}, 3.5)
    assert waiting["state"] == "waiting" and waiting["claimed_by"] is None
    assert log.claim("train", ["core"])["id"] == waiting["id"] and log.start(waiting["id"])  # new columns work
    assert log.get(waiting["id"])["claimed_by"] == servicedb.worker_id()
    fb = FeedbackLog(service_db)
    assert fb.count("core-1") == 1 and fb.examples("core-1")[0].subject == "cache evicts"
    assert fb.add("core-1", "again", ["storage"], "slack", key="C1/1.1/U1") is False  # its unique key survived
    with db.engine.connect() as c:
        assert c.execute(sa.text("SELECT job_state FROM apscheduler_jobs")).scalar() == b"\x80\x05pickled"
    gh = GitHubDB(db)
    assert gh.enqueue_delivery("d1", "issues", "opened", "a/b", b"{}") and not gh.enqueue_delivery(
        "d1", "issues", "opened", "a/b", b"{}")


def test_a_new_database_is_at_the_latest_version_and_opening_again_changes_nothing(service_db):
    db = servicedb.open(service_db)
    assert tables(db.engine) >= TABLES and db_version(db.engine) == servicedb.LATEST
    assert "claimed_by" in columns(db.engine, "jobs")
    assert servicedb.migrate(db.engine) == servicedb.LATEST  # idempotent
    with db.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(servicedb.schema_version)).scalar() == \
            servicedb.LATEST


def test_a_migration_that_fails_half_way_leaves_the_previous_version(service_db):
    """The second migration creates its tables and alters `jobs`, then fails: none of it stays (on SQLite too)."""
    def m002_that_fails(conn):
        servicedb.m002_github_slack_claims(conn)
        conn.execute(sa.text("INSERT INTO jobs (job_id, kind, repo, reason, triggers, state, queued_at, outcome) "
                             "VALUES ('x', 'refresh', 'core', '', 1, 'queued', 1.0, '')"))
        raise RuntimeError("disk unplugged")

    engine = servicedb.make_engine(service_db)
    assert servicedb.migrate(engine, target=1) == 1
    with pytest.raises(RuntimeError, match="disk unplugged"):
        servicedb.migrate(engine, [servicedb.m001_initial, m002_that_fails])
    assert db_version(engine) == 1
    assert not tables(engine) & {"github_deliveries", "slack_questions", "github_bot_labels"}
    assert "claimed_by" not in columns(engine, "jobs")
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM jobs")).scalar() == 0
    assert servicedb.migrate(engine) == servicedb.LATEST  # the real one still runs afterwards
    engine.dispose()


# --- github.db and slack.db of earlier versions ---------------------------------------------------------------
GITHUB_V1 = """
CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL);
CREATE TABLE deliveries (id TEXT PRIMARY KEY, event TEXT NOT NULL, action TEXT, repo TEXT, received_at TEXT NOT NULL,
                         status TEXT NOT NULL, detail TEXT);
CREATE TABLE bot_labels (repo TEXT NOT NULL, issue INTEGER NOT NULL, label TEXT NOT NULL, applied_at TEXT NOT NULL,
                         PRIMARY KEY (repo, issue, label));
CREATE TABLE comments (repo TEXT NOT NULL, issue INTEGER NOT NULL, comment_id INTEGER, posted_at TEXT NOT NULL,
                       PRIMARY KEY (repo, issue));
CREATE TABLE human_labels (repo TEXT NOT NULL, issue INTEGER NOT NULL, login TEXT, at TEXT NOT NULL,
                           PRIMARY KEY (repo, issue));
INSERT INTO _migrations VALUES ('m001_initial', '2026-01-01');
"""
GITHUB_V2 = GITHUB_V1 + """
ALTER TABLE deliveries ADD COLUMN payload TEXT;
ALTER TABLE deliveries ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN next_at REAL NOT NULL DEFAULT 0;
CREATE INDEX deliveries_due ON deliveries (status, next_at);
INSERT INTO _migrations VALUES ('m002_delivery_queue', '2026-01-02');
"""
SLACK = """
CREATE TABLE channel_repos (channel TEXT PRIMARY KEY, repo TEXT NOT NULL, set_by TEXT, set_at TEXT NOT NULL);
CREATE TABLE questions (id INTEGER PRIMARY KEY AUTOINCREMENT, source_key TEXT UNIQUE NOT NULL, channel TEXT,
                        repo TEXT, user TEXT, text TEXT NOT NULL, created_at TEXT NOT NULL, answer TEXT);
INSERT INTO channel_repos VALUES ('C1', 'other', 'U1', '2026-01-01');
INSERT INTO questions VALUES (41, 'C1/1.1', 'C1', 'other', 'U1', 'cache evicts', '2026-01-01', '["storage"]');
INSERT INTO questions VALUES (42, 'C1/2.2', 'C1', 'other', 'U2', 'tls fails', '2026-01-01', NULL);
"""


def legacy_file(path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(sql)  # fixtures only: the old files as their code made them
    conn.close()


@pytest.mark.parametrize("github_version", [1, 2])
def test_github_db_of_every_version_is_imported_then_moved_aside(service_db, _modmatch_home, github_version):
    gh_path = _modmatch_home / "github.db"
    legacy_file(gh_path, GITHUB_V1 if github_version == 1 else GITHUB_V2)
    conn = sqlite3.connect(gh_path)
    conn.execute("INSERT INTO deliveries (id, event, action, repo, received_at, status, detail) VALUES "
                 "('done-1', 'issues', 'opened', 'acme/app', '2026-01-01', 'done', '[]')")
    if github_version == 2:
        conn.execute("INSERT INTO deliveries VALUES ('half-2', 'issues', 'opened', 'acme/app', '2026-01-02', "
                     "'processing', NULL, '{\"action\": \"opened\"}', 1, 0)")
        conn.execute("INSERT INTO deliveries VALUES ('later-3', 'issues', 'edited', 'acme/app', '2026-01-02', "
                     "'queued', 'HTTP 502', '{}', 2, 4102444800)")
    conn.execute("INSERT INTO bot_labels VALUES ('acme/app', 7, 'module:ui', '2026-01-01')")
    conn.execute("INSERT INTO comments VALUES ('acme/app', 7, 1234567890123, '2026-01-01')")
    conn.execute("INSERT INTO human_labels VALUES ('acme/app', 8, 'alice', '2026-01-01')")
    conn.commit()
    conn.close()

    gh = GitHubDB()
    assert not gh_path.exists() and (_modmatch_home / "github.db.imported").is_file()
    assert gh.delivery("done-1")["status"] == "done"
    assert gh.enqueue_delivery("done-1", "issues", "opened", "acme/app", b"{}") is False  # still a duplicate
    assert gh.bot_labels("acme/app", 7) == {"module:ui"} and gh.human_owned("acme/app", 8)
    assert gh.claim_comment("acme/app", 7) is False  # the bot commented there already
    if github_version == 2:
        row, _ = gh.next_due(time.time())  # the delivery its dead process was processing is queued again
        assert row["id"] == "half-2" and row["payload"] == '{"action": "opened"}' and row["attempts"] == 1
        assert gh.delivery("later-3")["status"] == "queued" and gh.next_due_at() == 4102444800
    else:
        assert gh.next_due(time.time())[0] is None
    GitHubDB()  # a second start imports nothing again
    assert gh.delivery_counts()["done"] == 1


def test_slack_db_is_imported_with_its_question_ids(service_db, _modmatch_home):
    legacy_file(_modmatch_home / "slack.db", SLACK)
    sl = SlackDB()
    assert (_modmatch_home / "slack.db.imported").is_file() and not (_modmatch_home / "slack.db").exists()
    assert sl.channel_repo("C1") == "other"
    assert sl.question(41) == {"id": 41, "channel": "C1", "repo": "other", "user": "U1", "text": "cache evicts",
                               "answer": ["storage"]}  # the feedback buttons of answers already posted still work
    assert sl.claim_question("C1/1.1", "C1", "other", "U1", "cache evicts") is None  # answered once
    assert sl.claim_question("C1/3.3", "C1", "other", "U1", "new") > 42  # ids go on after the imported ones
    sl.set_channel_repo("C1", "app", "U3")
    sl.set_channel_repo("C2", "app", "U3")
    assert (sl.channel_repo("C1"), sl.channel_repo("C2"), sl.channel_repo("C9")) == ("app", "app", None)


def test_an_unreadable_old_file_is_kept_and_the_service_still_starts(service_db, _modmatch_home, caplog):
    (_modmatch_home / "github.db").write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="bot.servicedb"):
        gh = GitHubDB()
    assert gh.enqueue_delivery("x", "issues", "opened", "a/b", b"{}")
    assert (_modmatch_home / "github.db").read_bytes().startswith(b"this is not")  # nothing lost
    assert "servicedb.import-failed" in caplog.text and "github.db" in caplog.text


# --- claims under concurrency --------------------------------------------------------------------------------
def test_each_delivery_and_each_job_is_claimed_once_by_racing_threads(service_db):
    gh = GitHubDB()
    log = JobLog()
    ids = [f"d{i}" for i in range(30)]
    for d in ids:
        assert gh.enqueue_delivery(d, "issues", "opened", "a/b", b"{}")
    repos = [f"r{i}" for i in range(30)]  # one each: a repository's handed-off trainings wait as one
    rows = [log.add(f"train:{r}", "train", r, "t") for r in repos]
    for r in rows:
        assert log.hand_off(r) == r
    got: list[str] = []
    jobs_got: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def worker():
        start.wait()
        while True:
            row, _ = gh.next_due(time.time())
            job = log.claim("train", repos)
            if row is None and job is None:
                return
            with lock:
                if row is not None:
                    got.append(row["id"])
                if job is not None:
                    jobs_got.append(job["id"])

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(got) == sorted(ids) and len(got) == len(set(got))
    assert sorted(jobs_got) == sorted(rows)
    assert gh.delivery_counts() == {"processing": 30}
    assert all(log.start(r) for r in rows) and not any(log.start(r) for r in rows)  # running: claimed once


def test_a_live_process_keeps_its_claims_a_dead_one_loses_them(service_db):
    gh = GitHubDB()
    log = JobLog()
    for d in ("mine", "live", "dead", "elsewhere"):
        gh.enqueue_delivery(d, "issues", "opened", "a/b", b"{}")
    rows = {k: log.add(f"refresh:{k}", "refresh", "core", "t") for k in ("live", "dead", "elsewhere")}
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owners = {"mine": servicedb.worker_id(), "live": f"{socket.gethostname()}:{os.getppid()}",
              "dead": f"{socket.gethostname()}:{int(dead.stdout)}", "elsewhere": "another-host:1"}
    with gh.engine.begin() as c:
        for d, owner in owners.items():
            c.execute(servicedb.deliveries.update().where(servicedb.deliveries.c.id == d)
                      .values(status="processing", claimed_by=owner))
            if d in rows:
                c.execute(servicedb.jobs.update().where(servicedb.jobs.c.id == rows[d])
                          .values(state="running", claimed_by=owner))
    assert gh.requeue_abandoned() == 2  # ours (a restart in this process) and the dead one
    assert {d: gh.delivery(d)["status"] for d in owners} == {"mine": "queued", "live": "processing",
                                                             "dead": "queued", "elsewhere": "processing"}
    assert [r["id"] for r in log.mark_interrupted()] == [rows["dead"]]


# --- files and secrets --------------------------------------------------------------------------------------
def test_the_sqlite_file_is_private(_modmatch_home, monkeypatch, service_db):
    servicedb.open()
    if service_db.startswith("sqlite"):
        assert stat.S_IMODE((_modmatch_home / "service.db").stat().st_mode) == 0o600
    else:
        assert not (_modmatch_home / "service.db").exists()


def test_a_password_is_never_shown(caplog):
    url = "postgresql+psycopg://modmatch:s3cret-pw@127.0.0.1:1/nothing"
    assert "s3cret-pw" not in servicedb.redact(url) and "***" in servicedb.redact(url)
    with caplog.at_level(logging.DEBUG), pytest.raises(servicedb.ServiceDBError) as e:
        servicedb.open(url)
    assert "s3cret-pw" not in str(e.value) and "127.0.0.1:1/nothing" in str(e.value)
    assert "s3cret-pw" not in caplog.text
    assert servicedb.redact("postgresql://user:pw@host/db").count("pw") == 0


def test_feedback_of_a_sqlite_service_db_follows_the_move_to_postgresql(service_db, _modmatch_home):
    """An operator who sets MODMATCH_DATABASE_URL keeps the feedback people gave (training data) in service.db."""
    old = _modmatch_home / "service.db"
    engine = make_at(f"sqlite:///{old}", 0)
    insert_rows_of_version_0_and_1(engine)
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO feedback (repo_key, created_at, source, text, modules, key) VALUES "
                          "('core-1', '2026-01-02', 'api', 'no key', '[\"ui\"]', NULL)"))
    engine.dispose()
    fb = FeedbackLog.shared()
    assert fb.count("core-1") == 2 and fb.add("core-1", "again", ["ui"], "slack", key="C1/1.1/U1") is False
    if service_db.startswith("sqlite"):  # the same database, migrated in place
        assert old.is_file()
    else:
        assert not old.exists() and (_modmatch_home / "service.db.imported").is_file()
        servicedb.forget(service_db)
        assert FeedbackLog.shared().count("core-1") == 2  # a restart imports nothing twice
