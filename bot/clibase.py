"""What every `modmatch` command shares: the consoles, the one-line error boundary, the store of a path, progress,
the repositories a service command serves, the module tree's display.

The command modules import from here, never from `bot.cli`, so that `python -m bot.cli` (how the job runner and
the git hooks start the CLI) imports each module once.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.tree import Tree

from indexer.errors import IndexerError
from indexer.store import Store, db_path_for

from . import settings

console = Console(stderr=True)
out = Console()


class ModmatchError(click.ClickException):
    def show(self, file=None) -> None:  # one clear line, no traceback
        click.echo(f"modmatch: error: {self.format_message()}", err=True)


@contextmanager
def errors():
    try:
        yield
    except ModmatchError:
        raise
    except Exception as e:  # every subsystem's base error, and anything unforeseen, is one line
        from inference.errors import InferenceError  # noqa: WPS433 (lazy: keeps `modmatch index` light)

        if isinstance(e, (IndexerError, InferenceError, ValueError, OSError)):
            raise ModmatchError(str(e)) from e
        if isinstance(e, sqlite3.DatabaseError):
            raise ModmatchError(f"the repository's database is damaged ({e}); `modmatch index PATH` checks it, "
                                "moves it aside and rebuilds it from git") from e
        raise


def repo_root(path: str) -> Path:
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise ModmatchError(f"no such folder: {path}")
    return p


def open_store(path: str, check: bool = False) -> Store:
    """The repository's database; `check`: verify it first (a damaged file is moved aside and starts empty)."""
    store = Store(db_path_for(settings.home(), repo_root(path)), check=check)
    if store.recovered:
        console.print(f"[yellow]the database of {path} was damaged and was moved aside: {store.recovered}[/yellow]")
    return store


@contextmanager
def progress_bar(enabled: bool = True):
    if not enabled:
        yield None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as prog:
        tasks: dict[str, int] = {}

        def cb(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = prog.add_task(stage, total=max(total, 1))
            prog.update(tasks[stage], completed=done, total=max(total, 1))

        yield cb


def parse_repos(items: list[str] | tuple[str, ...]) -> dict[str, Path]:
    """`name=/path` or `/path` (named after the folder); several separated by commas or given repeatedly."""
    repos: dict[str, Path] = {}
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
            if name in repos:
                raise click.BadParameter(f"repository name {name!r} given twice")
            repos[name] = Path(path).expanduser().resolve()
    return repos


def configured_repos(cli_items=()) -> dict[str, Path]:
    items = list(cli_items) or ([settings.get("repos")] if settings.get("repos") else ["."])
    return parse_repos(items)


def print_tree(graph) -> None:
    """The module tree from the root: each module with its file count and description."""
    from indexer.modules import ROOT_ID

    def label(mid: str) -> str:
        m = graph.modules[mid]
        desc = m.description.replace("[", "\\[")
        desc = desc[:90] + ("…" if len(desc) > 90 else "")
        return f"[bold cyan]{mid}[/] [dim]{m.stats.get('files', 0)} files[/] {desc}"

    tree = Tree(label(ROOT_ID))

    def add(node: Tree, mid: str) -> None:
        for c in graph.children(mid):
            add(node.add(label(c)), c)

    add(tree, ROOT_ID)
    out.print(tree)
