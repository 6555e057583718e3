"""What the Slack listeners share: `SlackBot` (the served repositories, the channel → repository table,
the worker that does slow work after `ack()`), and the answer flow itself.

Bolt's lazy listeners deep-copy the request context, which cannot carry the live `AppState`; so listeners
are closures over a `SlackBot` (`register(app, bot)`) and slow work goes to the bot's own thread pool."""
from __future__ import annotations

import json
import logging
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Callable

import sqlalchemy as sa

from inference.errors import BadInputError

from .. import blocks, servicedb, settings
from ..servicedb import channel_repos, insert_ignore, questions
from ..state import AppState, RepoState, RepoUnavailable

log = logging.getLogger(__name__)

MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SlackDB:
    """Slack's state in the service database (`bot.servicedb`): which repository each channel asks about, and the
    questions answered (UNIQUE source key, so an event Slack retries, or a DM that also arrives as a mention, is
    answered once, also when two processes share one PostgreSQL database)."""

    def __init__(self, db: servicedb.ServiceDB | None = None):
        self.db = db or servicedb.open()
        self.engine = self.db.engine

    def channel_repo(self, channel: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(channel_repos.c.repo).where(channel_repos.c.channel == channel)).scalar()

    def set_channel_repo(self, channel: str, repo: str, user: str | None) -> None:
        values = {"repo": repo, "set_by": user, "set_at": _now()}
        with self.engine.begin() as c:
            if not c.execute(channel_repos.update().where(channel_repos.c.channel == channel).values(**values)).rowcount:
                if not insert_ignore(c, channel_repos, {"channel": channel, **values}):  # set at the same moment
                    c.execute(channel_repos.update().where(channel_repos.c.channel == channel).values(**values))

    def claim_question(self, source_key: str, channel: str, repo: str, user: str | None, text: str) -> int | None:
        """The new question's id, or None when this source was already answered."""
        try:
            with self.engine.begin() as c:
                res = c.execute(questions.insert().values(source_key=source_key, channel=channel, repo=repo,
                                                          user=user, text=text, created_at=_now()))
                return int(res.inserted_primary_key[0])
        except sa.exc.IntegrityError:
            return None

    def set_answer(self, qid: int, modules: list[str]) -> None:
        with self.engine.begin() as c:
            c.execute(questions.update().where(questions.c.id == qid).values(answer=json.dumps(modules)))

    def question(self, qid: int) -> dict | None:
        cols = ("id", "channel", "repo", "user", "text", "answer")
        with self.engine.connect() as c:
            row = c.execute(sa.select(*(questions.c[k] for k in cols)).where(questions.c.id == qid)).mappings().first()
        if not row:
            return None
        d = dict(row)
        d["answer"] = json.loads(d["answer"]) if d["answer"] else []
        return d


