"""The service's job queue: refreshes and training runs, persisted, coalesced, recorded.

    runner = JobRunner(state)            # the scheduler's job store and the `jobs` table in service.db
    runner.start()                       # also wires state.queue_refresh
    runner.queue_refresh("core", "hook:post-merge")   # ten of these in a few seconds: one refresh
    runner.recent()                      # what ran, how long, how it ended

- Queued work lives in APScheduler's SQLAlchemyJobStore (table ``apscheduler_jobs``) so it survives
  a restart; every job also has a row in the ``jobs`` table (state, duration, outcome) that the API
  and the page show. Both live in one database, ``database_url`` (SQLite under MODMATCH_HOME by
  default, PostgreSQL for a shared server).
- Coalescing: one pending job per repository and kind (``refresh:<repo>``, ``train:<repo>``); a
  trigger while one is pending joins it (its row counts the triggers) instead of adding another.
- Fairness across repositories: a job never waits in a worker thread. A refresh due while its repository's last
  one still runs goes back to the queue (same row, `refresh_delay` later) and later triggers join it; it used to
  block one of the four workers, so two busy repositories held all four and every other repository's refresh
  waited behind them (and a third firing of one job was dropped by the scheduler's instance limit, its row left
  `queued` for ever). Training handed off to a worker: one `waiting` row per repository, later ones join it, the
  oldest is claimed first.
- A refresh that fails keeps the served graph (``RepoState.reload`` only runs after success).
- Retraining policy: a refresh that changed ``retrain_modules`` modules, ``retrain_feedback`` new
  feedback examples, or the nightly schedule queue a training run. One training at a time per machine
  (a lock file), in a subprocess (`modmatch train PATH`), then ``RepoState.reload()``; the trainer's
  publishing gate decides whether the new model becomes current.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from . import servicedb, settings

log = logging.getLogger(__name__)

KINDS = ("refresh", "train")
ACTIVE = ("queued", "running")
jobs_table = servicedb.jobs
database_url = servicedb.database_url


class _held:
    """`with _held(lock):` for a lock acquired already."""

    def __init__(self, lock: threading.Lock):
        self.lock = lock

    def __enter__(self):
        return self.lock

    def __exit__(self, *exc):
        self.lock.release()


def _int_setting(name: str) -> int:
    return settings.get_int(name, 0)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds") if ts else None


class JobLog:
    """The `jobs` table: one row per scheduled job, from queued to its outcome."""

    def __init__(self, url: str | None = None):
        self.db = servicedb.open(url)
        self.engine = self.db.engine

    def add(self, job_id: str, kind: str, repo: str, reason: str) -> int:
        with self.engine.begin() as c:
            res = c.execute(jobs_table.insert().values(job_id=job_id, kind=kind, repo=repo, reason=reason[:500],
                                                       triggers=1, state="queued", queued_at=time.time(), outcome=""))
            return int(res.inserted_primary_key[0])

    def join(self, row: int, reason: str) -> None:
        with self.engine.begin() as c:
            c.execute(jobs_table.update().where(jobs_table.c.id == row)
                      .values(triggers=jobs_table.c.triggers + 1))

    def start(self, row: int) -> bool:
        """Claim a queued job for this process: False when another process (sharing the database) has it."""
        with self.engine.begin() as c:
            res = c.execute(jobs_table.update().where(jobs_table.c.id == row, jobs_table.c.state == "queued")
                            .values(state="running", started_at=time.time(), claimed_by=servicedb.worker_id()))
            return res.rowcount == 1

    def finish(self, row: int, state: str, outcome: dict) -> None:
        with self.engine.begin() as c:
            c.execute(jobs_table.update().where(jobs_table.c.id == row)
                      .values(state=state, finished_at=time.time(), outcome=json.dumps(outcome, default=str)))

    def hand_off(self, row: int) -> int:
        """Leave a queued job to a worker (state `waiting`); when its repository already has one of that kind
        waiting, this one joins it (one run for both). The row that waits."""
        with self.engine.begin() as c:
            r = c.execute(sa.select(jobs_table.c.kind, jobs_table.c.repo).where(jobs_table.c.id == row)).first()
            other = None if r is None else c.execute(
                sa.select(jobs_table.c.id).where(jobs_table.c.kind == r.kind, jobs_table.c.repo == r.repo,
                                                 jobs_table.c.state == "waiting", jobs_table.c.id != row)
                .order_by(jobs_table.c.id).limit(1)).scalar()
            if other is None:
                c.execute(jobs_table.update().where(jobs_table.c.id == row, jobs_table.c.state == "queued")
                          .values(state="waiting", outcome=json.dumps({"note": "waiting for a training worker"})))
                return row
        self.merge(row, other)
        return other

    def merge(self, row: int, into: int) -> None:
        """One run for two jobs of a repository: `row`'s triggers count on `into`; `row` ends `skipped`."""
        with self.engine.begin() as c:
            n = c.execute(sa.select(jobs_table.c.triggers).where(jobs_table.c.id == row)).scalar() or 1
            c.execute(jobs_table.update().where(jobs_table.c.id == into).values(triggers=jobs_table.c.triggers + n))
            c.execute(jobs_table.update().where(jobs_table.c.id == row, jobs_table.c.state.in_(("queued", "waiting")))
                      .values(state="skipped", finished_at=time.time(), outcome=json.dumps({"joined": into})))

    def claim(self, kind: str, repos: list[str]) -> dict | None:
        """Take the oldest `waiting` job of `kind` for one of `repos`; atomic, so two workers never share one
        (PostgreSQL: the row is locked, SKIP LOCKED lets another worker take the next; both: the update only
        takes a row still `waiting`)."""
        q = (sa.select(jobs_table.c.id).where(jobs_table.c.kind == kind, jobs_table.c.state == "waiting",
                                              jobs_table.c.repo.in_(repos))
             .order_by(jobs_table.c.id).limit(1).with_for_update(skip_locked=True))
        with self.engine.begin() as c:
            row = c.execute(q).scalar()
            if row is None:
                return None
            res = c.execute(jobs_table.update().where(jobs_table.c.id == row, jobs_table.c.state == "waiting")
                            .values(state="queued"))
            if res.rowcount != 1:
                return None
        return self.get(row)

    def get(self, row: int) -> dict | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(jobs_table).where(jobs_table.c.id == row)).mappings().first()
        return self._dict(r) if r else None

    def recent(self, limit: int = 50, repo: str | None = None, kind: str | None = None) -> list[dict]:
        q = sa.select(jobs_table).order_by(jobs_table.c.id.desc()).limit(limit)
        if repo:
            q = q.where(jobs_table.c.repo == repo)
        if kind:
            q = q.where(jobs_table.c.kind == kind)
        with self.engine.connect() as c:
            return [self._dict(r) for r in c.execute(q).mappings()]

    def last(self, kind: str, repo: str, state: str = "ok") -> dict | None:
        q = (sa.select(jobs_table).where(jobs_table.c.kind == kind, jobs_table.c.repo == repo,
                                         jobs_table.c.state == state)
             .order_by(jobs_table.c.id.desc()).limit(1))
        with self.engine.connect() as c:
            r = c.execute(q).mappings().first()
        return self._dict(r) if r else None

    def counts(self) -> dict[str, int]:
        q = sa.select(jobs_table.c.state, sa.func.count()).group_by(jobs_table.c.state)
        with self.engine.connect() as c:
            return {s: int(n) for s, n in c.execute(q)}

    def mark_interrupted(self) -> list[dict]:
        """Rows left `running` by a process that died (on this host: a live process elsewhere keeps its rows):
        mark them, return them (to queue them again)."""
        with self.engine.begin() as c:
            running = c.execute(sa.select(jobs_table).where(jobs_table.c.state == "running")).mappings().all()
            rows = []
            for r in running:
                if not servicedb.abandoned(r["claimed_by"]):
                    continue
                res = c.execute(jobs_table.update().where(jobs_table.c.id == r["id"], jobs_table.c.state == "running")
                                .values(state="interrupted", finished_at=time.time(),
                                        outcome=json.dumps({"error": "the service stopped while this job ran"})))
                if res.rowcount == 1:
                    rows.append(self._dict(r))
        return rows

    @staticmethod
    def _dict(r) -> dict:
        d = dict(r)
        try:
            d["outcome"] = json.loads(d["outcome"]) if d["outcome"] else {}
        except ValueError:
            d["outcome"] = {"text": d["outcome"]}
        start, end = d.get("started_at"), d.get("finished_at")
        d["duration"] = round(end - start, 3) if start and end else None
        for key in ("queued_at", "started_at", "finished_at"):
            d[key] = _iso(d[key])
        return d

    def dispose(self) -> None:
        self.engine.dispose()


