"""Routing by event and action, gidgethub style:

    @router.register("issues", action="opened")
    def label_issue(event, ctx): ...

A handler gets the verified `Event` and a `Context` (what the bot serves and how it reaches GitHub) and
returns a short result for the log / HTTP reply."""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import settings
from ..state import AppState, RepoState
from .client import GitHubClients
from .db import GitHubDB
from .verify import Event

log = logging.getLogger(__name__)

Handler = Callable[[Event, "Context"], Any]


class Router:
    def __init__(self) -> None:
        self._routes: dict[tuple[str, str | None], list[Handler]] = defaultdict(list)

    def register(self, event: str, action: str | None = None) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self._routes[(event, action)].append(fn)
            return fn

        return deco

    def handlers(self, event: Event) -> list[Handler]:
        return self._routes.get((event.name, None), []) + (
            self._routes.get((event.name, event.action), []) if event.action else [])

    def dispatch(self, event: Event, ctx: "Context") -> list[Any]:
        return [h(event, ctx) for h in self.handlers(event)]


router = Router()


def repo_map(value: str | None) -> dict[str, str]:
    """'owner/name=repo,owner/other=repo2' → {'owner/name': 'repo', ...} (keys lower-cased)."""
    out: dict[str, str] = {}
    for part in (value or "").replace(";", ",").split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            if k.strip() and v.strip():
                out[k.strip().lower()] = v.strip()
    return out


@dataclass
class Options:
    label_prefix: str = "module:"
    threshold: float | None = None  # None: the served matcher's operating point (see RepoState.label_threshold)
    max_labels: int = 2
    comment: bool = True
    repos: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls) -> "Options":
        return cls(label_prefix=settings.get("github_label_prefix") or "module:",
                   threshold=settings.get_auto_float("github_label_threshold"),
                   max_labels=max(1, settings.get_int("github_max_labels", 2)), comment=settings.get_bool("github_comment"),
                   repos=repo_map(settings.get("github_repos")))


@dataclass
class Context:
    state: AppState
    clients: GitHubClients
    db: GitHubDB
    options: Options

    def repo_state(self, full_name: str | None) -> RepoState | None:
        """The served repository that answers for GitHub's `full_name`, or None (not ours)."""
        if not full_name:
            return None
        if self.options.repos:
            name = self.options.repos.get(full_name.lower())
            return self.state.repos.get(name) if name else None
        return self.state.repo() if self.state.repos else None

    def issue_of(self, event: Event) -> tuple[RepoState | None, dict, int | None]:
        """(the served repository, the issue payload, its number) of an `issues` event; the number is
        None when the payload has none (the repository is None when it is not one of ours)."""
        issue = event.data.get("issue") or {}
        number = issue.get("number")
        return self.repo_state(event.repo_full_name), issue, number if isinstance(number, int) else None

    def is_bot(self, event: Event) -> bool:
        sender = event.sender
        login = sender.get("login") or ""
        if sender.get("type") == "Bot" or login.endswith("[bot]"):
            return True
        mine = self.clients.bot_login(event.repo_full_name, event.installation_id)
        return bool(mine) and login.lower() == mine.lower()