class SlackBot:
    def __init__(self, state: AppState, db: SlackDB | None = None, *, k: int | None = None, workers: int = 4,
                 threshold: float | None = None):
        self.state = state
        self.db = db or SlackDB()
        self.k = k or max(1, settings.get_int("slack_answer_k", 3) or 3)
        if threshold is None:
            threshold = settings.get_auto_float("github_label_threshold")
        self.threshold = threshold
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modmatch-slack")
        self._pending: set[Future] = set()
        self._plock = threading.Lock()

    # --- slow work ------------------------------------------------------------------------------
    def submit(self, fn: Callable, *args, **kwargs) -> Future:
        def run():
            try:
                return fn(*args, **kwargs)
            except Exception:
                log.exception("slack.worker.failed fn=%s", getattr(fn, "__name__", fn))

        f = self._pool.submit(run)
        with self._plock:
            self._pending.add(f)
        f.add_done_callback(lambda done: self._discard(done))
        return f

    def _discard(self, f: Future) -> None:
        with self._plock:
            self._pending.discard(f)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait for the queued work (tests, shutdown). True when all finished."""
        import concurrent.futures as cf

        with self._plock:
            pending = list(self._pending)
        done, not_done = cf.wait(pending, timeout=timeout)
        return not not_done

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # --- repositories ---------------------------------------------------------------------------
    def repo_name_for(self, channel: str | None) -> str | None:
        name = self.db.channel_repo(channel) if channel else None
        if name and name in self.state.repos:
            return name
        return self.state.default

    def repo_for(self, channel: str | None) -> RepoState:
        return self.state.repo(self.repo_name_for(channel))

    def status_info(self, channel: str | None) -> dict:
        name = self.repo_name_for(channel)
        info: dict = {"repo": name}
        try:
            rs = self.state.repo(name)
            info["root"] = str(rs.root)
            g = rs.store.graph_info()
            info["graph_version"] = g.get("version")
            info["graph_commit"] = ((g.get("commit") or "")[:12] + (f" (built {g['built_at']})" if g.get("built_at") else ""))
            info["modules"] = len(rs.graph.modules)
            matcher, label = rs.matcher()
            info["matcher"] = label
            info["model_version"] = rs.model_version or "none (retrieval only)"
            c = rs.models.current()
            if c is not None:
                info["last_training"] = f"{c.get('published_at', '?')} (run {c.get('run', '?')}, accuracy {c.get('accuracy', '?')})"
            else:
                info["last_training"] = "never"
            info["feedback"] = rs.feedback_count()
        except Exception as e:
            log.warning("slack.status.failed repo=%s error=%s", name, e)
            info["error"] = f"status incomplete: {type(e).__name__}: {e}"
        return info

    # --- the answer flow ------------------------------------------------------------------------
    def answer(self, client, *, channel: str, text: str, user: str | None, source_key: str,
               thread_ts: str | None = None, respond: Callable | None = None, intro: str | None = None) -> None:
        """Post a placeholder in the thread, then replace it with the answer (or with a useful error).

        `intro`: for slash commands, a first message that starts the thread. When the bot cannot post in the
        channel, the answer goes back through `respond` (the command's response_url) instead."""
        text = MENTION.sub("", text or "").strip()
        repo_name = self.repo_name_for(channel) or "?"
        qid = self.db.claim_question(source_key, channel, repo_name, user, text)
        if qid is None:
            log.info("slack.answer.duplicate source=%s", source_key)
            return
        placeholder_ts = None
        try:
            if intro is not None:
                r = client.chat_postMessage(channel=channel, text=intro)
                thread_ts = r["ts"]
            r = client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                        text=":mag: Looking for the modules of this requirement…")
            placeholder_ts = r["ts"]
        except Exception as e:  # e.g. not_in_channel for a slash command: answer privately instead
            log.info("slack.answer.cannot-post channel=%s error=%s", channel, getattr(e, "response", {}) and
                     getattr(e, "response").get("error"))
        try:
            if not text:
                raise BadInputError("the requirement is empty — write what you need after the mention")
            rs = self.state.repo(repo_name if repo_name in self.state.repos else None)
            ans = rs.match(text, k=self.k)
            self.db.set_answer(qid, [m.module for m in ans.matches])
            out = blocks.answer_blocks(text, ans, rs.graph, repo=rs.name, question_id=qid, threshold=rs.label_threshold(self.threshold))
            fallback = "modmatch: " + (", ".join(m.module for m in ans.matches) or "no module matched")
        except BadInputError as e:
            out, fallback = blocks.error_blocks(f"I need a requirement to match: {e}. Try `/modmatch help`."), str(e)
        except RepoUnavailable as e:
            out, fallback = blocks.error_blocks(f"Not ready yet: {e}. Ask again in a minute."), "not ready yet"
        except KeyError as e:
            out, fallback = blocks.error_blocks(f"No repository to ask: {e.args[0] if e.args else e}. "
                                                "Use `/modmatch repo <name>`."), "no repository"
        except Exception as e:
            log.exception("slack.answer.failed source=%s", source_key)
            out = blocks.error_blocks(f"Sorry — matching failed ({type(e).__name__}). Please try again in a minute; "
                                      "`/modmatch status` shows what is loaded.")
            fallback = "matching failed"
        self._deliver(client, channel, placeholder_ts, out, fallback, respond)

    def _deliver(self, client, channel, ts, out, fallback, respond) -> None:
        try:
            if ts is not None:
                client.chat_update(channel=channel, ts=ts, text=fallback, blocks=out)
                return
        except Exception as e:
            log.warning("slack.answer.update-failed channel=%s error=%s", channel, e)
        if respond is not None:
            respond(text=fallback, blocks=out, response_type="ephemeral", replace_original=False)
