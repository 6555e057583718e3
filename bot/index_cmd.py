"""`modmatch index` and `modmatch refresh`: build the module graph of a repository, or bring it up to HEAD.

    modmatch index .                       # the whole graph, from scratch
    modmatch index . --rev v1.2 --tree     # as of a commit (the checkout is untouched), then the module tree
    modmatch refresh .                     # only the files that changed since the last index
"""
from __future__ import annotations

import json

import click

from .clibase import console, errors, index_root, open_store, out, print_tree, progress_bar, repo_root


def _print_index_result(res, as_json: bool) -> None:
    s = res.summary()
    if as_json:
        out.print_json(json.dumps(s))
        return
    console.print(
        f"[green]indexed[/green] {s['files']} files into {s['modules']} modules "
        f"({s['parsed']} parsed, {s['cached']} from cache), {s['history_added']} history examples added, "
        f"{s['seconds']:.2f}s" + (f" at {s['commit'][:10]}" if s["commit"] else ""))
    for label, key in (("added", "added_modules"), ("removed", "removed_modules"), ("changed", "changed_modules")):
        if s[key] and not (label == "added" and len(s[key]) == s["modules"]):
            console.print(f"  {label}: {', '.join(s[key][:20])}" + (" ..." if len(s[key]) > 20 else ""))
    for n in s["notes"]:
        console.print(f"  note: {n}")


def _prepare_matcher(root, as_json: bool) -> None:
    """Leave the default matcher built for the new graph: the first `ask` (or the service) loads it at once."""
    from .state import RepoState

    repo = RepoState(root.name, root)
    if as_json:
        repo.prepare()
        return
    with console.status(f"building the matcher of {root.name} for graph {repo.graph.version} "
                        "(so the first answer is quick)…"):
        built = repo.prepare()
    if built:
        console.print("[green]matcher ready[/green]")


MATCHER_OPTION = click.option("--matcher/--no-matcher", "prepare", default=True,
                              help="Build the default matcher for the new graph now (default), so the first "
                                   "answer does not wait for it.")


@click.command("index")
@click.argument("path", default=".")
@click.option("--rev", help="Index this commit instead of HEAD (read from git, the checkout is untouched).")
@click.option("--tree/--no-tree", "show_tree", default=False, help="Print the module tree afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@MATCHER_OPTION
def index_cmd(path: str, rev: str | None, show_tree: bool, as_json: bool, prepare: bool) -> None:
    """Build the module graph of the repository at PATH (default: here)."""
    from indexer.build import index

    with errors():
        root = index_root(path)
        if root != repo_root(path) and not as_json:
            console.print(f"indexing {root} ({path} is a folder of it)")
        store = open_store(root, check=True)
        with progress_bar(not as_json) as cb:
            res = index(root, store, rev=rev, full=True, progress=cb)
        _print_index_result(res, as_json)
        if prepare and not rev:  # a graph of another commit is not what `ask` answers from
            _prepare_matcher(root, as_json)
        if show_tree:
            print_tree(res.graph)


@click.command("refresh")
@click.argument("path", default=".")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@MATCHER_OPTION
def refresh_cmd(path: str, as_json: bool, prepare: bool) -> None:
    """Bring the graph up to HEAD, re-parsing only the files that changed."""
    from indexer.build import refresh

    with errors():
        root = index_root(path)  # never indexed: a refresh indexes it
        store = open_store(root, check=True)
        with progress_bar(not as_json) as cb:
            res = refresh(root, store, progress=cb)
        _print_index_result(res, as_json)
        if prepare:
            _prepare_matcher(root, as_json)
