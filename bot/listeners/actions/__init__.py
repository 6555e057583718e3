"""Feedback on an answer: "Right" (the top module) or a module picked from the select. Stored as a training
example through `RepoState.add_feedback`, idempotent per answer message and person."""
from __future__ import annotations

import logging

from ... import blocks
from ..core import SlackBot

log = logging.getLogger(__name__)


def register(app, bot: SlackBot) -> None:
    @app.action(blocks.ACTION_RIGHT)
    def on_right(ack, body, action, client, respond):
        ack()
        bot.submit(record_feedback, bot, client, respond, body, action, action.get("value", ""))

    @app.action(blocks.ACTION_PICK)
    def on_pick(ack, body, action, client, respond):
        ack()
        value = (action.get("selected_option") or {}).get("value", "")
        bot.submit(record_feedback, bot, client, respond, body, action, value)

    @app.options(blocks.ACTION_PICK)
    def pick_options(ack, body):
        q = bot.db.question(_question_id(body.get("block_id", "")) or -1)
        try:
            rs = bot.state.repo(q["repo"] if q else None)
            ack(options=blocks.search_options(rs.graph.modules, body.get("value", ""), first=q["answer"] if q else ()))
        except Exception as e:
            log.warning("slack.options.failed error=%s", e)
            ack(options=[])


def _question_id(block_id: str) -> int | None:
    head, _, tail = block_id.partition(":")
    return int(tail) if head == blocks.FEEDBACK_BLOCK and tail.isdigit() else None


def record_feedback(bot: SlackBot, client, respond, body: dict, action: dict, value: str) -> None:
    user = (body.get("user") or {}).get("id", "")
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    msg_ts = container.get("message_ts") or message.get("ts")
    thread_ts = message.get("thread_ts")

    def tell(text: str) -> None:
        try:
            client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except Exception:
            respond(text=text, response_type="ephemeral", replace_original=False)

    q = bot.db.question(_question_id(action.get("block_id", "")) or -1)
    if not q:
        tell("I no longer know the question of this answer; ask again, please.")
        return
    try:
        rs = bot.state.repo(q["repo"])
    except KeyError:
        tell(f"The repository `{q['repo']}` is no longer served.")
        return
    module = blocks.module_from_value(value, rs.graph.modules)
    if module is None:
        tell("That module is not in the current graph any more (it was refreshed); ask again, please.")
        return
    key = f"slack:{channel}:{msg_ts}:{user}"
    try:
        added = rs.add_feedback(q["text"], [module], "slack", key)
    except Exception as e:
        log.exception("slack.feedback.failed key=%s", key)
        tell(f"Sorry, I could not save that ({type(e).__name__}).")
        return
    log.info("slack.feedback key=%s module=%s added=%s", key, module, added)
    if not added:
        tell("You already gave feedback on this answer — thanks!")
        return
    new_blocks = blocks.feedback_done_blocks(message.get("blocks") or [], user, module, True)
    if message and not container.get("is_ephemeral"):
        client.chat_update(channel=channel, ts=msg_ts, text=f"modmatch: {module} (confirmed)", blocks=new_blocks)
    else:
        respond(text=f"Saved: {module}", blocks=new_blocks, replace_original=True)
