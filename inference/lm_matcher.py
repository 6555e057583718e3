"""The language-model matchers: `lm` (the model alone, over every leaf module) and `lm-hybrid`
(retrieval candidates shown in the prompt, the model's probabilities fused with retrieval's).

    m = create("lm", graph, model_dir="~/.local/share/modmatch/models")
    m.match("crash in the vulkan conv shader", k=5)   # [Match(module, score, confidence, evidence)]

Only real module IDs can come out: the IDs are decoded under a trie built from the *current* graph's
leaf IDs (so a deleted module can never be named, and one added since training can). Modules the model
was not trained on (per its metadata) are flagged in the evidence.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.graph import ModuleGraph

from .base import Match, clean_text, register
from .calibration import Calibrator, falling
from .config import ComputeConfig
from .errors import ModelNotFoundError
from .prompt import build_prompt, candidates_prompt

if TYPE_CHECKING:  # the runtime imports torch (~2 s): only when a model is actually loaded
    from .runtime import LoadedModel, ModelRuntime

log = logging.getLogger(__name__)

NEW_MODULE_LM = "not seen in training: the model has not learned it yet"
NEW_MODULE_RETRIEVAL = "not seen in training: found by retrieval"

_RUNTIMES: dict[str, ModelRuntime] = {}
_RT_LOCK = threading.Lock()


def get_runtime(model_dir: str | Path | None, compute: ComputeConfig | None = None) -> ModelRuntime:
    """One shared runtime per model folder (so `lm` and `lm-hybrid` share the loaded weights); `compute`: where and
    how a runtime created now runs the model."""
    if not model_dir:
        raise ModelNotFoundError("no model folder given (model_dir=): the service passes the repository's")
    path = Path(model_dir).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"no trained model at {path}: train one first (modmatch train)")
    key = str(path.resolve())
    from .runtime import ModelRuntime  # torch: only once a model folder exists

    with _RT_LOCK:
        rt = _RUNTIMES.get(key)
        if rt is None:
            rt = _RUNTIMES[key] = ModelRuntime(path, compute=compute)
        return rt


def blend_lm_with_retrieval(p_lm: dict[str, float], ret_scores: dict[str, float], w: float) -> list[tuple[str, float]]:
    """The model's probabilities over the candidates mixed with retrieval's scores (normalised over
    the same candidates, so their order is kept) with weight `w` on the model; best first."""
    tot = sum(max(ret_scores.get(m, 0.0), 0.0) for m in p_lm) or 1.0
    mixed = {m: w * p + (1 - w) * max(ret_scores.get(m, 0.0), 0.0) / tot for m, p in p_lm.items()}
    return sorted(mixed.items(), key=lambda kv: (-kv[1], kv[0]))


class LMMatcher:
    name = "lm"

    def __init__(self, graph: ModuleGraph, runtime: ModelRuntime, *, reasoning: bool = False, method: str = "auto",
                 repo: str | None = None, beam_width: int | None = None, auto_reload: bool = True):
        self.graph = graph
        self.runtime = runtime
        self.reasoning = reasoning
        self.method = method
        self.repo = repo
        self.beam_width = beam_width
        self.auto_reload = auto_reload

    @property
    def model_version(self) -> str | None:
        try:
            return self.runtime.current.version
        except Exception:
            return None

    def _ids(self) -> list[str]:
        ids = self.graph.leaf_ids()
        return ids if ids else list(self.graph.modules)

    def _repo(self, lm: LoadedModel) -> str:
        return self.repo if self.repo is not None else str(lm.metadata.get("repo", "") or "")

    def _decode(self, lm: LoadedModel, prompt: str, ids: list[str], k: int, method: str):
        trie = lm.trie_for(ids)
        with lm.lock:
            return lm.decoder.rank(prompt, trie, k, method=method, reasoning=self.reasoning,
                                   beam_width=self.beam_width)

    def match(self, text: str | bytes, k: int = 5) -> list[Match]:
        text = clean_text(text)
        if self.auto_reload:
            self.runtime.maybe_reload()
        lm = self.runtime.current  # this request uses this model to the end, even across a swap
        prompt = build_prompt(text, self._repo(lm))
        res = self._decode(lm, prompt, self._ids(), k, self.method)
        trained = lm.trained_ids
        confs = lm.calibrate([r.prob for r in res.ranked])
        out = []
        for r, conf in zip(res.ranked, confs):
            ev = [f"lm: p={r.prob:.3f} ({res.method}, model {lm.version})"]
            if res.thinking:
                ev.append(f"thinking: {res.thinking}")
            if trained is not None and r.module not in trained:
                ev.append(NEW_MODULE_LM)
            out.append(Match(r.module, r.logprob, conf, ev))
        return out


N_CANDIDATES = 10  # retrieval's answers shown in lm-hybrid's prompt (the trainer calibrates on as many)


class LMHybridMatcher(LMMatcher):
    name = "lm-hybrid"

    def __init__(self, graph: ModuleGraph, runtime: ModelRuntime, *, retrieval=None, n_candidates: int = N_CANDIDATES,
                 lm_weight: float | None = None, **opts):
        super().__init__(graph, runtime, **opts)
        self.n_candidates = n_candidates
        # the model's share in the fusion: as given, else as tuned by the trainer on validation, else 0.5
        self.lm_weight_fixed = lm_weight is not None
        self.lm_weight = 0.5 if lm_weight is None else float(lm_weight)
        if retrieval is None:
            from .base import create
            from .errors import UnknownMatcherError

            for name in ("hybrid", "lexical"):
                try:
                    retrieval = create(name, graph)
                    break
                except (UnknownMatcherError, ImportError) as e:
                    log.info("retrieval matcher %s unavailable: %s", name, e)
        if retrieval is None:
            raise ModelNotFoundError("lm-hybrid needs a retrieval matcher (hybrid or lexical)")
        self.retrieval = retrieval

    def match(self, text: str | bytes, k: int = 5) -> list[Match]:
        text = clean_text(text)
        if self.auto_reload:
            self.runtime.maybe_reload()
        lm = self.runtime.current
        valid = set(self._ids())
        cands = [m for m in self.retrieval.match(text, k=max(k, self.n_candidates)) if m.module in valid]
        if not cands:
            return []
        ids = [c.module for c in cands]
        prompt = candidates_prompt(text, self._repo(lm), self.graph, ids)
        res = self._decode(lm, prompt, ids, len(ids), self.method)
        p_lm = {r.module: r.prob for r in res.ranked}
        cal = lm.metadata.get("calibration") or {}
        w = self.lm_weight if self.lm_weight_fixed or cal.get("lm_weight") is None else float(cal["lm_weight"])
        ret_scores = {c.module: c.score for c in cands}
        mixed = dict(blend_lm_with_retrieval({m: p_lm.get(m, 0.0) for m in ids}, ret_scores, w))
        fcal = cal.get("fusion_calibration")
        if fcal:
            confs = dict(zip(mixed, Calibrator.from_dict(fcal).predict(list(mixed.values()))))
        else:  # a run that could not fit the fusion (no held-out retrieval): its raw mix is no probability
            confs = uncalibrated_fusion_confidences(mixed, cands)
        rtot = sum(max(s, 0.0) for s in ret_scores.values()) or 1.0
        trained = lm.trained_ids
        out = []
        for c in cands:
            pl, pr = p_lm.get(c.module, 0.0), max(ret_scores[c.module], 0.0) / rtot
            ev = [f"lm: p={pl:.3f}; retrieval: p={pr:.3f} ({self.retrieval.name}); model weight {w:.1f}"]
            if res.thinking:
                ev.append(f"thinking: {res.thinking}")
            if trained is not None and c.module not in trained:
                ev.append(NEW_MODULE_RETRIEVAL)
            ev.extend(c.evidence[:2])
            out.append(Match(c.module, float(mixed[c.module]), float(confs[c.module]), ev, list(c.files)))
        out.sort(key=lambda m: (-m.score, m.module))
        return out[:k]


def uncalibrated_fusion_confidences(mixed: dict[str, float], cands: list[Match]) -> dict[str, float]:
    """Confidences for a fusion the trainer could not calibrate (its held-out retrieval was skipped for time, or the
    run predates the fusion's calibration): the fused answer at rank i gets the retrieval's calibrated confidence of
    rank i, falling strictly with the rank. The raw mix is no probability: served as one it measured ECE 0.248 on
    pytest (bench/README.md, "20 minutes with the cache on")."""
    order = sorted(mixed, key=lambda m: (-mixed[m], m))  # the fused ranks (mixed holds the candidates' modules)
    return dict(zip(order, falling(sorted((c.confidence for c in cands), reverse=True))))


def _runtime(model_dir, runtime, compute) -> ModelRuntime:
    return runtime if runtime is not None else get_runtime(model_dir, compute)


@register("lm", needs_model=True)
def _make_lm(graph: ModuleGraph, model_dir=None, runtime=None, compute=None, **opts) -> LMMatcher:
    return LMMatcher(graph, _runtime(model_dir, runtime, compute), **opts)


@register("lm-hybrid", needs_model=True)
def _make_lm_hybrid(graph: ModuleGraph, model_dir=None, runtime=None, compute=None, **opts) -> LMHybridMatcher:
    return LMHybridMatcher(graph, _runtime(model_dir, runtime, compute), **opts)
