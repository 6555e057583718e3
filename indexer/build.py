"""Index and refresh: from a repository (a commit, or a plain folder) to a stored module graph.

``index`` and ``refresh`` run the same pipeline; a refresh differs only in what it can reuse:
files whose content (blob id) is already in the parse cache are not read or parsed again, and
history is mined only for the new commits when the module layout did not change. When the new
commit only modifies files (same paths, configuration, parser and indexer), the stored graph is
patched: only the modified files' modules are rebuilt (`_patch`); otherwise the graph is rebuilt
from the complete set of file records, reusing unchanged modules (`_rebuild`). Either way a
refresh from A to B stores exactly what a full index of B stores (tests/test_refresh.py).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from dataclasses import replace as with_fields
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

from .attributes import ATTRIBUTES_NAME, marked, marks, sort_rules
from .config import CONFIG_NAME, RepoConfig, load_config
from .deps import Resolver, edges_from_targets, file_targets
from .describe import CI_FILE_RE, file_terms, keywords_given_df
from .graph import BUILD_VERSION, ModuleGraph, assemble, build_module, graph_version, module_fingerprint
from .history import Moves, mine_history, mine_moves
from .languages import language_for, no_grammar_note
from .modules import ROOT_ID, VENDOR_WORDS, Assigner, ModuleSpec, plan_modules, skip_dir_name, skipped
from .parse import parse_file
from .records import FileRecord, HistoryExample, Module
from .source import Entry, GitSource, Source, git, open_source
from .store import GraphChanges, Store
from .errors import IndexerError

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
PARALLEL_MIN_FILES = 400


def parser_version() -> str:
    """Changes whenever the queries, the parser or the import resolution change, invalidating the parse cache and
    the resolved imports kept for unchanged files."""
    h = hashlib.sha1(b"parse-v2")
    qdir = resources.files("indexer") / "queries"
    for q in sorted(qdir.iterdir(), key=lambda p: p.name):
        if q.name.endswith(".scm"):
            h.update(q.name.encode())
            h.update(q.read_bytes())
    # what is parsed, and how; what an import resolves to; a file's words (`describe.file_terms`, cached with the parse,
    # cut into words by `text.words`, whose Chinese segmenter holds the glossary's terms)
    for name in ("parse.py", "languages.py", "deps.py", "describe.py", "text.py", "zh_terms.tsv"):
        h.update((resources.files("indexer") / name).read_bytes())
    return h.hexdigest()[:12]


@dataclass
class IndexResult:
    graph: ModuleGraph
    full: bool
    files: int
    parsed: int
    cached: int
    history_added: int
    history_rebuilt: bool = True
    added_modules: list[str] = field(default_factory=list)
    removed_modules: list[str] = field(default_factory=list)
    changed_modules: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)
    config: RepoConfig | None = None  # what decided the modules (`config_for`): the temporal split maps later changes by it

    def summary(self) -> dict:
        return {
            "commit": self.graph.commit, "version": self.graph.version, "full": self.full,
            "modules": len(self.graph), "files": self.files, "parsed": self.parsed, "cached": self.cached,
            "history_added": self.history_added, "history_rebuilt": self.history_rebuilt, "added_modules": self.added_modules,
            "removed_modules": self.removed_modules, "changed_modules": self.changed_modules,
            "changed_files": len(self.changed_files), "seconds": round(self.elapsed, 3), "notes": self.notes,
        }


def config_for(source: Source, notes: list[str] | None = None) -> RepoConfig:
    """`.modmatch.toml` as of the snapshot (from the commit itself for a git source), with the rules of its
    `.gitattributes` files on vendored and generated files (`indexer.attributes`; of a plain folder, the top one's),
    its minified files marked generated (`minified_files`) and the folders named like vendored code that the history
    shows to be the repository's own (`own_folders`, git sources only); what it found said in `notes`."""
    if not isinstance(source, GitSource):
        config = load_config(source.root)
        top = Path(source.root) / ATTRIBUTES_NAME
        text = top.read_text(encoding="utf-8", errors="replace") if top.is_file() and not top.is_symlink() else ""
        if text:
            config = with_fields(config, marks=sort_rules({ATTRIBUTES_NAME: text}))
        return _minified_generated(config, minified_files(source, config, source.entries()), notes)
    text = git(source.root, "show", f"{source.commit}:{CONFIG_NAME}", check=False)
    config = load_config(source.root, text) if text else RepoConfig()
    tree = [(meta.split(), path) for meta, _, path in
            (r.partition("\t") for r in git(source.root, "ls-tree", "-r", "-l", "-z", source.commit).split("\0") if r)]
    names = [path for _, path in tree]  # one listing for the attributes, the minified files and the own folders
    blobs = [Entry(path, sha, int(size)) for (mode, kind, sha, size), path in tree
             if kind == "blob" and mode != "120000" and size.isdigit()]
    attrs = [e for e in blobs if e.path == ATTRIBUTES_NAME or e.path.endswith("/" + ATTRIBUTES_NAME)]
    if attrs:
        rules = sort_rules({e.path: data.decode("utf-8", "replace") for e, data in source.read(attrs)})
        if rules:
            config = with_fields(config, marks=rules)
            if notes is not None:
                plain = with_fields(config, marks=())
                n = sum(1 for f in names if marked(rules, f) and not skipped(f, plain))
                notes.append(f"{ATTRIBUTES_NAME} marks {n} files as vendored or generated (linguist-vendored, "
                             "linguist-generated): they are not indexed")
    config = _minified_generated(config, minified_files(source, config, blobs), notes)
    found = own_folders(source, config, names, notes)
    return with_fields(config, own=tuple(sorted({*config.own, *found}))) if found else config


# A committed bundle is built, not written: alibaba/nacos commits its console's `main.js` (2 MB) and `main.css` in
# `console/src/main/resources/static`, rebuilt with every change to the console's sources, so that folder learned every
# UI change and answered UI questions whose change did not rebuild it. Linguist's rule for a minified file: a
# JavaScript or CSS file whose lines average over 110 characters. Files named `.min.js` are skipped by name.
MINIFIED_EXTS = (".js", ".mjs", ".cjs", ".css")
MINIFIED_LINE = 110
MINIFIED_MIN_BYTES = 20_000  # smaller files are read as they are (a short file of long lines is no bundle)


def minified_files(source: Source, config: RepoConfig, blobs: list[Entry]) -> list[str]:
    """The snapshot's JavaScript and CSS files (of at least MINIFIED_MIN_BYTES, not skipped otherwise, and not marked
    or un-marked generated by the repository) whose lines average over MINIFIED_LINE characters."""
    cands = [e for e in blobs if e.path.endswith(MINIFIED_EXTS) and e.size >= MINIFIED_MIN_BYTES
             and not skipped(e.path, config) and "linguist-generated" not in marks(config.marks, e.path)]
    return sorted(e.path for e, data in source.read(cands) if len(data) / (data.count(b"\n") + 1) > MINIFIED_LINE)


def _minified_generated(config: RepoConfig, minified: list[str], notes: list[str] | None) -> RepoConfig:
    """`config` with each of `minified` marked generated (after the repository's own rules), said in `notes`."""
    if not minified:
        return config
    if notes is not None:
        one = len(minified) == 1
        notes.append(f"{len(minified)} minified file{'' if one else 's'} (lines of over {MINIFIED_LINE} characters "
                     f"on average: built bundles) {'is' if one else 'are'} generated, not indexed: "
                     f"{', '.join(minified[:3])}" + (", …" if len(minified) > 3 else ""))
    return with_fields(config, marks=config.marks + tuple(
        ("", "/" + _literal(p), "linguist-generated", True) for p in minified))


def _literal(path: str) -> str:
    """`path` as a `.gitattributes` pattern that matches it alone."""
    return re.sub(r"([\\*?\[])", r"\\\1", path)


LICENCE_RE = re.compile(r"(^|/)(licen[cs]e|copying)([._-][^/]*)?$", re.I)
# dependency manifests: a change to one beside a vendored folder is its update (lock files are `SKIP_FILES`)
MANIFESTS = frozenset({"go.mod", "modules.txt", "Gemfile", "package.json", "composer.json", "Cargo.toml",
                       "pyproject.toml", "requirements.txt", "dune-project", "opam"})
OWN_MIN_CHANGES, OWN_SHARE, OWN_RECENT, NOTE_MIN_FILES = 5, 0.5, 200, 10
TEST_TREES = frozenset({"test", "tests", "spec", "specs", "__tests__", "fixtures"})


def _folders_of(path: str) -> Iterator[str]:
    i = path.find("/")
    while i > 0:
        yield path[:i]
        i = path.find("/", i + 1)


def own_folders(source: GitSource, config: RepoConfig, names: list[str], notes: list[str] | None = None) -> list[str]:
    """Folders of the snapshot named like vendored code with a word that is also a word of a domain (`VENDOR_WORDS`:
    Kyuubi's `externals/` holds its engines, a procurement app's `vendor/` its suppliers' pages) that are the
    repository's own code: no licence file of another project in them (one in a `META-INF` folder is a jar's
    packaging), and of the latest changes that touched them (at least `OWN_MIN_CHANGES`, as of the snapshot)
    at least half also touched the repository's other files, not counting dependency manifests and lock files.
    Vendored code is brought in and updated alone (Homebrew's `vendor/`: 33 of its latest 200 changes); a team's
    own folder changes with the rest (Kyuubi's `externals/`: 125 of 200). One inside a test tree (`TEST_TREES`) stays
    out: it is a fixture that imitates vendored code (dune's tests of its vendoring, Laravel's fake Composer
    packages), and as a module it answered dune's "prepare 3.20 release" changes from the words of its 54 fixture
    files (dev Acc@1 0.785 -> 0.765)."""
    files: dict[str, list[str]] = {}  # candidate folder -> its files
    named = re.compile(r"(?:^|/)(?:" + "|".join(sorted(VENDOR_WORDS)) + r")/")
    for f in names:  # the snapshot's paths
        if not named.search(f) or config.marks and marked(config.marks, f):
            continue  # the repository itself marks it vendored or generated
        parts = f.split("/")
        for i, p in enumerate(parts[:-1]):
            if p in VENDOR_WORDS:
                files.setdefault("/".join(parts[:i + 1]), []).append(f)
            if skip_dir_name(p):
                break  # what lies below a skipped folder is skipped whatever it is called
    cands = sorted(d for d in files if d not in config.own and config.selected(d + "/x")
                   and not TEST_TREES & set(d.split("/")[:-1]))
    licences = {d: f for d in cands for f in files[d] if LICENCE_RE.search(f) and "/META-INF/" not in f}
    walk = [d for d in cands if d not in licences]
    n, shared = Counter(), Counter()
    if walk:  # one walk of the history for all of them: a test suite may hold dozens of small `vendor/` fixtures
        out = git(source.root, "log", "--no-merges", "--no-renames", "--full-diff", "--name-only",
                  "--format=format:%x00", source.commit, "--", *walk, check=False)
        folders = set(walk)
        for change in out.split("\0")[1:]:
            paths = [p for p in change.split("\n") if p]
            touched = {d for p in paths for d in _folders_of(p) if d in folders}
            for d in touched:
                if n[d] < OWN_RECENT:
                    n[d] += 1
                    shared[d] += any(not p.startswith(d + "/") and posixpath.basename(p) not in MANIFESTS
                                     and not skipped(p, config) for p in paths)
    found = [d for d in walk if n[d] >= OWN_MIN_CHANGES and shared[d] >= OWN_SHARE * n[d]]
    for d in cands if notes is not None else ():
        if d not in found and len(files[d]) < NOTE_MIN_FILES:
            continue  # a test's fixture folder
        why = (f"licence files of other projects ({licences[d]})" if d in licences else
               f"{shared[d]} of its latest {n[d]} changes touched other files")
        verdict = "indexed as the repository's own code" if d in found else "skipped as vendored code"
        notes.append(f"{d}/ is named like vendored code: {verdict} ({why}; `own` or `exclude` in "
                     f"{CONFIG_NAME} says otherwise)")
    return found


def _with_path(rec: FileRecord, path: str) -> FileRecord:
    if rec.path == path:
        return rec
    d = rec.to_dict()
    d["path"] = path
    d["symbols"] = [{**s, "path": path} for s in d["symbols"]]
    return FileRecord.from_dict(d)


def read_records(source: Source, store: Store, config: RepoConfig, entries: list[Entry], pv: str,
                 progress: Progress | None = None) -> tuple[list[FileRecord], int, int]:
    """File records for `entries`, from the parse cache where possible. -> (records, parsed, cached)."""
    keys = {e.path: (e.blob, language_for(e.path)) for e in entries}
    cached = store.cached_records(set(keys.values()), pv)
    records: list[FileRecord] = []
    todo = []
    for e in entries:
        rec = cached.get(keys[e.path])
        if rec is not None:
            records.append(_with_path(rec, e.path))
        elif e.size > config.max_file_bytes:
            records.append(FileRecord(path=e.path, blob=e.blob, size=e.size, language=language_for(e.path),
                                      error="too large"))
        else:
            todo.append(e)
    fresh: list[FileRecord] = []
    total = len(todo)
    if progress:
        progress("parse", 0, total)
    for i, rec in enumerate(_parse_all(source, todo, config.max_file_bytes), 1):
        fresh.append(rec)
        if progress and (i % 50 == 0 or i == total):
            progress("parse", i, total)
    if fresh:
        store.cache_records(fresh, pv)
    records.extend(fresh)
    return records, len(fresh), len(records) - len(fresh)


def _parse_one(item: tuple[str, bytes, str, int, int]) -> FileRecord:
    path, data, blob, size, max_bytes = item
    try:
        rec = parse_file(path, data, blob, max_bytes=max_bytes)
    except Exception as exc:  # the parser promises not to raise; never let one file stop an index
        log.warning("index.parse-failed path=%s error=%s", path, exc)
        rec = FileRecord(path=path, blob=blob, size=size, error=f"parse failed: {exc}")
    rec.lines = data.count(b"\n") if rec.error != "binary" else 0
    rec.terms = file_terms(rec)
    return rec


def _worker_signals() -> None:
    """A forked parser takes the default SIGTERM / SIGINT back: inside `modmatch serve` it would inherit the web
    server's handlers, ignore the pool's terminate() and leave the pool's join() waiting for ever."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _parse_all(source: Source, todo: list, max_bytes: int, workers: int | None = None):
    """Parse in worker processes when there is enough work (tree-sitter parsers are per process)."""
    items = ((e.path, data, e.blob, e.size, max_bytes) for e, data in source.read(todo))
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers < 2 or len(todo) < PARALLEL_MIN_FILES:
        yield from map(_parse_one, items)
        return
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(workers, initializer=_worker_signals) as pool:
        yield from pool.imap(_parse_one, items, chunksize=32)


def _pipeline(path: str) -> bool:
    """A repository's own CI pipeline: a pipeline file at the root or in a top-level hidden folder (`.travis.yml`,
    `.circleci/config.yml`, `.github/workflows/ci.yml`), not a template or a vendored project's."""
    return bool(CI_FILE_RE.search(path)) and ("/" not in path or path.startswith("."))


