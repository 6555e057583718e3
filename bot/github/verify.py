"""Sans-I/O webhook handling: check the signature, parse the delivery. No web framework, no network.

    event = parse(headers, body, secret)   # raises ValidationFailure (401) or BadPayload (400)
    event.name, event.action, event.delivery_id, event.data
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import BadPayload, ValidationFailure


def sign(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def validate_signature(body: bytes, signature: str | None, secret: str | None) -> None:
    """Raise ValidationFailure unless `signature` is the HMAC-SHA256 of `body` under `secret`.

    With no secret configured nothing is valid: the webhook fails closed."""
    if not secret:
        raise ValidationFailure("no webhook secret configured")
    if not signature:
        raise ValidationFailure("missing X-Hub-Signature-256")
    if not hmac.compare_digest(signature.strip().encode("utf-8", "replace"), sign(body, secret).encode("ascii")):
        raise ValidationFailure("signature does not match")


@dataclass(frozen=True)
class Event:
    name: str  # X-GitHub-Event: issues, push, pull_request, ping, ...
    delivery_id: str  # X-GitHub-Delivery
    data: dict[str, Any]

    @property
    def action(self) -> str | None:
        a = self.data.get("action")
        return a if isinstance(a, str) else None

    @property
    def repo_full_name(self) -> str | None:
        repo = self.data.get("repository")
        return repo.get("full_name") if isinstance(repo, dict) else None

    @property
    def installation_id(self) -> int | None:
        inst = self.data.get("installation")
        return inst.get("id") if isinstance(inst, dict) and isinstance(inst.get("id"), int) else None

    @property
    def sender(self) -> dict[str, Any]:
        s = self.data.get("sender")
        return s if isinstance(s, dict) else {}


OBJECT_FIELDS = ("issue", "pull_request", "repository", "sender", "installation", "label", "hook", "comment")


def parse(headers: Mapping[str, str], body: bytes, secret: str | None) -> Event:
    """Verify and parse one delivery. The signature is checked before the body is read as JSON."""
    h = {k.lower(): v for k, v in headers.items()}
    validate_signature(body, h.get("x-hub-signature-256"), secret)
    name, delivery = h.get("x-github-event"), h.get("x-github-delivery")
    if not name or not delivery:
        raise BadPayload("missing X-GitHub-Event or X-GitHub-Delivery")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadPayload(f"body is not JSON: {e}") from None
    except RecursionError:
        raise BadPayload("body nests too deeply") from None
    if not isinstance(data, dict):
        raise BadPayload("body is not a JSON object")
    for key in OBJECT_FIELDS:  # what the handlers read as objects must be objects
        if key in data and data[key] is not None and not isinstance(data[key], dict):
            raise BadPayload(f"`{key}` is not a JSON object")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        raise BadPayload("body holds a string that is not valid Unicode, or nests too deeply") from None
    if len(delivery) > 200 or len(name) > 100:
        raise BadPayload("X-GitHub-Event or X-GitHub-Delivery is too long")
    return Event(name, delivery, data)
