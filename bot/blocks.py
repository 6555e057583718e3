"""Block Kit rendering of modmatch answers, help and status for Slack. Pure functions: data in, blocks out.

Slack limits respected here: section text 3000 characters, option text 75, option value 150,
at most 100 options in a static select (larger graphs use an external select)."""
from __future__ import annotations

import hashlib
from typing import Iterable

from inference.base import unread_note

SECTION_MAX = 2900
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
STATIC_OPTIONS_MAX = 100

ACTION_RIGHT = "modmatch_right"
ACTION_PICK = "modmatch_pick"
FEEDBACK_BLOCK = "modmatch_feedback"  # block_id: f"{FEEDBACK_BLOCK}:{question id}"


def esc(text: str) -> str:
    """Escape text for mrkdwn (Slack's three control characters)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def code(text: str) -> str:
    return "`" + esc(str(text).replace("`", "'")) + "`"


def option_value(module_id: str) -> str:
    """A select option's value for a module (IDs longer than Slack allows become a hash)."""
    if len(module_id) <= OPTION_VALUE_MAX and not module_id.startswith("#"):
        return module_id
    return "#" + hashlib.sha1(module_id.encode()).hexdigest()[:20]


def module_from_value(value: str, module_ids: Iterable[str]) -> str | None:
    ids = list(module_ids)
    if not value.startswith("#"):
        return value if value in ids else None
    return next((m for m in ids if option_value(m) == value), None)


def module_option(module_id: str) -> dict:
    return {"text": {"type": "plain_text", "text": clip(module_id, OPTION_TEXT_MAX)}, "value": option_value(module_id)}


def _module_details(module, evidence: list[str], named: list[str] | None = None) -> list[str]:
    lines = []
    if module is None:
        return lines
    paths = [p or "(repository root)" for p in module.paths[:3]]
    if paths:
        lines.append("*Paths:* " + ", ".join(code(p) for p in paths))
    # the files the answer names (`Match.files`), else those the evidence names first, then the module's first ones;
    # symbols the evidence names first
    ev = " ".join(evidence).lower()
    files = list(named or ()) or sorted(module.files, key=lambda f: (f.rsplit("/", 1)[-1].lower() not in ev, f))[:3]
    if files:
        lines.append("*Key files:* " + ", ".join(code(f) for f in files))
    names: list[str] = []
    for s in sorted(module.symbols, key=lambda s: (s.name.lower() not in ev, s.path, s.line)):
        if s.name not in names:
            names.append(s.name)
        if len(names) == 5:
            break
    if names:
        lines.append("*Symbols:* " + ", ".join(code(n) for n in names))
    return lines


def answer_blocks(question: str, answer, graph, *, repo: str, question_id: int | None = None,
                  threshold: float = 0.0) -> list[dict]:
    """The answer to one requirement: top modules with confidence, paths, key files/symbols, the reason,
    the versions used, and feedback controls."""
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": clip(
        f"*Modules for:* {esc(' '.join(question.split()))}", SECTION_MAX)}}]
    if not answer.matches:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text":
                       "No module matched this requirement. If you know the right one, pick it below."}})
    shown = [m for i, m in enumerate(answer.matches) if i == 0 or m.evidence or m.confidence >= 0.05]
    for i, m in enumerate(shown, 1):
        module = graph.modules.get(m.module)
        head = f"*{i}. {code(m.module)}* — {m.percent} confident"
        if module is not None and module.description:
            head += f"\n{esc(clip(' '.join(module.description.split()), 300))}"
        lines = [head, *_module_details(module, m.evidence, m.files)]
        if m.evidence:
            lines.append("*Why:* " + esc("; ".join(clip(" ".join(e.split()), 240) for e in m.evidence[:3])))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip("\n".join(lines), SECTION_MAX)}})
    # one caution about the answer (why none may be right, else a first answer below the label threshold), then
    # the words that were not read, which hold whatever the confidence
    if getattr(answer, "no_module", None):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       f":grey_question: Not confident: {esc(answer.no_module)}. None of these may be right."}]})
    elif answer.matches and threshold and answer.matches[0].confidence < threshold:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       ":warning: Low confidence — please confirm or pick the right module."}]})
    if getattr(answer, "unread", None):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       f":abc: {esc(unread_note(answer.unread))}"}]})
    blocks.append(version_context(answer, repo))
    if question_id is not None:
        blocks.append(feedback_actions(question_id, answer, graph))
    return blocks


