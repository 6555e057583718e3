"""What a running modmatch process holds: the repositories it serves, each with its last good
graph and matcher. Shared by the HTTP service, the Slack app and the GitHub webhooks.

A refresh or a retraining that fails never replaces what is served: `RepoState.reload()` swaps in
a new graph (and matcher) only after it loaded completely.

Memory is bounded by `max_loaded_repos`: when more repositories hold their graph and matcher than that, the least
recently asked one drops them (status ``unloaded``) and loads them again from the on-disk matcher cache on its next
question. One that is building, loading or reloading is never dropped.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from indexer.errors import NotIndexedError
from indexer.graph import ModuleGraph
from indexer.store import Store, db_path_for, quarantined
from inference.base import Match, capabilities, clean_text, create, unread_note
from inference.cache import cached_matcher
from inference.errors import ModelNotFoundError
from inference.modelstore import ModelStore

from . import settings

log = logging.getLogger(__name__)


@dataclass
class Answer:
    matches: list[Match]
    matcher: str
    graph_version: str
    model_version: str | None = None
    seconds: float = 0.0
    no_module: str | None = None  # why no module should be named: the text is not about this repository
    unread: list[str] = field(default_factory=list)  # its Chinese words this repository cannot read (`unread_words`)

    def notes(self) -> list[str]:
        """What a person should read before the answers: why none may be right, words that were not read."""
        out = [f"not confident: {self.no_module}; none of these may be right"] if self.no_module else []
        if self.unread:
            out.append(unread_note(self.unread))
        return out

    def to_dict(self) -> dict:
        return {"matches": [m.to_dict() for m in self.matches], "matcher": self.matcher,
                "graph_version": self.graph_version, "model_version": self.model_version,
                "seconds": round(self.seconds, 4), "no_module": self.no_module, "unread": list(self.unread),
                "notes": self.notes()}


class RepoUnavailable(Exception):
    """The repository cannot answer now: its matcher is being built, or its database is being rebuilt."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


# One matcher build at a time in a process: builds are CPU-bound, and two at once (a restart with several
# repositories) each took ten times longer than one after the other.
_BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="matcher-build")
# An unloaded repository comes back from the matcher cache (a fraction of a second): not behind a build of minutes.
_LOADER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="matcher-load")


