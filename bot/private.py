"""Files the service keeps hold commit texts, questions, feedback and tokens: they are created readable by their
owner only (0600), whoever's umask started the process."""
from __future__ import annotations

import os
from pathlib import Path


def private_file(path: str | Path) -> Path:
    """Create `path` (and its folder) if missing, mode 0600; an existing file is narrowed to 0600 when ours."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
        if p.stat().st_uid == os.getuid():
            os.chmod(p, 0o600)
    except OSError:
        pass
    return p


def private_sqlite_url(url: str) -> str:
    """For a SQLite URL, create its file 0600 before SQLAlchemy opens it; other URLs pass through."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix):] not in ("", ":memory:"):
        private_file(url[len(prefix):].split("?", 1)[0])
    return url
