"""Build small real git repositories with controlled dates (shared by the matcher and eval tests)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(root: Path, *args: str, date: str = "2024-01-01T12:00:00+00:00") -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_NAME": "Dev",
           "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env,
                          text=True).stdout


def commit(root: Path, files: dict[str, str], message: str, date: str) -> str:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content, encoding="utf-8")
    git(root, "add", "-A", date=date)
    git(root, "commit", "-q", "-m", message, date=date)
    return git(root, "rev-parse", "HEAD").strip()


BASE = {
    "storage/README.md": "# Storage\n\nThe storage engine keeps records on disk with a write-ahead log and an LRU cache.\n",
    "storage/cache.py": '"""Disk cache with least-recently-used eviction."""\n\nclass DiskCache:\n    """A cache of pages on disk."""\n\n    def evict_lru(self):\n        """Evict the least recently used page."""\n\n\ndef compact_segments(path):\n    """Merge small log segments."""\n',
    "storage/wal.py": '"""Write-ahead log."""\n\ndef append_record(log, record):\n    """Append one record to the write-ahead log and fsync."""\n',
    "network/README.md": "# Network\n\nHTTP client, TLS handshake and connection pooling with retries.\n",
    "network/http_client.py": '"""HTTP client."""\n\nclass HttpClient:\n    """Sends HTTP requests over a pooled connection."""\n\n    def retry_request(self, url):\n        """Retry a request with exponential backoff."""\n',
    "network/tls.py": '"""TLS."""\n\ndef tls_handshake(sock, certificate):\n    """Perform the TLS handshake and verify the certificate."""\n',
    "ui/README.md": "# UI\n\nWidgets, buttons, themes and the rendering of dialogs.\n",
    "ui/widgets.py": '"""Widgets."""\n\nclass Button:\n    """A clickable button widget."""\n\ndef render_theme(theme):\n    """Render the dark or light color theme."""\n',
    "ui/dialog.py": '"""Dialogs."""\n\nclass ModalDialog:\n    """A modal dialog window with a title bar."""\n',
    "payment/README.md": "# 支付\n\n支付模块：处理订单付款、退款和发票。支持微信支付和支付宝。\n",
    "payment/pay.py": '"""支付处理。"""\n\ndef process_refund(order):\n    """处理退款。"""\n',
    "payment/invoice.py": '"""发票。"""\n\ndef issue_invoice(order):\n    """开具发票。"""\n',
}

# (files changed, message) before the cut-off, one per month of 2024 H1, days 1..28
EARLY = [
    ({"storage/cache.py": "# tune eviction\n"}, "storage: faster LRU eviction in the disk cache"),
    ({"network/http_client.py": "# backoff\n"}, "network: exponential backoff for retried requests"),
    ({"ui/widgets.py": "# theme\n"}, "ui: dark theme colors for buttons"),
    ({"payment/pay.py": "# refund\n"}, "修复退款金额计算错误"),
    ({"storage/wal.py": "# fsync\n"}, "storage: fsync the write-ahead log before acknowledging"),
    ({"network/tls.py": "# certs\n"}, "network: verify the TLS certificate chain"),
    ({"ui/dialog.py": "# modal\n"}, "ui: modal dialog title bar layout"),
    ({"payment/invoice.py": "# invoice\n"}, "发票抬头显示错误"),
]

# after the cut-off: a new module and a word never seen before
LATE = [
    ({"telemetry/metrics.py": '"""Zyxmetrics exporter."""\n\ndef export_zyxmetrics():\n    pass\n',
      "telemetry/README.md": "# Telemetry\n\nZyxmetrics exporter.\n"}, "telemetry: add the zyxmetrics exporter"),
    ({"storage/cache.py": "# quuxfrobnicate\n"}, "storage: quuxfrobnicate the LRU cache eviction"),
    ({"network/http_client.py": "# pool\n"}, "network: connection pool leaks sockets on retry"),
    ({"ui/widgets.py": "# button\n"}, "ui: button focus ring in the dark theme"),
    ({"payment/pay.py": "# wx\n"}, "微信支付退款失败"),
    ({"storage/wal.py": "# wal\n", "telemetry/metrics.py": "# x\n"}, "storage: write-ahead log metrics"),
]

CUTOFF = "2024-06-01"


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    commit(root, BASE, "initial layout", "2024-01-01T10:00:00+00:00")
    for i, (files, msg) in enumerate(EARLY):
        day = 2 + i * 3
        cur = {k: (root / k).read_text(encoding="utf-8") + v for k, v in files.items()}
        commit(root, cur, msg, f"2024-0{1 + i // 2}-{day:02d}T12:00:00+00:00")
    for i, (files, msg) in enumerate(LATE):
        cur = {k: ((root / k).read_text(encoding="utf-8") if (root / k).exists() else "") + v for k, v in files.items()}
        commit(root, cur, msg, f"2024-07-{1 + i * 2:02d}T12:00:00+00:00")
    return root


def served_state(git_repo, home, names=("app",), matcher: str = "lexical"):
    """An AppState serving `git_repo` (committed with BASE and indexed) under each of `names`."""
    from bot.state import AppState, RepoState
    from indexer.build import index
    from indexer.store import Store, db_path_for

    git_repo.commit("initial layout", BASE)
    index(git_repo.root, Store(db_path_for(home, git_repo.root)))
    state = AppState()
    for name in names:
        state.add(RepoState(name, git_repo.root, matcher=matcher))
    return state