class RepoState:
    """One served repository: its store, its last good graph and the matcher built on it.

    `status` says what it can do now: ``cold`` (nothing built yet), ``building``, ``ready``, ``unloaded``
    (dropped from memory to bound it; the next question loads it from the matcher cache), ``loading``,
    ``not-indexed``, ``rebuilding`` (its database was damaged and is rebuilt from git) or ``broken`` (the last build
    failed: `error` says why). A reload after a refresh builds the new matcher while the old one keeps answering.
    """

    def __init__(self, name: str, root: str | Path, home: Path | None = None, matcher: str | None = None,
                 check: bool = False):
        self.name = name
        self.root = Path(root).resolve()
        self.home = home or settings.home()
        self.store = Store(db_path_for(self.home, self.root), check=check)
        self._inode = _inode(self.store.path)
        self.matcher_name = matcher or settings.get("matcher") or "auto"
        self.models = ModelStore.of_repository(self.home, self.root)  # its fine-tuned models: runs, current run
        self.compute = settings.compute()  # where and how a fine-tuned model runs
        self.retrieval_opts = {"numpy_encoder": settings.get_bool("numpy_encoder")}
        self._lock = threading.RLock()
        self._graph: ModuleGraph | None = None
        self._matcher = None
        self._matcher_label = ""
        self.model_version: str | None = None
        self.no_model_reason = ""
        self.status = "cold"
        self.error = ""
        self.reloading = False
        self._pending: Future | None = None
        self.last_used = 0.0  # time.monotonic() of the last question (or load): the registry evicts the oldest
        self._kept_operating: dict | None = None  # the operating point of a matcher dropped from memory
        self._unloaded_version: str | None = None  # and the version of its graph
        self.on_damage: Callable[[str, str], object] | None = None  # (repo name, reason): queue a rebuild
        self.on_loaded: Callable[["RepoState"], object] | None = None  # a graph or matcher came into memory
        if self.store.recovered:
            self._note_damage(self.store.recovered)

    @property
    def models_dir(self) -> Path:
        return self.models.root

    # --- the database ----------------------------------------------------------------------------
    def recoveries(self) -> list[str]:
        """Damaged copies of this repository's database that were moved aside (names, oldest first)."""
        return [p.name for p in quarantined(self.store.path)]

    def _note_damage(self, reason: str) -> None:
        log.error("state.database-damaged repo=%s reason=%s", self.name, reason)
        self.status, self.error = "rebuilding", f"database damaged, rebuilding from git: {reason}"
        if self.on_damage is not None:
            try:
                self.on_damage(self.name, "database damaged: rebuild from git")
            except Exception as e:  # pragma: no cover
                log.warning("state.rebuild-queue-failed repo=%s error=%s", self.name, e)

    def damaged(self, e: Exception) -> RepoUnavailable:
        """A read failed with a database error: move the file aside, queue a rebuild, keep serving what is in memory."""
        with self._lock:
            bad = self.store.quarantine(str(e))
            self._inode = _inode(self.store.path)
        self._note_damage(f"{e} (moved to {bad.name})")
        return RepoUnavailable("rebuilding", f"the database of {self.name!r} was damaged; it was moved aside and "
                                             "is being rebuilt from git")

    def indexed(self) -> bool:
        try:
            return self.store.has_graph()
        except sqlite3.DatabaseError as e:
            raise self.damaged(e) from None

    # --- graph and matcher -----------------------------------------------------------------------
    @property
    def graph(self) -> ModuleGraph:
        with self._lock:
            graph, loaded = self._graph, False
            if graph is None:
                try:
                    graph = self._graph = self.store.load_graph()
                except sqlite3.DatabaseError as e:
                    raise self.damaged(e) from None
                loaded = True
        if loaded:
            self._notify_loaded()
        return graph

    def served_version(self) -> str | None:
        """The version of the graph it answers with (the one it dropped, when unloaded); None before the first
        load. Reads no database."""
        with self._lock:
            g = self._graph if self._graph is not None else getattr(self._matcher, "graph", None)
            return g.version if g is not None else self._unloaded_version

    @property
    def loaded(self) -> bool:
        """Whether its graph or matcher is in memory."""
        return self._graph is not None or self._matcher is not None

    def busy(self) -> bool:
        """Building, loading or reloading: its memory must not be dropped now."""
        return (self.reloading or self.status in ("building", "loading", "rebuilding")
                or (self._pending is not None and not self._pending.done()))

    def unload(self) -> bool:
        """Drop the graph and matcher from memory (the next question loads them from the matcher cache). False when
        there was nothing to drop or it is busy."""
        with self._lock:
            if not self.loaded or self.busy():
                return False
            self._kept_operating = self.operating_point()
            self._unloaded_version = self.served_version()
            self._graph = self._matcher = self._pending = None
            self._matcher_label = ""
            if self.status == "ready":
                self.status = "unloaded"
            log.info("state.unloaded repo=%s", self.name)
            return True

    def _notify_loaded(self) -> None:
        if self.on_loaded is not None:
            try:
                self.on_loaded(self)
            except Exception as e:  # pragma: no cover - never fail a question for the bound
                log.warning("state.evict-failed repo=%s error=%s", self.name, e)

    def reload(self) -> None:
        """Load the stored graph (after a refresh) and rebuild the matcher; keep the old on failure. An unloaded
        repository stays unloaded: the new matcher is built into the cache, and its next question loads it."""
        with self._lock:
            self.reloading = True
            was_unloaded = self.status == "unloaded"
        try:
            graph, matcher, label, model_version = _BUILDER.submit(self._load_and_build).result()
            with self._lock:
                if was_unloaded and self.status == "unloaded" and not self.loaded:  # nobody asked meanwhile
                    self.model_version = model_version
                    self._kept_operating, self._unloaded_version = _operating_point(matcher), graph.version
                    self._reopen_if_replaced()
                    return
                self._graph, self._matcher, self._matcher_label = graph, matcher, label
                if self._pending is not None and self._pending.done():
                    self._pending = None  # its result holds the old graph and matcher
                self.model_version = model_version
                self.status, self.error = "ready", ""
                self._reopen_if_replaced()
        finally:
            with self._lock:
                self.reloading = False
        self._notify_loaded()

    def _reopen_if_replaced(self) -> None:
        """A refresh that found the file damaged moved it aside and rebuilt it: read the new file from now on."""
        if _inode(self.store.path) != self._inode:
            log.info("state.store-reopened repo=%s", self.name)
            old, self.store = self.store, Store(self.store.path)
            self._inode = _inode(self.store.path)
            try:
                old.close()
            except Exception:
                pass

    def _load_and_build(self):
        store = Store(self.store.path)
        try:
            graph = store.load_graph()
        finally:
            store.close()
        return (graph, *self._build_matcher(graph))

    def warm(self) -> Future | None:
        """Build the matcher in the background (one build at a time in this process; an unloaded repository loads
        from the cache beside the builds); None if nothing to do. The future's result: (matcher, label, graph),
        or None when it failed (`status` and `error` say why)."""
        with self._lock:
            if self._matcher is not None or (self._pending is not None and not self._pending.done()):
                return self._pending if self._matcher is None else None
            if self.status == "unloaded":
                self.status = "loading"
                self._pending = _LOADER.submit(self._warm)
            else:
                self._pending = _BUILDER.submit(self._warm)
                if self.status in ("cold", "broken", "not-indexed"):
                    self.status = "building"
            return self._pending

    def _warm(self):
        t0 = time.perf_counter()
        stale = None
        try:
            graph = self._load_graph()
            stale = self._serve_stale(graph)
            matcher, label, model_version = self._build_matcher(graph)
        except RepoUnavailable:
            return None
        except NotIndexedError as e:
            self.status, self.error = "not-indexed", str(e)
            return None
        except Exception as e:
            log.exception("state.matcher-build-failed repo=%s", self.name)
            self.status, self.error = "broken", f"{type(e).__name__}: {e}"
            return None
        finally:
            if stale is not None:
                with self._lock:
                    self.reloading = False
        with self._lock:
            if self._matcher is None or (stale is not None and self._matcher is stale):
                self._graph, self._matcher, self._matcher_label, self.model_version = graph, matcher, label, model_version
            serving = (self._matcher, self._matcher_label, graph if self._graph is None else self._graph)
            loading = self.status == "loading"
            self.status, self.error = "ready", ""
        if loading:
            log.info("state.loaded repo=%s seconds=%.2f", self.name, time.perf_counter() - t0)
        self._notify_loaded()
        return serving

    def _serve_stale(self, graph: ModuleGraph):
        """Where this code has no build of the graph yet but an earlier version of modmatch left one for the very
        same graph (an upgrade), answer with that one while this code's build runs (`inference.cache.stale_matcher`),
        as a refresh answers with the last matcher while the next builds: /healthz says `reloading` meanwhile. The
        stale matcher, or None."""
        from inference.cache import is_cached, stale_matcher

        name = self._retrieval_name
        if self._matcher is not None or capabilities(name).needs_model:
            return None
        g, variant = self._with_feedback(graph)
        if is_cached(name, g, self._cache_dir, variant):
            return None  # this code's build is there: loading it takes a moment
        m = stale_matcher(name, g, self._cache_dir, variant)
        if m is None:
            return None
        with self._lock:
            if self._matcher is not None:
                return None
            self._graph, self._matcher, self._matcher_label, self.model_version = graph, m, name, None
            self.status, self.error, self.reloading = "ready", "", True
        log.info("state.serving-earlier-build repo=%s matcher=%s", self.name, name)
        self._notify_loaded()
        return m

    def _load_graph(self) -> ModuleGraph:
        """The graph in memory, else read from the store (not kept: the caller keeps it with its matcher)."""
        with self._lock:
            if self._graph is not None:
                return self._graph
            try:
                return self.store.load_graph()
            except sqlite3.DatabaseError as e:
                raise self.damaged(e) from None

    def cold(self) -> bool:
        """True when the retrieval matcher must be built from nothing (the first answer after an index or refresh
        takes seconds to minutes; later ones load it from the cache)."""
        from inference.cache import is_cached

        with self._lock:
            if self._matcher is not None:
                return False
        graph, variant = self._with_feedback(self.graph)
        return not is_cached(self._retrieval_name, graph, self._cache_dir, variant)

    def prepare(self) -> bool:
        """Build the retrieval matcher of the current graph into the cache, so the first answer after an index or
        a refresh loads it instead of building it. False when it was already there."""
        name = self._retrieval_name
        if capabilities(name).needs_model or not self.cold():
            return False
        self._retrieval(self.graph, name)
        return True

    def retrieval(self, graph: ModuleGraph | None = None):
        """The retrieval matcher behind this repository's answers (the hybrid where they stand on a model), from
        the matcher cache: `modmatch train` takes its rows' candidates from it, so a repository that answered
        once does not build it again (on hutool the build took minutes of a training budget). `graph`: this
        repository's graph where the caller has already loaded it (default: the one it serves)."""
        name = self._retrieval_name
        return self._retrieval(graph or self.graph, "hybrid" if capabilities(name).needs_model else name)

    @property
    def _retrieval_name(self) -> str:
        """The cached matcher behind this repository's answers ("auto" and "lm-hybrid" stand on the hybrid)."""
        return "hybrid" if self.matcher_name in ("auto", "lm-hybrid") else self.matcher_name

    @property
    def _cache_dir(self) -> Path:
        return matcher_cache_dir(self.home, self.store.path)

    def _retrieval(self, graph: ModuleGraph, name: str = "hybrid"):
        graph, variant = self._with_feedback(graph)
        return cached_matcher(name, graph, self._cache_dir, variant=variant, **self.retrieval_opts)

    def _with_feedback(self, graph: ModuleGraph) -> tuple[ModuleGraph, str]:
        """The graph the retrieval learns from: its history plus people's corrections (feedback examples naming
        modules of this graph), and the cache variant that names them ("" when there are none)."""
        try:
            fb = [h for h in self.feedback() if h.modules and all(m in graph.modules for m in h.modules)]
        except Exception as e:  # the service database is unreachable: answer from the history alone
            log.warning("state.feedback-unreadable repo=%s error=%s", self.name, e)
            fb = []
        if not fb:
            return graph, ""
        import hashlib

        from inference.calibration import with_history

        digest = hashlib.sha1("\n".join(f"{h.commit}\0{h.text}\0{','.join(h.modules)}" for h in fb).encode())
        return with_history(graph, list(graph.history) + fb), "-fb" + digest.hexdigest()[:10]

    def learn_feedback(self) -> Future | None:
        """Bring the served matcher up to people's latest corrections, in the background: the cached matcher is
        updated with them (seconds), then swapped in if the graph did not change meanwhile. None when nothing is
        served yet (the next build learns them anyway)."""
        with self._lock:
            if self._matcher is None or self._graph is None or self.reloading:
                return None
            graph = self._graph

        def relearn() -> None:
            try:
                matcher, label, model_version = self._build_matcher(graph)
            except Exception:
                log.exception("state.feedback-learning-failed repo=%s", self.name)
                return
            with self._lock:
                if self._graph is graph and self._matcher is not None:
                    self._matcher, self._matcher_label, self.model_version = matcher, label, model_version

        return _BUILDER.submit(relearn)

    def _build_matcher(self, graph: ModuleGraph):
        name = self.matcher_name
        if name in ("auto", "lm-hybrid"):
            try:
                from inference.lm_matcher import get_runtime
                from inference.modelstore import serving_verdict

                rt = get_runtime(self.models_dir, self.compute)  # raises ModelNotFoundError when no model was trained yet
                serves, why = serving_verdict(rt.current.metadata or {})
                if name == "auto" and not serves:  # "auto" serves the model only where it validated better
                    raise ModelNotFoundError(why)
                m = create("lm-hybrid", graph, runtime=rt, retrieval=self._retrieval(graph))
                return m, "lm-hybrid", getattr(m, "model_version", None)
            except ModelNotFoundError as e:  # no (good enough) fine-tuned model: retrieval answers
                if name != "auto":
                    raise
                log.info("state.no-model repo=%s reason=%s", self.name, e)
                self.no_model_reason = str(e)
                name = "hybrid"
        if capabilities(name).needs_model:
            m = create(name, graph, model_dir=self.models_dir, compute=self.compute)
        else:
            m = self._retrieval(graph, name)
        return m, name, getattr(m, "model_version", None)

    def matcher(self, wait: float | None = None):
        """(matcher, label); builds it first if needed. `wait`: give up after that many seconds with
        RepoUnavailable (the build goes on); None waits for it."""
        matcher, label, _ = self._serving(wait)
        return matcher, label

    def _held(self):
        """(matcher, label, graph) in memory; call with the lock held and a matcher there."""
        return self._matcher, self._matcher_label, self._graph if self._graph is not None else self._matcher.graph

    def _serving(self, wait: float | None = None):
        """(matcher, label, graph) as one: the memory bound may drop them from this state at any moment, the
        caller keeps answering with what it holds."""
        with self._lock:
            self.last_used = time.monotonic()
            if self._matcher is not None:
                return self._held()
        fut = self.warm()
        if fut is not None:
            try:
                serving = fut.result(timeout=wait)
            except FutureTimeout:
                with self._lock:  # an earlier version's build answers while this one's runs (`_serve_stale`)
                    if self._matcher is not None:
                        return self._held()
                what = "loaded" if self.status == "loading" else "built"
                raise RepoUnavailable(self.status, f"the matcher of {self.name!r} is still being {what}; "
                                                   "retry in a few seconds") from None
            if serving is not None:
                return serving
        with self._lock:
            if self._matcher is not None:
                return self._held()
        if self.status == "not-indexed":
            raise NotIndexedError(self.error)
        raise RepoUnavailable(self.status, self.error or f"the matcher of {self.name!r} could not be built")

    def match(self, text: str, k: int = 5, wait: float | None = None) -> Answer:
        t0 = time.perf_counter()
        text = clean_text(text)
        matcher, label, graph = self._serving(wait)
        matches = matcher.match(text, k=k)
        return Answer(matches, label, graph.version, self.model_version, time.perf_counter() - t0,
                      no_module=no_module_reason(matcher, text), unread=unread_words(matcher, text))

    def operating_point(self) -> dict | None:
        """The auto-label operating point of the served matcher (threshold, precision, coverage on held-out history),
        or None when it has none (no history to measure on, or not built yet)."""
        with self._lock:
            m = self._matcher
            if m is None:
                return dict(self._kept_operating) if self._kept_operating else None
        return _operating_point(m)

    def label_threshold(self, configured: float | None) -> float:
        """The configured threshold, else the operating point's (`auto_threshold`)."""
        return configured if configured is not None else auto_threshold(self.operating_point())

    def matcher_build(self) -> dict | None:
        """How far the served retrieval matcher is from its last full build (a refresh updates it in place)."""
        m = self._matcher
        lin = getattr(getattr(m, "retrieval", None) or m, "lineage", None)
        if not lin:
            return None
        out = {"updates": lin["updates"], "changes_learned_online": lin["changes"],
               "full_build_age_days": round((time.time() - lin["built_at"]) / 86400, 2)}
        answers = lin.get("answers") or []
        if answers:  # the new changes asked before they were learned: what the confidences are recalibrated on
            out["answers_before_learning"] = {"n": len(answers),
                                              "right": round(sum(bool(a[1]) for a in answers) / len(answers), 3)}
        return out

    def health(self) -> dict:
        """What /healthz reports for this repository."""
        d: dict = {"matcher": self.status, "model_version": self.model_version, "loaded": self.loaded}
        build = self.matcher_build()
        if build:
            d["matcher_build"] = build
        try:
            info = self.store.graph_info()
            d["indexed"] = bool(info)
            d["graph_version"] = info.get("version")
        except sqlite3.DatabaseError as e:
            self.damaged(e)
            d["indexed"], d["matcher"] = False, self.status
        if self.reloading:
            d["reloading"] = True
        if self.error:
            d["error"] = self.error[:300]
        rec = self.recoveries()
        if rec:
            d["database_recoveries"] = len(rec)
        return d

    @property
    def ready(self) -> bool:
        """It answers now (an unloaded repository too: its next question loads it from the cache)."""
        return self.status in ("ready", "unloaded")

    def add_feedback(self, text: str, modules: list[str], source: str, key: str | None = None) -> bool:
        """A person's answer becomes a training example, kept in the service database (it survives a damaged or
        rebuilt repository database), and the served matcher learns it in the background (`learn_feedback`).
        Unknown module IDs are refused."""
        from .feedback import FeedbackLog

        unknown = [m for m in modules if m not in self.graph.modules]
        if unknown:
            raise ValueError(f"unknown module(s): {', '.join(unknown)}")
        added = FeedbackLog.shared(self.home).add(self.store.path.stem, text, modules, source, key)
        if added:
            self.learn_feedback()
        return added

    def feedback(self) -> list:
        """Every feedback example of this repository (the service database's, and any an older version kept in
        the repository database)."""
        from .feedback import FeedbackLog

        return feedback_examples(self.store, FeedbackLog.shared(self.home))

    def feedback_count(self) -> int:
        from .feedback import FeedbackLog

        return FeedbackLog.shared(self.home).count(self.store.path.stem) + _legacy_count(self.store)


