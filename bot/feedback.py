"""People's answers (Slack buttons, GitHub label changes, merged PRs, POST /api/feedback), kept in the service
database so that a damaged or rebuilt repository database never loses them.

    log = FeedbackLog.shared(home)
    log.add("main-1a2b3c4d5e", "TLS handshake fails", ["network"], "slack", key="C1/1700000000.1/U1")
    log.examples("main-1a2b3c4d5e")      # HistoryExample rows for the trainer
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from indexer.records import HistoryExample

from .private import private_sqlite_url

_meta = sa.MetaData()
feedback_table = sa.Table(
    "feedback", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repo_key", sa.String(200), nullable=False, index=True),  # the repository database's file stem
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("source", sa.String(50), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("modules", sa.Text, nullable=False),  # JSON list of module IDs
    sa.Column("key", sa.String(300)),  # idempotency: one example per answer and person, per PR, ...
    sa.UniqueConstraint("repo_key", "key", name="feedback_repo_key_key"),
)

_SHARED: dict[str, "FeedbackLog"] = {}
_SHARED_LOCK = threading.Lock()


class FeedbackLog:
    def __init__(self, url: str):
        kw = {"connect_args": {"timeout": 30, "check_same_thread": False}} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(private_sqlite_url(url), future=True, pool_pre_ping=True, **kw)
        _meta.create_all(self.engine)

    @classmethod
    def shared(cls, home: Path | None = None) -> "FeedbackLog":
        """One log (and connection pool) per service database URL in this process."""
        from .jobs import database_url

        url = database_url(home)
        with _SHARED_LOCK:
            if url not in _SHARED:
                _SHARED[url] = cls(url)
            return _SHARED[url]

    def add(self, repo_key: str, text: str, modules: list[str], source: str, key: str | None = None) -> bool:
        """Store one example; False when `key` was already recorded for this repository (idempotent)."""
        row = {"repo_key": repo_key, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "source": source[:50], "text": text, "modules": json.dumps(list(modules)), "key": key}
        try:
            with self.engine.begin() as c:
                c.execute(feedback_table.insert().values(**row))
            return True
        except sa.exc.IntegrityError:
            return False

    def examples(self, repo_key: str) -> list[HistoryExample]:
        q = (sa.select(feedback_table.c.id, feedback_table.c.created_at, feedback_table.c.text,
                       feedback_table.c.modules).where(feedback_table.c.repo_key == repo_key)
             .order_by(feedback_table.c.id))
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        return [HistoryExample(f"feedback-s{i}", d, t.split("\n", 1)[0], t.split("\n", 1)[1] if "\n" in t else "",
                               (), tuple(json.loads(m)), "feedback") for i, d, t, m in rows]

    def count(self, repo_key: str) -> int:
        q = sa.select(sa.func.count()).select_from(feedback_table).where(feedback_table.c.repo_key == repo_key)
        with self.engine.connect() as c:
            return int(c.execute(q).scalar_one())
