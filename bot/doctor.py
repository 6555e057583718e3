"""`modmatch doctor`: is this machine ready to serve? Configuration, device, models, database, tokens.

Each check says ok, warn or fail and what to do; secret values are never shown, only whether they are set.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import NamedTuple

from . import settings


class Check(NamedTuple):
    name: str
    status: str  # ok, warn, fail
    message: str


def _home() -> list[Check]:
    try:
        h = settings.home()
        probe = h / ".doctor-probe"
        probe.write_text("x")
        probe.unlink()
        return [Check("home", "ok", f"{h} is writable")]
    except OSError as e:
        return [Check("home", "fail", f"the data directory is not writable ({e}); set MODMATCH_HOME")]


def _repos(items) -> list[Check]:
    from indexer.modules import translation_folders
    from indexer.store import Store, db_path_for, quarantined

    from .hooks import hook_token_problem, status as hook_status
    from .clibase import configured_repos
    from .state import matcher_cache_dir

    try:
        repos = configured_repos(items)
    except Exception as e:
        return [Check("repos", "fail", f"MODMATCH_REPOS: {e}")]
    out = []
    for name, path in repos.items():
        if not (path / ".git").exists():
            out.append(Check(f"repo {name}", "fail", f"{path} is not a git clone"))
            continue
        try:
            hooks = hook_status(path)
        except Exception:
            hooks = {}
        if any(v.startswith("modmatch") for v in hooks.values()):
            note = hook_token_problem(path)
            out.append(Check(f"hooks {name}", "fail" if note else "ok",
                             f"git hooks installed, but {note}" if note else "git hooks installed and can authenticate"))
        db = db_path_for(settings.home(), path)
        moved = quarantined(db)
        if moved:
            out.append(Check(f"database {name}", "warn", f"{len(moved)} damaged database file(s) were moved aside "
                                                         f"and rebuilt from git, last {moved[-1].name}"))
        if not db.exists():
            out.append(Check(f"repo {name}", "warn", f"{path}: not indexed yet (`modmatch index {path}`, "
                                                      "or the service indexes it on start)"))
            continue
        if stat.S_IMODE(db.stat().st_mode) & 0o077:
            out.append(Check(f"database {name}", "warn", f"{db} is readable by other users (chmod 600)"))
        store = Store(db)
        corrections = None
        try:
            own: list[str] = []
            translated: list[str] = []
            try:
                problem = store.integrity()
                info = store.graph_info() if not problem else {}
                own = json.loads(store.get_meta("own") or "[]")
                translated = translation_folders(store.module_ids()) if info else []
            except Exception as e:
                problem, info = f"{type(e).__name__}: {e}", {}
            if info and not problem:
                try:
                    corrections = _corrections(name, store)
                except Exception as e:  # the service database, not this repository's: say so, never "damaged"
                    corrections = Check(f"corrections {name}", "warn", f"could not read the corrections: "
                                                                       f"{type(e).__name__}: {str(e)[:150]}")
        finally:
            store.close()
        if problem:
            out.append(Check(f"repo {name}", "fail", f"{db} is damaged ({problem[:150]}); `modmatch index {path}` "
                                                     "moves it aside and rebuilds it (the service does so at start)"))
            continue
        said = (f"; indexed as its own code though named like vendored code: {', '.join(d + '/' for d in own)}"
                if own else "")  # `indexer.build.own_folders`: an operator sees why `externals/` has modules
        if translated:  # `indexer.modules.translation_modules`: why `docs/zh` is not the answer to Chinese questions
            said += (f"; translations, answered first only for texts about translations or the documentation: "
                     f"{', '.join(d + '/' for d in translated[:6])}" + (f" and {len(translated) - 6} more"
                                                                      if len(translated) > 6 else ""))
        out.append(Check(f"repo {name}", "ok" if info else "warn",
                         f"{path}: graph {info.get('version')} at {str(info.get('commit'))[:10]}{said}" if info
                         else f"{path}: no graph yet"))
        out.append(_labels(name, matcher_cache_dir(settings.home(), db)))
        if corrections is not None:
            out.append(corrections)
        run = settings.model_store(path).current_run()
        out.append(Check(f"model {name}", "ok" if run else "warn",
                         f"current model: {run}" if run else
                         "no model yet: the hybrid retrieval matcher answers (`modmatch train` makes one)"))
    return out


def _corrections(name: str, store) -> Check | None:
    """People's corrections (Slack buttons, label changes, the API) that name a module the current map no longer has
    (a folder removed or renamed, or the map re-planned by a newer rule) are kept but not learned: say how many."""
    from .feedback import FeedbackLog
    from .state import feedback_examples

    examples = feedback_examples(store, FeedbackLog.shared(settings.home()))
    if not examples:
        return None
    ids = set(store.module_rows())
    stale = [h for h in examples if not h.modules or not all(m in ids for m in h.modules)]
    if not stale:
        return Check(f"corrections {name}", "ok", f"{len(examples)} correction(s), all naming modules of the map")
    gone = sorted({m for h in stale for m in h.modules if m not in ids})
    return Check(f"corrections {name}", "warn",
                 f"{len(stale)} of {len(examples)} correction(s) name modules the map no longer has "
                 f"({', '.join(gone[:3])}{', …' if len(gone) > 3 else ''}): kept, but not learned until the "
                 "module comes back (declare it in .modmatch.toml) or people correct those texts again")


def _labels(name: str, cache_dir: Path) -> Check:
    """Where the GitHub labeller labels: the configured threshold, or the operating point the last matcher build
    chose on held-out history (read from the summary the matcher cache keeps beside the pickle)."""
    from inference.cache import read_summary

    from .state import auto_threshold, described_operating_point

    configured = settings.get_auto_float("github_label_threshold")
    summary = read_summary(cache_dir)
    op = described_operating_point(summary["operating"]) if summary and summary.get("operating") else None
    if configured is not None:
        return Check(f"labels {name}", "ok", f"labels at the configured threshold {configured:.2f}"
                     + (f" (held-out history: precision {op['precision']:.2f} at ≥ {op['threshold']:.2f})"
                        if op and op.get("coverage") else ""))
    if summary is None:
        return Check(f"labels {name}", "warn", "no matcher built yet: the auto-label threshold is chosen by its first "
                                               "build (`modmatch index` or the service)")
    if op is None:
        return Check(f"labels {name}", "warn", f"no operating point measured (too little history, or a matcher that "
                                               f"has none): labels at ≥ {auto_threshold(None):.2f} (set "
                                               "github_label_threshold to choose)")
    others = _trade(summary.get("trade"), op)
    if not op.get("coverage"):
        return Check(f"labels {name}", "warn", f"labels nothing by itself: no threshold reached "
                                               f"{op.get('precision_target', 0.95):.0%} precision on {op.get('held_out')} "
                                               "held-out changes (set github_label_threshold to label anyway)" + others)
    lo, hi = op.get("precision_interval") or (0.0, 1.0)
    return Check(f"labels {name}", "ok", f"labels at ≥ {op['threshold']:.2f}: precision {op['precision']:.2f} "
                                         f"(95 % interval {lo:.2f}–{hi:.2f}) over {op.get('labelled')} of "
                                         f"{op.get('held_out')} held-out changes" + others)


def _trade(trade: list | None, op: dict) -> str:
    """The lower precisions the same held-out changes reached, with the threshold and share each labels at: what to
    set github_label_threshold to for more labels (the build's `precision_trade`; empty where none labels more)."""
    from inference.calibration import more_labels

    cells = [f"{t['precision_target']:.0%} at ≥ {t['threshold']:.2f} ({t['coverage']:.0%} labelled)"
             for t in more_labels(trade, op)]
    return ("; for more labels, the same held-out changes reached " + ", ".join(cells)) if cells else ""


def _commands() -> list[Check]:
    """The commands the service starts by itself (training jobs, the hooks' fallback) must start: run them."""
    import shlex
    import shutil
    import subprocess
    import sys

    out = []
    tmpl = settings.get("train_command")
    if tmpl:  # an operator's own trainer: it must at least be an executable (running it would train)
        exe = (shlex.split(tmpl) or [""])[0]
        ok = bool(exe) and shutil.which(exe) is not None
        out.append(Check("training command", "ok" if ok else "fail", f"MODMATCH_TRAIN_COMMAND runs {exe}" if ok else
                         f"MODMATCH_TRAIN_COMMAND: {exe or '(empty)'} is not an executable"))
    commands = [("hook fallback", [sys.executable, "-m", "bot.cli", "refresh", "--help"]),
                ("hook helper", [sys.executable, "-m", "bot.hooks", "--help"])]
    if not tmpl:
        commands.insert(0, ("training command", [sys.executable, "-m", "bot.cli", "train", "--help"]))
    for label, cmd in commands:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            ok = r.returncode == 0
            why = (r.stderr.strip().splitlines() or ["no output"])[-1][:200]
        except (OSError, subprocess.TimeoutExpired) as e:
            ok, why = False, f"{type(e).__name__}: {e}"
        out.append(Check(label, "ok" if ok else "fail",
                         f"`{' '.join(cmd[1:4])}` starts" if ok else f"`{' '.join(cmd[:4])}` fails: {why}"))
    return out


def _exposure() -> list[Check]:
    from .service import is_loopback

    host = settings.get("host") or "127.0.0.1"
    if is_loopback(host):
        return [Check("reads", "ok", f"listening on {host} (loopback): reads need no token")]
    if settings.get_bool("open_reads"):
        return [Check("reads", "warn", f"listening on {host} with MODMATCH_OPEN_READS=true: anyone who reaches the "
                                       "port reads modules, files and commit texts")]
    if settings.get("read_token") or settings.get("api_token"):
        return [Check("reads", "ok", f"listening on {host}: reads need the read or API token")]
    return [Check("reads", "fail", f"listening on {host} with no read_token or api_token: every read is refused "
                                   "(set MODMATCH_READ_TOKEN_FILE, or MODMATCH_OPEN_READS=true for an open intranet)")]


def _device() -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check("device", "fail", "torch is not installed")]
    if torch.cuda.is_available():
        return [Check("device", "ok", f"cuda: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return [Check("device", "ok", f"mps (Apple silicon), torch {torch.__version__}")]
    return [Check("device", "ok", f"cpu ({os.cpu_count()} cores), torch {torch.__version__}; "
                                  "training is slow on a CPU")]


def _database() -> list[Check]:
    from .jobs import JobLog, database_url

    url = database_url()
    shown = url.split("@")[-1] if "@" in url else url  # never the password of a URL
    try:
        log = JobLog(url)
        counts = log.counts()
        log.dispose()
        return [Check("database", "ok", f"{shown}: jobs table ready ({sum(counts.values())} jobs recorded)")]
    except Exception as e:
        return [Check("database", "fail", f"{shown}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")]


def _secret(name: str, needed_for: str, required: bool) -> Check:
    env = settings.env_name(name)
    file_ = settings.secret_file(name)
    from_file = bool(file_) and not settings.in_environment(name)
    if from_file:
        p = Path(file_)
        if not p.is_file():
            return Check(name, "fail", f"{env}_FILE points at {file_}, which does not exist")
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o077:
            return Check(name, "warn", f"set from {file_}, but the file is readable by others (chmod 600)")
    if settings.get(name):
        return Check(name, "ok", f"set ({'file' if from_file else 'environment'})")
    return Check(name, "fail" if required else "warn", f"not set: {needed_for} (set {env} or {env}_FILE)")


def _tokens() -> list[Check]:
    out = [_secret("api_token", "refresh and feedback requests and git hooks are refused", False)]
    names = {s.name for s in settings.SETTINGS}
    if "slack_bot_token" in names and (settings.get("slack_bot_token") or settings.get("slack_app_token")):
        out.append(_secret("slack_bot_token", "the Slack app cannot start", True))
    if "github_webhook_secret" in names and (settings.get("github_token") or settings.get("github_app_id")):
        out.append(_secret("github_webhook_secret", "GitHub deliveries are rejected", True))
    return out


def _settings() -> list[Check]:
    """Every typed setting (int, number, bool, auto-number, time in the table) must parse."""
    out = [Check(s.name, "fail", p) for s in settings.SETTINGS if (p := settings.problem(s.name))]
    return out or [Check("settings", "ok", "numbers, switches and times parse")]


def run_checks(repos=()) -> list[Check]:
    checks = _home()
    for fn in (_settings, lambda: _repos(repos), _database, _tokens, _exposure, _commands, _device):
        try:
            checks += fn()
        except Exception as e:  # a check that breaks is itself a finding
            checks.append(Check(getattr(fn, "__name__", "check").strip("_"), "fail", f"{type(e).__name__}: {e}"))
    return checks
