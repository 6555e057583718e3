"""The service database: everything the service keeps (jobs and the scheduler's job store, feedback, GitHub
deliveries and labels, Slack channel settings and questions) in one SQLAlchemy database, with numbered
migrations that run atomically.

    db = servicedb.open()                      # database_url or <home>/service.db; migrated; old files imported
    with db.engine.begin() as c:
        c.execute(servicedb.jobs.select())

- SQLite by default (`<home>/service.db`, created 0600), PostgreSQL by `MODMATCH_DATABASE_URL`
  (`postgresql+psycopg://user:pass@host/db`); a URL is only ever logged with its password hidden.
- Migrations are functions `m001_...(conn)` recorded in `schema_version`; each one runs with its version row in
  one transaction (`engine.begin()`), so a migration that fails leaves the database at its previous version.
  On SQLite the driver's own transaction handling is turned off and every transaction is `BEGIN IMMEDIATE`, so
  DDL is transactional there too; on PostgreSQL an advisory lock makes processes starting together migrate once.
- Before this database held GitHub and Slack state they lived in `<home>/github.db` and `<home>/slack.db`:
  found there at start, they are imported (one transaction per file) and renamed `*.imported`; so is the feedback
  of a `<home>/service.db` when the service database moved to PostgreSQL.
- Rows a worker claims (jobs, deliveries) carry `claimed_by` (`host:pid`), so a starting process re-queues only
  what a dead process on its own host left half done, never what a live process elsewhere is working on.
"""
from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import sqlalchemy as sa
from sqlalchemy import event

from . import settings
from .private import private_sqlite_url

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def database_url(home: Path | None = None) -> str:
    """The configured URL (`postgresql://` means the psycopg driver), else SQLite under the home folder."""
    url = settings.get("database_url")
    if url:
        return "postgresql+psycopg://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url
    return f"sqlite:///{(home or settings.home()) / 'service.db'}"


