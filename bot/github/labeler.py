"""`issues` opened / edited / reopened: match the issue and label it `module:<id>` when confident;
otherwise (optionally) one comment with ranked suggestions.

Labels come only from the module graph — never from the issue's text — so an issue that asks for other
labels gets module labels or nothing. The bot only adds labels: it never removes or replaces one, and once
a person has changed an issue's module labels it leaves that issue's module labels alone."""
from __future__ import annotations

import logging

from github import GithubException

from inference.base import unread_note
from inference.errors import BadInputError

from .labels import color_for, description_for, label_for
from .router import Context, router
from .text import issue_text
from .verify import Event

log = logging.getLogger(__name__)

COMMENT_MARKER = "<!-- modmatch:suggestions -->"


def _quiet(text: str, limit: int = 300) -> str:
    """Text from the repository shown in a comment: no @-mentions, no markup surprises, bounded."""
    text = " ".join(str(text).split()).replace("@", "@\u200b").replace("<", "&lt;").replace(">", "&gt;")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def suggestions_comment(answer, prefix: str, threshold: float) -> str:
    why = (f"below {threshold:.0%}" if threshold <= 1.0 else
           "no confidence reached the precision it labels at on this repository's history")
    lines = [COMMENT_MARKER, f"**modmatch** is not confident enough ({why}) to label this issue. "
             "Modules that may be involved:", ""]
    if getattr(answer, "unread", None):  # the reporter can say those words another way
        lines[-1:-1] = ["", f"_{_quiet(unread_note(answer.unread))}_"]
    for i, m in enumerate(answer.matches, 1):
        why = "; ".join(_quiet(e, 160) for e in m.evidence[:3]) or "—"
        where = f" (files: {', '.join(f'`{f}`' for f in m.files)})" if m.files else ""
        lines.append(f"{i}. `{m.module}`{where} — {m.percent} — {why}")
    lines += ["", f"A maintainer can apply the right `{prefix}<module>` label; modmatch learns from it.",
              f"<sub>matcher `{answer.matcher}` · graph `{answer.graph_version}` · model `{answer.model_version or '—'}`</sub>"]
    return "\n".join(lines)


@router.register("issues", action="opened")
@router.register("issues", action="edited")
@router.register("issues", action="reopened")
def label_issue(event: Event, ctx: Context) -> dict:
    full_name = event.repo_full_name
    rs, issue, number = ctx.issue_of(event)
    if rs is None or number is None or issue.get("pull_request"):
        return {"skipped": "not a served repository or not an issue"}
    if event.action == "edited" and not ({"title", "body"} & set((event.data.get("changes") or {}).keys())):
        return {"skipped": "no change to title or body"}
    opts = ctx.options
    current = {lb.get("name", "") for lb in issue.get("labels") or [] if isinstance(lb, dict)}
    module_labels = {lb for lb in current if lb.lower().startswith(opts.label_prefix.lower())}
    if ctx.db.human_owned(full_name, number) or (module_labels - ctx.db.bot_labels(full_name, number)):
        log.info("github.labeler.human-owned delivery=%s repo=%s issue=%s", event.delivery_id, full_name, number)
        return {"skipped": "a person set this issue's module labels"}
    try:
        text = issue_text(issue.get("title"), issue.get("body"))
        answer = rs.match(text, k=max(5, opts.max_labels))
    except BadInputError as e:
        return {"skipped": f"nothing to match: {e}"}
    if answer.no_module:
        log.info("github.labeler.no-module delivery=%s repo=%s issue=%s", event.delivery_id, full_name, number)
        return {"labels": [], "no_module": answer.no_module}
    graph = rs.graph
    valid = [m for m in answer.matches if m.module in graph.modules]
    threshold = rs.label_threshold(opts.threshold)
    confident = [m for m in valid if m.confidence >= threshold][:opts.max_labels]
    if confident:
        wanted = [(m.module, label_for(m.module, opts.label_prefix)) for m in confident]
        new = [(mid, name) for mid, name in wanted if name not in current]
        if not new:
            return {"labels": [], "already": [n for _, n in wanted]}
        gh_repo = ctx.clients.repo(full_name, event.installation_id)
        existing = {lb.name.lower() for lb in gh_repo.get_labels()}
        for mid, name in new:
            if name.lower() not in existing:
                try:
                    gh_repo.create_label(name, color_for(mid), description_for(graph.modules[mid].description, mid))
                except GithubException as e:
                    if e.status != 422:  # 422: it exists already (created meanwhile)
                        raise
        gh_repo.get_issue(number).add_to_labels(*[n for _, n in new])
        ctx.db.add_bot_labels(full_name, number, [n for _, n in new])
        log.info("github.labeler.labeled delivery=%s repo=%s issue=%s labels=%s", event.delivery_id, full_name,
                 number, [n for _, n in new])
        return {"labels": [n for _, n in new]}
    valid = [m for m in valid if m.evidence or m.confidence >= 0.05]  # suggestions worth a maintainer's time
    if opts.comment and valid and ctx.db.claim_comment(full_name, number):
        try:
            body = suggestions_comment(answer.__class__(valid, answer.matcher, answer.graph_version,
                                                        answer.model_version, unread=answer.unread),
                                       opts.label_prefix, threshold)
            c = ctx.clients.repo(full_name, event.installation_id).get_issue(number).create_comment(body)
        except Exception:
            ctx.db.release_comment(full_name, number)  # not posted: a redelivery may try again
            raise
        ctx.db.set_comment_id(full_name, number, getattr(c, "id", None))
        log.info("github.labeler.commented delivery=%s repo=%s issue=%s", event.delivery_id, full_name, number)
        return {"comment": True}
    return {"labels": [], "comment": False}