def no_module_reason(matcher, text: str) -> str | None:
    """Why `text` should get no module at all (it is not about this repository), from the retrieval's coverage of
    its words and how near it comes to a past change."""
    for m in (matcher, getattr(matcher, "retrieval", None)):
        assess = getattr(m, "assess", None)
        if assess is not None:
            a = assess(text)
            if not a.get("abstain"):
                return None
            if a.get("wordless"):
                return "this text holds no word to match, too little to go on"
            why = f"its words are {a['coverage']:.0%} known here, below {a['min_coverage']:.0%}"
            if a.get("min_familiarity") and a.get("familiarity") is not None and a["familiarity"] < a["min_familiarity"]:
                why += (f", and no past change comes near it: similarity {a['familiarity']:.2f}, below "
                        f"{a['min_familiarity']:.2f}")
            return f"this text is not about this repository ({why})"
    return None


def low_confidence(repo: "RepoState", answer: Answer) -> str | None:
    """What Slack says under a first answer below the label threshold (`bot.blocks.answer_blocks`), said by `ask`
    and `/api/match` too: `ask` printed a first answer at <1 % with no word of caution (vnpy, "K线图表缩放时卡顿",
    before the glossary read 图表). None where the text is said not to be about the repository (that note says more)
    or the answer is at or above the threshold."""
    from inference.base import percent

    if answer.no_module or not answer.matches:
        return None
    threshold = repo.label_threshold(settings.get_auto_float("github_label_threshold"))
    if answer.matches[0].confidence >= threshold:
        return None
    bar = "no confidence is high enough to label an issue here" if threshold > 1 else \
        f"an issue is labelled from {percent(threshold)}"
    return f"low confidence: the first answer is at {answer.matches[0].percent} ({bar}); confirm it or pick another"