def redact(url: str) -> str:
    """The URL as it may be shown: never its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show only what is before any credentials
        return url.split("://", 1)[0] + "://***" if "@" in url else url


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def abandoned(claimed_by: str | None) -> bool:
    """Is a row claimed by `claimed_by` left behind by a dead process? Unknown owners and dead (or reused: ours)
    pids on this host are; a process on another host is assumed alive."""
    if not claimed_by:
        return True
    host, _, pid = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


# --- the schema as the code uses it (the latest version) ------------------------------------------------------
metadata = sa.MetaData()
schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False),
)
jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(200), nullable=False, index=True),  # the scheduler's id, e.g. refresh:core
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("repo", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False, default=""),
    sa.Column("triggers", sa.Integer, nullable=False, default=1),
    sa.Column("state", sa.String(20), nullable=False),  # queued, running, waiting, ok, failed, skipped, interrupted
    sa.Column("queued_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("outcome", sa.Text, nullable=False, default=""),  # JSON
    sa.Column("claimed_by", sa.String(200)),  # host:pid of the process running it
)
feedback = sa.Table(
    "feedback", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repo_key", sa.String(200), nullable=False, index=True),  # the repository database's file stem
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("source", sa.String(50), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("modules", sa.Text, nullable=False),  # JSON list of module IDs
    sa.Column("key", sa.String(300)),  # idempotency: one example per answer and person, per PR, ...
    sa.UniqueConstraint("repo_key", "key", name="feedback_repo_key_key"),
)
deliveries = sa.Table(
    "github_deliveries", metadata,
    sa.Column("id", sa.String(200), primary_key=True),  # X-GitHub-Delivery: a repeated delivery is skipped
    sa.Column("event", sa.String(100), nullable=False),
    sa.Column("action", sa.String(100)),
    sa.Column("repo", sa.String(300)),
    sa.Column("received_at", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # queued, processing, done, failed
    sa.Column("detail", sa.Text),
    sa.Column("payload", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_at", sa.Float, nullable=False, default=0),
    sa.Column("claimed_by", sa.String(200)),
)
bot_labels = sa.Table(
    "github_bot_labels", metadata,
    sa.Column("repo", sa.String(300), primary_key=True),
    sa.Column("issue", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("label", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.String(40), nullable=False),
)
comments = sa.Table(
    "github_comments", metadata,
    sa.Column("repo", sa.String(300), primary_key=True),
    sa.Column("issue", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("comment_id", sa.BigInteger),
    sa.Column("posted_at", sa.String(40), nullable=False),
)
human_labels = sa.Table(
    "github_human_labels", metadata,
    sa.Column("repo", sa.String(300), primary_key=True),
    sa.Column("issue", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("login", sa.String(200)),
    sa.Column("at", sa.String(40), nullable=False),
)
channel_repos = sa.Table(
    "slack_channel_repos", metadata,
    sa.Column("channel", sa.String(100), primary_key=True),
    sa.Column("repo", sa.String(200), nullable=False),
    sa.Column("set_by", sa.String(100)),
    sa.Column("set_at", sa.String(40), nullable=False),
)
questions = sa.Table(
    "slack_questions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source_key", sa.String(300), nullable=False, unique=True),  # an event Slack retries is answered once
    sa.Column("channel", sa.String(100)),
    sa.Column("repo", sa.String(200)),
    sa.Column("user", sa.String(100)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("answer", sa.Text),  # JSON list of module IDs
)


# --- migrations: frozen DDL, one function per version ----------------------------------------------------------
def _create(conn: sa.Connection, table: sa.Table, skip_existing: bool = False) -> None:
    if skip_existing and sa.inspect(conn).has_table(table.name):
        return
    conn.execute(sa.schema.CreateTable(table))
    for ix in table.indexes:
        conn.execute(sa.schema.CreateIndex(ix))


def m001_initial(conn: sa.Connection) -> None:
    """What `create_all` made before there were migrations: the jobs table, feedback, the scheduler's job store.
    A database made that way (version 0) keeps its tables."""
    m = sa.MetaData()
    _create(conn, sa.Table(
        "jobs", m,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(200), nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("triggers", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("queued_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("outcome", sa.Text, nullable=False)), skip_existing=True)
    _create(conn, sa.Table(
        "feedback", m,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repo_key", sa.String(200), nullable=False, index=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("modules", sa.Text, nullable=False),
        sa.Column("key", sa.String(300)),
        sa.UniqueConstraint("repo_key", "key", name="feedback_repo_key_key")), skip_existing=True)
    _create(conn, sa.Table(  # exactly APScheduler 3's SQLAlchemyJobStore table, which then finds it made
        "apscheduler_jobs", m,
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25), index=True),
        sa.Column("job_state", sa.LargeBinary, nullable=False)), skip_existing=True)


def m002_github_slack_claims(conn: sa.Connection) -> None:
    """GitHub deliveries (a durable queue) and what the bot did to issues, Slack channels and questions (until now
    in github.db and slack.db), and who claimed a job."""
    m = sa.MetaData()
    _create(conn, sa.Table(
        "github_deliveries", m,
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("action", sa.String(100)),
        sa.Column("repo", sa.String(300)),
        sa.Column("received_at", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("payload", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at", sa.Float, nullable=False, server_default="0"),
        sa.Column("claimed_by", sa.String(200)),
        sa.Index("github_deliveries_due", "status", "next_at")))
    _create(conn, sa.Table(
        "github_bot_labels", m,
        sa.Column("repo", sa.String(300), primary_key=True),
        sa.Column("issue", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("label", sa.String(200), primary_key=True),
        sa.Column("applied_at", sa.String(40), nullable=False)))
    _create(conn, sa.Table(
        "github_comments", m,
        sa.Column("repo", sa.String(300), primary_key=True),
        sa.Column("issue", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("comment_id", sa.BigInteger),
        sa.Column("posted_at", sa.String(40), nullable=False)))
    _create(conn, sa.Table(
        "github_human_labels", m,
        sa.Column("repo", sa.String(300), primary_key=True),
        sa.Column("issue", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("login", sa.String(200)),
        sa.Column("at", sa.String(40), nullable=False)))
    _create(conn, sa.Table(
        "slack_channel_repos", m,
        sa.Column("channel", sa.String(100), primary_key=True),
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("set_by", sa.String(100)),
        sa.Column("set_at", sa.String(40), nullable=False)))
    _create(conn, sa.Table(
        "slack_questions", m,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_key", sa.String(300), nullable=False, unique=True),
        sa.Column("channel", sa.String(100)),
        sa.Column("repo", sa.String(200)),
        sa.Column("user", sa.String(100)),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("answer", sa.Text)))
    conn.execute(sa.text("ALTER TABLE jobs ADD COLUMN claimed_by VARCHAR(200)"))


MIGRATIONS: list[Callable[[sa.Connection], None]] = [m001_initial, m002_github_slack_claims]
LATEST = len(MIGRATIONS)
_LOCK_KEY = 0x6D6F646D  # "modm": the PostgreSQL advisory lock that serialises migrations


def _serialise(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":  # SQLite: BEGIN IMMEDIATE already holds the write lock
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def version(conn: sa.Connection) -> int:
    """The schema version: 0 for a database made before migrations (or empty)."""
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(schema_version.c.version), 0))).scalar_one())


def migrate(engine: sa.Engine, migrations: list[Callable] | None = None, target: int | None = None) -> int:
    """Bring the database to `target` (default: the latest version); each migration in its own transaction
    with its `schema_version` row. Returns the version reached."""
    migrations = MIGRATIONS if migrations is None else migrations
    target = len(migrations) if target is None else target
    with engine.begin() as c:
        _serialise(c)
        schema_version.create(c, checkfirst=True)
    for n, m in enumerate(migrations[:target], 1):
        with engine.begin() as c:
            _serialise(c)
            if version(c) >= n:
                continue
            m(c)
            c.execute(schema_version.insert().values(version=n, name=m.__name__, applied_at=_now()))
            log.info("servicedb.migrated version=%s name=%s url=%s", n, m.__name__, redact(str(engine.url)))
    with engine.connect() as c:
        return version(c)


# --- engines ---------------------------------------------------------------------------------------------------
def make_engine(url: str) -> sa.Engine:
    """An engine for `url`. SQLite: file created 0600, WAL, 30 s busy wait, every transaction BEGIN IMMEDIATE
    (so DDL is inside it and a read-then-write never fails half way on a lock)."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(private_sqlite_url(url), pool_pre_ping=True,
                                  connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # the driver begins nothing by itself; "begin" below does
            dbapi_conn.execute("PRAGMA journal_mode=WAL")

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: list[dict] | dict) -> int:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL; the number of rows inserted."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    rows = [rows] if isinstance(rows, dict) else rows
    n = 0
    for row in rows:  # counted by RETURNING: psycopg's rowcount for ON CONFLICT DO NOTHING is -1
        stmt = insert(table).values(**row).on_conflict_do_nothing().returning(*table.primary_key.columns)
        n += len(conn.execute(stmt).all())
    return n


