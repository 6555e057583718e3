"""The models folder of one repository: the runs the trainer writes and the pointer to the one that is served.

One layout, written by `trainer/train.py` and read by everything else through `ModelStore`::

    <models dir>/current.json              {"run": "runs/<ts>", "accuracy", "published_at", "previous"}
    <models dir>/runs/<ts>/merged/         the merged model and its tokenizer (save_pretrained): what inference loads
    <models dir>/runs/<ts>/adapter/        the LoRA adapter it was merged from
    <models dir>/runs/<ts>/metadata.json   base model, module IDs, graph version, metrics, calibration
    <models dir>/runs/<ts>/report/*.png    plots the service shows (also <models dir>/report/*.png)

    store = ModelStore.of_repository(home, repo_root)   # <home>/models/<name>-<hash>: the key of its database
    store.current_run()                                   # the published run folder, or None
    store.publish(run, metadata)                          # (True, "published") when not worse than the current one

`current.json` is replaced atomically (os.replace), so a reader sees the old pointer or the new one.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

CURRENT = "current.json"
METADATA = "metadata.json"


@dataclass(frozen=True)
class ModelStore:
    root: Path  # <home>/models/<repository key>

    @classmethod
    def of_repository(cls, home: str | Path, repo_root: str | Path) -> ModelStore:
        """The store of the repository at `repo_root`, keyed like its database (indexer.store.db_path_for)."""
        from indexer.store import db_path_for

        return cls(Path(home) / "models" / db_path_for(Path(home), repo_root).stem)

    # --- the pointer -----------------------------------------------------------------------------
    def current(self) -> dict | None:
        """The contents of current.json (None: nothing published, or a pointer that cannot be read)."""
        try:
            cur = json.loads((self.root / CURRENT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return cur if isinstance(cur, dict) and isinstance(cur.get("run"), str) else None

    def current_run(self) -> Path | None:
        """The published run folder, or None."""
        cur = self.current()
        return (self.root / cur["run"]).resolve() if cur else None

    def pointer_mtime(self) -> float | None:
        """When current.json last changed (None: never published): a cheap check for a newer model."""
        try:
            return (self.root / CURRENT).stat().st_mtime
        except OSError:
            return None

    def set_current(self, run: str | Path, **extra) -> None:
        """Point current.json at `run` (a folder under runs/), atomically."""
        rel = os.path.relpath(Path(run), self.root)
        prev = self.current()
        write_json_atomic(self.root / CURRENT, {"run": rel, "published_at": _now(),
                                                 "previous": prev["run"] if prev else None, **extra})

    def publish(self, run: str | Path, metadata: dict) -> tuple[bool, str]:
        """Point current at `run` when it is complete and validates at least as well as the current run (a changed
        module-ID set makes the old run stale, so then it is replaced regardless)."""
        run = Path(run)
        if not is_run(run) or not (run / METADATA).is_file():
            return False, "the run is incomplete"
        new_acc = float(metadata.get("metrics", {}).get("accuracy", 0.0))
        cur_run = self.current_run()
        if cur_run is not None and (cur_run / METADATA).is_file():
            old = read_metadata(cur_run)
            old_acc = float(old.get("metrics", {}).get("accuracy", 0.0))
            if old.get("ids_hash") == metadata.get("ids_hash") and new_acc < old_acc:
                return False, f"validation accuracy {new_acc:.3f} is below the current model's {old_acc:.3f}"
        self.set_current(run, accuracy=new_acc)
        return True, "published"

    # --- runs ------------------------------------------------------------------------------------
    def runs(self) -> list[Path]:
        """Every run folder, oldest first (finished or not)."""
        d = self.root / "runs"
        return sorted((p for p in d.iterdir() if p.is_dir()), key=lambda p: p.name) if d.is_dir() else []

    def new_run(self) -> Path:
        """A fresh, empty run folder named after the time (UTC)."""
        base = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        runs = self.root / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        p, i = runs / base, 1
        while p.exists():
            p, i = runs / f"{base}-{i}", i + 1
        p.mkdir()
        return p

    def resumable_run(self) -> Path | None:
        """The newest run stopped after a checkpoint and before its metadata was written."""
        for p in reversed(self.runs()):
            if (p / "checkpoint" / "state.json").is_file() and not (p / METADATA).is_file():
                return p
        return None

    def current_metadata(self) -> dict:
        run = self.current_run()
        return read_metadata(run) if run is not None else {}

    # --- plots -----------------------------------------------------------------------------------
    def plots(self) -> list[Path]:
        """PNG plots of the current run's report/ folder, then of <models dir>/report/ (first name wins)."""
        run = self.current_run()
        folders = ([run / "report"] if run is not None else []) + [self.root / "report"]
        seen: dict[str, Path] = {}
        for folder in folders:
            if folder.is_dir():
                for p in sorted(folder.glob("*.png")):
                    seen.setdefault(p.name, p)
        return list(seen.values())


def is_run(path: str | Path) -> bool:
    """A run folder as the trainer writes it: a merged model inside."""
    return (Path(path) / "merged" / "config.json").is_file()


def read_metadata(run: str | Path) -> dict:
    f = Path(run) / METADATA
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("unreadable %s: %s", f, e)
        return {}
    return meta if isinstance(meta, dict) else {}


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def serving_verdict(metadata: dict) -> tuple[bool, str]:
    """Whether `auto` serves a run's model (as `lm-hybrid`), and why: judged on what is served, and only on a gain
    beyond chance, since `lm-hybrid` costs several times the latency of retrieval. Where the run measured the fusion
    against a retrieval matcher rebuilt without the validation changes, the model serves when, with its share
    chosen on other validation rows than it is scored on, the rows it turns right (gains) outnumber the rows it
    turns wrong (losses) by at least twice the square root of their sum and by at least 2 (a one-sided sign test at
    about 2.5 %). Runs without that measurement (older runs, or no retrieval) keep the rule they were written
    under: the model's own top-1 on candidate lists against retrieval's (a retrieval matcher that had learned the
    validation changes)."""
    metrics = metadata.get("metrics") or {}
    cal = metadata.get("calibration") or {}
    cv, ret = cal.get("fusion_cv_top1"), cal.get("retrieval_only_top1")
    gains, losses = cal.get("fusion_cv_gains"), cal.get("fusion_cv_losses")
    if None not in (cv, ret, gains, losses) and cal.get("lm_weight") is not None:
        rows = cal.get("fusion_rows", 0)
        said = (f"lm-hybrid {cv:.2f} against retrieval's {ret:.2f} top-1 on {rows} validation rows, the model's "
                f"share chosen on other rows: {gains} turned right, {losses} turned wrong")
        if not cal["lm_weight"]:
            return False, f"the model added nothing to retrieval on {rows} validation rows (its share is 0)"
        if gains - losses < max(2.0, 2.0 * math.sqrt(gains + losses)):
            return False, f"lm-hybrid did not validate above retrieval beyond chance: {said}"
        return True, f"lm-hybrid validated above retrieval: {said}"
    acc, ret_acc = metrics.get("accuracy", 1.0), metrics.get("retrieval_accuracy", 0.0)
    if acc < ret_acc:
        return False, f"the model validated below retrieval ({acc:.2f} < {ret_acc:.2f})"
    return True, f"the model validated at {acc:.2f} top-1 against retrieval's {ret_acc:.2f}"
