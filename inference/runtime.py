"""The trained model at run time: loaded once on the chosen device, hot-swapped when a newer one is published.

Model folders are the trainer's (see inference/modelstore.py): a models dir whose ``current.json`` points at
``runs/<ts>/``, which holds ``merged/`` (model + tokenizer) and ``metadata.json``.

    rt = ModelRuntime(store.root, compute=compute)          # a models dir, or one run folder
    lm = rt.current                                          # LoadedModel: model, tokenizer, decoder, metadata
    rt.maybe_reload()                                        # newer run published? load it aside, then swap

A request takes `rt.current` once and uses that object to the end, so a swap never disturbs requests
in flight: they finish on the old model, new requests get the new one.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .decode import ConstrainedDecoder
from .config import ComputeConfig
from .device import DeviceChoice, configure_cpu_threads, select
from .errors import ModelNotFoundError
from .fastlm import for_compute
from .modelstore import ModelStore, is_run, read_metadata
from .trie import IdTrie

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    path: Path  # the run folder
    metadata: dict
    device: str
    dtype: torch.dtype
    load_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)  # serialises forward passes on this model
    compute: ComputeConfig = field(default_factory=ComputeConfig)  # fast_lm and cpu_weights choose the forward

    def __post_init__(self):
        self.decoder = ConstrainedDecoder(self.model, self.tokenizer, fast=for_compute(self.model, self.compute))
        self._tries: dict[tuple[str, ...], IdTrie] = {}

    def trie_for(self, ids) -> IdTrie:
        """The trie of these IDs under this model's tokenizer (cached per ID list)."""
        key = tuple(ids)
        t = self._tries.get(key)
        if t is None:
            t = IdTrie(key, self.tokenizer)
            if len(self._tries) > 8:
                self._tries.clear()
            self._tries[key] = t
        return t

    @property
    def trained_ids(self) -> set[str] | None:
        """Module IDs the model was trained on (None when the metadata does not say)."""
        ids = self.metadata.get("module_ids") or self.metadata.get("modules") or self.metadata.get("ids")
        return set(ids) if isinstance(ids, list) else None

    @property
    def version(self) -> str:
        return str(self.metadata.get("run") or self.path.name)

    def calibrate(self, probs):
        """Decoder probabilities → calibrated confidences (the trainer fits the map on validation
        rows through the same decoder); unchanged when the run carries no calibration."""
        cal = self.metadata.get("calibration")
        if not isinstance(cal, dict) or "xs" not in cal:
            return list(probs)
        from .calibration import Calibrator

        return [float(x) for x in Calibrator.from_dict(cal).predict(list(probs))]


def resolve_run(path: str | Path) -> Path:
    """A models dir (its published run) or a run folder -> the run folder to load."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelNotFoundError(f"no model at {p}")
    if is_run(p):
        return p.resolve()
    run = ModelStore(p).current_run()
    if run is None:
        raise ModelNotFoundError(f"{p}: no trained model published (no current.json)")
    if not is_run(run):
        raise ModelNotFoundError(f"{run}: the published run has no merged model")
    return run


def load_run(path: str | Path, device: DeviceChoice | None = None, compute: ComputeConfig | None = None) -> LoadedModel:
    """Load a trained model folder onto `device` (default: the one `compute` asks for, automatic by default)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    run = resolve_run(path)
    meta = read_metadata(run)
    compute = compute or ComputeConfig()
    choice = device or select(compute)
    if choice.device == "cpu":
        configure_cpu_threads(compute.threads)
    merged = run / "merged"
    try:
        model = AutoModelForCausalLM.from_pretrained(str(merged), dtype=choice.dtype)
        tok = AutoTokenizer.from_pretrained(str(merged))
    except OSError as e:
        raise ModelNotFoundError(f"cannot load the model at {run}: {e}") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.to(choice.device, choice.dtype)
    model.eval()
    lm = LoadedModel(model, tok, run, meta, choice.device, choice.dtype, time.perf_counter() - t0, compute=compute)
    log.info("loaded model %s on %s (%s) in %.1fs", run, choice.device, choice.dtype, lm.load_seconds)
    return lm


class ModelRuntime:
    """Keeps one model loaded; `maybe_reload()` swaps to a newer published run without a restart."""

    def __init__(self, path: str | Path | None = None, *, device: DeviceChoice | None = None,
                 loaded: LoadedModel | None = None, loader: Callable[[Path], LoadedModel] | None = None,
                 compute: ComputeConfig | None = None):
        if path is None and loaded is None:
            raise ModelNotFoundError("no model folder given")
        self.path = Path(path).expanduser() if path is not None else loaded.path
        self.device = device
        self.compute = compute or ComputeConfig()
        self._loader = loader or (lambda run: load_run(run, self.device, self.compute))
        self._lock = threading.Lock()
        self._loading: threading.Thread | None = None
        self.last_error: str | None = None
        self.swaps = 0
        self._current = loaded if loaded is not None else self._loader(resolve_run(self.path))
        if self.device is None:
            self.device = DeviceChoice(self._current.device, self._current.dtype, "as loaded")

    @property
    def current(self) -> LoadedModel:
        """The model new requests should use (take it once per request)."""
        return self._current

    def published(self) -> Path:
        return resolve_run(self.path)

    def swap(self, lm: LoadedModel) -> None:
        with self._lock:
            old, self._current = self._current, lm
            self.swaps += 1
        log.info("model swapped: %s -> %s", old.path, lm.path)

    def maybe_reload(self, wait: bool = False) -> bool:
        """Start loading the published run if it differs from the current one (in the background,
        unless `wait`); swap when it is ready. True when a reload was started (or done)."""
        try:
            target = self.published()
        except (ModelNotFoundError, OSError, ValueError) as e:  # a pointer mid-update: try again next time
            self.last_error = str(e)
            return False
        with self._lock:
            if target == self._current.path or (self._loading is not None and self._loading.is_alive()):
                return False
            th = threading.Thread(target=self._load_and_swap, args=(target,), name="modmatch-reload", daemon=True)
            self._loading = th
            th.start()
        if wait:
            th.join()
        return True

    def wait(self, timeout: float | None = None) -> None:
        th = self._loading
        if th is not None:
            th.join(timeout)

    def _load_and_swap(self, target: Path) -> None:
        try:
            lm = self._loader(target)
        except Exception as e:  # keep serving the old model
            self.last_error = f"reload of {target} failed: {e}"
            log.error("%s", self.last_error)
            return
        self.last_error = None
        self.swap(lm)
