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
from indexer.source import work_tree_top
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


def _read_only(db: Path, sql: str):
    """The first row `sql` selects from the database `db`, opened read only: looking creates nothing."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchone()
    finally:
        conn.close()


def _holds_graph(db: Path) -> bool:
    """Whether the database `db` holds an indexed graph. A file that is not a database counts, so that opening it
    says it is damaged."""
    if not db.is_file():
        return False
    try:
        return _read_only(db, "SELECT 1 FROM graph WHERE id=1") is not None
    except sqlite3.OperationalError:  # no graph table: created by an older command that found nothing indexed
        return False
    except sqlite3.DatabaseError:
        return True


def indexed_repositories() -> list[Path]:
    """The folders indexed under $MODMATCH_HOME, as their databases recorded them."""
    roots = []
    for db in sorted((settings.home() / "repos").glob("*.db")):
        try:
            row = _read_only(db, "SELECT value FROM meta WHERE key='root' AND EXISTS (SELECT 1 FROM graph WHERE id=1)")
        except sqlite3.DatabaseError:
            continue
        if row:
            roots.append(Path(row[0]))
    return roots


def _indexed_at_or_above(p: Path) -> Path | None:
    home = settings.home()
    return next((c for c in (p, *p.parents) if _holds_graph(db_path_for(home, c))), None)


def indexed_root(path: str) -> Path:
    """The indexed repository a command reads: PATH itself, or the nearest folder above it that was indexed, so
    that `modmatch ask` run in `src/` of an indexed repository answers for that repository."""
    p = repo_root(path)
    found = _indexed_at_or_above(p)
    if found is not None:
        return found
    known = indexed_repositories()
    listed = ", ".join(str(k) for k in known[:5]) + (", ..." if len(known) > 5 else "")
    raise ModmatchError(f"{p} is not in an indexed repository: run `modmatch index {work_tree_top(p) or p}` first"
                        + (f" (indexed under {settings.home()}: {listed}; or pass its path)" if known else ""))


def index_root(path: str) -> Path:
    """The folder `modmatch index PATH` (or a service) works on: the nearest folder at or above PATH that was
    indexed, else the top of the git work tree PATH is in (git's HEAD and history are the repository's), else
    PATH itself (a plain folder)."""
    p = repo_root(path)
    return _indexed_at_or_above(p) or work_tree_top(p) or p


def open_store(root: Path, check: bool = False) -> Store:
    """The database of the repository at `root`; `check`: verify it first (a damaged file is moved aside and starts
    empty)."""
    store = Store(db_path_for(settings.home(), root), check=check)
    if store.recovered:
        console.print(f"[yellow]the database of {root} was damaged and was moved aside: {store.recovered}[/yellow]")
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
    """The repositories named on the command line, else by the `repos` setting, else the one here (run in one of
    its folders: the repository, as `index_root` finds it)."""
    items = list(cli_items) or ([settings.get("repos")] if settings.get("repos") else [str(index_root("."))])
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