def unread_words(matcher, text: str) -> list[str]:
    """The Chinese words of `text` that the repository cannot read in any language (`Coverage.unread`), less those
    its parts learned from the history (people's corrections of Chinese questions teach an English repository
    Chinese words too); none where the matcher reads no coverage."""
    for m in (matcher, getattr(matcher, "retrieval", None)):
        cov = getattr(m, "coverage", None)
        if cov is not None and hasattr(cov, "unread"):
            learned = [getattr(getattr(part, "bilingual", None), "learned", {})
                       for part in getattr(m, "parts", {}).values()]
            return [w for w in cov.unread(text) if not any(w in pairs for pairs in learned)]
    return []


NEVER_LABEL = 1.01  # above every confidence


def matcher_cache_dir(home: Path, db: Path) -> Path:
    """Where a repository's built matchers are cached (with their summaries, `inference.cache.read_summary`)."""
    return Path(home) / "cache" / "matchers" / Path(db).stem


def auto_threshold(op: dict | None) -> float:
    """The label threshold `auto` stands for: the operating point's, or NEVER_LABEL where no threshold reached its
    precision on the held-out history (a label at any lower threshold would break the promise, and the issue gets
    the suggestions comment instead); 0.5 where there was no history to measure on."""
    if not op:
        return 0.5
    return float(op["threshold"]) if op.get("coverage", 0) > 0 else NEVER_LABEL


