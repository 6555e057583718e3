"""`push` to the default branch: queue a refresh of the served repository's graph."""
from __future__ import annotations

import logging

from .router import Context, router
from .verify import Event

log = logging.getLogger(__name__)


@router.register("push")
def refresh_on_push(event: Event, ctx: Context) -> dict:
    rs = ctx.repo_state(event.repo_full_name)
    default = (event.data.get("repository") or {}).get("default_branch")
    if rs is None or not default or event.data.get("ref") != f"refs/heads/{default}" or event.data.get("deleted"):
        return {"skipped": "not a push to the default branch of a served repository"}
    if ctx.state.queue_refresh is None:
        log.warning("github.push.no-queue delivery=%s repo=%s", event.delivery_id, rs.name)
        return {"queued": None}
    job = ctx.state.queue_refresh(rs.name, "push")
    log.info("github.push.queued delivery=%s repo=%s job=%s", event.delivery_id, rs.name, job)
    return {"queued": job}
