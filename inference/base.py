"""The matcher contract: `match(text, k) -> [Match]`, and a registry by name.

Every way of mapping a requirement to modules (lexical, dense, history, lm, hybrids) implements
`Matcher` and registers a factory, so the CLI, the bot and the benchmarks can pick any of them:

    @register("lexical")
    def _make(graph, **opts): return LexicalMatcher(graph, **opts)

    m = create("lexical", graph)
    m.match("crash when loading a model", k=5)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Protocol

from indexer.graph import ModuleGraph
from indexer.text import strip_boilerplate

from .errors import BadInputError, UnknownMatcherError


MAX_TEXT_CHARS = 20_000


@dataclass
class Match:
    module: str  # a module ID of the graph the matcher was built on
    score: float  # matcher-specific, higher is better
    confidence: float  # calibrated probability that this module is right, in [0, 1]
    evidence: list[str] = field(default_factory=list)  # human-readable reasons
    files: list[str] = field(default_factory=list)  # where in a big module to look, best first (`inference.files`)

    def to_dict(self) -> dict:
        return {"module": self.module, "score": round(float(self.score), 6),
                "confidence": round(float(self.confidence), 4), "percent": self.percent,
                "evidence": list(self.evidence), "files": list(self.files)}

    @property
    def percent(self) -> str:
        return percent(self.confidence)


def percent(confidence: float) -> str:
    """A confidence as people read it, in whole percent, where rounding never turns a calibrated chance into a
    certainty: above 99 % reads ">99%" and below 1 % (not 0) "<1%", so an answer right 998 times in 1,000 is not
    shown as sure and a long shot is not shown as impossible."""
    c = float(confidence)
    if 0.99 < c < 1.0:
        return ">99%"
    if 0.0 < c < 0.01:
        return "<1%"
    return f"{c:.0%}"


def unread_note(unread: list[str]) -> str:
    """What to tell a person whose text holds words the repository cannot read (`Coverage.unread`)."""
    return (f"read nothing of {'、'.join(unread)}: no English for them in the glossary, and this repository writes no "
            "Chinese; the English word or a name from the code helps")


class Matcher(Protocol):
    name: str

    def match(self, text: str, k: int = 5) -> list[Match]: ...


Factory = Callable[..., Matcher]


def ranking(matcher, text: str, k: int) -> list[tuple[str, float]]:
    """The top k (module, score) of `matcher`: its `ranked` (no confidences or evidence: half the cost of a hybrid
    `match`) where it has one, else from `match`. For training rows and fusion tuning, which read only these."""
    if hasattr(matcher, "ranked"):
        return matcher.ranked(text, k)
    return [(m.module, m.score) for m in matcher.match(text, k=k)]


@dataclass(frozen=True)
class Capabilities:
    """What a matcher declares when it registers, so callers never guess from its name."""

    needs_model: bool = False  # loads a fine-tuned model (takes model_dir= / runtime=, not the retrieval options)
    cacheable: bool = True  # its built state may be pickled and reloaded (inference/cache.py)
    default_eval: bool = False  # part of the set `modmatch eval` scores when no --matcher is given


_REGISTRY: dict[str, tuple[Factory, Capabilities]] = {}


def register(name: str, *, needs_model: bool = False, cacheable: bool | None = None,
             default_eval: bool = False) -> Callable[[Factory], Factory]:
    """Register a factory under `name`; a matcher that needs a model is never cached unless it says so."""
    caps = Capabilities(needs_model, (not needs_model) if cacheable is None else cacheable, default_eval)

    def deco(fn: Factory) -> Factory:
        _REGISTRY[name] = (fn, caps)
        return fn

    return deco


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def capabilities(name: str) -> Capabilities:
    return _entry(name)[1]


_BUILTIN_ORDER = ("lexical", "history", "dense", "hybrid", "lm", "lm-hybrid")


def default_eval_names() -> list[str]:
    """The matchers `modmatch eval` scores by default: the built-in ones in their fixed order (whichever module was
    imported first), then any other by name."""
    _load_builtins()
    names = [n for n, (_, caps) in _REGISTRY.items() if caps.default_eval]
    return sorted(names, key=lambda n: (_BUILTIN_ORDER.index(n) if n in _BUILTIN_ORDER else len(_BUILTIN_ORDER), n))


def create(name: str, graph: ModuleGraph, **opts) -> Matcher:
    return _entry(name)[0](graph, **opts)


def _entry(name: str) -> tuple[Factory, Capabilities]:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMatcherError(f"no matcher named {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def _load_builtins() -> None:
    """Import the built-in matcher modules so their @register calls run."""
    import importlib

    for mod in ("inference.lexical", "inference.history_clf", "inference.dense", "inference.hybrid",
                "inference.lm_matcher"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:  # a real missing dependency inside the module
                raise


# What the vocabulary matchers (lexical, dense) read of a long text: its head, without fenced code. On real issue
# texts (bench/issue_benchmark.py, 59 pytest and svelte issues) BM25 over the whole text answered 0.48 / 0.10 at
# Acc@1 and pulled the hybrid below its own history part (0.76 vs 0.90 on pytest): the snippets, logs and versions of
# a long issue match every module a little. Its first 400 code-free characters (the title and first paragraph)
# gave lexical 0.52 / 0.23 and the hybrid 0.83 / 0.67. The history classifier and exact mentions still read it all.
QUERY_HEAD_CHARS = 400
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)


def query_head(text: str, chars: int = QUERY_HEAD_CHARS) -> str:
    """`text` without fenced code blocks, cut to about `chars` characters at a word boundary."""
    head = _FENCE.sub(" ", text).strip() or text
    if len(head) > chars:
        cut = head.rfind(" ", chars // 2, chars)
        head = head[: cut if cut > 0 else chars]
    return head


def clean_text(text: str | bytes, limit: int = MAX_TEXT_CHARS) -> str:
    """Validate and normalise a requirement. Long text keeps its start and its end.

    Issue and pull-request template boilerplate is removed (`indexer.text.strip_boilerplate`).
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
    text = strip_boilerplate(text)
    if len(text) > limit:
        head = limit * 2 // 3
        tail = limit - head
        text = text[:head] + "\n…\n" + text[-tail:]
    return text
