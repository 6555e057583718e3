"""`modmatch ask "requirement"`: which modules does it touch?"""
from __future__ import annotations

import json
import textwrap

import click

from .clibase import errors, out


@click.command("ask")
@click.argument("requirement")
@click.option("--path", "path", default=".", help="The repository (default: here).")
@click.option("--k", default=5, show_default=True, help="How many modules to list.")
@click.option("--matcher", default=None, help="Matcher name (default: $MODMATCH_MATCHER; auto = fine-tuned model "
              "if one exists, else hybrid).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def ask_cmd(requirement: str, path: str, k: int, matcher: str | None, as_json: bool) -> None:
    """Rank the modules a REQUIREMENT touches, with confidence and evidence."""
    from inference.base import capabilities

    from .clibase import indexed_root
    from .state import RepoState, low_confidence

    with errors():
        root = indexed_root(path)
        repo = RepoState(root.name, root, matcher=matcher)  # "auto": the fine-tuned model if any, else hybrid
        if repo.cold() and not as_json:  # no silent wait: say what is being built, once per graph version
            from .clibase import console

            with console.status(f"building the matcher of {root.name} for graph {repo.graph.version} (once per "
                                "graph version, an update of the previous graph's when there is one)…"):
                repo.matcher()
        answer = repo.match(requirement, k=k)
        graph, name, matches = repo.graph, answer.matcher, answer.matches
        low = low_confidence(repo, answer)
        if as_json:
            click.echo(json.dumps({"matcher": name, "graph_version": graph.version, "commit": graph.commit,
                                   "model_version": answer.model_version, "no_module": answer.no_module,
                                   "unread": answer.unread, "notes": answer.notes(), "low_confidence": low,
                                   "matches": [{**x.to_dict(), "paths": graph.modules[x.module].paths}
                                               for x in matches]}, indent=1, ensure_ascii=False))
            return
        out.print(f"[dim]matcher: {name}" + (f" (model {answer.model_version})" if answer.model_version else "")
                  + ("" if capabilities(name).needs_model else
                     f" — not using a fine-tuned model: {repo.no_model_reason or 'none trained yet (modmatch train)'}")
                  + "[/]", markup=True, highlight=False, soft_wrap=True)
        for note in answer.notes():
            out.print(f"[yellow]{note}[/]", highlight=False, soft_wrap=True)
        if low:
            out.print(f"[yellow]{low}[/]", highlight=False, soft_wrap=True)
        for i, x in enumerate(matches, 1):
            mod = graph.modules[x.module]
            paths = ", ".join(p or "(repository root)" for p in mod.paths)
            out.print(f"{i}. [bold cyan]{x.module}[/]  {x.percent}  [dim]{paths}[/]", highlight=False,
                      soft_wrap=True)
            if x.files:  # where in a big module to look
                out.print(textwrap.fill("files: " + ", ".join(x.files), width=max(40, out.width), initial_indent=" " * 5,
                                        subsequent_indent=" " * 5), markup=False, highlight=False, soft_wrap=True)
            for ev in x.evidence:  # wrapped lines keep the indent, so they do not read as the next answer's
                out.print(textwrap.fill(ev, width=max(40, out.width), initial_indent=" " * 5, subsequent_indent=" " * 5),
                          markup=False, highlight=False, soft_wrap=True)
