"""What of an issue a matcher should read: the prose, not pasted logs and code.

Fenced code blocks, HTML comments (issue templates), stack frames, timestamped log lines and very long
lines are dropped so that they don't dominate the match; a short mention of them remains."""
from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[^\n]*$|\Z)", re.S | re.M)
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_DETAILS = re.compile(r"<details>.*?(?:</details>|\Z)", re.S | re.I)
_LOG_LINE = re.compile(
    r"^\s*(?:\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d|\[?\d\d:\d\d:\d\d[.,\]]|at [\w$.<>]+\(.*\)\s*$|"
    r"File \".*\", line \d+|Traceback \(most recent call last\)|#\d+\s+0x[0-9a-f]+|\s*\^+\s*$)")
MAX_LINE = 200
MAX_CHARS = 4000


def issue_text(title: str | None, body: str | None) -> str:
    """Title and cleaned body, as one requirement text."""
    title = (title or "").strip()
    body = body or ""
    body = _FENCE.sub("", body)
    body = _HTML_COMMENT.sub("", body)
    body = _DETAILS.sub("", body)
    kept: list[str] = []
    for line in body.splitlines():
        if len(line) > MAX_LINE or _LOG_LINE.match(line):
            continue
        kept.append(line.rstrip())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
    return (title + "\n\n" + text).strip() if text else title
