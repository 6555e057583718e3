"""Index and refresh: from a repository (a commit, or a plain folder) to a stored module graph.

``index`` and ``refresh`` run the same pipeline; a refresh differs only in what it can reuse:
files whose content (blob id) is already in the parse cache are not read or parsed again, and
history is mined only for the new commits when the module layout did not change. The graph
itself is always rebuilt from the complete set of file records, so a refresh from A to B gives
exactly the graph of a full index of B.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from .describe import file_terms
from .config import CONFIG_NAME, RepoConfig, load_config
from .deps import Resolver, edges_from_targets, file_targets
from .graph import ModuleGraph, assemble, build_module, module_fingerprint
from .history import Moves, mine_history, mine_moves
from .languages import language_for
from .modules import ROOT_ID, Assigner, plan_modules, skipped
from .parse import parse_file
from .records import FileRecord, HistoryExample, Module
from .source import Entry, GitSource, Source, git, open_source
from .store import Store
from .errors import IndexerError

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
PARALLEL_MIN_FILES = 400


def parser_version() -> str:
    """Changes whenever the queries or the parser change, invalidating the parse cache."""
    h = hashlib.sha1(b"parse-v2")
    qdir = resources.files("indexer") / "queries"
    for q in sorted(qdir.iterdir(), key=lambda p: p.name):
        if q.name.endswith(".scm"):
            h.update(q.name.encode())
            h.update(q.read_bytes())
    h.update((resources.files("indexer") / "parse.py").read_bytes())
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

    def summary(self) -> dict:
        return {
            "commit": self.graph.commit, "version": self.graph.version, "full": self.full,
            "modules": len(self.graph), "files": self.files, "parsed": self.parsed, "cached": self.cached,
            "history_added": self.history_added, "history_rebuilt": self.history_rebuilt, "added_modules": self.added_modules,
            "removed_modules": self.removed_modules, "changed_modules": self.changed_modules,
            "changed_files": len(self.changed_files), "seconds": round(self.elapsed, 3), "notes": self.notes,
        }


def config_for(source: Source) -> RepoConfig:
    """`.modmatch.toml` as of the snapshot (from the commit itself for a git source)."""
    if isinstance(source, GitSource):
        text = git(source.root, "show", f"{source.commit}:{CONFIG_NAME}", check=False)
        return load_config(source.root, text) if text else RepoConfig()
    return load_config(source.root)


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


def history_module_of(graph: ModuleGraph, config: RepoConfig, paths: list[str], moves: Moves | None = None):
    """How a past change's files map to today's modules: a file that was moved since maps to where it
    lives now (`moves`, git's renames); skipped files and folders that no longer exist map to None (so
    stale history never points at the wrong module)."""
    tops = {p.split("/", 1)[0] for p in paths if "/" in p}
    present = set(paths) if moves else set()

    def module_of(path: str) -> str | None:
        if moves and path not in present:
            path = moves.resolve(path, present.__contains__) or path
        if skipped(path, config):
            return None
        mid = graph.module_of(path)
        if mid == ROOT_ID and "/" in path and path.split("/", 1)[0] not in tops:
            return None  # a folder that no longer exists: its changes teach nothing about today's modules
        return mid

    return module_of


def _is_ancestor(root: Path, old: str, new: str) -> bool:
    import subprocess

    from .source import GIT_ENV

    p = subprocess.run(["git", "-C", str(root), "merge-base", "--is-ancestor", old, new], capture_output=True, env=GIT_ENV)
    return p.returncode == 0


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
    config = config_for(source)
    run_id = store.start_run("index" if full else "refresh")
    notes: list[str] = []
    try:
        pv = parser_version()
        had_graph = store.has_graph()
        memo_ok = had_graph and not full and store.get_meta("parser") == pv
        old_files = store.file_rows() if memo_ok else {}
        old_mods = store.module_memo() if had_graph else {}
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
        local, terms = {}, {}
        for s in specs:
            if s.id in memo:
                local[s.id] = Module.from_dict(json.loads(memo[s.id][1]))
                terms[s.id] = Counter(json.loads(memo[s.id][2]))
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
        old_kw = store.module_keywords() if had_graph else {}
        previous = None
        if memo:  # keywords of unchanged modules whose words kept their document frequency are reused
            old_terms = {mid: terms[mid] for mid in memo}
            old_terms.update({mid: Counter(json.loads(v[2])) for mid, v in old_mods.items() if mid not in memo})
            previous = (old_terms, {mid: kw for mid, (_, kw) in old_kw.items()}, set(memo))
        graph = assemble(specs, local, terms, fps, depends, source.commit, previous_keywords=previous)
        if progress:
            progress("graph", 1, 1)
        changed_files = sorted(changed_blob | (set(old_files) - set(paths))) if memo_ok else paths

        # history
        history: list[HistoryExample] = []
        replace = True
        layout_hash = hashlib.sha1(json.dumps([[s.id, s.prefixes] for s in specs]).encode()
                                   + config.fingerprint().encode()).hexdigest()
        if isinstance(source, GitSource):
            last = store.get_meta("commit")
            same_layout = store.get_meta("layout") == layout_hash
            known = set(graph.leaf_ids())
            if (not full and had_graph and last and same_layout
                    and git(root, "cat-file", "-t", last, check=False).strip() == "commit"
                    and _is_ancestor(root, last, source.commit)):
                rng = f"{last}..{source.commit}"
                replace = False
            else:
                rng = source.commit
                if last and had_graph and not full:
                    notes.append("full history re-mined (module layout changed or history was rewritten)")
            if progress:
                progress("history", 0, 1)
            module_of = history_module_of(graph, config, paths, mine_moves(root, rng))
            history = mine_history(root, module_of, rev_range=rng, max_modules=config.history_max_modules,
                                   known_modules=known)
            if progress:
                progress("history", 1, 1)
        else:
            notes.append("not a git repository (or no commits): indexed without history")

        old_ids = set(old_mods)
        added = sorted(set(graph.modules) - old_ids)
        removed = sorted(old_ids - set(graph.modules))
        changed = sorted(mid for mid in set(graph.modules) & old_ids
                         if old_mods[mid][0] != fps[mid] or old_kw.get(mid) != (graph.modules[mid].parent,
                                                                               graph.modules[mid].keywords))
        store.save_graph(graph, files, fps, {k: dict(v) for k, v in terms.items()}, history, replace_history=replace,
                         meta={"commit": source.commit or "", "layout": layout_hash, "root": str(root.resolve()),
                               "parser": pv, "pathset": pathset})
        graph.history = store.history()
        result = IndexResult(graph, full or not had_graph, len(files), parsed, cached, len(history), replace,
                             added, removed, changed, changed_files, time.perf_counter() - t0, notes)
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
