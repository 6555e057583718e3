"""The webhook's own small SQLite database, `<home>/github.db`: deliveries seen (UNIQUE delivery id,
so a repeated delivery is skipped, not reprocessed), labels the bot applied, issues it commented on,
and issues whose module labels a person has taken over. Numbered migrations, like the indexer's store."""
from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

from .. import settings
from ..private import private_file


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Statements one by one, inside the caller's transaction (executescript would commit)."""
    for stmt in sql.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def m001_initial(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE deliveries (
            id TEXT PRIMARY KEY, event TEXT NOT NULL, action TEXT, repo TEXT, received_at TEXT NOT NULL,
            status TEXT NOT NULL, detail TEXT
        );
        CREATE TABLE bot_labels (repo TEXT NOT NULL, issue INTEGER NOT NULL, label TEXT NOT NULL,
                                 applied_at TEXT NOT NULL, PRIMARY KEY (repo, issue, label));
        CREATE TABLE comments (repo TEXT NOT NULL, issue INTEGER NOT NULL, comment_id INTEGER,
                               posted_at TEXT NOT NULL, PRIMARY KEY (repo, issue));
        CREATE TABLE human_labels (repo TEXT NOT NULL, issue INTEGER NOT NULL, login TEXT, at TEXT NOT NULL,
                                   PRIMARY KEY (repo, issue));
        """
    )


def m002_delivery_queue(conn: sqlite3.Connection) -> None:
    """Deliveries are acknowledged at once and processed from this table: the payload, tries, the next try."""
    _script(
        conn,
        """
        ALTER TABLE deliveries ADD COLUMN payload TEXT;
        ALTER TABLE deliveries ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE deliveries ADD COLUMN next_at REAL NOT NULL DEFAULT 0;
        CREATE INDEX deliveries_due ON deliveries (status, next_at)
        """
    )


MIGRATIONS = [m001_initial, m002_delivery_queue]


class GitHubDB:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else settings.home() / "github.db"
        private_file(self.path)
        self._lock = threading.Lock()
        self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}
        for m in MIGRATIONS:
            if m.__name__ not in done:
                with self._tx():
                    m(self.conn)
                    self.conn.execute("INSERT INTO _migrations VALUES (?, ?)", (m.__name__, _now()))

    def _tx(self):
        conn, lock = self.conn, self._lock

        class _T:
            def __enter__(self):
                lock.acquire()
                conn.execute("BEGIN IMMEDIATE")

            def __exit__(self, et, e, tb):
                try:
                    conn.execute("ROLLBACK" if et else "COMMIT")
                finally:
                    lock.release()

        return _T()

    # --- deliveries: a durable queue ---------------------------------------------------------------
    def enqueue_delivery(self, delivery_id: str, event: str, action: str | None, repo: str | None,
                         payload: bytes) -> bool:
        """Record a verified delivery to be processed; False for a duplicate (queued, processing or done).
        A delivery that failed for good may be sent again: it is queued afresh."""
        with self._tx():
            row = self.conn.execute("SELECT status FROM deliveries WHERE id=?", (delivery_id,)).fetchone()
            if row is None:
                self.conn.execute("INSERT INTO deliveries (id, event, action, repo, received_at, status, payload, "
                                  "attempts, next_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, 0, 0)",
                                  (delivery_id, event, action, repo, _now(), payload.decode("utf-8")))
                return True
            if row[0] == "failed":
                self.conn.execute("UPDATE deliveries SET status='queued', attempts=0, next_at=0, received_at=?, "
                                  "payload=? WHERE id=?", (_now(), payload.decode("utf-8"), delivery_id))
                return True
            return False

    def requeue_abandoned(self) -> int:
        """Deliveries left `processing` by a process that died: queue them again (at start-up)."""
        with self._tx():
            return self.conn.execute("UPDATE deliveries SET status='queued' WHERE status='processing'").rowcount

    def next_due(self, now: float) -> tuple[dict | None, float | None]:
        """(the oldest queued delivery due now, claimed as `processing`; else None, and when the next is due)."""
        with self._tx():
            row = self.conn.execute("SELECT id, event, action, repo, payload, attempts FROM deliveries "
                                    "WHERE status='queued' AND next_at<=? ORDER BY next_at, received_at LIMIT 1",
                                    (now,)).fetchone()
            if row is None:
                return None, self.next_due_at()
            self.conn.execute("UPDATE deliveries SET status='processing' WHERE id=?", (row[0],))
        return dict(zip(("id", "event", "action", "repo", "payload", "attempts"), row)), None

    def next_due_at(self) -> float | None:
        """When the earliest queued delivery is due (a read; claims nothing)."""
        return self.conn.execute("SELECT MIN(next_at) FROM deliveries WHERE status='queued'").fetchone()[0]

    def retry_delivery(self, delivery_id: str, at: float, detail: str) -> None:
        with self._tx():
            self.conn.execute("UPDATE deliveries SET status='queued', attempts=attempts+1, next_at=?, detail=? "
                              "WHERE id=?", (at, detail[:2000], delivery_id))

    def finish_delivery(self, delivery_id: str, status: str, detail: str = "") -> None:
        with self._tx():
            self.conn.execute("UPDATE deliveries SET status=?, detail=?, attempts=attempts+1 WHERE id=?",
                              (status, detail[:2000], delivery_id))

    def delivery(self, delivery_id: str) -> dict | None:
        row = self.conn.execute("SELECT id, event, action, repo, received_at, status, detail, attempts FROM deliveries "
                                "WHERE id=?", (delivery_id,)).fetchone()
        return dict(zip(("id", "event", "action", "repo", "received_at", "status", "detail", "attempts"), row)) \
            if row else None

    def delivery_counts(self) -> dict[str, int]:
        return {s: n for s, n in self.conn.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status")}

    # --- what the bot did to issues ---------------------------------------------------------------
    def bot_labels(self, repo: str, issue: int) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT label FROM bot_labels WHERE repo=? AND issue=?", (repo, issue))}

    def add_bot_labels(self, repo: str, issue: int, labels: list[str]) -> None:
        with self._tx():
            self.conn.executemany("INSERT OR IGNORE INTO bot_labels VALUES (?, ?, ?, ?)",
                                  [(repo, issue, lb, _now()) for lb in labels])

    def claim_comment(self, repo: str, issue: int) -> bool:
        """True once per issue: the bot comments at most once, whatever the edits."""
        with self._tx():
            try:
                self.conn.execute("INSERT INTO comments (repo, issue, posted_at) VALUES (?, ?, ?)", (repo, issue, _now()))
                return True
            except sqlite3.IntegrityError:
                return False

    def set_comment_id(self, repo: str, issue: int, comment_id: int | None) -> None:
        with self._tx():
            self.conn.execute("UPDATE comments SET comment_id=? WHERE repo=? AND issue=?", (comment_id, repo, issue))

    def release_comment(self, repo: str, issue: int) -> None:
        with self._tx():
            self.conn.execute("DELETE FROM comments WHERE repo=? AND issue=?", (repo, issue))

    def mark_human(self, repo: str, issue: int, login: str | None) -> None:
        with self._tx():
            self.conn.execute("INSERT OR IGNORE INTO human_labels VALUES (?, ?, ?, ?)", (repo, issue, login, _now()))

    def human_owned(self, repo: str, issue: int) -> bool:
        return self.conn.execute("SELECT 1 FROM human_labels WHERE repo=? AND issue=?", (repo, issue)).fetchone() is not None