class TrainLock:
    """One training at a time per machine: an exclusive, non-blocking lock on a file under MODMATCH_HOME."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


# The runner of this process. Persisted jobs are stored as references to the module-level functions
# below with plain arguments (repo name, row id), so a job queued before a restart runs on the new one.
_RUNNER: "JobRunner | None" = None


def run_refresh_job(repo: str, row: int) -> None:
    if _RUNNER is None:  # pragma: no cover - a job fired with no runner registered
        log.error("jobs.no-runner job=refresh repo=%s", repo)
        return
    _RUNNER.run_refresh(repo, row)


def run_train_job(repo: str, row: int) -> None:
    if _RUNNER is None:  # pragma: no cover
        log.error("jobs.no-runner job=train repo=%s", repo)
        return
    _RUNNER.run_train(repo, row)


def run_poll_job() -> None:
    if _RUNNER is not None:
        _RUNNER.poll()


def run_nightly_job() -> None:
    if _RUNNER is not None:
        _RUNNER.nightly()


def default_train_command(path: Path) -> list[str]:
    tmpl = settings.get("train_command")
    if tmpl:
        return [a.replace("{path}", str(path)) for a in shlex.split(tmpl)]
    return [sys.executable, "-m", "bot.cli", "train", str(path), "--json"]


def _own_session_dies_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """A training run has its own session (a terminal's ^C does not reach it) but ends with the service: on Linux
    it gets SIGTERM when the thread that started it dies, so a killed service leaves no orphan trainer behind
    (the job is queued again when the service restarts)."""
    os.setsid()
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _shared_job_store(base, engine):
    """APScheduler's SQLAlchemyJobStore on the service database, for a store that other processes share: a job
    another process ran and removed first is gone, not an error (APScheduler would end its scheduler thread on
    that JobLookupError); which process runs the job is decided by `JobLog.start`, once."""
    from apscheduler.jobstores.base import JobLookupError

    class SharedJobStore(base):
        def remove_job(self, job_id):
            try:
                super().remove_job(job_id)
            except JobLookupError:
                log.info("jobs.store.already-removed job=%s", job_id)

        def update_job(self, job):
            try:
                super().update_job(job)
            except JobLookupError:
                log.info("jobs.store.already-removed job=%s", job.id)

    return SharedJobStore(engine=engine)


class JobRunner:
    """The scheduler (BackgroundScheduler, persistent job store) plus the jobs table, for one AppState."""

    def __init__(self, state, url: str | None = None, *, refresh_delay: float | None = None,
                 poll_interval: float | None = None, retrain_at: str | None = None, train_worker: bool | None = None):
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        self.state = state
        self.home = settings.home()
        self.url = url or database_url(self.home)
        self.log = JobLog(self.url)
        self.refresh_delay = settings.get_float("refresh_delay") if refresh_delay is None else refresh_delay
        self.poll_interval = _int_setting("poll_interval") if poll_interval is None else poll_interval
        self.retrain_at = settings.get("retrain_at") if retrain_at is None else retrain_at
        self.train_worker = settings.get_bool("train_worker") if train_worker is None else bool(train_worker)
        self.lock = TrainLock(self.home / "train.lock")
        self._queue_lock = threading.Lock()
        self._repo_locks: dict[str, threading.Lock] = {}
        self._procs: set[subprocess.Popen] = set()
        self.running: dict[int, str] = {}
        self._model_seen: dict[str, float | None] = {}
        self.scheduler = BackgroundScheduler(
            jobstores={"default": _shared_job_store(SQLAlchemyJobStore, self.log.engine),
                       "memory": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 2},
            timezone=datetime.now().astimezone().tzinfo)
        state.queue_refresh = self.queue_refresh

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, paused: bool = False) -> "JobRunner":
        global _RUNNER
        _RUNNER = self
        for row in self.log.mark_interrupted():  # work a dead process left half done runs again
            log.warning("jobs.interrupted id=%s kind=%s repo=%s", row["id"], row["kind"], row["repo"])
            if row["repo"] in self.state.repos:
                self._queue(row["kind"], row["repo"], f"retry after interruption of job {row['id']}")
        self.scheduler.start(paused=paused)
        for name, rs in self.state.repos.items():  # a new repository's first index happens in the queue
            try:
                if not rs.store.has_graph():
                    self.queue_refresh(name, "first index")
            except Exception as e:  # pragma: no cover
                log.warning("jobs.first-index-failed repo=%s error=%s", name, e)
        if self.poll_interval and self.poll_interval > 0:
            self.scheduler.add_job(run_poll_job, "interval", seconds=self.poll_interval, id="poll",
                                   jobstore="memory", replace_existing=True)
        if self.retrain_at:
            try:
                hh, mm = (int(x) for x in self.retrain_at.split(":", 1))
                self.scheduler.add_job(run_nightly_job, "cron", hour=hh, minute=mm, id="nightly-train",
                                       jobstore="memory", replace_existing=True)
            except ValueError:
                log.warning("jobs.bad-setting name=retrain_at value=%s", self.retrain_at)
        return self

    def shutdown(self, wait: bool = False) -> None:
        global _RUNNER
        for p in list(self._procs):
            try:
                p.terminate()
            except OSError:
                pass
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        if _RUNNER is self:
            _RUNNER = None
        self.log.dispose()

    # --- queueing -----------------------------------------------------------------------------
    def queue_refresh(self, repo: str, reason: str = "api") -> str:
        return self._queue("refresh", repo, reason)

    def queue_train(self, repo: str, reason: str = "api") -> str:
        return self._queue("train", repo, reason)

    def _queue(self, kind: str, repo: str, reason: str, delay: float | None = None) -> str:
        """Add `<kind>:<repo>` to run after a short delay, or join the one already pending."""
        self.state.repo(repo)  # KeyError for an unknown repository
        job_id = f"{kind}:{repo}"
        with self._queue_lock:
            job = self.scheduler.get_job(job_id, jobstore="default")
            if job is not None:
                self.log.join(job.kwargs["row"], reason)
                log.info("jobs.coalesced job=%s reason=%s", job_id, reason)
                return job_id
            row = self.log.add(job_id, kind, repo, reason)
            fn = run_refresh_job if kind == "refresh" else run_train_job
            wait = self.refresh_delay if delay is None else delay
            when = datetime.now().astimezone() + timedelta(seconds=max(0.0, wait))
            self.scheduler.add_job(fn, "date", run_date=when, id=job_id, kwargs={"repo": repo, "row": row},
                                   jobstore="default", replace_existing=True, name=f"{kind} {repo}")
            log.info("jobs.queued job=%s row=%s reason=%s", job_id, row, reason)
            return job_id

    def pending(self) -> list[dict]:
        return [{"id": j.id, "name": j.name, "next_run": j.next_run_time.isoformat() if j.next_run_time else None}
                for j in self.scheduler.get_jobs(jobstore="default")]

    def queue_depth(self) -> int:
        return len(self.scheduler.get_jobs(jobstore="default")) if self.scheduler.running else 0

    def recent(self, limit: int = 50, repo: str | None = None) -> list[dict]:
        return self.log.recent(limit, repo)

    # --- the jobs -----------------------------------------------------------------------------
    def _repo_lock(self, repo: str) -> threading.Lock:
        with self._queue_lock:
            return self._repo_locks.setdefault(repo, threading.Lock())

    def run_refresh(self, repo: str, row: int) -> None:
        from indexer.build import refresh
        from indexer.store import Store

        lock = self._repo_lock(repo)
        if not lock.acquire(blocking=False):  # its last refresh still runs: wait in the queue, not in a worker
            self._defer_refresh(repo, row)
            return
        with _held(lock):  # two refreshes of one repository never overlap
            if not self.log.start(row):
                log.info("jobs.taken job=refresh repo=%s row=%s", repo, row)  # another process runs it
                return
            self.running[row] = f"refresh:{repo}"
            try:
                rs = self.state.repo(repo)
                info = self.log.get(row) or {}
                notes = []
                if str(info.get("reason", "")).startswith(("post-receive", "push", "webhook:push")):
                    notes += self._pull(rs.root)
                store = Store(rs.store.path)  # its own connection: this runs in a worker thread
                try:
                    first = not store.has_graph()
                    res = refresh(rs.root, store)
                finally:
                    store.close()
                summary = res.summary()
                summary["notes"] = list(summary.get("notes") or []) + notes
                rs.reload()
            except Exception as e:  # the served graph stays as it was
                log.warning("jobs.refresh-failed repo=%s row=%s error=%s", repo, row, e)
                if isinstance(e, sqlite3.DatabaseError):  # damaged while it ran: moved aside, rebuilt by a new job
                    self.state.repo(repo).damaged(e)
                self.log.finish(row, "failed", {"error": str(e) or type(e).__name__})
                return
            finally:
                self.running.pop(row, None)
            self.log.finish(row, "ok", summary)
        log.info("jobs.refreshed repo=%s row=%s version=%s", repo, row, summary.get("version"))
        changed = len(summary["added_modules"]) + len(summary["removed_modules"]) + len(summary["changed_modules"])
        threshold = _int_setting("retrain_modules")
        if threshold > 0 and changed >= threshold and not first:  # a first index is not a change
            self.queue_train(repo, f"refresh changed {changed} modules")
        else:
            self._check_feedback(repo)

    def _defer_refresh(self, repo: str, row: int) -> None:
        """Queue `row` again, `refresh_delay` (at least a second) from now, unless a trigger queued another refresh
        of `repo` meanwhile: then that one runs for both."""
        job_id = f"refresh:{repo}"
        with self._queue_lock:
            job = self.scheduler.get_job(job_id, jobstore="default")
            if job is not None and job.kwargs.get("row") != row:
                self.log.merge(row, job.kwargs["row"])
                log.info("jobs.coalesced job=%s row=%s into=%s", job_id, row, job.kwargs["row"])
                return
            when = datetime.now().astimezone() + timedelta(seconds=max(1.0, self.refresh_delay))
            self.scheduler.add_job(run_refresh_job, "date", run_date=when, id=job_id, kwargs={"repo": repo, "row": row},
                                   jobstore="default", replace_existing=True, name=f"refresh {repo}")
        log.info("jobs.deferred job=%s row=%s reason=running", job_id, row)

    def _pull(self, root: Path) -> list[str]:
        """For pushes to a central repository: fast-forward the served clone first (best effort)."""
        from .hooks import clean_git_env

        r = subprocess.run(["git", "-C", str(root), "pull", "--ff-only", "-q"], capture_output=True, text=True,
                           timeout=300, env=clean_git_env())
        return [] if r.returncode == 0 else [f"git pull failed: {r.stderr.strip()[:300]}"]

    def feedback_count(self, repo: str) -> int:
        return self.state.repo(repo).feedback_count()

    def _trained_state(self, repo: str) -> tuple[int, str | None]:
        last = self.log.last("train", repo)
        if not last:
            return 0, None
        return int(last["outcome"].get("feedback_count", 0)), last["outcome"].get("graph_version")

    def _check_feedback(self, repo: str) -> None:
        threshold = _int_setting("retrain_feedback")
        if threshold <= 0:
            return
        new = self.feedback_count(repo) - self._trained_state(repo)[0]
        if new >= threshold:
            self.queue_train(repo, f"{new} new feedback examples")

    def on_feedback(self, repo: str) -> None:
        """Called by the API (and the Slack/GitHub handlers) after a feedback example was stored."""
        try:
            self._check_feedback(repo)
        except Exception as e:  # pragma: no cover - never fail the request for this
            log.warning("jobs.feedback-check-failed repo=%s error=%s", repo, e)

    def run_train(self, repo: str, row: int) -> None:
        if not self.train_worker:  # a worker (`modmatch serve --worker`) claims it from the jobs table
            waiting = self.log.hand_off(row)
            if waiting != row:
                log.info("jobs.coalesced job=train:%s row=%s into=%s", repo, row, waiting)
            return
        if not self.lock.acquire():
            self.log.finish(row, "skipped", {"note": "another training runs on this machine; queued again"})
            self._queue("train", repo, "retry: the machine was busy training", delay=600)
            return
        if not self.log.start(row):
            log.info("jobs.taken job=train repo=%s row=%s", repo, row)
            self.lock.release()
            return
        self.running[row] = f"train:{repo}"
        t0 = time.time()
        try:
            rs = self.state.repo(repo)
            fb = self.feedback_count(repo)
            version = rs.graph.version
            cmd = default_train_command(rs.root)
            log.info("jobs.train-start repo=%s cmd=%s", repo, cmd[:2] + ["..."])
            from .hooks import clean_git_env

            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=clean_git_env(), preexec_fn=_own_session_dies_with_parent)
            self._procs.add(proc)
            try:
                out, err = proc.communicate(timeout=_int_setting("train_timeout") or None)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                raise RuntimeError(f"training stopped after {_int_setting('train_timeout')} s")
            finally:
                self._procs.discard(proc)
            outcome: dict = {"returncode": proc.returncode, "feedback_count": fb, "graph_version": version,
                             "seconds": round(time.time() - t0, 1)}
            try:
                outcome["result"] = json.loads(out)
            except ValueError:
                outcome["stdout_tail"] = out[-2000:]
            if proc.returncode != 0:
                outcome["stderr_tail"] = err[-2000:]
                self.log.finish(row, "failed", outcome)
                return
            old = rs.model_version
            rs.reload()  # the trainer's publishing gate decided what is current
            outcome["model_version"] = rs.model_version
            outcome["published"] = rs.model_version != old
            self.log.finish(row, "ok", outcome)
        except Exception as e:
            log.warning("jobs.train-failed repo=%s row=%s error=%s", repo, row, e)
            self.log.finish(row, "failed", {"error": str(e) or type(e).__name__})
        finally:
            self.running.pop(row, None)
            self.lock.release()

    def work_once(self) -> bool:
        """For a training worker: claim the oldest job handed off by an API process and run it."""
        row = self.log.claim("train", list(self.state.repos))
        if row is None:
            return False
        self.run_train(row["repo"], row["id"])
        return True

    def poll(self) -> None:
        """Refresh every repository whose HEAD moved past the indexed commit; check the feedback count."""
        from indexer.store import Store

        from .hooks import clean_git_env

        for name, rs in list(self.state.repos.items()):
            try:
                head = subprocess.run(["git", "-C", str(rs.root), "rev-parse", "HEAD"], capture_output=True,
                                      text=True, timeout=30, env=clean_git_env()).stdout.strip()
                s = Store(rs.store.path)
                try:
                    info = s.graph_info()
                finally:
                    s.close()
                indexed = info.get("commit")
                if head and head != indexed:
                    self.queue_refresh(name, "poll: HEAD moved")
                else:
                    self._check_feedback(name)
                seen = rs.models.pointer_mtime()  # a worker elsewhere may have published a model
                if name in self._model_seen and self._model_seen[name] != seen:
                    rs.reload()
                elif info.get("version") and rs.served_version() not in (None, info["version"]):
                    rs.reload()  # another process sharing this home refreshed the repository database
                self._model_seen[name] = seen
            except Exception as e:
                log.warning("jobs.poll-failed repo=%s error=%s", name, e)

    def nightly(self) -> None:
        """The nightly training run, for repositories whose graph or feedback changed since the last one."""
        for name, rs in list(self.state.repos.items()):
            try:
                fb, version = self._trained_state(name)
                current = rs.served_version() or rs.store.graph_info().get("version")  # an unloaded one stays so
                if version is None or version != current or self.feedback_count(name) != fb:
                    self.queue_train(name, "nightly")
            except Exception as e:
                log.warning("jobs.nightly-failed repo=%s error=%s", name, e)

    # --- for /metrics and the page ------------------------------------------------------------
    def last_times(self, repo: str) -> dict[str, float | None]:
        out = {}
        for kind in KINDS:
            last = self.log.last(kind, repo)
            out[kind] = (datetime.fromisoformat(last["finished_at"]).timestamp()
                         if last and last["finished_at"] else None)
        return out
