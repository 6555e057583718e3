"""The Starlette route for GitHub: POST /github/webhook (`bot.github.routes(state)` mounts it).

Status codes tell the sender what happened: 401 bad or missing signature (or no secret configured), 400 not
JSON / missing headers, 200 ping, 204 an event nothing handles, 200 processed (or a duplicate delivery, skipped),
500 processing failed (the delivery may be redelivered)."""
from __future__ import annotations

import json
import logging

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
                 options: Options | None = None, secret: str | None = None, router: Router | None = None):
        self.state = state
        self._clients, self._db, self._options, self._secret = clients, db, options, secret
        self.router = router or default_router

    def secret(self) -> str | None:
        return self._secret if self._secret is not None else settings.get("github_webhook_secret")

    def context(self) -> Context:
        if self._clients is None:
            self._clients = GitHubClients.from_settings()
        if self._db is None:
            self._db = GitHubDB()
        return Context(self.state, self._clients, self._db, self._options or Options.from_settings())

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict | None]:
        """Sans-framework core: (status, JSON reply or None)."""
        delivery = headers.get("x-github-delivery", "-")
        try:
            event = parse(headers, body, self.secret())
        except ValidationFailure as e:
            log.warning("github.webhook.invalid-signature delivery=%s reason=%s", delivery, e)
            return 401, {"error": "invalid signature"}
        except BadPayload as e:
            log.warning("github.webhook.bad-payload delivery=%s reason=%s", delivery, e)
            return 400, {"error": str(e)}
        if event.name == "ping":
            log.info("github.webhook.ping delivery=%s hook=%s", delivery, event.data.get("hook_id"))
            return 200, {"pong": True}
        if not self.router.handlers(event):
            log.info("github.webhook.unhandled delivery=%s event=%s action=%s", delivery, event.name, event.action)
            return 204, None
        return self._process(event)

    def _process(self, event: Event) -> tuple[int, dict | None]:
        ctx = self.context()
        if not ctx.db.claim_delivery(event.delivery_id, event.name, event.action, event.repo_full_name):
            log.info("github.webhook.duplicate delivery=%s event=%s", event.delivery_id, event.name)
            return 200, {"duplicate": True}
        try:
            results = self.router.dispatch(event, ctx)
        except Exception as e:
            log.exception("github.webhook.failed delivery=%s event=%s action=%s", event.delivery_id, event.name,
                          event.action)
            ctx.db.finish_delivery(event.delivery_id, "failed", f"{type(e).__name__}: {e}")
            return 500, {"error": f"processing failed: {type(e).__name__}"}
        ctx.db.finish_delivery(event.delivery_id, "done", json.dumps(results, default=str))
        log.info("github.webhook.processed delivery=%s event=%s action=%s", event.delivery_id, event.name, event.action)
        return 200, {"results": results}


def github_routes(state, **kwargs) -> list[Route]:
    hook = Webhook(state, **kwargs)

    async def webhook(request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, payload = await run_in_threadpool(hook.handle, headers, body)
        if payload is None:
            return Response(status_code=status)
        return JSONResponse(payload, status_code=status)

    return [Route("/github/webhook", webhook, methods=["POST"], name="github_webhook")]
