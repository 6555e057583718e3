"""The module knowledge graph: modules as nodes, containment and dependency edges.

A module's local attributes (files, symbols, description, terms, stats) are a pure function of its
*fingerprint* (its spec, its files' paths and content ids, the parser); whole-graph attributes
(parents, keywords, edges) derive from all modules: a rebuild recomputes them, a refresh that only
modifies files moves them by what changed (keywords of the modules having a word whose document
frequency moved, edges by the modified files' imports). So a refresh may reuse every module whose
fingerprint is unchanged, and refreshing from commit A to B still gives exactly the graph of
indexing B from scratch.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from functools import cache, cached_property
from importlib import resources
from typing import Any, Iterable

from .config import RepoConfig
from .describe import describe, keyword_index, keywords, module_terms
from .deps import module_edges
from .errors import UnknownModuleError
from .modules import Assigner, ModuleSpec, parent_of, plan_modules, skipped
from .records import FileRecord, HistoryExample, Module

MAX_SYMBOLS_PER_MODULE = 400


class ModuleGraph:
    """Modules keyed by ID, with `contains` (parent → child) and `depends` (weighted) edges."""

    def __init__(self, modules: dict[str, Module], depends: dict[tuple[str, str], int],
                 commit: str | None = None, specs: list[ModuleSpec] | None = None, version: str | None = None):
        self.modules = dict(sorted(modules.items()))
        self.commit = commit
        self.depends = dict(sorted(depends.items()))
        self._given_specs = specs
        self.history: list[HistoryExample] = []
        self._version: str | None = version
        self._json: str | None = None

    @cached_property
    def keyword_index(self) -> dict[str, list[str]]:
        """keyword or alias -> the modules that have it."""
        return keyword_index(self.modules)

    @cached_property
    def _assigner(self) -> Assigner:  # built on first use: a stored module's paths are decoded only when asked
        specs = self._given_specs if self._given_specs is not None else [
            ModuleSpec(m.id, tuple(m.paths), m.explicit) for m in self.modules.values()]
        return Assigner(specs)

    # --- queries -------------------------------------------------------------------------------
    def __contains__(self, mid: str) -> bool:
        return mid in self.modules

    def __len__(self) -> int:
        return len(self.modules)

    def ids(self) -> list[str]:
        return list(self.modules)

    def leaf_ids(self) -> list[str]:
        """Modules that own files (the answers a matcher can give)."""
        return [mid for mid, m in self.modules.items() if m.files]

    def get(self, mid: str) -> Module:
        try:
            return self.modules[mid]
        except KeyError:
            raise UnknownModuleError(f"no module {mid!r} in the graph") from None

    def module_of(self, path: str) -> str:
        return self._assigner.module_of(path)

    def children(self, mid: str) -> list[str]:
        return sorted(c for c, m in self.modules.items() if m.parent == mid)

    def dependencies(self, mid: str) -> list[tuple[str, int]]:
        return sorted(((b, w) for (a, b), w in self.depends.items() if a == mid), key=lambda x: (-x[1], x[0]))

    def dependents(self, mid: str) -> list[tuple[str, int]]:
        return sorted(((a, w) for (a, b), w in self.depends.items() if b == mid), key=lambda x: (-x[1], x[0]))

    @property
    def version(self) -> str:
        """A content hash of the graph (modules, attributes and edges), stable across runs."""
        if self._version is None:  # a graph made by hand: hash its content
            text = json.dumps(self.to_json(include_history=False), sort_keys=True)
            self._version = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self._version

    def json_text(self) -> str:
        """The node-link JSON without history, serialised once (the graph is not mutated after build)."""
        if self._json is None:
            self.version  # noqa: B018 - fixes the version before it is serialised
            self._json = json.dumps(self.to_json(include_history=False), sort_keys=True, separators=(",", ":"))
        return self._json

    def ids_hash(self) -> str:
        return hashlib.sha256("\n".join(sorted(self.leaf_ids())).encode()).hexdigest()[:16]

    # --- serialisation -------------------------------------------------------------------------
    def to_json(self, include_history: bool = True) -> dict[str, Any]:
        nodes = [m.to_dict() for m in self.modules.values()]
        links = [{"source": m.parent, "target": mid, "kind": "contains", "weight": 1}
                 for mid, m in self.modules.items() if m.parent is not None]
        links += [{"source": a, "target": b, "kind": "depends", "weight": w} for (a, b), w in self.depends.items()]
        out = {"directed": True, "multigraph": False, "graph": {"commit": self.commit, "version": self._version},
               "nodes": nodes, "links": links}
        if include_history:
            out["graph"]["history"] = [h.to_dict() for h in self.history]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModuleGraph":
        mods = {}
        for n in data["nodes"]:
            n = dict(n)
            mods[n["id"]] = Module.from_dict(n)
        depends = {(l["source"], l["target"]): l["weight"] for l in data["links"] if l.get("kind") == "depends"}
        meta = data.get("graph", {})
        g = cls(mods, depends, commit=meta.get("commit"), version=meta.get("version"))
        g.history = [HistoryExample.from_dict(h) for h in data.get("graph", {}).get("history", [])]
        return g


BUILD_VERSION = "graph-v5"  # bump when module-local derivation changes outside DERIVED_BY (below)
# The indexer's code a module's local attributes (description, terms, stats) are derived by, beside the parser: its
# bytes are in every module's fingerprint, so an upgrade that describes modules differently re-describes them at its
# first refresh (stored modules are reused only under an equal fingerprint).
DERIVED_BY = ("describe.py", "graph.py", "records.py", "text.py")


@cache
def derivation_version() -> str:
    h = hashlib.sha1(BUILD_VERSION.encode())
    for name in DERIVED_BY:
        h.update((resources.files("indexer") / name).read_bytes())
    return h.hexdigest()[:16]


def module_fingerprint(spec: ModuleSpec, em, files: list[tuple[str, str]], parser: str) -> str:
    """Everything a module's local attributes derive from: equal fingerprints, equal module."""
    h = hashlib.sha1()
    h.update(json.dumps([derivation_version(), parser, spec.id, list(spec.prefixes), spec.explicit,
                         [em.name, em.description, list(em.aliases)] if em else None]).encode())
    for path, blob in files:
        h.update(f"\n{path}\0{blob}".encode())
    return h.hexdigest()