def _ci_home(graph: ModuleGraph, paths: list[str]) -> str | None:
    """The module that holds most of the repository's CI pipelines today, None where it has none."""
    homes = Counter(graph.module_of(p) for p in paths if _pipeline(p))
    return min(homes, key=lambda m: (-homes[m], m)) if homes else None


# how `HistoryPaths` maps a past change's files (mined with the layout's hash: a change here re-mines the history)
HISTORY_PATHS_RULES = "ci-moved"


class HistoryPaths:
    """How a past change's files map to today's modules (`history_module_of`): called with a path, the module or
    None; `gone` holds the paths looked up whose folder no longer exists (below a top-level one that does) and that
    no move accounts for (`drop_vanished` reads them). A path is looked up once: mining asks for it at every change
    that touched it, and `drop_vanished` again.

    `ci_moved`: a CI pipeline that no longer exists maps to where the repository's CI lives today. Most of the dev
    benchmark's repositories moved from Travis, AppVeyor, Azure or CircleCI to GitHub Actions; SDWebImage's 77 changes
    to its old `.travis.yml` taught the root every CI word, so "[github action] Bumped to macos-14" was answered
    `(root)` at 71 %, `.github` third."""

    def __init__(self, graph: ModuleGraph, config: RepoConfig, paths: list[str], moves: Moves | None,
                 new_folders_only: bool, ci_moved: bool = False):
        self.graph, self.config, self.paths, self.moves = graph, config, paths, moves
        self.tops = {p.split("/", 1)[0] for p in paths if "/" in p}
        self.present = set(paths)
        self.folders = {posixpath.dirname(p) for p in paths} if new_folders_only else None
        self.ci_home = _ci_home(graph, paths) if ci_moved else None
        self.gone: set[str] = set()
        self._existing: set[str] | None = None
        self._seen: dict[str, str | None] = {}

    def __call__(self, path: str) -> str | None:
        if path not in self._seen:
            self._seen[path] = self._lookup(path)
        return self._seen[path]

    def _lookup(self, path: str) -> str | None:
        asked, moves = path, self.moves
        if moves and path not in self.present and (
                self.folders is None or path in moves.file or posixpath.dirname(path) not in self.folders):
            path = moves.resolve(path, self.present.__contains__) or path
        if skipped(path, self.config):
            return None
        mid = self.graph.module_of(path)
        if self.ci_home is not None and mid != self.ci_home and _pipeline(path) and path not in self.present:
            return self.ci_home
        if mid == ROOT_ID and "/" in path and path.split("/", 1)[0] not in self.tops:
            return None  # a folder that no longer exists: its changes teach nothing about today's modules
        if path == asked and "/" in path:  # not moved (a moved file's changes belong where it went)
            if self._existing is None:
                self._existing = {d for p in self.paths for d in _folders_of(p)}
            if posixpath.dirname(path) not in self._existing:
                self.gone.add(path)
        return mid


