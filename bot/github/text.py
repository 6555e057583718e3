"""What of an issue a matcher should read: what the reporter wrote, less the markup that is no content.

HTML comments (issue templates), collapsed ``<details>`` blocks (pasted logs and environment dumps), the marker
lines of fenced code and long lines that are no prose (minified code, encoded data, a log dump without spaces) are
dropped. The code inside fences, stack frames and log lines stay: they name the classes, files and functions a
fix touches. Measured on the issue benchmark's 197 real issues (the kept builds of bench/results/issues-jvm,
stop 33): dropping fenced code, frames, log lines and every line over 200 characters, as this did before, answered
142 right first; dropping only what it drops now, 147; the issue texts as they are, 146. A paragraph written as one
line is prose, whatever its length.

An issue form's environment fields describe the reporter's machine, not the code: in a filled-in form (at least
`FORM_HEADINGS` markdown headings outside fenced code, as GitHub renders an issue form's fields), what lies under a
heading that names the environment (`ENVIRONMENT`: a version, the environment, the platform, the system info, a
`brew config` / `brew doctor` output) is dropped; the heading stays, so the text still reads as a form downstream
(`indexer.text.strip_boilerplate` drops a form's headings). Measured on the kept builds of the issue benchmark (stop
39, 296 issues of 10 repositories): Homebrew's `brew config` rows (`HOMEBREW_PREFIX: /opt/homebrew`, a path into
`Library/Homebrew`) pulled its answers to the parent module, 25 -> 30 of 53 right first; hutool 27 -> 28 of 31; the
8 others unchanged (laravel's "PHP Version", svelte's "System Info", ncnn's "编译/运行环境" sections among them)."""
from __future__ import annotations

import re

from indexer.text import BOLD_HEADING, FORM_HEADINGS, prose_headings

_FENCE_LINE = re.compile(r"^[ \t]*(?:```|~~~)[^\n]*$", re.M)
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_DETAILS = re.compile(r"<details>.*?(?:</details>|\Z)", re.S | re.I)
MAX_LINE = 200
PROSE_CHARS_PER_SPACE = 12  # a long line with at least one space per this many characters reads as prose
MAX_CHARS = 4000
# whole words: "Type conversion" or "Subversion support" name no environment
ENVIRONMENT = re.compile(r"\bversions?\b|\benvironments?\b|\bplatforms?\b|\bsystem info|\bconfig\W*output|\bdoctor\b|"
                         r"版本|环境", re.I)


def _no_prose(line: str) -> bool:
    return len(line) > MAX_LINE and line.count(" ") * PROSE_CHARS_PER_SPACE < len(line)


def without_environment(body: str) -> str:
    """`body` less the content of a filled-in form's environment fields (see the module's docstring)."""
    lines = body.splitlines()
    heads = {i: bool(ENVIRONMENT.search(h)) for i, h in prose_headings(lines, bold=True).items()}  # -> the environment
    if len(heads) < FORM_HEADINGS or not any(heads.values()):
        return body
    kept, drop = [], False
    for i, line in enumerate(lines):
        drop = heads.get(i, drop)  # a heading starts a section, and stays
        if i in heads and drop and (m := BOLD_HEADING.match(line)):  # "**Pandoc version?** 3.8, macOS": the answer goes
            line = line[: m.end()]
        if i in heads or not drop:
            kept.append(line)
    return "\n".join(kept)


def issue_text(title: str | None, body: str | None) -> str:
    """Title and cleaned body, as one requirement text."""
    title = (title or "").strip()
    body = body or ""
    body = _HTML_COMMENT.sub("", body)
    body = without_environment(body)
    body = _DETAILS.sub("", body)
    body = _FENCE_LINE.sub("", body)
    kept = [line.rstrip() for line in body.splitlines() if not _no_prose(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
    return (title + "\n\n" + text).strip() if text else title