def version_context(answer, repo: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text":
            f"repo {code(repo)} · matcher {code(answer.matcher)} · graph {code(answer.graph_version)} · "
            f"model {code(answer.model_version or '—')} · {answer.seconds:.2f}s"}]}


def feedback_actions(question_id: int, answer, graph) -> dict:
    elements: list[dict] = []
    if answer.matches:
        top = answer.matches[0].module
        elements.append({"type": "button", "action_id": ACTION_RIGHT, "style": "primary",
                         "text": {"type": "plain_text", "text": f"✓ Right: {clip(top, 60)}"},
                         "value": option_value(top)})
    ids = list(graph.modules)
    if len(ids) <= STATIC_OPTIONS_MAX:
        first = [m.module for m in answer.matches if m.module in graph.modules]
        ordered = first + [m for m in ids if m not in first]
        elements.append({"type": "static_select", "action_id": ACTION_PICK,
                         "placeholder": {"type": "plain_text", "text": "Pick the right module"},
                         "options": [module_option(m) for m in ordered[:STATIC_OPTIONS_MAX]]})
    else:  # a large graph: Slack asks our options listener as the user types
        elements.append({"type": "external_select", "action_id": ACTION_PICK, "min_query_length": 0,
                         "placeholder": {"type": "plain_text", "text": "Pick the right module"}})
    return {"type": "actions", "block_id": f"{FEEDBACK_BLOCK}:{question_id}", "elements": elements}


def search_options(module_ids: Iterable[str], query: str, first: Iterable[str] = ()) -> list[dict]:
    """Options for the external select: modules whose ID contains the typed text, at most 100."""
    q = (query or "").strip().lower()
    firsts = [m for m in first if q in m.lower()]
    rest = [m for m in module_ids if q in m.lower() and m not in firsts]
    rest.sort(key=lambda m: (not m.lower().startswith(q), m.count("/"), m))
    return [module_option(m) for m in (firsts + rest)[:STATIC_OPTIONS_MAX]]


def feedback_done_blocks(blocks: list[dict], user: str, module_id: str, recorded: bool) -> list[dict]:
    """The answer's blocks with the feedback controls replaced by who confirmed what."""
    kept = [b for b in blocks if not str(b.get("block_id", "")).startswith(FEEDBACK_BLOCK)]
    note = (f":white_check_mark: <@{esc(user)}> marked {code(module_id)} as the right module — saved as a training example."
            if recorded else f"<@{esc(user)}> already gave feedback on this answer.")
    return kept + [{"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}]


def error_blocks(message: str) -> list[dict]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": clip(f":warning: {esc(message)}", SECTION_MAX)}}]


HELP = """*modmatch* finds the modules of a repository that a requirement is about.
• Mention me with a requirement: `@modmatch the refund amount is wrong on invoices`
• Or send me a DM, or use `/modmatch <requirement>`
• `/modmatch repo` — which repository this channel asks about; `/modmatch repo <name>` — change it
• `/modmatch status` — graph and model versions, last training
• `/modmatch help` — this message
Each answer has buttons: confirm the top module or pick the right one — your answer becomes a training example."""


def help_blocks(repos: list[str]) -> list[dict]:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": HELP}}]
    if repos:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       "Repositories served: " + ", ".join(code(r) for r in repos)}]})
    return blocks


def status_blocks(info: dict) -> list[dict]:
    lines = [f"*Repository* {code(info['repo'])}" + (f" ({esc(info['root'])})" if info.get("root") else "")]
    for label, key in (("Graph version", "graph_version"), ("Graph commit", "graph_commit"), ("Modules", "modules"),
                       ("Matcher", "matcher"), ("Model", "model_version"), ("Last training", "last_training"),
                       ("Feedback examples", "feedback")):
        if info.get(key) not in (None, ""):
            lines.append(f"*{label}:* {esc(str(info[key]))}")
    if info.get("error"):
        lines.append(f":warning: {esc(info['error'])}")
    return [{"type": "section", "text": {"type": "mrkdwn", "text": clip("\n".join(lines), SECTION_MAX)}}]
