"""Built retrieval matchers cached on disk, keyed by matcher, graph version and matcher code.

Building `hybrid` on a repository with a long history fits classifiers and tunes weights (tens of
seconds); a cached copy loads in a fraction of a second. A cache that cannot be read (corrupt,
older code, different library versions) is rebuilt; a cache that cannot be written is skipped.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import re
from importlib import resources
from pathlib import Path

from indexer.graph import ModuleGraph

from .base import capabilities, create

log = logging.getLogger(__name__)
_CODE = ("base.py", "scoring.py", "calibration.py", "lexical.py", "dense.py", "history_clf.py", "hybrid.py", "cache.py",
         "bilingual.py", "evidence.py", "files.py")
_INDEXER_CODE = ("text.py", "zh_terms.tsv")  # how words are cut, and the glossary


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the matchers' code and the glossary as this process loaded them (read once: every cache lookup
    names its file by it)."""
    h = hashlib.sha1()
    for name in _CODE:
        h.update((resources.files("inference") / name).read_bytes())
    for name in _INDEXER_CODE:
        h.update((resources.files("indexer") / name).read_bytes())
    return h.hexdigest()[:10]


def _attach(matcher, graph: ModuleGraph) -> None:
    matcher.graph = graph
    for part in getattr(matcher, "parts", {}).values():
        _attach(part, graph)


def _file(folder: Path, name: str, graph: ModuleGraph, variant: str) -> Path:
    return folder / f"{name}-{graph.version}{variant}-{code_version()}.pkl"


def is_cached(name: str, graph: ModuleGraph, cache_dir: str | Path, variant: str = "") -> bool:
    """Whether `cached_matcher` would load `name` for this graph version instead of building it."""
    return not capabilities(name).cacheable or _file(Path(cache_dir), name, graph, variant).is_file()


def _load(path: Path, graph: ModuleGraph):
    with open(path, "rb") as fh:
        m = pickle.load(fh)
    _attach(m, graph)
    return m


def _newest(paths: list[Path], graph: ModuleGraph, answers: bool = False):
    """The matcher pickled in the newest of `paths`, attached to `graph` (with `answers`, it must also answer a
    question with this code), or None: none there, or it does not load."""
    if not paths:
        return None
    newest = max(paths, key=lambda p: p.stat().st_mtime)
    try:
        m = _load(newest, graph)
        if answers:
            m.match(next(iter(graph.modules)), k=1)
    except Exception as e:
        log.warning("matcher-cache.unusable path=%s error=%s", newest, e)
        return None
    return m


def _previous(folder: Path, name: str, graph: ModuleGraph, path: Path):
    """The matcher cached for another graph version by this code (the one a refresh replaced), or None."""
    return _newest([p for p in folder.glob(f"{name}-*-{code_version()}.pkl") if p != path], graph)


def stale_matcher(name: str, graph: ModuleGraph, cache_dir: str | Path, variant: str = ""):
    """The matcher another version of this code cached for this very graph (and variant), or None: what a service
    answers with after an upgrade of modmatch while this code's build runs (minutes; a quarter of an hour on a large
    repository), as a refresh answers with the last matcher while the next one builds. It must load and answer a
    question here (the earlier code's objects, with this code), or it is not used."""
    if not capabilities(name).cacheable:
        return None
    folder = Path(cache_dir)
    stem = f"{name}-{graph.version}{variant}-"
    current = _file(folder, name, graph, variant)
    code = re.compile(rf"[0-9a-f]{{{len(code_version())}}}")  # another code's suffix, not another variant's
    m = _newest([p for p in folder.glob(f"{stem}*.pkl")
                 if p != current and code.fullmatch(p.name[len(stem):-len(".pkl")])], graph, answers=True)
    if m is not None:
        log.info("matcher-cache.stale matcher=%s version=%s", name, graph.version)
    return m


def _write_summary(path: Path, name: str, graph: ModuleGraph, matcher) -> None:
    """Beside the pickle, what the build chose that people read without loading it (`modmatch doctor`): the
    auto-label operating point, and the precision / coverage trade on the held-out changes it was read on."""
    import json

    from .calibration import held_out_of, operating_of, precision_trade

    op = operating_of(matcher)
    held = held_out_of(matcher)
    trade = precision_trade(held["confidence"], held["right"]) if held else None
    tmp = path.with_suffix(f".{os.getpid()}.json.tmp")
    tmp.write_text(json.dumps({"matcher": name, "graph_version": graph.version, "operating": op, "trade": trade}))
    os.replace(tmp, path.with_suffix(".json"))


def read_summary(cache_dir: str | Path) -> dict | None:
    """The summary of the newest matcher cached in `cache_dir` (`_write_summary`), or None."""
    import json

    found = []
    for p in Path(cache_dir).glob("*.json") if Path(cache_dir).is_dir() else []:
        try:  # a refresh may replace a summary while it is read
            found.append((p.stat().st_mtime, p.read_text()))
        except OSError:
            continue
    for _, text in sorted(found, reverse=True):
        try:
            return json.loads(text)
        except ValueError:
            continue
    return None


def cached_matcher(name: str, graph: ModuleGraph, cache_dir: str | Path, *, incremental: bool = True,
                   variant: str = "", **opts):
    """`create(name, graph, **opts)`, through a pickle under `cache_dir` for the retrieval matchers.

    When the cache holds this matcher for an earlier graph (a refresh made a new version), and it can be brought up
    to this graph (`updated(graph)`: the hybrid can, until a full build is due), it is updated instead of built.
    `variant` names what the graph's version does not cover (people's corrections added to its history)."""
    if not capabilities(name).cacheable:
        return create(name, graph, **opts)
    folder = Path(cache_dir)
    path = _file(folder, name, graph, variant)
    if path.is_file():
        try:
            return _load(path, graph)
        except Exception as e:  # stale or corrupt: rebuild
            log.warning("matcher-cache.unreadable path=%s error=%s", path, e)
    m = None
    prev = _previous(folder, name, graph, path) if incremental and folder.is_dir() else None
    if prev is not None and hasattr(prev, "updated"):
        try:
            m = prev.updated(graph)
        except Exception as e:  # an update that fails falls back to the full build
            log.warning("matcher-cache.update-failed matcher=%s error=%s", name, e)
        if m is not None:
            log.info("matcher-cache.updated matcher=%s version=%s updates=%s", name, graph.version,
                     getattr(m, "lineage", {}).get("updates"))
    if m is None:
        m = create(name, graph, **opts)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(m, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        _write_summary(path, name, graph, m)
        for old in [*folder.glob(f"{name}-*.pkl"), *folder.glob(f"{name}-*.json")]:  # older graph versions are
            if old not in (path, path.with_suffix(".json")):  # never asked for again
                old.unlink(missing_ok=True)
    except Exception as e:
        log.warning("matcher-cache.unwritable path=%s error=%s", path, e)
    _attach(m, graph)
    return m
