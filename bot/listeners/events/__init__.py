"""`app_mention`: a requirement asked by mentioning the bot; answered in the message's thread."""
from __future__ import annotations

from ..core import SlackBot


def register(app, bot: SlackBot) -> None:
    @app.event("app_mention")
    def on_mention(ack, event, client, logger):
        ack()
        channel, ts = event.get("channel"), event.get("ts")
        logger.info("slack.mention channel=%s ts=%s", channel, ts)
        bot.submit(bot.answer, client, channel=channel, text=event.get("text", ""), user=event.get("user"),
                   thread_ts=event.get("thread_ts") or ts, source_key=f"message:{channel}:{ts}")
