"""The module knowledge graph: modules as nodes, containment and dependency edges (networkx).

``build_graph`` is a pure function of the parsed files and the configuration, so refreshing from
commit A to B and indexing B from scratch give the same graph (the refresh only avoids re-parsing).
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any, Iterable

import networkx as nx

from .config import RepoConfig
from .describe import describe, keyword_index, keywords, module_terms
from .deps import module_edges
from .errors import UnknownModuleError
from .modules import ROOT_ID, Assigner, ModuleSpec, parent_of, plan_modules, skipped
from .records import FileRecord, HistoryExample, Module

MAX_SYMBOLS_PER_MODULE = 400


class ModuleGraph:
    """Modules keyed by ID, with `contains` (parent → child) and `depends` (weighted) edges."""

    def __init__(self, modules: dict[str, Module], depends: dict[tuple[str, str], int],
                 commit: str | None = None, specs: list[ModuleSpec] | None = None):
        self.modules = dict(sorted(modules.items()))
        self.commit = commit
        self.g = nx.DiGraph()
        for mid, m in self.modules.items():
            self.g.add_node(mid)
        for mid, m in self.modules.items():
            if m.parent is not None:
                self.g.add_edge(m.parent, mid, kind="contains", weight=1)
        self.depends = dict(sorted(depends.items()))
        for (a, b), w in self.depends.items():
            if not self.g.has_edge(a, b):
                self.g.add_edge(a, b, kind="depends", weight=w)
        self.keyword_index = keyword_index(self.modules)
        self._specs = specs if specs is not None else [
            ModuleSpec(m.id, tuple(m.paths), m.explicit) for m in self.modules.values()]
        self._assigner = Assigner(self._specs)
        self.history: list[HistoryExample] = []
        self._version: str | None = None
        self._json: str | None = None

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
        if self._version is None:
            self._version = hashlib.sha256(self.json_text().encode()).hexdigest()[:16]
        return self._version

    def json_text(self) -> str:
        """The node-link JSON without history, serialised once (the graph is not mutated after build)."""
        if self._json is None:
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
        out = {"directed": True, "multigraph": False, "graph": {"commit": self.commit}, "nodes": nodes, "links": links}
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
        g = cls(mods, depends, commit=data.get("graph", {}).get("commit"))
        g.history = [HistoryExample.from_dict(h) for h in data.get("graph", {}).get("history", [])]
        return g


def build_graph(records: Iterable[FileRecord], config: RepoConfig, commit: str | None = None) -> ModuleGraph:
    """Modules, attributes and edges from parsed files. Deterministic for a given input."""
    recs = sorted((r for r in records if not skipped(r.path, config)), key=lambda r: r.path)
    specs = plan_modules([r.path for r in recs], config)
    assigner = Assigner(specs)
    by_mod: dict[str, list[FileRecord]] = defaultdict(list)
    for r in recs:
        by_mod[assigner.module_of(r.path)].append(r)
    explicit = {em.id: em for em in config.modules}
    ids = {s.id for s in specs}
    mods: dict[str, Module] = {}
    for s in specs:
        rs = by_mod.get(s.id, [])
        em = explicit.get(s.id)
        syms = [sym for r in rs for sym in r.symbols][:MAX_SYMBOLS_PER_MODULE]
        m = Module(
            id=s.id,
            paths=list(s.prefixes),
            name=(em.name if em and em.name else s.id.rsplit("/", 1)[-1]),
            description=(em.description if em else ""),
            aliases=list(em.aliases) if em else [],
            files=[r.path for r in rs],
            symbols=syms,
            parent=parent_of(s.id, ids),
            stats={
                "files": len(rs),
                "bytes": sum(r.size for r in rs),
                "lines": sum(r.lines for r in rs),
                "symbols": sum(len(r.symbols) for r in rs),
            },
            explicit=s.explicit,
        )
        m.description = describe(m, rs)
        mods[s.id] = m
    terms = {mid: module_terms(m, by_mod.get(mid, [])) for mid, m in mods.items()}
    for mid, kws in keywords(terms).items():
        mods[mid].keywords = kws
    depends = module_edges(recs, assigner.module_of)
    return ModuleGraph(mods, depends, commit=commit, specs=specs)
