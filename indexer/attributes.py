"""What a repository's `.gitattributes` files say is not its own code: ``linguist-vendored`` and ``linguist-generated``.

GitHub's linguist reads these attributes to leave vendored and generated files out of a repository's languages and
diffs; a repository that sets them has said which files people there do not write (swift-nio's
``Sources/CNIOSHA1/* linguist-vendored``, Homebrew's ``sorbet/rbi/dsl/**/*.rbi linguist-generated``). The index
leaves those files out as it leaves out folders named like vendored code, and a file the attributes un-mark
(``vendor/** -linguist-vendored``, ``linguist-generated=false``) is the repository's own even in a folder so named.

The patterns are git's: a pattern without a slash matches a file's name at any depth below its `.gitattributes`, one
with a slash matches the path from there (``*`` and ``?`` stay within a folder, ``**/``, ``/**/`` and ``/**`` cross
folders), a pattern that ends in a slash matches folders only and so no file; later lines win over earlier ones and
deeper files over shallower ones; ``attr`` sets, ``-attr`` unsets, ``!attr`` forgets and ``attr=value`` sets a value
("false" reads as unset, as linguist reads it). Not read: macros (``[attr]``), quoted patterns, and
``.git/info/attributes``, which is a clone's own and not the repository's.
"""
from __future__ import annotations

import re
from functools import lru_cache

ATTRIBUTES_NAME = ".gitattributes"
MARKS = ("linguist-vendored", "linguist-generated")
_CLASSES = {"alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "digit": "0-9", "lower": "a-z", "upper": "A-Z",
            "space": r"\s", "xdigit": "0-9a-fA-F", "blank": r" \t"}

_ANY_FOLDERS = "(?:[^/]*/)*"

# one rule: (folder of its .gitattributes, pattern, attribute, True = marked / False = un-marked / None = forgotten)
Rule = tuple[str, str, str, bool | None]


def parse_rules(folder: str, text: str) -> list[Rule]:
    """The rules of one `.gitattributes` (at `folder`, "" for the root) about `MARKS`, in file order."""
    rules: list[Rule] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0].startswith(("#", "[attr]", '"', "!")):
            continue  # a comment, a macro, a quoted pattern, or a negative pattern (which git refuses)
        for f in fields[1:]:
            name, eq, value = f.partition("=")
            state: bool | None
            if name.startswith("-"):
                name, state = name[1:], False
            elif name.startswith("!"):
                name, state = name[1:], None
            else:
                state = not (eq and value == "false")
            if name in MARKS:
                rules.append((folder, fields[0], name, state))
    return rules


def _class(pat: str, i: int) -> tuple[str, int] | None:
    """The bracket expression starting at pat[i] == "[" as a regular expression class, and the index after it."""
    j = i + 1
    negate = j < len(pat) and pat[j] in "!^"
    j += negate
    body, first = [], True
    while j < len(pat) and (pat[j] != "]" or first):
        if pat.startswith("[:", j) and (end := pat.find(":]", j + 2)) > 0 and pat[j + 2:end] in _CLASSES:
            body.append(_CLASSES[pat[j + 2:end]])
            j = end + 2
        elif pat[j] == "\\" and j + 1 < len(pat):
            body.append(re.escape(pat[j + 1]))
            j += 2
        elif pat[j] == "-" and body and j + 1 < len(pat) and pat[j + 1] != "]":
            body.append("-")
            j += 1
        else:
            body.append(re.escape(pat[j]))
            j += 1
        first = False
    if j >= len(pat):
        return None  # no closing bracket: git then matches nothing
    return ("[^/" if negate else "[") + "".join(body) + "]", j + 1


def _regex(pat: str) -> str | None:
    """git's wildmatch with WM_PATHNAME as a regular expression (None where it can match nothing)."""
    out, i, n = [], 0, len(pat)
    while i < n:
        c = pat[i]
        if c == "*":
            j = i
            while j < n and pat[j] == "*":
                j += 1
            bounded = (i == 0 or pat[i - 1] == "/") and j - i == 2
            if bounded and j < n and pat[j] == "/":
                if not out or out[-1] != _ANY_FOLDERS:  # "**/**/" is "**/", and repeating it would backtrack
                    out.append(_ANY_FOLDERS)  # "**/": no folders or any
                j += 1
            elif bounded and j == n:
                out.append(".*")  # a trailing "/**": everything inside
            else:
                out.append("[^/]*")
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            cls = _class(pat, i)
            if cls is None:
                return None
            out.append(cls[0])
            i = cls[1]
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pat[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@lru_cache(maxsize=16)
def _compiled(rules: tuple[Rule, ...]) -> tuple:
    out = []
    for folder, pat, name, state in rules:
        if pat.endswith("/"):
            continue  # matches folders only, and a folder's attributes are not its files'
        basename = "/" not in pat
        rx = _regex(pat.lstrip("/") if not basename else pat)
        if rx is not None:
            out.append((folder + "/" if folder else "", basename, re.compile(rx, re.S).fullmatch, name, state))
    return tuple(out)


def marks(rules: tuple[Rule, ...], path: str) -> dict[str, bool]:
    """What the rules say of `path` for each of `MARKS` they set or unset (a forgotten or unspecified one is absent)."""
    found: dict[str, bool | None] = {}
    for prefix, basename, match, name, state in _compiled(rules):
        if prefix and not path.startswith(prefix):
            continue
        rest = path[len(prefix):]
        if match(rest.rsplit("/", 1)[-1] if basename else rest):
            found[name] = state
    return {k: v for k, v in found.items() if v is not None}


def marked(rules: tuple[Rule, ...], path: str) -> bool:
    """Whether the rules mark `path` vendored or generated."""
    return any(marks(rules, path).values())


def sort_rules(files: dict[str, str]) -> tuple[Rule, ...]:
    """The rules of all `.gitattributes` files (path -> text), shallower files first so that deeper ones win."""
    rules: list[Rule] = []
    for path in sorted(files, key=lambda p: (p.count("/"), p)):
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        rules.extend(parse_rules(folder, files[path]))
    return tuple(rules)
