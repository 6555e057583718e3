"""The webhook's state in the service database (`bot.servicedb`): deliveries seen (the delivery id is the primary
key, so a repeated delivery is skipped, not reprocessed, even when it reaches two processes sharing one
PostgreSQL database), a durable queue of deliveries to process, labels the bot applied, issues it commented on,
and issues whose module labels a person has taken over."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import sqlalchemy as sa

from .. import servicedb
from ..servicedb import ServiceDB, bot_labels, comments, deliveries, human_labels, insert_ignore


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_COLUMNS = ("id", "event", "action", "repo", "received_at", "status", "detail", "attempts")


class GitHubDB:
    def __init__(self, db: ServiceDB | None = None):
        self.db = db or servicedb.open()
        self.engine = self.db.engine

    # --- deliveries: a durable queue ---------------------------------------------------------------
    def enqueue_delivery(self, delivery_id: str, event: str, action: str | None, repo: str | None,
                         payload: bytes) -> bool:
        """Record a verified delivery to be processed; False for a duplicate (queued, processing or done).
        A delivery that failed for good may be sent again: it is queued afresh."""
        text = payload.decode("utf-8")
        with self.engine.begin() as c:
            if insert_ignore(c, deliveries, {"id": delivery_id, "event": event, "action": action, "repo": repo,
                                             "received_at": _now(), "status": "queued", "payload": text,
                                             "attempts": 0, "next_at": 0.0}):
                return True
            res = c.execute(deliveries.update().where(deliveries.c.id == delivery_id, deliveries.c.status == "failed")
                            .values(status="queued", attempts=0, next_at=0.0, received_at=_now(), payload=text,
                                    claimed_by=None))
            return res.rowcount == 1

    def requeue_abandoned(self) -> int:
        """Deliveries left `processing` by a process that died (at start-up): queued again. One that a live
        process elsewhere is processing stays its."""
        n = 0
        with self.engine.begin() as c:
            rows = c.execute(sa.select(deliveries.c.id, deliveries.c.claimed_by)
                             .where(deliveries.c.status == "processing")).all()
            for did, owner in rows:
                if servicedb.abandoned(owner):
                    n += c.execute(deliveries.update().where(deliveries.c.id == did,
                                                             deliveries.c.status == "processing")
                                   .values(status="queued", claimed_by=None)).rowcount
        return n

    def next_due(self, now: float | None = None, served: dict | None = None) -> tuple[dict | None, float | None]:
        """(the oldest queued delivery due now, claimed as `processing` by this process; else None, and when the
        next is due). `served`: when this worker last served each repository; then the oldest delivery of the due
        repository served least recently goes first (a flood of one repository's deliveries cannot hold the
        others back). Two processes never claim one delivery: PostgreSQL locks the row (SKIP LOCKED: the other
        takes the next), and the update only takes a row still `queued`."""
        now = time.time() if now is None else now
        due = sa.and_(deliveries.c.status == "queued", deliveries.c.next_at <= now)
        q = (sa.select(deliveries.c.id, deliveries.c.event, deliveries.c.action, deliveries.c.repo,
                       deliveries.c.payload, deliveries.c.attempts).where(due)
             .order_by(deliveries.c.next_at, deliveries.c.received_at).limit(1).with_for_update(skip_locked=True))
        with self.engine.begin() as c:
            row = None
            if served is not None:
                repos = c.execute(sa.select(deliveries.c.repo, sa.func.min(deliveries.c.next_at),
                                            sa.func.min(deliveries.c.received_at)).where(due)
                                  .group_by(deliveries.c.repo)).all()
                if len(repos) > 1:
                    pick = min(repos, key=lambda r: (served.get(r[0], float("-inf")), r[1], r[2]))[0]
                    same = deliveries.c.repo.is_(None) if pick is None else deliveries.c.repo == pick
                    row = c.execute(q.where(same)).mappings().first()
            if row is None:
                row = c.execute(q).mappings().first()
            if row is not None:
                res = c.execute(deliveries.update().where(deliveries.c.id == row["id"], deliveries.c.status == "queued")
                                .values(status="processing", claimed_by=servicedb.worker_id()))
                if res.rowcount == 1:
                    return dict(row), None
        return None, self.next_due_at()

    def next_due_at(self) -> float | None:
        """When the earliest queued delivery is due (a read; claims nothing)."""
        with self.engine.connect() as c:
            return c.execute(sa.select(sa.func.min(deliveries.c.next_at))
                             .where(deliveries.c.status == "queued")).scalar()

    def retry_delivery(self, delivery_id: str, at: float, detail: str) -> None:
        with self.engine.begin() as c:
            c.execute(deliveries.update().where(deliveries.c.id == delivery_id)
                      .values(status="queued", attempts=deliveries.c.attempts + 1, next_at=at, detail=detail[:2000],
                              claimed_by=None))

    def finish_delivery(self, delivery_id: str, status: str, detail: str = "") -> None:
        with self.engine.begin() as c:
            c.execute(deliveries.update().where(deliveries.c.id == delivery_id)
                      .values(status=status, detail=detail[:2000], attempts=deliveries.c.attempts + 1))

    def delivery(self, delivery_id: str) -> dict | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(*(deliveries.c[k] for k in _COLUMNS))
                            .where(deliveries.c.id == delivery_id)).mappings().first()
        return dict(row) if row else None

    def delivery_counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            return {s: int(n) for s, n in c.execute(sa.select(deliveries.c.status, sa.func.count())
                                                    .group_by(deliveries.c.status))}

    # --- what the bot did to issues ---------------------------------------------------------------
    def bot_labels(self, repo: str, issue: int) -> set[str]:
        with self.engine.connect() as c:
            return set(c.execute(sa.select(bot_labels.c.label).where(bot_labels.c.repo == repo,
                                                                     bot_labels.c.issue == issue)).scalars())

    def add_bot_labels(self, repo: str, issue: int, labels: list[str]) -> None:
        with self.engine.begin() as c:
            insert_ignore(c, bot_labels, [{"repo": repo, "issue": issue, "label": lb, "applied_at": _now()}
                                          for lb in labels])

    def claim_comment(self, repo: str, issue: int) -> bool:
        """True once per issue: the bot comments at most once, whatever the edits."""
        with self.engine.begin() as c:
            return insert_ignore(c, comments, {"repo": repo, "issue": issue, "posted_at": _now()}) == 1

    def set_comment_id(self, repo: str, issue: int, comment_id: int | None) -> None:
        with self.engine.begin() as c:
            c.execute(comments.update().where(comments.c.repo == repo, comments.c.issue == issue)
                      .values(comment_id=comment_id))

    def release_comment(self, repo: str, issue: int) -> None:
        with self.engine.begin() as c:
            c.execute(comments.delete().where(comments.c.repo == repo, comments.c.issue == issue))

    def mark_human(self, repo: str, issue: int, login: str | None) -> None:
        with self.engine.begin() as c:
            insert_ignore(c, human_labels, {"repo": repo, "issue": issue, "login": login, "at": _now()})

    def human_owned(self, repo: str, issue: int) -> bool:
        with self.engine.connect() as c:
            return c.execute(sa.select(sa.literal(1)).where(human_labels.c.repo == repo,
                                                            human_labels.c.issue == issue)).first() is not None