def _operating_point(matcher) -> dict | None:
    """The matcher's auto-label operating point, with the Wilson 95 % interval of its precision on the held-out changes
    it labelled there (`precision_interval`): 0.95 on 20 labels is 0.76-0.99, on 400 0.92-0.97."""
    from inference.calibration import held_out_of, more_labels, operating_of, precision_trade

    op = operating_of(matcher)
    if not op:
        return None
    op = described_operating_point(op)
    held = held_out_of(matcher)
    if held and held.get("confidence"):  # the lower precisions the same held-out answers reached: for more labels
        op["trade"] = [{k: round(v, 4) for k, v in t.items()}
                       for t in more_labels(precision_trade(held["confidence"], held["right"], (0.90, 0.80)), op)]
    return op


def described_operating_point(op: dict) -> dict:
    """An operating point with how many held-out changes it labelled and the Wilson interval of their precision."""
    from inference.metrics import labelled_interval

    op = dict(op)
    if op.get("held_out") and op.get("precision") is not None and "coverage" in op:
        op["labelled"], op["precision_interval"] = labelled_interval(op["precision"], op["coverage"], op["held_out"])
    return op


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def feedback_examples(store: Store, log_) -> list:
    try:
        legacy = store.feedback()
    except sqlite3.DatabaseError:
        legacy = []
    return legacy + log_.examples(store.path.stem)


