"""What of an issue a matcher should read: what the reporter wrote, less the markup that is no content.

HTML comments (issue templates), collapsed ``<details>`` blocks (pasted logs and environment dumps), the marker
lines of fenced code and long lines that are no prose (minified code, encoded data, a log dump without spaces) are
dropped. The code inside fences, stack frames and log lines stay: they name the classes, files and functions a
fix touches. Measured on the issue benchmark's 197 real issues (the kept builds of bench/results/issues-jvm,
stop 33): dropping fenced code, frames, log lines and every line over 200 characters, as this did before, answered
142 right first; dropping only what it drops now, 147; the issue texts as they are, 146. A paragraph written as one
line is prose, whatever its length."""
from __future__ import annotations

import re

_FENCE_LINE = re.compile(r"^[ \t]*(?:```|~~~)[^\n]*$", re.M)
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_DETAILS = re.compile(r"<details>.*?(?:</details>|\Z)", re.S | re.I)
MAX_LINE = 200
PROSE_CHARS_PER_SPACE = 12  # a long line with at least one space per this many characters reads as prose
MAX_CHARS = 4000


def _no_prose(line: str) -> bool:
    return len(line) > MAX_LINE and line.count(" ") * PROSE_CHARS_PER_SPACE < len(line)


def issue_text(title: str | None, body: str | None) -> str:
    """Title and cleaned body, as one requirement text."""
    title = (title or "").strip()
    body = body or ""
    body = _HTML_COMMENT.sub("", body)
    body = _DETAILS.sub("", body)
    body = _FENCE_LINE.sub("", body)
    kept = [line.rstrip() for line in body.splitlines() if not _no_prose(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
    return (title + "\n\n" + text).strip() if text else title
