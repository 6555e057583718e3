"""Mine git history into supervision examples: change text → modules touched.

Kept: ordinary commits (subject + body) and pull-request merges ("Merge pull request #12 ...":
the PR title / body, with the files the merge brought in against its first parent; or a merge whose subject is the
PR's title and number, "fix(pkg): lock relative paths (#13915)", as GitHub's merge queue and its "pull request
title" merge message write it: dune merges every pull request so). A commit that is no merge
but says "Merge / Backport pull request #12 from ..." (a cherry-pick, a squash) is read the same way: its
subject is the body's first line.
Dropped, by rule: other merges, bot authors, reverts, version bumps and releases,
formatting-only changes, changes that touch no module or more than ``max_modules`` modules.
Trailers (Signed-off-by, Co-authored-by, Change-Id, ...) are stripped from bodies.

A change's release note is bookkeeping, not where it changed the code (`is_changelog`: CHANGELOG.md, NEWS, svelte's
`.changeset/*.md`, pytest's `changelog/123.bugfix.rst`, commons-lang's `src/changes/changes.xml`, dune's
`doc/changes/`): where a change also touches other modules' files, the notes' modules are not among the modules it
touched. Otherwise every change of a repository that keeps one taught its notes' module (hutool's `(root)`, beside
CHANGELOG.md, in 102 of its first 200 changes after the dev cut-off; svelte's, beside `.changeset` files, in 154),
and that module was answered for questions about the code. A change to the notes alone keeps their module, and so does one whose subject says it is
about them ("CHANGELOG: update 3.7 changelog, hide global flags in etcdctl commands").
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator

from .records import HistoryExample
from .source import SourceError, git
from .text import strip_boilerplate

SEP_REC = "\x1e"
SEP_FLD = "\x1f"
FORMAT = SEP_REC + SEP_FLD.join(["%H", "%P", "%an", "%ae", "%cI", "%B"]) + SEP_FLD

BOT_RE = re.compile(r"\[bot\]|dependabot|renovate|github-actions|greenkeeper|snyk-bot|mergify|pre-commit-ci|copybara", re.I)
REVERT_RE = re.compile(r"^\s*(revert|reapply)\b", re.I)
BUMP_RE = re.compile(
    r"^\s*(\S+:\s*)?(bump(ed)?\s+(version|to|the version|\S+ from)|release\s+v?\d|prepare\s+(for\s+)?(release|v?\d)|"
    r"v?\d+\.\d+(\.\d+)*(-\w+)?\s*$|version\s+(bump|\d)|update (the )?(changelog|version)|cut release|chore\(release\))",
    re.I,
)
# A subject that begins "Format …" is formatting only where what follows says so ("Format source code", "format
# nits", "chore: format build_loop.ml", "Formatting."): "raft: Format node IDs as hex", "Format printenv output" and
# "black box tests for …" are features and stay in the history (one in four subjects the bare word matched in the
# dev repositories' histories was one).
_FORMATTED = (r"(?=\s*[.!':]*\s*(\(#\d+\))?\s*$|[\s,;/(]+(?:the |all |all the |some |whole |new |more )?"
              r"(?:code|codebase|coding style|source|sources|files?|everything|docs?|readme|style|standard|tests?|"
              r"imports?|nits?|tweaks?|fix(?:es)?|changes?|only|clean-?ups?|consistently|format\w*|with|using|per|"
              r"by|according|and|in|[\w/-]+\.[a-z]{1,6})\b)")
FORMAT_RE = re.compile(
    r"^\s*(\S+:\s*)?(clang-format|gofmt|rustfmt|cargo fmt|ruff format|swiftformat|ktlint|"
    r"(run|apply) (black|prettier|isort|\S*fmt|\S*format\w*)|"
    r"reformat\w*|lint fix(es)?|fix (lint|whitespace|formatting|indentation)|"
    r"prettified code|auto-?format(ting|ted)?|"  # "Prettified Code!": what a prettier GitHub Action commits
    r"formatting(?=[.,]\s)|"  # "formatting. add proxy", "Formatting, linting and refactorings"
    rf"(re-?)?format(ting|ted)?{_FORMATTED}|whitespace{_FORMATTED}|(black|prettier|isort){_FORMATTED})\b",
    re.I,
)
PR_MERGE_RE = re.compile(r"^(?:Merge|Backport) pull request #(\d+) from \S+", re.I)
PR_TITLED_RE = re.compile(r"\S.*\(#\d+\)$")  # a merge named by its pull request: "title (#123)"
# GitHub's fixed subject for a fix merged from a security advisory's private fork (a commit, not a merge): the
# subject says nothing, and the squashed commits' titles, where GitHub kept them, are the body's lines ("* fix(cors):
# use `split` ..."). Such a change is read by its first line; one with no body has no text (honojs/hono: 45 such
# changes; 31 of its 200 dev cases carried the subject, 14 with no body, answered at a mean confidence of 0.94 and
# right 13 times).
FIXED_SUBJECT_RE = re.compile(r"^Merge commit from fork$", re.I)
TRAILER_RE = re.compile(
    r"^\s*(signed-off-by|co-authored-by|reviewed-by|acked-by|tested-by|reported-by|suggested-by|change-id|"
    r"cc|reviewed-on|pr-url|closes|fixes-jira|git-svn-id|helped-by|approved-by)\s*:.*$",
    re.I | re.M,
)


NOTE_EXTS = frozenset({"", "md", "markdown", "rst", "txt", "adoc", "asciidoc", "xml", "yml", "yaml"})
# towncrier's fragment types (`changelog/123.bugfix.rst`, `newsfragments/45.feature`)
FRAGMENT_TYPES = frozenset({"feature", "bugfix", "doc", "docs", "removal", "misc", "breaking", "deprecation",
                            "improvement", "trivial", "vendor", "contrib", "packaging", "change", "fix", "added"})
_NOTES_NAME = re.compile(r"^(?:change[-_]?logs?|changes|release[-_]?notes|whats[-_]?new)(?:[-_.].*)?$", re.I)
_NOTES_NAME_CAPITAL = re.compile(r"^(?:HISTORY|History|NEWS|News)(?:[-_.].*)?$")  # not docs/history.md, a feature's page
_NOTES_DIRS = frozenset({"changelog", "changelogs", "change-log", "changelog.d", ".changeset", ".changes",
                         "newsfragments", "changes", "unreleased", "release-notes", "release_notes"})

# a change that says it is about its notes ("CHANGELOG: update 3.7 changelog, hide global flags in etcdctl") keeps them
ABOUT_NOTES_RE = re.compile(r"(?i:change[-_ ]?log|release[-_ ]notes|changeset|what'?s[-_ ]new)|\bCHANGES\b|\bNEWS\b")
_SCHEMA_DIRS = frozenset({"db", "database", "databases", "migration", "migrations", "liquibase", "flyway", "schema"})


def is_changelog(path: str) -> bool:
    """Whether `path` is a release note (see the module's docstring). Only notes' extensions (or none) count, so a
    source file is never one (`changes.go`, `lib/history.py`, `src/changes/Diff.java`)."""
    *folders, base = path.split("/")
    if base.lower().startswith("db.") or _SCHEMA_DIRS & {f.lower() for f in folders}:
        return False  # Liquibase's `db/changelog/*.xml`: the database's migrations, not notes
    ext = base.rsplit(".", 1)[1].lower() if "." in base[1:] else ""
    if ext not in NOTE_EXTS and ext not in FRAGMENT_TYPES:
        return False
    if ext in NOTE_EXTS and (_NOTES_NAME.match(base) or _NOTES_NAME_CAPITAL.match(base)):
        return True
    return any(f.lower() in _NOTES_DIRS for f in folders)


def strip_trailers(body: str) -> str:
    """The body without trailers (Signed-off-by, ...) and without template boilerplate."""
    body = strip_boilerplate(TRAILER_RE.sub("", body))
    return re.sub(r"\n{3,}", "\n\n", body).strip()


def drop_reason(subject: str, author: str, email: str, n_modules: int, max_modules: int) -> str | None:
    if BOT_RE.search(author) or BOT_RE.search(email):
        return "bot"
    if REVERT_RE.match(subject):
        return "revert"
    if BUMP_RE.match(subject):
        return "version bump"
    if FORMAT_RE.match(subject):
        return "formatting"
    if n_modules == 0:
        return "no module"
    if n_modules > max_modules:
        return "too many modules"
    return None


def _records(root: str | Path, rev_range: str, merges: bool) -> Iterator[tuple[str, list[str], str, str, str, str, list[str]]]:
    args = ["log", "--no-color", "--no-renames", f"--format={FORMAT}", "--name-only", "-z"]
    if merges:
        args += ["--merges", "--first-parent", "-m"]
    else:
        args += ["--no-merges"]
    out = git(root, *args, rev_range, check=False)
    for rec in out.split(SEP_REC):
        if not rec.strip():
            continue
        fields = rec.split(SEP_FLD)
        if len(fields) < 7:
            continue
        sha, parents, an, ae, date, msg, rest = fields[0], fields[1].split(), fields[2], fields[3], fields[4], fields[5], fields[6]
        files = [f.strip("\n") for f in rest.split("\0") if f.strip("\n")]
        yield sha, parents, an, ae, date, msg, files


class Moves:
    """Where the files of past changes live now: git's rename records, followed forward.

    A past change's path that no longer exists is resolved through the renames that came after
    it (`a/x.py` → `b/x.py` → `c/x.py`); a path that was deleted rather than moved is resolved
    through the folder moves its renamed neighbours show (most files of `okhttp/src/main/kotlin/`
    went to `okhttp/src/commonJvmAndroid/kotlin/`, so a deleted file of the old folder belongs
    to the new one). Without this, a repository that reorganised its tree loses most of its
    history, or teaches the old parent folder as the answer for today's changes.
    """

    def __init__(self, renames: list[tuple[str, str]]):
        self.file: dict[str, str] = {}
        votes: dict[str, dict[str, int]] = {}
        for old, new in renames:  # oldest first: a later rename of the same path wins
            if old == new:
                continue
            self.file[old] = new
            a, b = old.split("/"), new.split("/")
            k = 0
            while k < min(len(a), len(b)) - 1 and a[-1 - k] == b[-1 - k]:
                k += 1  # common tail, the file name included when equal
            tail = max(k, 1)  # what the folder move leaves as it was (at least the file name)
            if len(a) <= tail:
                continue
            src = "/".join(a[:-tail]) + "/"
            dst = "/".join(b[:-tail]) + "/" if len(b) > tail else ""
            votes.setdefault(src, {})
            votes[src][dst] = votes[src].get(dst, 0) + 1
        self.folder: dict[str, str] = {}
        for src, tgt in votes.items():
            dst, n = max(tgt.items(), key=lambda kv: (kv[1], kv[0]))
            if n >= 2 and n * 2 > sum(tgt.values()):
                self.folder[src] = dst

    def resolve(self, path: str, exists: Callable[[str], bool], _depth: int = 0) -> str | None:
        """The path's present location (or, for a deleted file, where its folder went), or None
        when neither a rename nor a folder move tells."""
        seen = set()
        p = path
        while p in self.file and p not in seen and len(seen) < 32:
            seen.add(p)
            p = self.file[p]
            if exists(p):
                return p
        end = len(p)
        while (cut := p.rfind("/", 0, end)) >= 0:
            src = p[: cut + 1]
            if src in self.folder:
                q = self.folder[src] + p[cut + 1:]
                if exists(q) or _depth >= 8:
                    return q
                return self.resolve(q, exists, _depth + 1) or q
            end = cut
        return p if p != path else None


def mine_moves(root: str | Path, rev: str, backward: bool = False) -> Moves:
    """The renames of `rev`'s history (git's rename detection; exact renames only where a blob
    cannot be read, as in a partial clone; none where even that fails). `backward`: followed back in
    time instead, from where a file went to where it was at the start of `rev` (`A..B`): a change after a
    snapshot that touches a moved file (or a new file of a moved folder) belongs to the module the file
    had in the snapshot."""
    for similarity in ("-M", "-M100%"):
        try:
            out = git(root, "log", "--no-merges", "--diff-filter=R", similarity, "--name-status", "-z",
                      "--format=tformat:", rev)
            break
        except SourceError:
            continue
    else:
        return Moves([])
    fields = out.split("\0")
    renames: list[tuple[str, str]] = []
    i = 0
    while i + 2 < len(fields):
        status = fields[i].strip("\n")
        if status.startswith("R"):
            renames.append((fields[i + 1], fields[i + 2]))
            i += 3
        else:
            i += 1
    if backward:  # newest first, so that the rename nearest the start wins
        return Moves([(b, a) for a, b in renames])
    renames.reverse()  # git log is newest first
    return Moves(renames)


def mine_history(root: str | Path, module_of: Callable[[str], str | None], *, rev_range: str = "HEAD",
                 max_modules: int = 5, known_modules: set[str] | None = None,
                 stats: dict | None = None) -> list[HistoryExample]:
    """History examples for `rev_range` (e.g. "HEAD", "A..B"), oldest first.

    `module_of` maps a path to a module ID of the current graph; files of modules that no longer
    exist (or paths nobody owns) are ignored, so the examples always point at live modules.
    """
    examples: list[HistoryExample] = []
    stats = stats if stats is not None else {}
    for merges in (False, True):
        for sha, parents, an, ae, date, msg, files in _records(root, rev_range, merges):
            msg = msg.strip()
            subject, _, body = msg.partition("\n")
            subject = subject.strip()
            body = strip_trailers(body)
            m = PR_MERGE_RE.match(subject)
            if merges and not m and not PR_TITLED_RE.match(subject):
                stats["merge"] = stats.get("merge", 0) + 1
                continue
            kind = "pr" if merges else "commit"
            if m:  # the PR's title is the body's first line (also in a cherry-picked or squashed "Backport ..." commit)
                title, _, rest = body.partition("\n")
                subject, body = (title.strip() or subject), rest.strip()
            elif FIXED_SUBJECT_RE.match(subject):
                title, _, rest = body.strip().partition("\n")
                subject, body = title.strip().lstrip("*-").strip(), rest.strip()
            owners = [(f, module_of(f)) for f in files]  # each path looked up once
            code = owners if ABOUT_NOTES_RE.search(subject) else [(f, m) for f, m in owners if not is_changelog(f)]
            mods = []
            # the notes count alone, or when said; a change to code no module holds (a folder born after a temporal
            # split's cut-off, one gone since) and its note is no change to the notes: it teaches nothing
            for _, mid in code or owners:
                if mid and (known_modules is None or mid in known_modules) and mid not in mods:
                    mods.append(mid)
            reason = drop_reason(subject, an, ae, len(mods), max_modules)
            if reason:
                stats[reason] = stats.get(reason, 0) + 1
                continue
            if not subject:
                stats["empty"] = stats.get("empty", 0) + 1
                continue
            stats["kept"] = stats.get("kept", 0) + 1
            examples.append(HistoryExample(sha, date, subject, body[:4000], tuple(sorted(files)[:200]), tuple(mods), kind))
    examples.sort(key=lambda e: (e.date, e.commit))
    return examples
