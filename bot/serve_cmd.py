"""`modmatch serve`, `modmatch hooks install|uninstall`, `modmatch doctor`.

    modmatch serve --repo core=~/src/core --repo app=~/src/app     # http://127.0.0.1:8750/
    MODMATCH_API_TOKEN_FILE=/etc/modmatch/token modmatch serve --host 0.0.0.0
    modmatch serve --worker                 # only run queued training jobs (train_worker=false elsewhere)
    modmatch hooks install ~/src/core       # post-merge, post-checkout, post-rewrite
    modmatch hooks install /srv/git/core.git --server   # post-receive in a bare repository
    modmatch doctor
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import click

from . import settings

log = logging.getLogger(__name__)


def parse_repos(items: list[str] | tuple[str, ...]) -> dict[str, Path]:
    """`name=/path` or `/path` (named after the folder); several separated by commas or given repeatedly."""
    out: dict[str, Path] = {}
    for item in items:
        for part in (p.strip() for p in item.split(",")):
            if not part:
                continue
            name, sep, path = part.partition("=")
            if not sep:
                path = name
                name = Path(path).expanduser().resolve().name
            name, path = name.strip(), path.strip()
            if not name or not path:
                raise click.BadParameter(f"{part!r}: expected name=/path")
            if name in out:
                raise click.BadParameter(f"repository name {name!r} given twice")
            out[name] = Path(path).expanduser().resolve()
    return out


def configured_repos(cli_items=()) -> dict[str, Path]:
    items = list(cli_items) or ([settings.get("repos")] if settings.get("repos") else ["."])
    return parse_repos(items)


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
    port = port or int(settings.get("port") or 8750)
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


@click.group("hooks")
def hooks_group() -> None:
    """Git hooks that tell the service (or `modmatch refresh`) when a repository changed."""


@hooks_group.command("install")
@click.argument("path", default=".")
@click.option("--server", is_flag=True, help="A bare server repository: install post-receive.")
@click.option("--url", help="Where the service listens (default: setting url, else http://host:port).")
def hooks_install(path: str, server: bool, url: str | None) -> None:
    """Install post-merge, post-checkout and post-rewrite (or post-receive with --server) in PATH."""
    from .hooks import HookError, install, token_note

    try:
        for line in install(path, server=server, url=url):
            click.echo(line)
    except HookError as e:
        raise click.ClickException(str(e)) from e
    note = token_note()
    if note:
        click.echo(f"warning: {note}", err=True)


@hooks_group.command("uninstall")
@click.argument("path", default=".")
def hooks_uninstall(path: str) -> None:
    """Remove the modmatch hooks from PATH, restoring the hooks they had replaced."""
    from .hooks import HookError, uninstall

    try:
        lines = uninstall(path)
    except HookError as e:
        raise click.ClickException(str(e)) from e
    for line in lines or ["no modmatch hooks installed"]:
        click.echo(line)


@click.command("doctor")
@click.option("--repo", "repos", multiple=True, help="name=/path to check (default: setting repos).")
@click.option("--json", "as_json", is_flag=True)
def doctor_cmd(repos: tuple[str, ...], as_json: bool) -> None:
    """Check configuration, device, models, database and tokens; say what is missing."""
    from .doctor import run_checks

    checks = run_checks(repos)
    if as_json:
        click.echo(json.dumps([c._asdict() for c in checks], indent=1))
    else:
        marks = {"ok": click.style("ok  ", fg="green"), "warn": click.style("warn", fg="yellow"),
                 "fail": click.style("FAIL", fg="red")}
        for c in checks:
            click.echo(f"{marks[c.status]} {c.name:18} {c.message}")
    if any(c.status == "fail" for c in checks):
        raise SystemExit(1)