def history_module_of(graph: ModuleGraph, config: RepoConfig, paths: list[str], moves: Moves | None = None,
                      *, new_folders_only: bool = False, ci_moved: bool = False) -> HistoryPaths:
    """How a past change's files map to today's modules: a file that was moved since maps to where it
    lives now (`moves`, git's renames); skipped files and folders that no longer exist map to None (so
    stale history never points at the wrong module). `new_folders_only`: a file that was not itself moved
    follows its folder's move only where the folder holds none of `paths` (with `moves` followed back from
    a later change to a snapshot: a new file of a folder that the snapshot has stays in that folder). `ci_moved`:
    see `HistoryPaths` (for the history a graph learns from, not for later changes scored against it)."""
    return HistoryPaths(graph, config, paths, moves, new_folders_only, ci_moved)


# A module that learned most of its history from folders that no longer exist below it (alibaba/arthas's `site`:
# 462 changes to the old `site/src/site` documentation sources, rewritten elsewhere, against a handful to the
# build files left in `site` itself) would answer every documentation question with those few files. Where a
# module's changes through vanished folders alone outnumber its other changes (and are at least VANISHED_MIN), they
# no longer count for it; a module that moved a subfolder inside itself keeps them.
VANISHED_MIN = 10


def drop_vanished(history: list[HistoryExample],
                  module_of: HistoryPaths) -> tuple[list[HistoryExample], dict[str, int]]:
    """`history` without the modules that learned mostly from vanished folders (see VANISHED_MIN), and how many
    changes each such module lost. `module_of`: what the mining was given (its `gone` paths)."""
    gone = module_of.gone
    if not gone:
        return history, {}
    only_gone: list[set[str]] = []
    vanished, other = Counter(), Counter()
    for h in history:
        via: dict[str, bool] = {}
        for f in h.files:
            mid = module_of(f)
            if mid in h.modules:
                via[mid] = via.get(mid, True) and f in gone
        only = {m for m, g in via.items() if g}
        only_gone.append(only)
        vanished.update(only)
        other.update(m for m in h.modules if m not in only)
    stale = {m for m, n in vanished.items() if n >= VANISHED_MIN and n > other[m]}
    if not stale:
        return history, {}
    out = []
    for h, only in zip(history, only_gone):
        mods = tuple(m for m in h.modules if not (m in stale and m in only))
        if mods == h.modules:
            out.append(h)
        elif mods:
            out.append(with_fields(h, modules=mods))
    return out, {m: vanished[m] for m in sorted(stale)}


