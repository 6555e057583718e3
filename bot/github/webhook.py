"""The Starlette route for GitHub: POST /github/webhook (`bot.github.routes(state)` mounts it).

A delivery is verified (signature first, then the JSON's shape), recorded in the service database and acknowledged
at once; a worker thread then processes it (label, comment, learn), retrying a failing GitHub API with backoff.
GitHub waits at most 10 s for an answer, so nothing slow happens while it waits, and a delivery recorded
before the process died is processed when it starts again.

Status codes tell the sender what happened: 401 bad or missing signature (or no secret configured), 400 not
JSON / wrong shape / missing headers, 200 ping, 204 an event nothing handles, 202 recorded for processing,
200 a duplicate delivery (skipped)."""
from __future__ import annotations

import json
import logging
import threading
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import settings
from . import labeler, learn, refresh  # noqa: F401  (handlers register on import)
from .client import GitHubClients
from .db import GitHubDB
from .errors import BadPayload, ValidationFailure
from .router import Context, Options, Router, router as default_router
from .verify import Event, parse

log = logging.getLogger(__name__)


class Webhook:
    """Everything the endpoint needs; each piece can be given (tests) or comes from the settings."""

    def __init__(self, state, *, clients: GitHubClients | None = None, db: GitHubDB | None = None,
                 options: Options | None = None, secret: str | None = None, router: Router | None = None,
                 max_attempts: int | None = None, retry_base: float = 2.0, retry_cap: float = 600.0,
                 autostart: bool = True):
        self.state = state
        self._clients, self._db, self._options, self._secret = clients, db, options, secret
        self.router = router or default_router
        self.max_attempts = max_attempts if max_attempts is not None else max(1, settings.get_int("github_attempts", 6))
        self.retry_base, self.retry_cap, self.autostart = retry_base, retry_cap, autostart
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._served: dict[str | None, float] = {}  # repository -> when its last delivery was taken (fairness)

    def secret(self) -> str | None:
        return self._secret if self._secret is not None else settings.get("github_webhook_secret")

    @property
    def db(self) -> GitHubDB:
        if self._db is None:
            self._db = GitHubDB()
        return self._db

    def context(self) -> Context:
        if self._clients is None:
            self._clients = GitHubClients.from_settings()
        return Context(self.state, self._clients, self.db, self._options or Options.from_settings())

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict | None]:
        """Sans-framework core: (status, JSON reply or None). Records the delivery; the worker processes it."""
        delivery = headers.get("x-github-delivery", "-")
        try:
            event = parse(headers, body, self.secret())
        except ValidationFailure as e:
            log.warning("github.webhook.invalid-signature delivery=%s reason=%s", delivery[:80], e)
            return 401, {"error": "invalid signature"}
        except BadPayload as e:
            log.warning("github.webhook.bad-payload delivery=%s reason=%s", delivery[:80], e)
            return 400, {"error": str(e)}
        if event.name == "ping":
            log.info("github.webhook.ping delivery=%s hook=%s", delivery, event.data.get("hook_id"))
            return 200, {"pong": True}
        if not self.router.handlers(event):
            log.info("github.webhook.unhandled delivery=%s event=%s action=%s", delivery, event.name, event.action)
            return 204, None
        if not self.db.enqueue_delivery(event.delivery_id, event.name, event.action, event.repo_full_name, body):
            log.info("github.webhook.duplicate delivery=%s event=%s", event.delivery_id, event.name)
            return 200, {"duplicate": True}
        log.info("github.webhook.queued delivery=%s event=%s action=%s", event.delivery_id, event.name, event.action)
        if self.autostart:
            self.start()
            self._wake.set()
        return 202, {"queued": True, "delivery": event.delivery_id}

    # --- the worker -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread (once); deliveries a dead process left half done are queued again."""
        with self._start_lock:
            if self._worker is not None and self._worker.is_alive():
                return
            n = self.db.requeue_abandoned()
            if n:
                log.warning("github.webhook.requeued-abandoned count=%s", n)
            self._stop.clear()
            self._worker = threading.Thread(target=self._run, name="github-deliveries", daemon=True)
            self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.process_next()
            except Exception:  # never let the worker die (tests/test_github.py: a database outage)
                log.exception("github.webhook.worker-error")
                busy = False
            if not busy:
                self._wake.wait(self._idle_wait())
                self._wake.clear()

    def _idle_wait(self) -> float:
        try:
            nxt = self.db.next_due_at()
        except Exception as e:  # the database is away for a moment (a restart, a dropped connection): try again soon
            log.warning("github.webhook.database-unavailable error=%s", type(e).__name__)
            return 5.0
        return 5.0 if nxt is None else min(5.0, max(0.01, nxt - time.time()))

    def process_next(self, now: float | None = None) -> bool:
        """Process the oldest due delivery of the repository served least recently (fair across repositories);
        False when none is due."""
        row, _ = self.db.next_due(time.time() if now is None else now, served=self._served)
        if row is None:
            return False
        self._served[row["repo"]] = time.monotonic()
        event = Event(row["event"], row["id"], json.loads(row["payload"] or "{}"))
        try:
            results = self.router.dispatch(event, self.context())
        except Exception as e:
            attempts = int(row["attempts"]) + 1
            detail = f"{type(e).__name__}: {e}"
            if attempts >= self.max_attempts:
                log.error("github.webhook.failed delivery=%s event=%s attempts=%s error=%s", event.delivery_id,
                          event.name, attempts, detail[:300])
                self.db.finish_delivery(event.delivery_id, "failed", detail)
            else:
                wait = min(self.retry_cap, self.retry_base ** attempts)
                log.warning("github.webhook.retry delivery=%s event=%s attempt=%s in=%.1fs error=%s",
                            event.delivery_id, event.name, attempts, wait, detail[:300])
                self.db.retry_delivery(event.delivery_id, time.time() + wait, detail)
            return True
        self.db.finish_delivery(event.delivery_id, "done", json.dumps(results, default=str))
        log.info("github.webhook.processed delivery=%s event=%s action=%s", event.delivery_id, event.name, event.action)
        return True


def github_routes(state, **kwargs) -> list[Route]:
    hook = Webhook(state, **kwargs)
    try:  # deliveries recorded before a restart are processed now, not at the next delivery
        hook.start()
    except Exception as e:  # the database is unusable: deliveries will say so (500), the service still starts
        log.warning("github.webhook.start-failed error=%s", e)

    async def webhook(request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, payload = await run_in_threadpool(hook.handle, headers, body)
        if payload is None:
            return Response(status_code=status)
        return JSONResponse(payload, status_code=status)

    route = Route("/github/webhook", webhook, methods=["POST"], name="github_webhook")
    route.webhook = hook  # type: ignore[attr-defined]  (for /healthz, /metrics and tests)
    return [route]