@dataclass
class ServiceDB:
    url: str
    engine: sa.Engine

    @property
    def shown_url(self) -> str:
        return redact(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


_OPEN: dict[str, ServiceDB] = {}
_IMPORTED: set[tuple[str, str]] = set()
_OPEN_LOCK = threading.Lock()


def open(url: str | None = None, home: Path | None = None) -> ServiceDB:  # noqa: A001 - the module's verb
    """The service database of this process for `url` (default: the configured one): one engine per URL,
    migrated to the latest version and, once per home folder, with that home's old github.db / slack.db
    imported. Errors name the database with its password hidden."""
    home = home or settings.home()
    url = url or database_url(home)
    with _OPEN_LOCK:
        db = _OPEN.get(url)
        if db is None:
            try:
                engine = make_engine(url)
                migrate(engine)
            except sa.exc.SQLAlchemyError as e:
                raise ServiceDBError(f"service database {redact(url)}: {_first_line(e)}") from None
            db = _OPEN[url] = ServiceDB(url, engine)
        if (url, str(home)) not in _IMPORTED:
            _IMPORTED.add((url, str(home)))
            import_legacy(db, home)
    return db


def forget(url: str) -> None:
    """Close and forget this process's engine for `url` (tests drop their databases after)."""
    with _OPEN_LOCK:
        db = _OPEN.pop(url, None)
        for key in [k for k in _IMPORTED if k[0] == url]:
            _IMPORTED.discard(key)
    if db is not None:
        db.engine.dispose()


class ServiceDBError(RuntimeError):
    """The service database cannot be opened or migrated (the message never holds a password)."""


def _first_line(e: Exception) -> str:
    orig = getattr(e, "orig", None) or e
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]