def _is_ancestor(root: Path, old: str, new: str) -> bool:
    import subprocess

    from .source import GIT_ENV

    p = subprocess.run(["git", "-C", str(root), "merge-base", "--is-ancestor", old, new], capture_output=True, env=GIT_ENV)
    return p.returncode == 0


RULE_SOURCES = ("attributes.py", "build.py", "config.py", "deps.py", "describe.py", "graph.py", "languages.py",
                "modules.py", "records.py", "text.py")


def rules_version(config: RepoConfig, pv: str) -> str:
    """Everything besides the files that decides the module layout, the edges and the keywords: the parser, the
    repository's configuration and the indexer's own code. A refresh patches the stored graph in place only when
    it is unchanged (after an upgrade, the first refresh rebuilds)."""
    h = hashlib.sha1(json.dumps([BUILD_VERSION, pv, config.fingerprint()]).encode())
    for name in RULE_SOURCES:
        h.update((resources.files("indexer") / name).read_bytes())
    return h.hexdigest()[:16]


@dataclass
class _Built:
    """The new snapshot's graph and what storing it takes."""

    graph: ModuleGraph
    specs: list[ModuleSpec]
    paths: list[str]
    fps: dict[str, str]
    files: dict[str, tuple[str, list[str], list[str]]]  # rows to write
    terms: dict[str, dict]  # term weights of the modules to write
    parsed: int
    cached: int
    leaves: set[str]  # modules that own files
    added: list[str]
    removed: list[str]
    changed: list[str]
    changed_files: list[str]
    changes: GraphChanges | None = None  # None: everything is written


