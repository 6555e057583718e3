"""Slack: the real bolt App and slack_sdk WebClient against a local fake Slack Web API; signed requests
dispatched through bolt's request handling (and over HTTP to a live server in HTTP mode). Channel settings and
questions live in the service database: SQLite and PostgreSQL in turn (the `service_db` fixture)."""
from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import httpx
import pytest
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot import blocks
from bot.slack_app import SlackConfigError, build_app, routes, slack_routes
from bot.state import RepoState
from fakes.slack_api import BOT_USER, FakeSlack
from gitrepo import served_state
from live_server import LiveServer

pytestmark = pytest.mark.usefixtures("service_db")

SIGNING = "slack-signing-secret"


@pytest.fixture
def served(git_repo, _modmatch_home):
    return served_state(git_repo, _modmatch_home, ("app", "other"))


@pytest.fixture
def fake():
    with FakeSlack() as s:
        yield s


@pytest.fixture
def slack(served, fake):
    client = WebClient(token="xoxb-test", base_url=fake.url + "/api/")
    app, bot = build_app(served, client=client, mode="http", signing_secret=SIGNING)
    yield app, bot
    bot.wait_idle()
    bot.close()


def signed(body: str, content_type: str, secret: str = SIGNING) -> dict:
    ts = str(int(time.time()))
    return {"content-type": [content_type], "x-slack-request-timestamp": [ts],
            "x-slack-signature": [SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)]}


