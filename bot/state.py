"""What a running modmatch process holds: the repositories it serves, each with its last good
graph and matcher. Shared by the HTTP service, the Slack app and the GitHub webhooks.

A refresh or a retraining that fails never replaces what is served: `RepoState.reload()` swaps in
a new graph (and matcher) only after it loaded completely.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from indexer.graph import ModuleGraph
from indexer.store import Store, db_path_for
from inference.base import Match, clean_text, create
from inference.cache import cached_matcher
from inference.errors import ModelNotFoundError

from . import settings

log = logging.getLogger(__name__)


@dataclass
class Answer:
    matches: list[Match]
    matcher: str
    graph_version: str
    model_version: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"matches": [m.to_dict() for m in self.matches], "matcher": self.matcher,
                "graph_version": self.graph_version, "model_version": self.model_version,
                "seconds": round(self.seconds, 4)}


class RepoState:
    """One served repository: its store, its last good graph and the matcher built on it."""

    def __init__(self, name: str, root: str | Path, home: Path | None = None, matcher: str | None = None):
        self.name = name
        self.root = Path(root).resolve()
        self.home = home or settings.home()
        self.store = Store(db_path_for(self.home, self.root))
        self.matcher_name = matcher or settings.get("matcher") or "auto"
        self._lock = threading.RLock()
        self._graph: ModuleGraph | None = None
        self._matcher = None
        self._matcher_label = ""
        self.model_version: str | None = None
        self.no_model_reason = ""

    @property
    def models_dir(self) -> Path:
        return self.home / "models" / self.store.path.stem  # == settings.models_dir(root) for the default home

    @property
    def graph(self) -> ModuleGraph:
        with self._lock:
            if self._graph is None:
                self._graph = self.store.load_graph()
            return self._graph

    def reload(self) -> None:
        """Load the stored graph (after a refresh) and rebuild the matcher; keep the old on failure."""
        graph = Store(self.store.path).load_graph()
        matcher, label, model_version = self._build_matcher(graph)
        with self._lock:
            self._graph, self._matcher, self._matcher_label, self.model_version = graph, matcher, label, model_version

    def _retrieval(self, graph: ModuleGraph, name: str = "hybrid"):
        return cached_matcher(name, graph, self.home / "cache" / "matchers" / self.store.path.stem)

    def _build_matcher(self, graph: ModuleGraph):
        name = self.matcher_name
        if name in ("auto", "lm-hybrid"):
            try:
                from inference.lm_matcher import get_runtime

                rt = get_runtime(self.models_dir)  # raises ModelNotFoundError when no model was trained yet
                metrics = (rt.current.metadata or {}).get("metrics", {})
                if name == "auto" and metrics.get("accuracy", 1.0) < metrics.get("retrieval_accuracy", 0.0):
                    raise ModelNotFoundError(  # "auto" serves the model only where it validated at least as well
                        f"the model validated below retrieval ({metrics['accuracy']:.2f} < "
                        f"{metrics['retrieval_accuracy']:.2f})")
                m = create("lm-hybrid", graph, model_dir=self.models_dir, retrieval=self._retrieval(graph))
                return m, "lm-hybrid", getattr(m, "model_version", None)
            except ModelNotFoundError as e:  # no (good enough) fine-tuned model: retrieval answers
                if name != "auto":
                    raise
                log.info("state.no-model repo=%s reason=%s", self.name, e)
                self.no_model_reason = str(e)
                name = "hybrid"
        if name.startswith("lm"):
            m = create(name, graph, model_dir=self.models_dir)
        else:
            m = self._retrieval(graph, name)
        return m, name, getattr(m, "model_version", None)

    def matcher(self):
        with self._lock:
            if self._matcher is None:
                self._matcher, self._matcher_label, self.model_version = self._build_matcher(self.graph)
            return self._matcher, self._matcher_label

    def match(self, text: str, k: int = 5) -> Answer:
        t0 = time.perf_counter()
        text = clean_text(text)
        matcher, label = self.matcher()
        graph = self.graph
        matches = matcher.match(text, k=k)
        return Answer(matches, label, graph.version, self.model_version, time.perf_counter() - t0)

    def add_feedback(self, text: str, modules: list[str], source: str, key: str | None = None) -> bool:
        """A person's answer becomes a training example. Unknown module IDs are refused."""
        unknown = [m for m in modules if m not in self.graph.modules]
        if unknown:
            raise ValueError(f"unknown module(s): {', '.join(unknown)}")
        return Store(self.store.path).add_feedback(text, modules, source, key)


@dataclass
class AppState:
    """All repositories this process serves, plus hooks the service wires in (job queue, ...)."""

    repos: dict[str, RepoState] = field(default_factory=dict)
    default: str | None = None
    queue_refresh: Callable[[str, str], object] | None = None  # (repo name, reason) -> job id

    def add(self, repo: RepoState) -> RepoState:
        self.repos[repo.name] = repo
        if self.default is None:
            self.default = repo.name
        return repo

    def repo(self, name: str | None = None) -> RepoState:
        key = name or self.default
        if key not in self.repos:
            raise KeyError(f"unknown repository {name!r}; served: {', '.join(self.repos) or 'none'}")
        return self.repos[key]