def _tree_diff(root: Path, old: str, new: str) -> list[list[str]] | None:
    """[old mode, new mode, old blob, new blob, status, path] for each file that differs; None when git cannot
    compare the two commits (one is gone)."""
    import subprocess

    from .source import GIT_ENV

    p = subprocess.run(["git", "-C", str(root), "diff-tree", "-r", "-z", "--no-renames", old, new],
                       capture_output=True, env=GIT_ENV)
    if p.returncode != 0:
        return None
    fields = p.stdout.decode("utf-8", "replace").split("\0")
    out = []
    for meta, path in zip(fields[0::2], fields[1::2]):
        parts = meta.lstrip(":").split()
        if len(parts) != 5:
            return None
        out.append([*parts, path])
    return out


def _blob_sizes(root: Path, blobs: list[str]) -> dict[str, int]:
    import subprocess

    from .source import GIT_ENV

    if not blobs:
        return {}
    p = subprocess.run(["git", "-C", str(root), "cat-file", "--batch-check"], input="\n".join(blobs).encode() + b"\n",
                       capture_output=True, env=GIT_ENV)
    out = {}
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "blob" and parts[2].isdigit():
            out[parts[0]] = int(parts[2])
    return out


def _patch(root: Path, source: GitSource, store: Store, config: RepoConfig, pv: str,
           progress: Progress | None) -> _Built | None:
    """The refresh of a push that only modified files: the paths, hence the modules and the import resolution,
    are those of the stored graph, so only the modules of the modified files are rebuilt; the others stay as
    stored rows (decoded when read), keywords are rescored only where a word changed document frequency, and
    edges change by the modified files' imports. None when that does not apply (files added, removed or
    renamed, another configuration, parser or indexer): the caller rebuilds. Equal to a full index: tested."""
    last = store.get_meta("commit")
    layout = store.get_meta("specs")
    if not last or not layout or store.get_meta("rules") != rules_version(config, pv):
        return None
    diff = _tree_diff(root, last, source.commit)
    if diff is None:
        return None
    stored = store.file_index()  # path -> (blob, module), as of `last`
    changed: dict[str, str] = {}
    for old_mode, new_mode, _, blob, _, path in diff:
        was, now = old_mode.startswith("100"), new_mode.startswith("100")  # files; not links (120000), submodules
        if skipped(path, config) or not (was or now):
            continue
        if not (was and now and path in stored):
            return None  # a file added or removed
        if stored[path][0] != blob:
            changed[path] = blob
    specs = [ModuleSpec(mid, tuple(prefixes), explicit) for mid, prefixes, explicit in json.loads(layout)]
    rows = store.module_rows()
    ids = {s.id for s in specs}
    if set(rows) != ids:
        return None
    paths = list(stored)
    blobs = {p: changed.get(p, b) for p, (b, _) in stored.items()}
    touched = sorted({stored[p][1] for p in changed})
    members: dict[str, list[str]] = {mid: [] for mid in touched}
    for p, (_, mid) in stored.items():
        if mid in members:
            members[mid].append(p)
    sizes = _blob_sizes(root, [blobs[p] for mid in touched for p in members[mid]])
    entries = [Entry(p, blobs[p], sizes.get(blobs[p], 0)) for mid in touched for p in members[mid]]
    records, parsed, cached = read_records(source, store, config, entries, pv, progress)
    rec_by_path = {r.path: r for r in records}
    if progress:
        progress("graph", 0, 1)
    explicit = {em.id: em for em in config.modules}
    spec_of = {s.id: s for s in specs}
    fps = {mid: row[0] for mid, row in rows.items()}
    mods: dict[str, Module] = {}
    terms: dict[str, Counter] = {}
    for mid in touched:
        em = explicit.get(mid)
        mods[mid], terms[mid] = build_module(spec_of[mid], em, [rec_by_path[p] for p in members[mid]])
        fps[mid] = module_fingerprint(spec_of[mid], em, [(p, blobs[p]) for p in members[mid]], pv)

    # keywords: rescore the modules that changed and those having a word whose document frequency moved
    old_terms = store.module_terms(touched)
    delta: Counter = Counter()
    for mid in touched:
        delta.subtract(old_terms[mid].keys())
        delta.update(terms[mid].keys())
    moved = {w for w, d in delta.items() if d}
    rescore = {**store.module_terms(store.modules_with_words(moved) - set(touched) if moved else ()), **terms}
    df = store.document_frequencies({w for c in rescore.values() for w in c})
    for w in moved:
        df[w] += delta[w]
    kws = keywords_given_df(rescore, df, len(specs))
    for mid in ids:
        _, parent, old_kws, record = rows[mid]
        if mid in mods:
            mods[mid].parent, mods[mid].keywords = parent, kws[mid]
        else:
            mods[mid] = Module.stored(mid, parent, kws.get(mid, old_kws), record)

    # dependency edges: the modified files' old targets out, their new ones in (same paths: same resolution)
    depends = store.depends()
    old_rows = store.file_rows(changed)
    files: dict[str, tuple[str, list[str], list[str]]] = {}
    moved_edges: set[tuple[str, str]] = set()
    resolver = None
    for p in sorted(changed):
        _, old_imports, old_targets = old_rows[p]
        imports = list(rec_by_path[p].imports)
        targets = old_targets
        if imports != old_imports:
            resolver = resolver or Resolver(paths)
            targets = file_targets(resolver, p, language_for(p), imports)
        files[p] = (blobs[p], imports, targets)
        src = stored[p][1]
        for t, step in [(t, -1) for t in old_targets] + [(t, 1) for t in targets]:
            if t not in stored:
                return None
            dst = stored[t][1]
            if dst != src:
                depends[(src, dst)] = depends.get((src, dst), 0) + step
                moved_edges.add((src, dst))
    depends = {e: w for e, w in depends.items() if w}
    graph = ModuleGraph(mods, depends, commit=source.commit, specs=specs, version=graph_version(mods, fps, depends))
    if progress:
        progress("graph", 1, 1)
    rekeyed = {mid for mid, k in kws.items() if k != rows[mid][2]}
    return _Built(graph, specs, paths, fps, files, {mid: dict(terms[mid]) for mid in touched}, parsed, cached,
                  {mid for _, mid in stored.values()}, [], [], sorted(set(touched) | rekeyed), sorted(changed),
                  GraphChanges(files=set(changed), modules=set(touched), keywords=rekeyed | set(touched),
                               edges=moved_edges))