def event_body(event: dict, event_id: str = "Ev1") -> str:
    return json.dumps({"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                       "event_id": event_id, "event_time": 1700000000, "event": event,
                       "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}]})


def command_body(text: str, fake: FakeSlack, channel: str = "C1", user: str = "U1", trigger: str = "1.1") -> str:
    return urlencode({"token": "legacy", "team_id": "T1", "channel_id": channel, "user_id": user,
                      "command": "/modmatch", "text": text, "api_app_id": "A1", "trigger_id": trigger,
                      "response_url": fake.response_url()})


def action_body(fake: FakeSlack, action: dict, message: dict, user: str = "U1", channel: str = "C1") -> str:
    payload = {"type": "block_actions", "user": {"id": user}, "team": {"id": "T1"}, "api_app_id": "A1",
               "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel,
                             "is_ephemeral": False},
               "channel": {"id": channel}, "message": message, "response_url": fake.response_url("action"),
               "trigger_id": "9.9", "actions": [{**action, "action_ts": "1700000001.0"}]}
    return urlencode({"payload": json.dumps(payload)})


def dispatch(app, body: str, content_type: str = "application/json", **kw):
    t0 = time.perf_counter()
    resp = app.dispatch(BoltRequest(body=body, headers=signed(body, content_type, **kw)))
    return resp, time.perf_counter() - t0


def all_text(blocks_: list[dict]) -> str:
    return json.dumps(blocks_)


def answer_updates(fake: FakeSlack) -> list[dict]:
    return [c for c in fake.method_calls("chat.update") if c.get("blocks")]


def test_mention_is_acked_at_once_and_answered_in_the_thread(slack, fake, served, monkeypatch):
    app, bot = slack
    real_match = RepoState.match

    def slow_match(self, text, k=5):  # slow work must not delay the ack
        time.sleep(1.5)
        return real_match(self, text, k)

    monkeypatch.setattr(RepoState, "match", slow_match)
    event = {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1700000000.000100",
             "text": f"<@{BOT_USER}> the disk cache LRU eviction evicts the wrong pages"}
    resp, seconds = dispatch(app, event_body(event))
    assert resp.status == 200 and seconds < 1.0
    assert bot.wait_idle(20)
    posts = fake.method_calls("chat.postMessage")
    assert posts and posts[0]["thread_ts"] == "1700000000.000100" and posts[0]["channel"] == "C1"
    [update] = answer_updates(fake)
    assert update["ts"] != posts[0]["thread_ts"] and update["channel"] == "C1"  # the placeholder, replaced
    text = all_text(update["blocks"])
    assert "`storage`" in text and "Paths:" in text and "storage/cache.py" in text and "DiskCache" in text
    assert "matcher" in text and "lexical" in text and served.repo().graph.version in text
    actions = [b for b in update["blocks"] if b["type"] == "actions"]
    assert actions and {e["action_id"] for e in actions[0]["elements"]} == {blocks.ACTION_RIGHT, blocks.ACTION_PICK}
    # a retry of the same event (Slack re-sends when unsure) is not answered twice
    dispatch(app, event_body(event, "Ev1-retry"))
    bot.wait_idle(20)
    assert len(answer_updates(fake)) == 1


def test_feedback_buttons_store_training_examples_once(slack, fake, served):
    app, bot = slack
    event = {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1700000000.000200",
             "text": f"<@{BOT_USER}> TLS handshake fails verifying the certificate"}
    dispatch(app, event_body(event))
    bot.wait_idle(20)
    [update] = answer_updates(fake)
    message = {"ts": update["ts"], "thread_ts": event["ts"], "blocks": update["blocks"]}
    fb_block = next(b for b in update["blocks"] if b["type"] == "actions")
    right = next(e for e in fb_block["elements"] if e["action_id"] == blocks.ACTION_RIGHT)
    click = {"type": "button", "action_id": blocks.ACTION_RIGHT, "block_id": fb_block["block_id"], "value": right["value"]}
    resp, seconds = dispatch(app, action_body(fake, click, message), "application/x-www-form-urlencoded")
    assert resp.status == 200 and seconds < 1.0
    bot.wait_idle(20)
    store = served.repo()  # feedback lives in the service database, beside the repository's own
    assert [(e.subject, e.modules) for e in store.feedback()] == [("TLS handshake fails verifying the certificate",
                                                                   ("network",))]
    done = fake.method_calls("chat.update")[-1]
    assert "training example" in all_text(done["blocks"]) and not [b for b in done["blocks"] if b["type"] == "actions"]
    # the same person clicking again: idempotent, told so
    dispatch(app, action_body(fake, click, message), "application/x-www-form-urlencoded")
    bot.wait_idle(20)
    assert len(store.feedback()) == 1 and "already" in fake.method_calls("chat.postEphemeral")[-1]["text"]
    # another person picks a module from the select
    pick = {"type": "static_select", "action_id": blocks.ACTION_PICK, "block_id": fb_block["block_id"],
            "selected_option": {"value": "ui", "text": {"type": "plain_text", "text": "ui"}}}
    dispatch(app, action_body(fake, pick, message, user="U2"), "application/x-www-form-urlencoded")
    bot.wait_idle(20)
    assert [e.modules for e in store.feedback()] == [("network",), ("ui",)]


def test_slash_command_asks_in_a_new_thread(slack, fake):
    app, bot = slack
    resp, seconds = dispatch(app, command_body("button theme colors wrong in dark mode", fake),
                             "application/x-www-form-urlencoded")
    assert resp.status == 200 and seconds < 1.0 and "Looking" in resp.body
    bot.wait_idle(20)
    intro, placeholder = fake.method_calls("chat.postMessage")[:2]
    assert "<@U1> asked" in intro["text"] and placeholder["thread_ts"] is not None
    assert "`ui`" in all_text(answer_updates(fake)[0]["blocks"])


def test_slash_command_where_the_bot_cannot_post_answers_privately(slack, fake):
    app, bot = slack
    fake.errors["chat.postMessage"] = "not_in_channel"
    dispatch(app, command_body("disk cache eviction", fake, channel="C9"), "application/x-www-form-urlencoded")
    bot.wait_idle(20)
    [reply] = fake.responses("cmd")
    assert reply["response_type"] == "ephemeral" and "`storage`" in all_text(reply["blocks"])


def test_repo_status_and_help_commands(slack, fake, served):
    app, bot = slack
    form = "application/x-www-form-urlencoded"
    resp, _ = dispatch(app, command_body("help", fake), form)
    assert "/modmatch status" in resp.body
    resp, _ = dispatch(app, command_body("repo", fake), form)
    assert "`app`" in resp.body
    resp, _ = dispatch(app, command_body("repo nosuch", fake), form)
    assert "don't serve" in resp.body
    resp, _ = dispatch(app, command_body("repo other", fake), form)
    assert "now asks about `other`" in resp.body
    assert bot.db.channel_repo("C1") == "other" and bot.repo_name_for("C2") == "app"
    dispatch(app, command_body("status", fake), form)
    bot.wait_idle(20)
    status = all_text(fake.responses("cmd")[-1]["blocks"])
    assert "`other`" in status and served.repo("other").graph.version in status and "Last training" in status


def test_direct_message_is_answered_and_bot_messages_ignored(slack, fake):
    app, bot = slack
    dm = {"type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "ts": "1700000000.000300",
          "text": "refund amount wrong 退款"}
    dispatch(app, event_body(dm, "Ev3"))
    dispatch(app, event_body({**dm, "ts": "1700000000.000301", "bot_id": "B1"}, "Ev4"))
    dispatch(app, event_body({**dm, "channel_type": "channel", "channel": "C1", "ts": "1700000000.000302"}, "Ev5"))
    bot.wait_idle(20)
    assert [p["thread_ts"] for p in fake.method_calls("chat.postMessage")] == ["1700000000.000300"]
    assert len(answer_updates(fake)) == 1


def test_failing_work_still_gets_a_reply(slack, fake, monkeypatch):
    app, bot = slack

    def broken(self, text, k=5):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(RepoState, "match", broken)
    event = {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1700000000.000400",
             "text": f"<@{BOT_USER}> anything"}
    resp, _ = dispatch(app, event_body(event))
    assert resp.status == 200
    bot.wait_idle(20)
    [update] = answer_updates(fake)
    assert "matching failed" in all_text(update["blocks"])
    # an empty mention gets told what to do
    dispatch(app, event_body({**event, "ts": "1700000000.000401", "text": f"<@{BOT_USER}>"}, "Ev6"))
    bot.wait_idle(20)
    assert "need a requirement" in all_text(answer_updates(fake)[-1]["blocks"])


def test_bad_signature_is_rejected(slack, fake):
    app, bot = slack
    event = {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1.2", "text": "x"}
    resp, _ = dispatch(app, event_body(event), secret="wrong")
    assert resp.status == 401
    bot.wait_idle(5)
    assert not fake.method_calls("chat.postMessage")


def test_http_mode_over_a_live_server(slack, fake, served):
    app, bot = slack
    try:
        from bot.service import create_app
    except ImportError:
        create_app = None
    asgi = create_app(served, slack_routes(app)) if create_app else __import__(
        "starlette.applications", fromlist=["Starlette"]).Starlette(routes=slack_routes(app))
    body = event_body({"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1700000000.000500",
                       "text": f"<@{BOT_USER}> write-ahead log fsync"}, "Ev7")
    with LiveServer(asgi) as live:
        headers = {k: v[0] for k, v in signed(body, "application/json").items()}
        r = httpx.post(live.url + "/slack/events", content=body, headers=headers, timeout=10)
        assert r.status_code == 200
        bad = {**headers, "x-slack-signature": "v0=" + "0" * 64}
        assert httpx.post(live.url + "/slack/events", content=body, headers=bad, timeout=10).status_code == 401
    bot.wait_idle(20)
    assert "`storage`" in all_text(answer_updates(fake)[0]["blocks"])


def test_large_graphs_use_an_external_select(slack, fake, served):
    from types import SimpleNamespace

    app, bot = slack
    graph = SimpleNamespace(modules={f"pkg/m{i:03d}": None for i in range(150)})
    answer = SimpleNamespace(matches=[SimpleNamespace(module="pkg/m007", confidence=0.9, evidence=[])])
    block = blocks.feedback_actions(1, answer, graph)
    assert [e["type"] for e in block["elements"]] == ["button", "external_select"]
    opts = blocks.search_options(graph.modules, "m01", first=["pkg/m007"])
    assert 0 < len(opts) <= 100 and all("m01" in o["value"] for o in opts)
    # the options listener answers block_suggestion requests
    qid = bot.db.claim_question("test:1", "C1", "app", "U1", "disk cache")
    payload = {"type": "block_suggestion", "action_id": blocks.ACTION_PICK, "block_id": f"{blocks.FEEDBACK_BLOCK}:{qid}",
               "value": "sto", "user": {"id": "U1"}, "team": {"id": "T1"}, "api_app_id": "A1",
               "container": {"type": "message", "message_ts": "1.1", "channel_id": "C1"}}
    resp, _ = dispatch(app, urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")
    assert resp.status == 200 and [o["value"] for o in json.loads(resp.body)["options"]] == ["storage"]


def test_missing_secrets_fail_closed(served, monkeypatch):
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(f"MODMATCH_{name}", raising=False)
    assert routes(served) == []  # no bot token: Slack is off
    monkeypatch.setenv("MODMATCH_SLACK_BOT_TOKEN", "xoxb-x")
    monkeypatch.setenv("MODMATCH_SLACK_MODE", "http")
    with pytest.raises(SlackConfigError):
        routes(served)  # HTTP mode without a signing secret


def test_answer_blocks_fit_slack_limits(served):
    rs = served.repo()
    ans = rs.match("disk cache " * 2000, k=3)
    out = blocks.answer_blocks("disk cache " * 2000, ans, rs.graph, repo="app", question_id=1)
    assert all(len(b["text"]["text"]) <= 3000 for b in out if b["type"] == "section")
    assert blocks.module_from_value(blocks.option_value("x" * 200), ["x" * 200]) == "x" * 200


def test_an_answer_carries_one_caution_and_the_words_not_read(served):
    """Under the answer, Slack says why none may be right or, failing that, that the first answer is below the label
    threshold (one caution, not both), and names the words it could not read whatever the confidence."""
    from bot.state import Answer
    from inference.base import Match

    rs = served.repo()
    mid = sorted(rs.graph.modules)[0]

    def context(ans) -> list[str]:
        out = blocks.answer_blocks("发票金额不对", ans, rs.graph, repo="app", question_id=1, threshold=0.8)
        return [e["text"] for b in out[:-2] if b["type"] == "context" for e in b["elements"]]  # less versions, buttons

    low = [Match(mid, 1.0, 0.2, [])]
    assert [t.split(" ", 1)[0] for t in context(Answer(low, "hybrid", "g1"))] == [":warning:"]
    assert [t.split(" ", 1)[0] for t in context(Answer(low, "hybrid", "g1", no_module="no word it knows"))] == \
        [":grey_question:"]
    notes = context(Answer(low, "hybrid", "g1", unread=["发票", "金额"]))
    assert [t.split(" ", 1)[0] for t in notes] == [":warning:", ":abc:"] and "发票、金额" in notes[1]
    sure = [Match(mid, 9.0, 0.95, ["words: disk"])]
    assert [t.split(" ", 1)[0] for t in context(Answer(sure, "hybrid", "g1", unread=["发票"]))] == [":abc:"]
    assert context(Answer(sure, "hybrid", "g1")) == []


def test_a_confidence_is_never_shown_as_certain_or_impossible(served):
    from bot.github.labeler import suggestions_comment
    from bot.state import Answer
    from inference.base import Match, percent
    assert [percent(c) for c in (0.998, 0.99, 0.5, 0.012, 0.004, 0.0, 1.0)] == \
        [">99%", "99%", "50%", "1%", "<1%", "0%", "100%"]
    rs = served.repo()
    mids = sorted(rs.graph.modules)[:2]
    ans = Answer([Match(mids[0], 9.0, 0.998, ["words: disk"]), Match(mids[1], 1.0, 0.003, [])], "hybrid", "g1")
    text = json.dumps(blocks.answer_blocks("disk cache", ans, rs.graph, repo="app", question_id=1))
    assert ">99% confident" in text and "100%" not in text
    comment = suggestions_comment(ans, "module:", 2.0)
    assert f"`{mids[0]}` — >99% —" in comment and f"`{mids[1]}` — <1% —" in comment
