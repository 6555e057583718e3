"""People's answers (Slack buttons, GitHub label changes, merged PRs, POST /api/feedback), kept in the service
database so that a damaged or rebuilt repository database never loses them.

    log = FeedbackLog.shared(home)
    log.add("main-1a2b3c4d5e", "TLS handshake fails", ["network"], "slack", key="C1/1700000000.1/U1")
    log.examples("main-1a2b3c4d5e")      # HistoryExample rows for the trainer
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from indexer.records import HistoryExample

from . import servicedb

feedback_table = servicedb.feedback

class FeedbackLog:
    def __init__(self, url: str | None = None, home: Path | None = None):
        self.engine = servicedb.open(url, home).engine

    @classmethod
    def shared(cls, home: Path | None = None) -> "FeedbackLog":
        """The log in the configured service database (one engine per URL in this process: servicedb.open)."""
        return cls(servicedb.database_url(home), home)

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
