"""`modmatch train`: fine-tune the matching model of one repository and publish it.

    modmatch train .                                  # smollm2-135m, offline, on CPU
    modmatch train . --base-model Qwen/Qwen3-0.6B --epochs 3
    modmatch train . --cutoff 2025-06-01 --max-minutes 20   # history before the cutoff only
"""
from __future__ import annotations

import json
import time

import click

from . import settings
from .clibase import ModmatchError, console, errors, indexed_root, open_store, out


def _cutoff_history(graph, root, cutoff: str | None):
    """History examples before a cutoff: a date (strictly before) or a commit (up to and including it)."""
    hist = list(graph.history)
    if not cutoff:
        return hist, None
    import re

    if re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][0-9:]+Z?)?", cutoff):
        return [h for h in hist if h.date[:len(cutoff)] < cutoff], cutoff
    date = next((h.date for h in hist if h.commit.startswith(cutoff)), None)
    if date is None:
        from indexer.source import git

        out_ = git(root, "show", "-s", "--format=%cI", cutoff, check=False)
        date = (out_ or "").strip() or None
        if date is not None:
            from datetime import datetime, timezone

            date = datetime.fromisoformat(date).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if date is None:
        raise ModmatchError(f"--cutoff {cutoff}: neither a date (YYYY-MM-DD) nor a known commit")
    return [h for h in hist if h.date <= date], date


def _candidate_source(root, graph, quiet: bool):
    """The rows' candidates from the retrieval matcher `ask` and the service answer with (the matcher cache: built
    into it when cold), or None (the trainer then builds its own) when that cannot be had."""
    from contextlib import nullcontext

    from trainer.dataset import CandidateSource

    from .state import RepoState

    try:
        rs = RepoState(root.name, root)
        with nullcontext() if quiet else console.status("loading the retrieval matcher (built once per graph version)"):
            matcher = rs.retrieval(graph)  # the graph loaded above: not read from the database twice
    except Exception as e:  # the trainer can still build one
        console.print(f"[yellow]retrieval matcher unavailable ({e}); the trainer builds its own[/yellow]")
        return None
    return CandidateSource(graph, matcher=matcher)


@click.command("train")
@click.argument("path", default=".")
@click.option("--base-model", help="smollm2-135m (offline default), gemma3-270m (offline, multilingual), "
              "a Hugging Face id, or a model folder.")
@click.option("--max-minutes", type=float, help="Stop training after N minutes (it still evaluates and saves).")
@click.option("--cutoff", help="Train on history before this date (YYYY-MM-DD) or up to this commit only.")
@click.option("--epochs", type=float, help="Passes over the training rows.")
@click.option("--resume", is_flag=True, help="Continue the last interrupted run from its checkpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def train_cmd(path: str, base_model: str | None, max_minutes: float | None, cutoff: str | None,
              epochs: float | None, resume: bool, as_json: bool) -> None:
    """Fine-tune a small language model on the module graph and history of the repository at PATH."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from trainer.config import TrainConfig
    from trainer.train import train

    started = time.time()  # --max-minutes bounds the whole command
    with errors():
        root = indexed_root(path)
        store = open_store(root)
        graph = store.load_graph()
        from indexer.config import load_config

        table = load_config(root).extra.get("trainer", {})
        cfg = TrainConfig.from_toml(table, base_model=base_model, max_minutes=max_minutes, epochs=epochs)
        history, cut = _cutoff_history(graph, root, cutoff)
        from .feedback import FeedbackLog
        from .state import feedback_examples

        feedback = feedback_examples(store, FeedbackLog.shared())
        cands = _candidate_source(root, graph, as_json)
        t0 = time.time()
        info: dict = {}
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=console,
                      transient=True, disable=as_json) as prog:
            tasks: dict[str, int] = {}

            def cb(stage: str, done: int, total: int, extra: dict) -> None:
                if stage not in tasks:
                    tasks[stage] = prog.add_task(stage, total=max(total, 1), note="")
                note = f"loss {extra['loss']:.3f}" if "loss" in extra else ""
                prog.update(tasks[stage], completed=done, total=max(total, 1), note=note)

            res = train(graph, settings.model_store(root), cfg, repo=root.name, history=history,
                        feedback=feedback, resume=resume, progress=cb, compute=settings.compute(),
                        cache_dir=settings.home(), candidate_source=cands, started_at=started)
            info = res.metadata
        m = res.metrics
        from inference.modelstore import serving_verdict

        serves, why = serving_verdict(info)
        summary = {"run": str(res.run_dir), "published": res.published, "reason": res.reason,
                   "auto_serves": res.published and serves, "serving": why,
                   "base_model": cfg.base_model, "cutoff": cut, "history_examples": len(history),
                   "feedback_examples": len(feedback), "metrics": m, "dataset": info.get("dataset"),
                   "seconds": round(time.time() - t0, 1)}
        if as_json:
            out.print_json(json.dumps(summary, default=str))
            return
        d = info.get("dataset", {})
        console.print(f"dataset: {d.get('train')} train / {d.get('val')} validation rows "
                      f"(reasoning {d.get('reasoning')}, plain {d.get('plain')})")
        console.print(f"trained {m['steps']}/{m['planned_steps']} steps, {m['tokens']} tokens, "
                      f"{m['tokens_per_s']} tokens/s" + (f", stopped early ({m['stopped_early']})"
                                                        if m.get("stopped_early") else ""))
        out.print(f"validation: top-1 accuracy {m['accuracy']:.3f}, top-3 {m['top3']:.3f}, MRR {m['mrr']:.3f} "
                  f"on {m['rows']} rows (ranked over {m['ranked_over']})")
        colour = "green" if res.published else "yellow"
        out.print(f"[{colour}]{res.reason}[/{colour}]: {res.run_dir}")
        if res.published:
            verdict = ("[green]`ask` and the service answer with it" if serves
                       else "[yellow]`ask` and the service keep hybrid")
            out.print(f"{verdict}: {why}[/]")
