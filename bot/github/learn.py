"""Training examples from what people do on GitHub:

- `issues` labeled / unlabeled by a person (not the bot) on a module label: the issue's text → its module
  labels now. From then on the bot leaves that issue's module labels alone.
- `pull_request` closed + merged whose body says "fixes #N" / "closes #N" / "resolves #N": issue N's text →
  the modules of the files the pull request changed.
"""
from __future__ import annotations

import logging
import re

from .labels import modules_by_label
from .router import Context, router
from .text import issue_text
from .verify import Event

log = logging.getLogger(__name__)

CLOSING = re.compile(r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+#(\d+)\b", re.I)
MAX_PR_MODULES = 8  # a pull request touching more teaches little about any one issue


@router.register("issues", action="labeled")
@router.register("issues", action="unlabeled")
def learn_from_labels(event: Event, ctx: Context) -> dict:
    full_name = event.repo_full_name
    rs, issue, number = ctx.issue_of(event)
    label = (event.data.get("label") or {}).get("name") or ""
    prefix = ctx.options.label_prefix
    if rs is None or number is None or not label.lower().startswith(prefix.lower()):
        return {"skipped": "not a module label of a served repository"}
    if ctx.is_bot(event):
        return {"skipped": "the bot's own label"}
    ctx.db.mark_human(full_name, number, event.sender.get("login"))
    by_label = modules_by_label(rs.graph.modules, prefix)
    names = [lb.get("name", "") for lb in issue.get("labels") or [] if isinstance(lb, dict)]
    modules = sorted({by_label[n.lower()] for n in names if n.lower() in by_label})
    if not modules:
        return {"feedback": False, "reason": "no module label left"}
    text = issue_text(issue.get("title"), issue.get("body"))
    if not text:
        return {"feedback": False, "reason": "empty issue"}
    key = f"github:{full_name}#{number}:labels={','.join(modules)}"
    added = rs.add_feedback(text, modules, "github-label", key)
    log.info("github.learn.labels delivery=%s repo=%s issue=%s modules=%s added=%s", event.delivery_id, full_name,
             number, modules, added)
    return {"feedback": added, "modules": modules}


def closing_refs(text: str | None) -> list[int]:
    seen: list[int] = []
    for m in CLOSING.finditer(text or ""):
        n = int(m.group(1))
        if n not in seen:
            seen.append(n)
    return seen


@router.register("pull_request", action="closed")
def learn_from_merged_fix(event: Event, ctx: Context) -> dict:
    pr = event.data.get("pull_request") or {}
    full_name = event.repo_full_name
    rs = ctx.repo_state(full_name)
    if rs is None or not pr.get("merged"):
        return {"skipped": "not merged or not a served repository"}
    refs = closing_refs(pr.get("body"))
    if not refs:
        return {"skipped": "no closing reference"}
    gh_repo = ctx.clients.repo(full_name, event.installation_id)
    graph = rs.graph
    paths: list[str] = []
    for f in gh_repo.get_pull(int(pr["number"])).get_files():
        paths.append(f.filename)
        if getattr(f, "previous_filename", None):
            paths.append(f.previous_filename)
    modules = sorted({mid for mid in (graph.module_of(p) for p in paths) if mid in graph.modules})
    if not modules or len(modules) > MAX_PR_MODULES:
        return {"feedback": False, "reason": f"{len(modules)} modules touched"}
    results = {}
    for n in refs:
        issue = gh_repo.get_issue(n)
        if getattr(issue, "pull_request", None):
            continue
        text = issue_text(issue.title, issue.body)
        if text:
            key = f"github:{full_name}#{n}:fixed-by-pr{pr['number']}"
            results[n] = rs.add_feedback(text, modules, "github-pr", key)
    log.info("github.learn.pr delivery=%s repo=%s pr=%s issues=%s modules=%s", event.delivery_id, full_name,
             pr.get("number"), list(results), modules)
    return {"feedback": results, "modules": modules}
