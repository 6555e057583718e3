"""`modmatch hooks install|uninstall`: git hooks that tell the service (or `modmatch refresh`) about changes.

    modmatch hooks install ~/src/core       # post-merge, post-checkout, post-rewrite
    modmatch hooks install /srv/git/core.git --server   # post-receive in a bare repository
    modmatch hooks uninstall ~/src/core
"""
from __future__ import annotations

import click


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
