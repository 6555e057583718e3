"""The trained model at run time: loaded once on the chosen device, hot-swapped when a newer one is published.

Model folders (written by the trainer)::

    <models_dir>/current.json         {"run": "runs/<ts>"} (the trainer's pointer); or `current`, a symlink/text file
    <models_dir>/runs/<ts>/merged/    save_pretrained output (model + tokenizer)
    <models_dir>/runs/<ts>/adapter/   or a LoRA adapter (loaded on metadata["base_model"] and merged)
    <models_dir>/runs/<ts>/metadata.json (or merged/metadata.json): base_model, module_ids, graph_version, metrics

    rt = ModelRuntime("~/.local/share/modmatch/models")     # a models dir, a run folder or a merged folder
    lm = rt.current                                          # LoadedModel: model, tokenizer, decoder, metadata
    rt.maybe_reload()                                        # newer run published? load it aside, then swap

A request takes `rt.current` once and uses that object to the end, so a swap never disturbs requests
in flight: they finish on the old model, new requests get the new one.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .decode import ConstrainedDecoder
from .device import DeviceChoice, configure_cpu_threads, select_device
from .errors import ModelNotFoundError
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

    def __post_init__(self):
        self.decoder = ConstrainedDecoder(self.model, self.tokenizer)
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
    """A models dir (with `current`), a run folder or a merged folder → the run folder to load."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelNotFoundError(f"no model at {p}")
    cj = p / "current.json"  # the trainer's pointer: {"run": "runs/<ts>", ...}
    if cj.is_file():
        try:
            run = json.loads(cj.read_text(encoding="utf-8")).get("run")
        except (OSError, ValueError, AttributeError):
            run = None
        if run:
            target = Path(run)
            return resolve_run(target if target.is_absolute() else p / target)
    cur = p / "current"
    if cur.is_symlink() or cur.is_dir():
        return resolve_run(cur.resolve())
    if cur.is_file():
        target = Path(cur.read_text(encoding="utf-8").strip())
        return resolve_run(target if target.is_absolute() else p / target)
    if (p / "merged").is_dir() or (p / "adapter").is_dir():
        return p.resolve()
    if (p / "config.json").is_file():  # a merged folder itself
        return p.resolve()
    runs = sorted((d for d in (p / "runs").glob("*") if (d / "merged").is_dir() or (d / "adapter").is_dir()),
                  key=lambda d: d.name) if (p / "runs").is_dir() else []
    if runs:
        return runs[-1].resolve()
    raise ModelNotFoundError(f"{p}: no trained model (no current pointer, merged/ or adapter/ folder)")


def read_metadata(run: Path) -> dict:
    for f in (run / "metadata.json", run / "merged" / "metadata.json", run / "adapter" / "metadata.json"):
        if f.is_file():
            try:
                return json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                log.warning("unreadable %s: %s", f, e)
    return {}


def load_run(path: str | Path, device: DeviceChoice | None = None) -> LoadedModel:
    """Load a trained model folder onto the device (the default: select_device())."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    run = resolve_run(path)
    meta = read_metadata(run)
    choice = device or select_device()
    if choice.device == "cpu":
        configure_cpu_threads()
    merged = run / "merged" if (run / "merged").is_dir() else run if (run / "config.json").is_file() else None
    try:
        if merged is not None:
            model = AutoModelForCausalLM.from_pretrained(str(merged), dtype=choice.dtype)
            tok_src = merged if (merged / "tokenizer_config.json").is_file() else None
            if tok_src is not None:
                tok = AutoTokenizer.from_pretrained(str(tok_src))
            else:
                from .models import load_tokenizer
                tok = load_tokenizer(meta.get("base_model"))
        else:
            from peft import PeftModel

            from .models import load_base
            base, tok = load_base(meta.get("base_model"), dtype=choice.dtype)
            model = PeftModel.from_pretrained(base, str(run / "adapter")).merge_and_unload()
            if (run / "adapter" / "tokenizer_config.json").is_file():
                tok = AutoTokenizer.from_pretrained(str(run / "adapter"))
    except OSError as e:
        raise ModelNotFoundError(f"cannot load the model at {run}: {e}") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.to(choice.device, choice.dtype)
    model.eval()
    lm = LoadedModel(model, tok, run, meta, choice.device, choice.dtype, time.perf_counter() - t0)
    log.info("loaded model %s on %s (%s) in %.1fs", run, choice.device, choice.dtype, lm.load_seconds)
    return lm


class ModelRuntime:
    """Keeps one model loaded; `maybe_reload()` swaps to a newer published run without a restart."""

    def __init__(self, path: str | Path | None = None, *, device: DeviceChoice | None = None,
                 loaded: LoadedModel | None = None, loader: Callable[[Path], LoadedModel] | None = None):
        if path is None and loaded is None:
            raise ModelNotFoundError("no model folder given")
        self.path = Path(path).expanduser() if path is not None else loaded.path
        self.device = device
        self._loader = loader or (lambda run: load_run(run, self.device or select_device()))
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
