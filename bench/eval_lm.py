"""The fine-tuned model inside the temporal split: train on the history before the cut-off only,
then score it on the changes after it, next to the retrieval matchers.

    python bench/eval_lm.py REPO_PATH --cutoff 2025-08-20 --max-minutes 20 --max-cases 150 \\
        [--history-limit 1500] [--out DIR] [--matcher lexical --matcher history --matcher hybrid]
        [--base smollm2-135m|gemma3-270m] [--lora-layers N] [--epochs E]

Prints Acc@1 / Acc@3 of every matcher on all cases and on the cases whose text holds CJK characters ("mixed").

The repository's checkout is never touched. Training uses the most recent `--history-limit`
changes before the cut-off (CPU time is the limit here), and the graph as of the cut-off.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.evaluate import evaluate, format_table, history_split, write_report  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.train import train  # noqa: E402


def recalibrate(graph, models_dir: Path) -> None:
    """Refit the current run's calibration and fusion weight on its own validation rows."""
    from inference.base import create
    from inference.models import load_base
    from trainer.dataset import read_jsonl
    from trainer.dataset import CandidateSource
    from inference.modelstore import ModelStore, write_json_atomic
    from trainer.train import calibrate_serving, held_out_retrieval

    run = ModelStore(models_dir).current_run()
    model, tok = load_base(str(run / "merged"))
    val = read_jsonl(run / "data" / "val.jsonl")
    retrieval = held_out_retrieval(graph, val, CandidateSource(graph, matcher=create("hybrid", graph)))
    cal = calibrate_serving(model, tok, val, graph.leaf_ids(), retrieval=retrieval, graph=graph)
    meta = json.loads((run / "metadata.json").read_text())
    meta["calibration"] = cal
    write_json_atomic(run / "metadata.json", meta)
    print(f"recalibrated {run.name}: {json.dumps(cal)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo")
    ap.add_argument("--cutoff", required=True)
    ap.add_argument("--max-minutes", type=float, default=20.0)
    ap.add_argument("--max-cases", type=int, default=150)
    ap.add_argument("--history-limit", type=int, default=1500)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--variants", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--matcher", action="append")
    ap.add_argument("--base", default=None, help="the base model (default: the trainer's)")
    ap.add_argument("--lora-layers", type=int, default=None, help="LoRA on the top N layers only")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the model already trained in --out; only refit its calibration and fusion weight")
    a = ap.parse_args(argv)
    out = Path(a.out or tempfile.mkdtemp(prefix="mm-eval-lm-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    split = history_split(a.repo, a.cutoff, out / "store")
    g = split.graph
    cases = split.cases[: a.max_cases]
    hist = g.history[-a.history_limit:]
    print(f"cut-off {split.cutoff[:10]} ({split.cutoff_date}): {len(g.leaf_ids())} modules, {len(g.history)} "
          f"changes before it (training on the last {len(hist)}), {len(cases)} cases", file=sys.stderr)
    cfg = TrainConfig(max_minutes=a.max_minutes, epochs=a.epochs, variants=a.variants).replace(
        base_model=a.base, lora_layers=a.lora_layers)
    t1 = time.perf_counter()
    if a.reuse:
        recalibrate(g, out / "models" / "bench")
    else:
        res = train(g, out / "models", cfg, repo=Path(a.repo).name, history=hist, key="bench")
        print(f"trained in {time.perf_counter() - t1:.0f}s: {json.dumps(res.metrics)}; published={res.published} "
              f"({res.reason})", file=sys.stderr)
    from inference.modelstore import ModelStore, read_metadata, serving_verdict

    current = ModelStore(out / "models" / "bench").current_run()
    if current is not None:  # what `auto` would serve: the model (lm-hybrid) or retrieval (hybrid)
        serves, why = serving_verdict(read_metadata(current))
        print(f"auto serves {'lm-hybrid' if serves else 'hybrid'}: {why}", file=sys.stderr)
    names = a.matcher or ["lexical", "history", "hybrid"]
    rep = evaluate(g, cases, names, info={"repo": a.repo, "cutoff": split.cutoff, "modules": len(g.leaf_ids())})
    model_dir = out / "models" / "bench"
    for name in ("lm", "lm-hybrid"):
        t2 = time.perf_counter()
        from inference.base import create
        from inference.evaluate import MatcherRun, compute_metrics, run_matcher

        m = create(name, g, model_dir=model_dir)
        results = run_matcher(m, cases)
        per = (time.perf_counter() - t2) / max(1, len(cases))
        rep.runs.append(MatcherRun(name, compute_metrics(results), results, 0.0, per))
    write_report(rep, out / "report")
    print(format_table(rep))
    from inference.evaluate import has_cjk
    from inference.metrics import accuracy_at

    mixed = [i for i, c in enumerate(cases) if has_cjk(c.text)]
    for run in rep.runs:
        for label, idx in (("all", range(len(cases))), ("mixed", mixed)):
            rs = [run.results[i] for i in idx]
            if rs:
                print(f"{run.name:10s} {label:5s} n={len(rs):3d} Acc@1 {accuracy_at(rs, 1):.3f} "
                      f"Acc@3 {accuracy_at(rs, 3):.3f}")
    print(f"total {time.perf_counter() - t0:.0f}s; report in {out / 'report'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