def _legacy_count(store: Store) -> int:
    try:
        return int(store.conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0


def _max_loaded_setting() -> int:
    return settings.get_int("max_loaded_repos", 0)


@dataclass
class AppState:
    """All repositories this process serves, plus hooks the service wires in (job queue, ...).

    `max_loaded`: at most this many repositories hold their graph and matcher in memory (0: no bound); past it
    the least recently asked one is unloaded (`evict`), never one that is building, loading or reloading.
    """

    repos: dict[str, RepoState] = field(default_factory=dict)
    default: str | None = None
    queue_refresh: Callable[[str, str], object] | None = None  # (repo name, reason) -> job id
    max_loaded: int = field(default_factory=_max_loaded_setting)
    _evict_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, repo: RepoState) -> RepoState:
        self.repos[repo.name] = repo
        if repo.on_damage is None:  # a damaged database is rebuilt by the job queue, once one is wired in
            repo.on_damage = lambda name, reason: self.queue_refresh(name, reason) if self.queue_refresh else None
        if repo.on_loaded is None:
            repo.on_loaded = lambda rs: self.evict(keep=rs)
        if self.default is None:
            self.default = repo.name
        return repo

    def repo(self, name: str | None = None) -> RepoState:
        key = name or self.default
        if key not in self.repos:
            raise KeyError(f"unknown repository {name!r}; served: {', '.join(self.repos) or 'none'}")
        return self.repos[key]

    def loaded(self) -> list[str]:
        return [n for n, rs in self.repos.items() if rs.loaded]

    def evict(self, keep: RepoState | None = None) -> list[str]:
        """Unload the least recently asked repositories until at most `max_loaded` are in memory (busy ones and
        `keep` stay, even over the bound); the names unloaded."""
        if self.max_loaded <= 0:
            return []
        out: list[str] = []
        with self._evict_lock:  # two loads finishing at once evict once; each RepoState guards itself too
            loaded = [rs for rs in self.repos.values() if rs.loaded]
            excess = len(loaded) - self.max_loaded
            for rs in sorted(loaded, key=lambda r: r.last_used):
                if excess <= 0:
                    break
                if rs is not keep and rs.unload():
                    out.append(rs.name)
                    excess -= 1
        if out:
            log.info("state.evicted repos=%s loaded=%d max=%d", ",".join(out), len(loaded) - len(out), self.max_loaded)
        return out
