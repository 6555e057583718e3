"""`/modmatch <requirement>`, `/modmatch repo [name]`, `/modmatch status`, `/modmatch help`."""
from __future__ import annotations

from ... import blocks
from ..core import SlackBot


def register(app, bot: SlackBot) -> None:
    @app.command("/modmatch")
    def modmatch_command(ack, command, respond, client, logger):
        text = (command.get("text") or "").strip()
        word, _, rest = text.partition(" ")
        sub, rest = word.lower(), rest.strip()
        channel, user = command.get("channel_id"), command.get("user_id")
        if sub in ("", "help"):
            ack(response_type="ephemeral", text="How to use modmatch", blocks=blocks.help_blocks(list(bot.state.repos)))
            return
        if sub == "repo":
            ack(response_type="ephemeral", text=_repo_command(bot, channel, user, rest))
            return
        if sub == "status":
            ack(response_type="ephemeral", text=":hourglass_flowing_sand: Checking…")
            bot.submit(lambda: respond(response_type="ephemeral", text="modmatch status",
                                       blocks=blocks.status_blocks(bot.status_info(channel))))
            return
        ack(response_type="ephemeral", text=f":mag: Looking for the modules of: {blocks.esc(text[:300])}")
        logger.info("slack.command.ask channel=%s user=%s", channel, user)
        bot.submit(bot.answer, client, channel=channel, text=text, user=user, respond=respond,
                   source_key=f"command:{command.get('trigger_id') or command.get('command_ts') or id(command)}",
                   intro=f"<@{user}> asked: {blocks.esc(' '.join(text.split())[:2500])}")


def _repo_command(bot: SlackBot, channel: str, user: str, name: str) -> str:
    served = ", ".join(f"`{r}`" for r in bot.state.repos) or "none"
    if not name:
        current = bot.repo_name_for(channel)
        return f"This channel asks about `{current}`. Served: {served}. Change it with `/modmatch repo <name>`."
    if name not in bot.state.repos:
        return f"I don't serve a repository named `{blocks.esc(name)}`. Served: {served}."
    bot.db.set_channel_repo(channel, name, user)
    return f"This channel now asks about `{name}`."
