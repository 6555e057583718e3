"""`modmatch eval`: measure matchers on a case file or on the repository's own later history."""
from __future__ import annotations

import json

import click

from . import settings
from .clibase import ModmatchError, console, errors, index_root, indexed_root, open_store, out, progress_bar


def operating_points(report, precisions=(0.99, 0.95, 0.90, 0.80)) -> str:
    """The precision / coverage trade of each matcher's top-1 confidence: for a wanted precision, the lowest
    threshold that reaches it on these cases and the share of cases it still answers. Pick the auto-label
    threshold here (MODMATCH_GITHUB_LABEL_THRESHOLD), or leave `auto`: the service picks 95 % on held-out history.
    Each cell also gives the Wilson 95 % interval of the precision there: on few cases a threshold that reached 95 %
    may well give less on the next ones."""
    from inference.calibration import precision_trade
    from inference.metrics import labelled_interval

    lines = ["", "top-1 precision -> threshold, coverage [95 % interval of the precision there] "
             "(label only at or above the threshold):",
             "| matcher | " + " | ".join(f"precision {p:.0%}" for p in precisions) + " |",
             "|---" * (len(precisions) + 1) + "|"]
    for r in report.runs:
        if r.error or not r.results:
            continue
        conf = [x.confidences[0] if x.confidences else 0.0 for x in r.results]
        ok = [bool(x.predicted) and x.predicted[0] in x.gold for x in r.results]
        cells = []
        for t in precision_trade(conf, ok, precisions):
            thr, cov, prec = t["threshold"], t["coverage"], t["precision"]
            if cov == 0:
                cells.append("never")
                continue
            lo, hi = labelled_interval(prec, cov, len(conf))[1]
            cells.append(f"≥ {thr:.2f}, {cov:.0%} [{lo:.0%}–{hi:.0%}]")
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@click.command("eval")
@click.argument("path", default=".")
@click.option("--cases", "cases_file", type=click.Path(dir_okay=False), help="JSONL: {text, gold_modules} per line.")
@click.option("--history", "use_history", is_flag=True, help="Use the changes after --cutoff as cases (temporal split).")
@click.option("--cutoff", help="Commit or date (YYYY-MM-DD) of the temporal split.")
@click.option("--matcher", "matchers", multiple=True, help="Matcher(s) to evaluate (default: lexical, history, dense, hybrid).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Write report.md, metrics.json and plots here.")
@click.option("--k", default=5, show_default=True, help="Answers per case (at least 5 are scored).")
@click.option("--max-cases", type=int, default=None, help="Only the latest N cases.")
@click.option("--refreshed", is_flag=True,
              help="With --history: answer as a service whose hooks refresh it would, each day's changes learned "
                   "before the next day's texts.")
def eval_cmd(path: str, cases_file: str | None, use_history: bool, cutoff: str | None, matchers: tuple[str, ...],
             as_json: bool, report_dir: str | None, k: int, max_cases: int | None, refreshed: bool) -> None:
    """Accuracy of matchers: Acc@1/3/5, MRR, calibration, per-module recall."""
    from inference.base import capabilities, default_eval_names
    from inference.evaluate import evaluate, format_table, history_split, load_cases, write_report

    with errors():
        if bool(cases_file) == bool(use_history):
            raise ModmatchError("give either --cases FILE.jsonl or --history --cutoff COMMIT|DATE")
        names = list(matchers) or default_eval_names()
        opts = {"embedding_model": settings.get("embedding_model"), "cache_dir": str(settings.home() / "cache")}
        lm_names = [n for n in names if capabilities(n).needs_model]
        if use_history:
            if not cutoff:
                raise ModmatchError("--history needs --cutoff COMMIT|DATE")
            if lm_names:  # the served model has seen the history after the cut-off: scoring it there would leak
                raise ModmatchError(f"{', '.join(lm_names)}: a temporal split needs a model trained on the history before "
                                    "the cut-off only; run bench/eval_lm.py, or evaluate a model with --cases")
            root = index_root(path)  # a temporal split reads git: the work tree's top, not a folder of it
            split = history_split(root, cutoff, settings.home() / "eval")
            graph, cases = split.graph, split.cases
            if max_cases is not None:
                cases = cases[-max_cases:]
            info = {"cutoff": split.cutoff, "cutoff_date": split.cutoff_date, "training_history": len(graph.history),
                    "modules": len(graph.leaf_ids())}
            if not cases:
                raise ModmatchError(f"no usable changes after the cut-off {cutoff}")
            later = split.later if refreshed else None
            info["refreshed"] = refreshed
        else:
            if cutoff or refreshed:
                raise ModmatchError("--cutoff and --refreshed only apply with --history")
            later = None
            root = indexed_root(path)
            graph = open_store(root).load_graph()
            cases = load_cases(cases_file, graph)
            if max_cases is not None:
                cases = cases[-max_cases:]
            info = {"cases_file": cases_file, "modules": len(graph.leaf_ids())}
        with progress_bar(not as_json) as cb:
            report = evaluate(graph, cases, names, k=k, opts=opts, progress=cb, info=info,
                              lm_opts={"model_dir": settings.model_store(root).root, "compute": settings.compute()},
                              later=later)
        if report_dir:
            write_report(report, report_dir)
        if as_json:
            click.echo(json.dumps(report.to_dict(), indent=1, sort_keys=True))
            return
        console.print(f"{report.n_cases} cases, {info.get('modules')} modules"
                      + (f", cut-off {info['cutoff'][:10]} ({info['cutoff_date'][:10]}), "
                         f"{info['training_history']} training changes" if use_history else "")
                      + (", each matcher refreshed after each day's changes (as the service's hooks keep it)"
                         if refreshed else ""))
        out.print(format_table(report), markup=False)
        out.print(operating_points(report), markup=False)
        if report_dir:
            console.print(f"report written to {report_dir}/report.md")
