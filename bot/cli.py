"""The `modmatch` command.

Getting started::

    modmatch index .                       # build the module graph of this repository
    modmatch modules                       # the module tree with sizes and descriptions
    modmatch show src/layer                # files, symbols, keywords, dependencies, history
    modmatch ask "crash in the vulkan conv shader"   # which modules does this touch?
    modmatch eval --history --cutoff 2025-06-01 .     # measure it on your own history
"""
from __future__ import annotations

import json
import logging
import os
import sys

import click
from rich.tree import Tree

from . import settings
from .ask_cmd import ask_cmd
from .clibase import console, errors, open_store, out, progress_bar, repo_root
from .eval_cmd import eval_cmd
from .doctor_cmd import doctor_cmd
from .hooks_cmd import hooks_group
from .serve_cmd import serve_cmd
from .train_cmd import train_cmd

@click.group()
@click.version_option(package_name="modmatch")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens.")
def cli(verbose: bool) -> None:
    """modmatch: which modules of this repository does a requirement touch?

    Start with `modmatch index PATH`, then `modmatch ask "requirement"`.
    Data lives under $MODMATCH_HOME (see `modmatch settings`).
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    if not verbose:  # the libraries' own progress bars and notices are noise in a CLI that shows its own
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from indexer.text import configure_segmenter

    configure_segmenter(settings.home() / "cache")  # jieba's dictionary cache beside the rest of the data


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


@cli.command("index")
@click.argument("path", default=".")
@click.option("--rev", help="Index this commit instead of HEAD (read from git, the checkout is untouched).")
@click.option("--tree/--no-tree", "show_tree", default=False, help="Print the module tree afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def index_cmd(path: str, rev: str | None, show_tree: bool, as_json: bool) -> None:
    """Build the module graph of the repository at PATH (default: here)."""
    from indexer.build import index

    with errors():
        store = open_store(path, check=True)
        with progress_bar(not as_json) as cb:
            res = index(repo_root(path), store, rev=rev, full=True, progress=cb)
        _print_index_result(res, as_json)
        if show_tree:
            _print_tree(res.graph)


@cli.command("refresh")
@click.argument("path", default=".")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def refresh_cmd(path: str, as_json: bool) -> None:
    """Bring the graph up to HEAD, re-parsing only the files that changed."""
    from indexer.build import refresh

    with errors():
        store = open_store(path, check=True)
        with progress_bar(not as_json) as cb:
            res = refresh(repo_root(path), store, progress=cb)
        _print_index_result(res, as_json)


def _print_tree(graph) -> None:
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


@cli.command("modules")
@click.argument("path", default=".")
@click.option("--json", "as_json", is_flag=True, help="Print the graph as node-link JSON.")
def modules_cmd(path: str, as_json: bool) -> None:
    """The module tree with sizes and descriptions."""
    with errors():
        graph = open_store(path).load_graph(with_history=False)
        if as_json:
            click.echo(json.dumps(graph.to_json(include_history=False), indent=1))
        else:
            _print_tree(graph)


@cli.command("show")
@click.argument("module_id")
@click.option("--path", "path", default=".", help="The repository (default: here).")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(module_id: str, path: str, as_json: bool) -> None:
    """Files, symbols, keywords, dependencies and recent history of one module."""
    with errors():
        graph = open_store(path).load_graph()
        m = graph.get(module_id)
        hist = [h for h in graph.history if module_id in h.modules][-10:]
        if as_json:
            d = m.to_dict()
            d["dependencies"] = graph.dependencies(module_id)
            d["dependents"] = graph.dependents(module_id)
            d["history"] = [h.to_dict() for h in hist]
            click.echo(json.dumps(d, indent=1))
            return
        out.print(f"[bold cyan]{m.id}[/]  ({m.name})  parent: {m.parent or '-'}")
        out.print(f"paths: {', '.join(p or '(repository root)' for p in m.paths)}")
        out.print(f"stats: {m.stats}")
        out.print(f"description: {m.description}")
        if m.aliases:
            out.print(f"aliases: {', '.join(m.aliases)}")
        out.print(f"keywords: {', '.join(m.keywords)}")
        out.print(f"children: {', '.join(graph.children(module_id)) or '-'}")
        out.print("depends on: " + (", ".join(f"{d} ({w})" for d, w in graph.dependencies(module_id)[:15]) or "-"))
        out.print("used by: " + (", ".join(f"{d} ({w})" for d, w in graph.dependents(module_id)[:15]) or "-"))
        out.print(f"files ({len(m.files)}): " + ", ".join(m.files[:25]) + (" ..." if len(m.files) > 25 else ""))
        out.print(f"symbols ({m.stats.get('symbols', 0)}): "
                  + ", ".join(f"{s.kind} {s.name}" for s in m.symbols[:25]) + (" ..." if len(m.symbols) > 25 else ""))
        if hist:
            out.print("recent history:")
            for h in reversed(hist):
                out.print(f"  {h.date[:10]} {h.commit[:8]} {h.subject[:100]}")


@cli.command("settings")
def settings_cmd() -> None:
    """Every setting, its environment variable, default and help."""
    for s in settings.SETTINGS:
        val = "(secret)" if s.secret else settings.get(s.name)
        click.echo(f"MODMATCH_{s.name.upper():18} {val!s:28} {s.help}")


for _cmd in (ask_cmd, eval_cmd, train_cmd, serve_cmd, hooks_group, doctor_cmd):
    cli.add_command(_cmd)


def main() -> None:  # pragma: no cover - console entry point
    cli(prog_name="modmatch")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
