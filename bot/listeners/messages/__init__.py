"""Direct messages to the bot: each is a requirement, answered in its thread. Other messages are ignored."""
from __future__ import annotations

from ..core import SlackBot


def register(app, bot: SlackBot) -> None:
    @app.event("message")
    def on_message(ack, event, client, logger):
        ack()
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        channel, ts = event.get("channel"), event.get("ts")
        logger.info("slack.dm channel=%s ts=%s", channel, ts)
        bot.submit(bot.answer, client, channel=channel, text=event.get("text", ""), user=event.get("user"),
                   thread_ts=event.get("thread_ts") or ts, source_key=f"message:{channel}:{ts}")