def build_module(spec: ModuleSpec, em, records: list[FileRecord]) -> tuple[Module, Counter]:
    """A module's local attributes (all but parent and keywords) and its term counts."""
    syms = [sym for r in records for sym in r.symbols][:MAX_SYMBOLS_PER_MODULE]
    m = Module(
        id=spec.id,
        paths=list(spec.prefixes),
        name=(em.name if em and em.name else spec.id.rsplit("/", 1)[-1]),
        description=(em.description if em else ""),
        aliases=list(em.aliases) if em else [],
        files=[r.path for r in records],
        symbols=syms,
        stats={
            "files": len(records),
            "bytes": sum(r.size for r in records),
            "lines": sum(r.lines for r in records),
            "symbols": sum(len(r.symbols) for r in records),
        },
        explicit=spec.explicit,
    )
    m.description = describe(m, records)
    return m, module_terms(m, records)


def assemble(specs: list[ModuleSpec], local: dict[str, Module], terms: dict[str, Counter],
             fingerprints: dict[str, str], depends: dict[tuple[str, str], int], commit: str | None,
             previous_keywords=None) -> ModuleGraph:
    """Whole-graph attributes (parents, keywords, version) on top of module-local ones.
    `previous_keywords`: see describe.keywords (a refresh reuses what cannot have changed)."""
    ids = {s.id for s in specs}
    for mid, kws in keywords(terms, previous=previous_keywords).items():
        local[mid].keywords = kws
    for mid, m in local.items():
        m.parent = parent_of(mid, ids)
    return ModuleGraph(local, depends, commit=commit, specs=specs, version=graph_version(local, fingerprints, depends))


def graph_version(modules: dict[str, Module], fingerprints: dict[str, str], depends: dict[tuple[str, str], int]) -> str:
    """The graph's content hash: module fingerprints, parents and keywords, and the dependency edges."""
    return hashlib.sha256(json.dumps(
        [[mid, fingerprints[mid], modules[mid].parent, modules[mid].keywords] for mid in sorted(modules)]
        + [[a, b, w] for (a, b), w in sorted(depends.items())]).encode()).hexdigest()[:16]


def build_graph(records: Iterable[FileRecord], config: RepoConfig, commit: str | None = None,
                parser: str = "") -> ModuleGraph:
    """Modules, attributes and edges from parsed files, from scratch. Deterministic for a given input."""
    recs = sorted((r for r in records if not skipped(r.path, config)), key=lambda r: r.path)
    specs = plan_modules([r.path for r in recs], config)
    assigner = Assigner(specs)
    by_mod: dict[str, list[FileRecord]] = defaultdict(list)
    for r in recs:
        by_mod[assigner.module_of(r.path)].append(r)
    explicit = {em.id: em for em in config.modules}
    local, terms, fps = {}, {}, {}
    for s in specs:
        rs = by_mod.get(s.id, [])
        local[s.id], terms[s.id] = build_module(s, explicit.get(s.id), rs)
        fps[s.id] = module_fingerprint(s, explicit.get(s.id), [(r.path, r.blob) for r in rs], parser)
    depends = module_edges(recs, assigner.module_of)
    return assemble(specs, local, terms, fps, depends, commit)
