"""`modmatch modules` and `modmatch show`: the module tree, and one module in detail.

    modmatch modules                       # the module tree with sizes and descriptions
    modmatch modules --json                # the graph as JSON
    modmatch show src/layer                # files, symbols, keywords, dependencies, history
"""
from __future__ import annotations

import json

import click
from .clibase import errors, indexed_root, open_store, out, print_tree


@click.command("modules")
@click.argument("path", default=".")
@click.option("--json", "as_json", is_flag=True, help="Print the graph as node-link JSON.")
def modules_cmd(path: str, as_json: bool) -> None:
    """The module tree with sizes and descriptions."""
    with errors():
        graph = open_store(indexed_root(path)).load_graph(with_history=False)
        if as_json:
            click.echo(json.dumps(graph.to_json(include_history=False), indent=1))
        else:
            print_tree(graph)


@click.command("show")
@click.argument("module_id")
@click.option("--path", "path", default=".", help="The repository (default: here).")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(module_id: str, path: str, as_json: bool) -> None:
    """Files, symbols, keywords, dependencies and recent history of one module."""
    with errors():
        graph = open_store(indexed_root(path)).load_graph()
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
