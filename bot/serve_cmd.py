"""`modmatch serve`: the HTTP API, the web page, the job queue and the schedules in one process.

    modmatch serve --repo core=~/src/core --repo app=~/src/app     # http://127.0.0.1:8750/
    MODMATCH_API_TOKEN_FILE=/etc/modmatch/token modmatch serve --host 0.0.0.0
    modmatch serve --worker                 # only run queued training jobs (train_worker=false elsewhere)
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from . import settings
from .clibase import configured_repos

log = logging.getLogger(__name__)


def build_state(repos: dict[str, Path], matcher: str | None = None):
    from .state import AppState, RepoState

    state = AppState()
    for name, path in repos.items():
        if not path.is_dir():
            raise click.ClickException(f"repository {name!r}: no such folder {path}")
        rs = state.add(RepoState(name, path, matcher=matcher, check=True))  # a damaged database is caught now
        if rs.store.recovered:
            click.echo(f"modmatch: the database of {name} was damaged and moved aside ({rs.store.recovered}); "
                       "it is rebuilt from git in the background", err=True)
    return state


def extra_routes(state) -> list:
    """Routes other parts of the bot contribute (Slack, GitHub): each module may expose `routes(state)`."""
    import importlib

    out = []
    for mod in ("bot.slack_app", "bot.github"):
        try:
            fn = getattr(importlib.import_module(mod), "routes", None)
        except ImportError:
            continue
        if callable(fn):
            try:
                out += list(fn(state))
            except Exception as e:  # a misconfigured integration must not stop the service
                log.warning("serve.routes-failed module=%s error=%s", mod, e)
    return out


@click.command("serve")
@click.option("--host", help="Address to listen on (setting host, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (setting port, default 8750).")
@click.option("--repo", "repos", multiple=True, help="name=/path of a repository to serve; repeatable "
              "(setting repos; default: the current folder).")
@click.option("--matcher", help="Matcher to serve (default: setting matcher, auto).")
@click.option("--worker", is_flag=True, help="Serve no HTTP: run training jobs that API processes queue.")
def serve_cmd(host: str | None, port: int | None, repos: tuple[str, ...], matcher: str | None, worker: bool) -> None:
    """Serve the HTTP API, the web page, the job queue and the schedules in one process."""
    import os

    import uvicorn

    os.umask(0o077)  # databases, models, logs and their training subprocess's files: the service user's only
    import threading

    from indexer.text import segmenter

    # the Chinese segmenter's dictionary loads in 1-4 s: not on the first Chinese question
    threading.Thread(target=segmenter, name="load-segmenter", daemon=True).start()

    from .jobs import JobRunner
    from .service import create_app

    state = build_state(configured_repos(repos), matcher)
    if worker:
        _work(state)
        return
    runner = JobRunner(state)  # started with the app; it indexes repositories not indexed yet
    for name, rs in state.repos.items():
        if not rs.store.has_graph():
            click.echo(f"modmatch: {name} is not indexed yet; indexing it in the background", err=True)
    host = host or settings.get("host") or "127.0.0.1"
    app = create_app(state, extra_routes(state), runner=runner, host=host)
    port = port or settings.get_int("port", 8750)
    if not settings.get("api_token"):
        click.echo("modmatch: no api_token configured: refresh and feedback requests will be refused", err=True)
    click.echo(f"modmatch: serving {', '.join(state.repos)} on http://{host}:{port}/", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, proxy_headers=True)


def _work(state) -> None:
    from .jobs import JobRunner

    runner = JobRunner(state, train_worker=True, poll_interval=0, retrain_at="")
    click.echo(f"modmatch: training worker for {', '.join(state.repos)}", err=True)
    try:
        while True:
            if not runner.work_once():
                time.sleep(30)
    except KeyboardInterrupt:
        pass
    finally:
        runner.shutdown()
