"""Slack listeners, registered by kind (the bolt-python starter layout): each package exposes
`register(app, bot)`; every callback calls `ack()` first and hands slow work to `bot.submit`."""
from __future__ import annotations

from . import actions, commands, events, messages
from .core import SlackBot, SlackDB  # noqa: F401


def register_listeners(app, bot: SlackBot) -> None:
    commands.register(app, bot)
    events.register(app, bot)
    messages.register(app, bot)
    actions.register(app, bot)
