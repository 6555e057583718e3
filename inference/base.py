"""The matcher contract: `match(text, k) -> [Match]`, and a registry by name.

Every way of mapping a requirement to modules (lexical, dense, history, lm, hybrids) implements
`Matcher` and registers a factory, so the CLI, the bot and the benchmarks can pick any of them:

    @register("lexical")
    def _make(graph, **opts): return LexicalMatcher(graph, **opts)

    m = create("lexical", graph)
    m.match("crash when loading a model", k=5)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Protocol

from indexer.graph import ModuleGraph

from .errors import BadInputError, UnknownMatcherError


def env_off(name: str) -> bool:
    """True when the environment variable `name` turns a default-on feature off (0, false, no, off)."""
    return os.environ.get(name, "").strip().lower() in ("0", "false", "no", "off")

MAX_TEXT_CHARS = 20_000


@dataclass
class Match:
    module: str  # a module ID of the graph the matcher was built on
    score: float  # matcher-specific, higher is better
    confidence: float  # calibrated probability that this module is right, in [0, 1]
    evidence: list[str] = field(default_factory=list)  # human-readable reasons

    def to_dict(self) -> dict:
        return {"module": self.module, "score": round(float(self.score), 6),
                "confidence": round(float(self.confidence), 4), "evidence": list(self.evidence)}


class Matcher(Protocol):
    name: str

    def match(self, text: str, k: int = 5) -> list[Match]: ...


Factory = Callable[..., Matcher]
_REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    def deco(fn: Factory) -> Factory:
        _REGISTRY[name] = fn
        return fn

    return deco


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def create(name: str, graph: ModuleGraph, **opts) -> Matcher:
    _load_builtins()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UnknownMatcherError(f"no matcher named {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return factory(graph, **opts)


def _load_builtins() -> None:
    """Import the built-in matcher modules so their @register calls run."""
    import importlib

    for mod in ("inference.lexical", "inference.dense", "inference.history_clf", "inference.hybrid", "inference.lm_matcher"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:  # a real missing dependency inside the module
                raise


def clean_text(text: str | bytes, limit: int = MAX_TEXT_CHARS) -> str:
    """Validate and normalise a requirement. Long text keeps its start and its end.

    Raises BadInputError for empty / whitespace-only / binary input.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise BadInputError("the requirement must be text")
    text = text.replace("\x00", " ")
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\n\t\r")
    if text and printable / len(text) < 0.7:
        raise BadInputError("the requirement looks like binary data, not text")
    text = text.strip()
    if not text:
        raise BadInputError("the requirement is empty")
    if len(text) > limit:
        head = limit * 2 // 3
        tail = limit - head
        text = text[:head] + "\n…\n" + text[-tail:]
    return text


def default_matcher_name(graph: ModuleGraph | None = None) -> str:
    """"lm" when that matcher is registered and says a model exists for this graph, else "hybrid".

    The hook: `inference.lm_matcher` may define `has_model(graph) -> bool`.
    """
    _load_builtins()
    if "lm" in _REGISTRY:
        import importlib

        try:
            mod = importlib.import_module("inference.lm_matcher")
            has_model = getattr(mod, "has_model", None)
            if has_model is not None and has_model(graph):
                return "lm"
        except Exception:  # a broken optional matcher must not break `ask`
            pass
    return "hybrid"