def _rebuild(source: Source, store: Store, config: RepoConfig, pv: str, memo_ok: bool, had_graph: bool,
             progress: Progress | None) -> _Built:
    """The graph from the complete list of files; modules whose fingerprint is unchanged are reused as stored,
    imports are re-resolved only when the set of paths changed."""
    old_files = store.file_rows() if memo_ok else {}
    old_mods = store.module_rows() if had_graph else {}
    entries = sorted((e for e in source.entries() if not skipped(e.path, config)), key=lambda e: e.path)
    paths = [e.path for e in entries]
    specs = plan_modules(paths, config)
    assigner = Assigner(specs)
    explicit = {em.id: em for em in config.modules}
    by_mod: dict[str, list[Entry]] = {s.id: [] for s in specs}
    for e in entries:
        by_mod[assigner.module_of(e.path)].append(e)
    fps = {s.id: module_fingerprint(s, explicit.get(s.id), [(e.path, e.blob) for e in by_mod[s.id]], pv)
           for s in specs}
    memo = {mid: old_mods[mid] for mid in fps if memo_ok and mid in old_mods and old_mods[mid][0] == fps[mid]}
    changed_blob = {e.path for e in entries if old_files.get(e.path, ("",))[0] != e.blob}
    need = [e for e in entries if e.path in changed_blob or assigner.module_of(e.path) not in memo]
    records, parsed, cached = read_records(source, store, config, need, pv, progress)
    rec_by_path = {r.path: r for r in records}
    if progress:
        progress("graph", 0, 1)
    old_terms = store.module_terms() if memo else {}
    for mid in old_mods if memo else ():
        old_terms.setdefault(mid, Counter())
    local, terms = {}, {}
    for s in specs:
        if s.id in memo:
            local[s.id] = Module.stored(s.id, None, [], memo[s.id][3])
            terms[s.id] = old_terms[s.id]
        else:
            local[s.id], terms[s.id] = build_module(s, explicit.get(s.id), [rec_by_path[e.path] for e in by_mod[s.id]])
    # dependency edges: re-resolve only what may have changed
    pathset = hashlib.sha1("\n".join(paths).encode()).hexdigest()
    same_paths = memo_ok and store.get_meta("pathset") == pathset
    resolver = None
    files: dict[str, tuple[str, list[str], list[str]]] = {}
    for e in entries:
        if e.path not in changed_blob and e.path in old_files:
            imports = old_files[e.path][1]
            if same_paths:
                files[e.path] = (e.blob, imports, old_files[e.path][2])
                continue
        else:
            imports = list(rec_by_path[e.path].imports)
        resolver = resolver or Resolver(paths)
        files[e.path] = (e.blob, imports, file_targets(resolver, e.path, language_for(e.path), imports))
    depends = edges_from_targets({p: t for p, (_, _, t) in files.items()}, assigner.module_of)
    previous = None
    if memo:  # keywords of unchanged modules whose words kept their document frequency are reused
        previous = (old_terms, {mid: row[2] for mid, row in old_mods.items()}, set(memo))
    graph = assemble(specs, local, terms, fps, depends, source.commit, previous_keywords=previous)
    if progress:
        progress("graph", 1, 1)
    old_ids = set(old_mods)
    changed = sorted(mid for mid in set(graph.modules) & old_ids
                     if old_mods[mid][0] != fps[mid] or old_mods[mid][1:3] != (graph.modules[mid].parent,
                                                                               graph.modules[mid].keywords))
    return _Built(graph, specs, paths, fps, files, {k: dict(v) for k, v in terms.items()}, parsed, cached,
                  {mid for mid, es in by_mod.items() if es}, sorted(set(graph.modules) - old_ids),
                  sorted(old_ids - set(graph.modules)), changed,
                  sorted(changed_blob | (set(old_files) - set(paths))) if memo_ok else paths)


