"""The Slack app: build the bolt `App`, register the listeners, start Socket Mode (default) or serve
HTTP (`slack_routes`, mounted on the HTTP service, with request-signature verification).

    MODMATCH_SLACK_BOT_TOKEN=xoxb-... MODMATCH_SLACK_APP_TOKEN=xapp-... modmatch serve   # Socket Mode
    MODMATCH_SLACK_MODE=http MODMATCH_SLACK_SIGNING_SECRET=... modmatch serve           # POST /slack/events
"""
from __future__ import annotations

import logging

from . import settings
from .listeners import SlackBot, register_listeners

log = logging.getLogger(__name__)


class SlackConfigError(Exception):
    """A secret the chosen mode needs is missing: the Slack app does not start (fails closed)."""


def build_app(state, *, client=None, bot: SlackBot | None = None, mode: str | None = None,
              signing_secret: str | None = None, **app_kwargs):
    """(bolt App, SlackBot). `client`: a slack_sdk WebClient (default: the bot token, `slack_api_url`)."""
    from slack_bolt import App
    from slack_sdk import WebClient

    mode = (mode or settings.get("slack_mode") or "socket").lower()
    if client is None:
        token = settings.get("slack_bot_token")
        if not token:
            raise SlackConfigError("MODMATCH_SLACK_BOT_TOKEN is not set")
        url = settings.get("slack_api_url")
        client = WebClient(token=token, **({"base_url": url} if url else {}))
    secret = signing_secret if signing_secret is not None else settings.get("slack_signing_secret")
    if mode == "http" and not secret:
        raise SlackConfigError("HTTP mode needs MODMATCH_SLACK_SIGNING_SECRET")
    # listeners only ack() and queue work on the bot's worker, so bolt may run them before it answers Slack
    app_kwargs.setdefault("process_before_response", True)
    app = App(client=client, signing_secret=secret or "", **app_kwargs)
    bot = bot or SlackBot(state)
    register_listeners(app, bot)
    return app, bot


def slack_routes(app) -> list:
    """Starlette route for HTTP mode: POST /slack/events (events, commands, actions, options)."""
    from slack_bolt.request import BoltRequest
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    secret = getattr(app, "_signing_secret", "") or ""

    async def slack_events(request: Request) -> Response:
        raw = await request.body()
        # the signature is checked on the raw bytes before anything parses them (fails closed without a secret)
        if not verify_signature(raw, request.headers.get("x-slack-request-timestamp"),
                                request.headers.get("x-slack-signature"), secret):
            log.warning("slack.http.invalid-signature")
            return Response('{"error": "invalid signature"}', status_code=401, media_type="application/json")
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Response('{"error": "the body is not UTF-8"}', status_code=400, media_type="application/json")
        req = BoltRequest(body=body, query=request.url.query, headers={k: [v] for k, v in request.headers.items()})
        resp = await run_in_threadpool(app.dispatch, req)
        headers = {k: v[0] if isinstance(v, list) else v for k, v in resp.headers.items()}
        return Response(content=resp.body, status_code=resp.status, headers=headers)

    return [Route("/slack/events", slack_events, methods=["POST"], name="slack_events")]


def verify_signature(body: bytes, timestamp: str | None, signature: str | None, secret: str,
                     now: float | None = None, tolerance: int = 300) -> bool:
    """Slack's v0 request signature over the raw body, with a timestamp no older than `tolerance` seconds."""
    import hashlib
    import hmac
    import time

    if not secret or not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(timestamp)) > tolerance:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace"))


def start_socket_mode(app) -> object:
    """Connect over Socket Mode in a background thread; returns the handler (call .close() to stop)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    app_token = settings.get("slack_app_token")
    if not app_token:
        raise SlackConfigError("Socket Mode needs MODMATCH_SLACK_APP_TOKEN (xapp-..., scope connections:write)")
    handler = SocketModeHandler(app, app_token)
    handler.connect()
    log.info("slack.socket-mode.connected")
    return handler


def routes(state) -> list:
    """What the HTTP service mounts for Slack (`bot.serve_cmd.extra_routes`): in HTTP mode POST /slack/events;
    in Socket Mode no route — the connection is opened here, in the background. No bot token: Slack is off."""
    if not settings.get("slack_bot_token"):
        log.info("slack.disabled reason=no-bot-token")
        return []
    mode = (settings.get("slack_mode") or "socket").lower()
    app, _ = build_app(state, mode=mode)
    if mode == "http":
        return slack_routes(app)
    start_socket_mode(app)
    return []
