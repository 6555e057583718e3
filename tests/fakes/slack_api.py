"""A fake Slack Web API: the methods modmatch's Slack app uses, plus response_url endpoints.

    with FakeSlack() as slack:
        client = WebClient(token="xoxb-test", base_url=slack.url + "/api/")
        ...
        slack.method_calls("chat.postMessage")  # → the arguments of each call
"""
from __future__ import annotations

import itertools
import threading

from .server import Call, FakeServer

BOT_USER = "UBOT"


class FakeSlack(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self._ts = itertools.count(1)
        self._ts_lock = threading.Lock()
        self.errors: dict[str, str] = {}  # method → Slack error code to answer with (e.g. not_in_channel)

    def next_ts(self) -> str:
        with self._ts_lock:
            return f"1700000000.{next(self._ts):06d}"

    def method_calls(self, method: str) -> list[dict]:
        return [c["body"] or {} for c in list(self.calls) if c["path"] == f"/api/{method}"]

    def response_url(self, name: str = "cmd") -> str:
        return f"{self.url}/response/{name}"

    def responses(self, name: str = "cmd") -> list[dict]:
        return [c["body"] for c in list(self.calls) if c["path"] == f"/response/{name}"]

    def handle(self, call: Call):
        path = call["path"]
        if path.startswith("/response/"):
            return 200, {"ok": True}, None
        if not path.startswith("/api/"):
            return 404, {"ok": False, "error": "unknown_path"}, None
        method = path[len("/api/"):]
        if not (call["headers"].get("authorization") or "").startswith("Bearer xoxb-"):
            return 200, {"ok": False, "error": "not_authed"}, None
        if method in self.errors:
            return 200, {"ok": False, "error": self.errors[method]}, None
        body = call["body"] if isinstance(call["body"], dict) else {}
        if method == "auth.test":
            return 200, {"ok": True, "url": "https://example.slack.com/", "team": "Example", "user": "modmatch",
                         "team_id": "T1", "user_id": BOT_USER, "bot_id": "B1", "is_enterprise_install": False}, None
        if method == "chat.postMessage":
            ts = self.next_ts()
            return 200, {"ok": True, "channel": body.get("channel"), "ts": ts,
                         "message": {"text": body.get("text"), "ts": ts, "thread_ts": body.get("thread_ts")}}, None
        if method == "chat.update":
            return 200, {"ok": True, "channel": body.get("channel"), "ts": body.get("ts"), "text": body.get("text")}, None
        if method == "chat.postEphemeral":
            return 200, {"ok": True, "message_ts": self.next_ts()}, None
        if method in ("views.open", "views.update", "views.publish", "views.push"):
            return 200, {"ok": True, "view": {"id": "V1", **(body.get("view") or {})}}, None
        return 200, {"ok": False, "error": "unknown_method"}, None