# --- github.db and slack.db of earlier versions ----------------------------------------------------------------
def import_legacy(db: ServiceDB, home: Path) -> None:
    """Import `<home>/github.db` and `<home>/slack.db` (each in one transaction), then rename them `*.imported`;
    when the service database is not `<home>/service.db` (PostgreSQL), that file's feedback is imported the same
    way (people's answers are training data; job history and queued jobs are not carried over).
    A file that cannot be read stays where it is, with a warning; the next start tries again."""
    sources = [("github.db", _import_github), ("slack.db", _import_slack)]
    if db.dialect != "sqlite":
        sources.append(("service.db", _import_feedback))
    for name, fn in sources:
        path = home / name
        if not path.is_file():
            continue
        try:
            src = sqlite3.connect(path, timeout=30)
            try:
                src.row_factory = sqlite3.Row
                with db.engine.begin() as c:
                    counts = fn(src, c)
            finally:
                src.close()
        except (sqlite3.Error, sa.exc.SQLAlchemyError) as e:
            log.warning("servicedb.import-failed file=%s error=%s", path, _first_line(e))
            continue
        for suffix in ("", "-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.rename(path.with_name(path.name + ".imported" + suffix.replace("-", ".")))
        log.info("servicedb.imported file=%s into=%s rows=%s", path, db.shown_url, counts)


def _rows(src: sqlite3.Connection, table: str) -> list[dict]:
    if not src.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone():
        return []
    return [dict(r) for r in src.execute(f"SELECT * FROM {table}")]  # noqa: S608 - our own table names


def _import_github(src: sqlite3.Connection, c: sa.Connection) -> dict[str, int]:
    out = {}
    rows = []
    for r in _rows(src, "deliveries"):  # github.db version 1 had no queue columns
        status = "queued" if r["status"] == "processing" else r["status"]  # the process that had it is gone
        rows.append({"id": r["id"], "event": r["event"], "action": r.get("action"), "repo": r.get("repo"),
                     "received_at": r["received_at"], "status": status, "detail": r.get("detail"),
                     "payload": r.get("payload"), "attempts": int(r.get("attempts") or 0),
                     "next_at": float(r.get("next_at") or 0), "claimed_by": None})
    out["deliveries"] = insert_ignore(c, deliveries, rows)
    out["bot_labels"] = insert_ignore(c, bot_labels, _rows(src, "bot_labels"))
    out["comments"] = insert_ignore(c, comments, _rows(src, "comments"))
    out["human_labels"] = insert_ignore(c, human_labels, _rows(src, "human_labels"))
    return out


def _import_feedback(src: sqlite3.Connection, c: sa.Connection) -> dict[str, int]:
    rows = [{k: r[k] for k in ("repo_key", "created_at", "source", "text", "modules", "key")}
            for r in _rows(src, "feedback")]
    n = 0
    for r in rows:  # a keyed example already there (imported before) is kept once
        if r["key"] is None:
            c.execute(feedback.insert().values(**r))
            n += 1
        else:
            n += insert_ignore(c, feedback, r)
    return {"feedback": n}


def _import_slack(src: sqlite3.Connection, c: sa.Connection) -> dict[str, int]:
    out = {"channels": insert_ignore(c, channel_repos, _rows(src, "channel_repos")), "questions": 0}
    for r in _rows(src, "questions"):
        if insert_ignore(c, questions, r):  # same id: the feedback buttons of answers already posted still work
            out["questions"] += 1
        elif c.execute(sa.select(questions.c.id).where(questions.c.source_key == r["source_key"])).first() is None:
            out["questions"] += insert_ignore(c, questions, {k: v for k, v in r.items() if k != "id"})
    if c.dialect.name == "postgresql" and out["questions"]:  # explicit ids do not move the sequence
        c.execute(sa.text("SELECT setval(pg_get_serial_sequence('slack_questions', 'id'), "
                          "(SELECT MAX(id) FROM slack_questions))"))
    return out