def index(root: str | Path, store: Store, *, rev: str | None = None, full: bool = False,
          progress: Progress | None = None) -> IndexResult:
    """Bring the stored graph to `rev` (default HEAD, or the folder as it is).

    Without `full`, modules whose fingerprint did not change are taken from the store as they are
    and history is appended from the last indexed commit; with `full`, everything is recomputed
    (the parse cache still applies). Both give the same graph.
    """
    t0 = time.perf_counter()
    root = Path(root)
    source = open_source(root, rev)
    folder_notes: list[str] = []
    config = config_for(source, folder_notes)
    run_id = store.start_run("index" if full else "refresh")
    notes: list[str] = []
    try:
        pv = parser_version()
        had_graph = store.has_graph()
        memo_ok = had_graph and not full and store.get_meta("parser") == pv
        built = None
        if memo_ok and isinstance(source, GitSource):
            built = _patch(root, source, store, config, pv, progress)
        if built is None:
            built = _rebuild(source, store, config, pv, memo_ok, had_graph, progress)
        graph, specs, paths = built.graph, built.specs, built.paths
        unparsed = no_grammar_note(paths) if full or not had_graph else ""  # said once, not on every refresh
        if unparsed:
            notes.append(unparsed)
        if (full or not had_graph or store.get_meta("own") != json.dumps(config.own)
                or store.get_meta("marks") != json.dumps(config.marks)):  # said when it may have changed
            notes += folder_notes

        # history
        history: list[HistoryExample] = []
        replace = True
        layout_hash = hashlib.sha1(json.dumps([[s.id, s.prefixes] for s in specs]).encode()
                                   + config.fingerprint().encode()
                                   + (resources.files("indexer") / "history.py").read_bytes()
                                   + HISTORY_PATHS_RULES.encode()).hexdigest()  # rules
        if isinstance(source, GitSource):
            last = store.get_meta("commit")
            same_layout = store.get_meta("layout") == layout_hash
            if not full and had_graph and last and same_layout and _is_ancestor(root, last, source.commit):
                rng = f"{last}..{source.commit}"
                replace = False
            else:
                rng = source.commit
                if last and had_graph and not full:
                    notes.append("full history re-mined (the module layout or the mining rules changed, or history "
                                 "was rewritten)")
            if progress:
                progress("history", 0, 1)
            module_of = history_module_of(graph, config, paths, mine_moves(root, rng), ci_moved=True)
            history = mine_history(root, module_of, rev_range=rng, max_modules=config.history_max_modules,
                                   known_modules=built.leaves)
            if replace:  # the whole history: an appended range is judged with it at the next full mining
                history, stale = drop_vanished(history, module_of)
                if stale:
                    notes.append("history of folders that no longer exist no longer counts for " + ", ".join(
                        f"{m} ({n} changes)" for m, n in stale.items()))
            if progress:
                progress("history", 1, 1)
        else:
            notes.append("not a git repository (or no commits): indexed without history")

        meta = {"commit": source.commit or "", "layout": layout_hash, "root": str(root.resolve()), "parser": pv,
                "rules": rules_version(config, pv), "own": json.dumps(config.own),
                "marks": json.dumps(config.marks)}
        if built.changes is None:
            meta["pathset"] = hashlib.sha1("\n".join(paths).encode()).hexdigest()
            meta["specs"] = json.dumps([[s.id, list(s.prefixes), s.explicit] for s in specs], separators=(",", ":"))
        store.save_graph(graph, built.files, built.fps, built.terms, history, replace_history=replace, meta=meta,
                         changes=built.changes)
        graph.history = store.history()
        result = IndexResult(graph, full or not had_graph, len(paths), built.parsed, built.cached, len(history), replace,
                             built.added, built.removed, built.changed, built.changed_files, time.perf_counter() - t0,
                             notes, config)
        store.finish_run(run_id, "ok", result.summary())
        return result
    except BaseException as e:
        try:
            store.finish_run(run_id, "failed", {"error": str(e) or type(e).__name__})
        except Exception:
            pass
        if isinstance(e, (IndexerError, KeyboardInterrupt)):
            raise
        raise IndexerError(f"indexing failed: {e}") from e


def refresh(root: str | Path, store: Store, *, progress: Progress | None = None) -> IndexResult:
    """Incremental: only changed files are parsed; history is appended from the last indexed commit."""
    return index(root, store, full=False, progress=progress)
