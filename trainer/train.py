"""LoRA fine-tuning of a base model on the dataset rows, with atomic publishing.

Backends: unsloth (`FastLanguageModel.get_peft_model`) when CUDA is present and unsloth imports;
otherwise peft with a custom loop tuned for CPU: the base model produces hidden states and the
49k-vocabulary lm_head runs ONLY at completion positions (the loss falls on the completion), rows
are grouped by length and padded per batch to short sequences.

Layout of the repository's models folder (`inference.modelstore.ModelStore`, which also publishes)::

    runs/<timestamp>/checkpoint/   adapter + optimizer + step (every N steps; removed when done)
    runs/<timestamp>/adapter/      peft adapter
    runs/<timestamp>/merged/       merged full model + tokenizer (what inference loads)
    runs/<timestamp>/data/         train.jsonl, val.jsonl
    runs/<timestamp>/metadata.json base model, graph version, module IDs + hash, dataset hash,
                                   hyper-parameters, validation metrics
    current.json                   {"run": "runs/<timestamp>", ...}, replaced atomically (os.replace)

A run becomes `current` only when fully written and its validation accuracy is not worse than the
current model's (unless the module-ID set changed, which makes the old model stale).
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import shutil
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from indexer.graph import ModuleGraph
from inference.config import ComputeConfig, cpu_threads
from inference.device import configure_cpu_threads, select
from inference.modelstore import ModelStore, write_json_atomic

from .config import TrainConfig
from .dataset import CandidateSource, Dataset, Row, build_dataset

log = logging.getLogger(__name__)

IGNORE = -100
# --max-minutes bounds the whole run: training stops early enough to leave this share of the budget for scoring
# the validation rows and fitting the served calibration, which stop at the end of the budget (after at least
# MIN_EVAL_ROWS rows each).
AFTER_TRAINING_SHARE = 0.25
MIN_EVAL_ROWS = 20
# Within a budget, the training rows are made for this share of the time left before the training deadline
# (`build_dataset`'s deadline): a row with candidates costs a retrieval call, and on hutool (2,740 rows) making them
# all took 6 minutes of an 8-minute budget, so that no training step ran.
DATASET_SHARE = 0.25
# The retrieval matcher the served fusion is tuned against is rebuilt without the validation changes (a hybrid
# build: 1 to 3 minutes on hutool) only when at least this share of the budget is left before the training
# deadline; otherwise the fusion keeps lm-hybrid's default weight. At 0.4 an 8-minute run on hutool rebuilt it with
# 4.3 minutes left and spent 3 of them there.
HELD_OUT_MIN_SHARE = 0.6
Progress = Callable[[str, int, int, dict], None]  # (stage, done, total, info)


# --- tokenization ----------------------------------------------------------------------------------

def encode_row(tok, prompt: str, completion: str, max_len: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels): prompt tokens then completion tokens + EOS; labels only on the completion.
    Over-long prompts lose tokens from their start (the requirement and `Answer:` are at the end)."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    c = c[:max_len - 8]
    room = max_len - len(c)
    if len(p) > room:
        p = p[len(p) - room:]
    return p + c, [IGNORE] * len(p) + c


def collate(items: Sequence[tuple[list[int], list[int]]], pad_id: int, device) -> dict[str, torch.Tensor]:
    n = max(len(i) for i, _ in items)
    ids = torch.full((len(items), n), pad_id, dtype=torch.long)
    lab = torch.full((len(items), n), IGNORE, dtype=torch.long)
    att = torch.zeros((len(items), n), dtype=torch.long)
    for b, (i, l) in enumerate(items):
        ids[b, :len(i)] = torch.tensor(i)
        lab[b, :len(l)] = torch.tensor(l)
        att[b, :len(i)] = 1
    return {"input_ids": ids.to(device), "labels": lab.to(device), "attention_mask": att.to(device)}


# --- the loss and the scorer -----------------------------------------------------------------------

def _causal_lm(model):
    """The *ForCausalLM inside a peft wrapper (LoRA layers stay injected), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def completion_logits(model, input_ids, attention_mask, labels):
    """Logits only where the next token is a completion token: (N, vocab), targets (N,)."""
    lm = _causal_lm(model)
    hidden = lm.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    tgt = labels[:, 1:]
    mask = tgt != IGNORE
    h = hidden[:, :-1][mask]
    return lm.lm_head(h).float(), tgt[mask], mask


def completion_loss(model, batch) -> torch.Tensor:
    logits, targets, _ = completion_logits(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    return F.cross_entropy(logits, targets)


# --- frozen lower layers, run once per row ----------------------------------------------------------
# With LoRA on the top N layers only (`lora_layers`), the layers below never change during training: their output
# for a row is the same in every epoch. `FrozenPrefix` runs them once per row (no gradients), keeps the hidden
# state entering the first adapted layer (bfloat16, within a memory budget), and later steps run only the adapted
# layers, norm and head on it. The first epoch costs what it did; every later one skips the frozen layers.

class _Stop(Exception):
    pass


class _PassThrough(torch.nn.Module):
    """Stands in for a frozen decoder layer while the cached hidden state enters the model."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


class FrozenPrefix:
    def __init__(self, model, first_adapted: int, budget_bytes: int = 512 << 20):
        self.lm = _causal_lm(model)
        self.layers = self.lm.model.layers
        self.first = first_adapted
        self.budget = budget_bytes
        self.used = 0
        self.rows: dict[int, torch.Tensor] = {}
        self.full = False

    @classmethod
    def maybe(cls, model, cfg: TrainConfig, device: str) -> "FrozenPrefix | None":
        """The cache for a model with LoRA on its top `cfg.lora_layers` layers only (else None)."""
        lm = _causal_lm(model)
        layers = getattr(getattr(lm, "model", None), "layers", None)
        n = len(layers) if layers is not None else 0
        if cfg.lora_layers <= 0 or not cfg.cache_frozen or n <= cfg.lora_layers or device != "cpu":
            return None
        first = n - cfg.lora_layers
        if any(p.requires_grad for i in range(first) for p in layers[i].parameters()) or \
                any(p.requires_grad for p in lm.model.embed_tokens.parameters()):
            return None
        return cls(model, first)

    @torch.no_grad()
    def _hidden(self, ids: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """The hidden state entering layer `first` for a padded batch (the lower layers only)."""
        got = {}

        def grab(_module, args, kwargs):
            got["h"] = args[0] if args else kwargs["hidden_states"]
            raise _Stop

        hook = self.layers[self.first].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            self.lm.model(input_ids=ids, attention_mask=att, use_cache=False)
        except _Stop:
            pass
        finally:
            hook.remove()
        return got["h"]

    def batch_hidden(self, rows: Sequence[int], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T, hidden) float32 entering layer `first` for these rows (cached ones are not recomputed)."""
        ids, att = batch["input_ids"], batch["attention_mask"]
        lens = att.sum(1).tolist()
        missing = [b for b, r in enumerate(rows) if r not in self.rows]
        if missing:
            h = self._hidden(ids[missing], att[missing])
            for j, b in enumerate(missing):
                kept = h[j, :lens[b]].to(torch.bfloat16).clone()
                if not self.full and self.used + kept.numel() * 2 <= self.budget:
                    self.rows[rows[b]] = kept
                    self.used += kept.numel() * 2
                else:
                    self.full = True
        out = torch.zeros(ids.shape[0], ids.shape[1], self.lm.config.hidden_size, dtype=self.lm.dtype)
        fresh = {b: j for j, b in enumerate(missing)}
        for b, r in enumerate(rows):
            if b in fresh:
                out[b, :lens[b]] = h[fresh[b], :lens[b]]
            else:
                out[b, :lens[b]] = self.rows[r].float()
        return out

    def loss(self, rows: Sequence[int], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """completion_loss(model, batch), running the adapted layers only."""
        hidden_in = self.batch_hidden(rows, batch)
        saved = [self.layers[i] for i in range(self.first)]
        for i in range(self.first):
            self.layers[i] = _PassThrough()
        try:
            hidden = self.lm.model(inputs_embeds=hidden_in, attention_mask=batch["attention_mask"],
                                   use_cache=False).last_hidden_state
        finally:
            for i, layer in enumerate(saved):
                self.layers[i] = layer
        tgt = batch["labels"][:, 1:]
        mask = tgt != IGNORE
        logits = self.lm.lm_head(hidden[:, :-1][mask]).float()
        return F.cross_entropy(logits, tgt[mask])


def full_logits_loss(model, batch) -> torch.Tensor:
    """The naive loss (lm_head over every position), for comparison in bench/train_speed.py."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    logits = out.logits[:, :-1].float()
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["labels"][:, 1:].reshape(-1),
                           ignore_index=IGNORE)


@torch.inference_mode()
def evaluate(model, tok, rows: Sequence[Row], leaf_ids: Sequence[str], *, max_rows: int = 120, max_ids: int = 64,
             cands: CandidateSource | None = None, seed: int = 0, progress: Progress | None = None,
             deadline: float | None = None) -> dict:
    """Top-1 / top-3 accuracy and MRR of the log-likelihood ranking on validation rows, through the constrained
    decoder `lm` serves with (`ConstrainedDecoder.rank`, method "score": every ID's completion scored on a token
    tree after one prompt pass). Scoring each ID's completion apart through the training framework took 12 s a
    row on hutool (41 modules), so 20 rows ran 2 minutes past an 8-minute budget.

    `deadline` (a time.time()): stop scoring there, after at least MIN_EVAL_ROWS rows (`rows` says how many).

    Ranks all leaf IDs when there are at most `max_ids`, else the row's retrieval candidates
    (plus more retrieval hits up to `max_ids`; the gold ID is NOT inserted, so a retrieval miss counts
    as an error)."""
    from inference.decode import ConstrainedDecoder
    from inference.trie import IdTrie

    rng = random.Random(seed)
    rows = list(rows)
    if len(rows) > max_rows:
        rows = rng.sample(rows, max_rows)
    leaves = list(leaf_ids)
    was_training = model.training
    model.eval()
    dec = ConstrainedDecoder(model, tok)
    tries: dict[tuple[str, ...], IdTrie] = {}
    hit1 = hit3 = 0
    rr = 0.0
    ret_hit1 = 0  # the retrieval matcher's own top-1 on the same rows: the bar the model has to clear
    has_retrieval = cands is not None and getattr(cands, "matcher", None) is not None
    done = 0
    try:
        for n, r in enumerate(rows):
            if deadline is not None and n >= MIN_EVAL_ROWS and time.time() > deadline:
                break
            done = n + 1
            if has_retrieval:
                top = cands(r.text, 1)
                ret_hit1 += bool(top) and top[0] in set(r.modules)
            if len(leaves) <= max_ids:
                ids = leaves
            else:
                ids = list(dict.fromkeys(list(r.candidates) + (cands(r.text, max_ids) if cands else [])))[:max_ids]
                if not ids:
                    ids = rng.sample(leaves, max_ids)
            key = tuple(ids)
            trie = tries.get(key) or tries.setdefault(key, IdTrie(list(ids), tok))
            ranked = [x.module for x in dec.rank(r.prompt, trie, k=len(ids), method="score").ranked]
            gold = set(r.modules)
            pos = next((i for i, m in enumerate(ranked) if m in gold), None)
            if pos is not None:
                hit1 += pos == 0
                hit3 += pos < 3
                rr += 1.0 / (pos + 1)
            if progress:
                progress("evaluate", n + 1, len(rows), {})
    finally:
        model.train(was_training)
    k = max(1, done)
    out = {"accuracy": hit1 / k, "top3": hit3 / k, "mrr": rr / k, "rows": done,
           "ranked_over": "all leaf ids" if len(leaves) <= max_ids else f"retrieval candidates (<= {max_ids})"}
    if has_retrieval:
        out["retrieval_accuracy"] = ret_hit1 / k
    return out


def held_out_retrieval(graph: ModuleGraph, val_rows: Sequence[Row], cands: CandidateSource | None):
    """The retrieval matcher for tuning the fusion, rebuilt without the validation rows' past changes,
    so it is not judged on examples it learned from (that made it look better than on future changes).
    None when there is no retrieval matcher."""
    matcher = getattr(cands, "matcher", None)
    if matcher is None:
        return None
    held = {r.group.split("|", 1)[1] for r in val_rows if r.group.startswith("history|")}
    if not held:
        return matcher
    from inference.base import create

    g = copy.copy(graph)
    g.history = [h for h in graph.history if h.commit not in held]
    try:
        return create(getattr(matcher, "name", "hybrid"), g)
    except Exception as e:  # never lose a trained model over a tuning aid
        log.warning("train.held-out-retrieval-failed error=%s", e)
        return None


@torch.inference_mode()
def calibrate_serving(model, tok, rows: Sequence[Row], leaf_ids: Sequence[str], *, max_rows: int = 120,
                      seed: int = 0, retrieval=None, repo: str | None = None, k: int = 5,
                      deadline: float | None = None, graph: ModuleGraph | None = None) -> dict:
    """Fit what the served model reports, on validation rows, through the same constrained decoder and
    the same prompts `lm` and `lm-hybrid` use:

    - `lm` (the top-level calibrator, xs/ys): the plain prompt (no candidates) decoded over *all* leaf
      modules with k IDs, as `lm` serves it; a calibrator from its top-1 probability to how often it was
      right. (Fitting it on candidate lists instead left `lm` badly over-confident: ECE 0.38 on pytest.)
    - `lm-hybrid`: with `graph`, every row asked as lm-hybrid serves it: `retrieval`'s first N_CANDIDATES answers
      listed in the prompt (`retrieval` is the one rebuilt without the validation changes, so the list is as good
      as it will be on a new text, not the list the row was made with by a retrieval that had learned it);
      without `graph`, each candidate row's own prompt over its own candidates. The model's probabilities are
      fused with `retrieval`'s confidences: `lm_weight` (the model's share, 0 … 1, the best top-1 on these rows;
      ties go to the smaller weight) and `fusion_calibration` for the fused top-1. Without retrieval, lm_weight
      is None.

    `repo` is the name in the prompts' head (default: read from the rows' prompts). `deadline` (a time.time()):
    the plain-prompt pass gets half the time left, the candidate pass the rest, each at least MIN_EVAL_ROWS rows.
    Returns a dict for metadata.json."""
    from inference.calibration import Calibrator, expected_calibration_error
    from inference.base import ranking
    from inference.decode import ConstrainedDecoder
    from inference.lm_matcher import N_CANDIDATES, blend_lm_with_retrieval
    from inference.prompt import build_prompt, candidates_prompt, prompt_repo
    from inference.trie import IdTrie

    rng = random.Random(seed + 1)
    rows = list(rows)
    if len(rows) > max_rows:
        rows = rng.sample(rows, max_rows)
    dec = ConstrainedDecoder(model, tok)
    if repo is None:
        repo = next((x for x in (prompt_repo(r.prompt) for r in rows) if x is not None), "")
    # lm: the plain prompt over every leaf module
    all_trie = IdTrie(list(leaf_ids), tok) if len(leaf_ids) >= 2 else None
    raw, ok = [], []
    half = time.time() + (deadline - time.time()) / 2 if deadline is not None else None
    for r in rows:
        if half is not None and len(raw) >= MIN_EVAL_ROWS and time.time() > half:
            break
        if all_trie is None or not r.text:
            continue
        res = dec.rank(build_prompt(r.text, repo), all_trie, k=k)
        if res.ranked:
            raw.append(res.ranked[0].prob)
            ok.append(res.ranked[0].module in r.modules)
    cal = Calibrator.fit(raw, ok)
    out = cal.to_dict()
    out.update({"pairs": len(raw), "raw_accuracy": (sum(ok) / len(ok)) if ok else None,
                "ece_before": expected_calibration_error(raw, ok) if raw else None,
                "ece_after": expected_calibration_error(list(cal.predict(raw)), ok) if raw else None,
                "fitted_on": f"plain prompt, all {len(leaf_ids)} leaf modules, k={k}", "lm_weight": None})
    # lm-hybrid: candidates in the prompt, fused with retrieval
    tries: dict[tuple, IdTrie] = {}
    seen = []  # (ranked [(module, prob)], gold set, retrieval {module: confidence})
    valid = set(leaf_ids)
    for r in (rows if retrieval is not None else []):
        if deadline is not None and len(seen) >= MIN_EVAL_ROWS and time.time() > deadline:
            break
        if graph is None and len(r.candidates) < 2:
            continue
        try:  # retrieval's scores (order-preserving), as lm-hybrid fuses them
            ret = {mid: max(score, 0.0) for mid, score in ranking(retrieval, r.text, max(N_CANDIDATES, len(r.candidates)))
                   if mid in valid}
        except Exception:
            continue
        if graph is not None:  # the prompt lm-hybrid builds for this text
            ids = list(ret)[:N_CANDIDATES]
            prompt = candidates_prompt(r.text, repo, graph, ids)
        else:
            ids, prompt = list(r.candidates), r.prompt
        if len(ids) < 2:
            continue
        trie = tries.get(tuple(ids)) or tries.setdefault(tuple(ids), IdTrie(ids, tok))
        res = dec.rank(prompt, trie, k=len(ids))
        if res.ranked and ret:
            seen.append(([(x.module, x.prob) for x in res.ranked], set(r.modules), ret))
    if seen:
        def top1(w: float) -> tuple[float, list[float], list[bool]]:
            tops, hits = [], []
            for ranked, gold, ret in seen:
                best, value = blend_lm_with_retrieval(dict(ranked), ret, w)[0]  # exactly lm-hybrid's fusion
                tops.append(value)
                hits.append(best in gold)
            return sum(hits) / len(seen), tops, hits

        grid = [i / 10 for i in range(11)]
        scores = {w: top1(w) for w in grid}
        best_w = min(grid, key=lambda w: (-scores[w][0], w))
        out.update({"lm_weight": best_w, "fusion_rows": len(seen), "fusion_top1": scores[best_w][0],
                    "retrieval_only_top1": scores[0.0][0], **fusion_cv(scores, grid),
                    "fusion_calibration": Calibrator.fit(scores[best_w][1], scores[best_w][2]).to_dict()})
    return out


def fusion_cv(scores: dict[float, tuple[float, list[float], list[bool]]], grid: Sequence[float]) -> dict:
    """The fused top-1 with the model's share chosen on other rows than it is scored on (two folds: even and odd
    rows, each scored at the weight that did best on the other, ties to the smaller weight), and the rows where
    that answer is right and retrieval's is wrong (`fusion_cv_gains`) or the reverse (`fusion_cv_losses`).
    `fusion_top1` picks the weight on the rows it scores, so it is never below retrieval's own top-1 (weight 0 is
    on the grid): it cannot say whether the model helps; these can."""
    n = len(next(iter(scores.values()))[2])
    base = scores[0.0][2] if 0.0 in scores else [False] * n
    hits, gains, losses = 0, 0, 0
    for fold in (0, 1):
        def on(w: float, rows_of: int) -> int:
            return sum(h for i, h in enumerate(scores[w][2]) if i % 2 == rows_of)

        w = min(grid, key=lambda x: (-on(x, 1 - fold), x))
        for i, h in enumerate(scores[w][2]):
            if i % 2 == fold:
                hits += h
                gains += h and not base[i]
                losses += base[i] and not h
    return {"fusion_cv_top1": hits / max(1, n), "fusion_cv_gains": gains, "fusion_cv_losses": losses}


# --- backends --------------------------------------------------------------------------------------

def unsloth_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import unsloth  # noqa: F401
    except Exception:  # not installed, or broken on this machine
        return False
    return True


def pick_backend(cfg: TrainConfig) -> str:
    if cfg.backend == "peft":
        return "peft"
    if unsloth_available():
        return "unsloth"
    if cfg.backend == "unsloth":
        raise RuntimeError("the unsloth backend needs CUDA and the unsloth package (pip install 'modmatch[gpu]')")
    return "peft"


def use_bf16(cfg: TrainConfig, device: str) -> bool:
    if cfg.bf16 == "yes":
        return True
    if cfg.bf16 == "no":
        return False
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    if device == "cpu":  # bf16 autocast only pays off with native bf16 units (measured: slower on AVX2)
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def add_lora(model, cfg: TrainConfig, backend: str = "peft"):
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in cfg.target_modules if t in present] or ["q_proj", "v_proj"]
    n_layers = int(getattr(getattr(model, "config", None), "num_hidden_layers", 0) or 0)
    layers = list(range(max(0, n_layers - cfg.lora_layers), n_layers)) if cfg.lora_layers > 0 and n_layers else None
    if backend == "unsloth":
        from unsloth import FastLanguageModel  # type: ignore

        return FastLanguageModel.get_peft_model(model, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                lora_dropout=cfg.lora_dropout, target_modules=targets,
                                                random_state=cfg.seed, use_gradient_checkpointing="unsloth")
    from peft import LoraConfig, get_peft_model

    lc = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
                    bias="none", task_type="CAUSAL_LM", layers_to_transform=layers)
    if cfg.grad_checkpoint and getattr(model, "supports_gradient_checkpointing", False):
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 (the old name is deprecated)
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    with warnings.catch_warnings():  # peft reads transformers' deprecated alias itself; nothing for our users to do
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, lc)


def load_for_training(cfg: TrainConfig, cache_dir=None, backend: str = "peft"):
    """(model, tokenizer) for the configured base model on the chosen backend."""
    from inference.models import cached_path, load_base, resolve

    if backend == "unsloth":
        from unsloth import FastLanguageModel  # type: ignore

        spec = resolve(cfg.base_model)
        if spec.kind == "gguf":
            load_base(cfg.base_model, cache_dir)  # converts and caches once
            src = str(cached_path(spec, cache_dir))
        else:
            src = spec.source
        model, tok = FastLanguageModel.from_pretrained(model_name=src, max_seq_length=cfg.max_seq_len,
                                                       load_in_4bit=False, dtype=None)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return model, tok
    return load_base(cfg.base_model, cache_dir)


# --- folders and publishing ------------------------------------------------------------------------

def repo_key(graph: ModuleGraph, name: str = "") -> str:
    base = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in (name or "repo")).strip("-") or "repo"
    return base


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the loop --------------------------------------------------------------------------------------

@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict
    published: bool
    reason: str
    metadata: dict = field(default_factory=dict)


def _schedule(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of row indices for one epoch: shuffled, length-grouped in windows, batches shuffled."""
    rng = random.Random(seed * 1000 + epoch)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    window = batch_size * 16
    batches = []
    for w in range(0, len(idx), window):
        chunk = sorted(idx[w:w + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def rows_deadline(deadline: float | None) -> float | None:
    """When making rows stops: DATASET_SHARE of the time left now before the training `deadline` (None: none)."""
    if deadline is None:
        return None
    now = time.time()
    return now + DATASET_SHARE * max(0.0, deadline - now)


def _pieces(rows: Sequence[int], lengths: dict[int, int], micro_tokens: int) -> list[list[int]]:
    """`rows` (one batch) in consecutive pieces of at most `micro_tokens` padded tokens each (at least one row)."""
    if micro_tokens <= 0:
        return [list(rows)]
    out: list[list[int]] = []
    cur: list[int] = []
    longest = 0  # the longest row of `cur`
    for i in rows:
        if cur and max(longest, lengths[i]) * (len(cur) + 1) > micro_tokens:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, lengths[i])
    if cur:
        out.append(cur)
    return out


def batch_backward(model, encoded: Sequence[tuple[list[int], list[int]]], rows: Sequence[int], pad_id: int, device,
                   *, prefix: "FrozenPrefix | None" = None, micro_tokens: int = 0, scale: float = 1.0,
                   bf16: bool = False) -> tuple[float, int]:
    """Backward of `scale` × the batch `rows`' completion loss (the mean over its completion tokens), run in
    pieces of at most `micro_tokens` padded tokens: each piece's mean loss weighs its share of the batch's
    completion tokens, so the gradients are the whole batch's while only one piece's activations are held.
    Returns (the scaled loss, the tokens run)."""
    counts = {i: sum(x != IGNORE for x in encoded[i][1][1:]) for i in rows}
    total = max(1, sum(counts.values()))
    loss_sum, tokens = 0.0, 0
    for piece in _pieces(rows, {i: len(encoded[i][0]) for i in rows}, micro_tokens):
        batch = collate([encoded[i] for i in piece], pad_id, device)
        tokens += int(batch["attention_mask"].sum())
        share = scale * sum(counts[i] for i in piece) / total
        with torch.autocast(device_type=device if device != "mps" else "cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = (prefix.loss(piece, batch) if prefix else completion_loss(model, batch)) * share
        loss.backward()
        loss_sum += float(loss.detach())
    return loss_sum, tokens


def _peak_rss_mb() -> float | None:
    try:
        import resource
        import sys

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return round(rss / (2**20 if sys.platform == "darwin" else 1024), 1)
    except (ImportError, OSError):  # no resource module (Windows)
        return None


def _lr_at(step: int, total: int, cfg: TrainConfig, min_progress: float, warm: int) -> tuple[float, float]:
    """The learning rate at `step` of `total` (linear warm-up over `warm` steps, then cosine down to 5 %), and the
    progress through the cosine; the progress never falls below `min_progress`, so a horizon that grows does not
    raise the rate again."""
    if step < warm:
        return cfg.lr * (step + 1) / warm, 0.0
    prog = max(min_progress, min(1.0, (step - warm) / max(1, total - warm)))
    return cfg.lr * max(0.05, 0.5 * (1 + math.cos(math.pi * prog))), prog


def _horizon(step: int, total: int, deadline: float | None, recent: list[float], now: float) -> int:
    """The step the schedule should end at: `total`, or sooner when the steps left at the recent pace would run past
    the deadline, so that a run the budget cuts short still anneals instead of stopping at a high rate."""
    if not deadline or not recent:
        return total
    pace = sum(recent) / len(recent)
    return min(total, step + max(1, int((deadline - now) / max(pace, 1e-6))))


def _save_checkpoint(run_dir: Path, model, opt, state: dict) -> None:
    ck = run_dir / "checkpoint"
    tmp = run_dir / ".checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save_pretrained(tmp / "adapter")
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state))
    old = run_dir / ".checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)
    if ck.exists():
        os.replace(ck, old)
    os.replace(tmp, ck)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(run_dir: Path, model, opt) -> dict:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    ck = run_dir / "checkpoint"
    ad = ck / "adapter"
    f = ad / "adapter_model.safetensors"
    set_peft_model_state_dict(model, load_file(str(f)))
    opt.load_state_dict(torch.load(ck / "optimizer.pt", weights_only=True))
    return json.loads((ck / "state.json").read_text())


def train(graph: ModuleGraph, models: str | Path | ModelStore, cfg: TrainConfig | None = None, *, repo: str = "",
          dataset: Dataset | None = None, history=(), feedback=None, resume: bool = False,
          model_and_tokenizer=None, cache_dir=None, progress: Progress | None = None,
          publish_run: bool = True, stop: Callable[[], bool] | None = None,
          candidate_source: CandidateSource | None = None, key: str | None = None,
          compute: ComputeConfig | None = None, started_at: float | None = None) -> TrainResult:
    """Fine-tune, evaluate, write the run folder and publish it. See the module docstring.

    `model_and_tokenizer` lets tests pass a tiny model (otherwise `cfg.base_model` is loaded);
    `history` must already be cut off by the caller when the result is evaluated on later history.
    `stop()` returning True ends training cleanly at the next step (like --max-minutes). `compute`: the device
    (and, when `cfg.threads` is 0, the CPU threads) bot/'s settings ask for; `cache_dir`: where base models are
    converted and cached. `started_at` (a time.time()): when the command began, if before this call (the
    `--max-minutes` budget counts from there: `modmatch train` loads the graph and the retrieval matcher first)."""
    cfg = cfg or TrainConfig()
    t0 = started_at or time.time()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    compute = compute or ComputeConfig()
    device = select(compute).device  # CUDA, Apple MPS or CPU (the setting device overrides)
    cfg = cfg.for_device(device)  # lora_layers = -1: the top layers on the CPU, all on a GPU
    threads = cpu_threads(cfg.threads or compute.threads)
    if device == "cpu":
        configure_cpu_threads(threads)
    backend = pick_backend(cfg) if model_and_tokenizer is None else "peft"
    store = models if isinstance(models, ModelStore) else ModelStore(Path(models) / (key or repo_key(graph, repo)))
    store.root.mkdir(parents=True, exist_ok=True)

    run_dir = store.resumable_run() if resume else None
    if dataset is None and run_dir is not None and (run_dir / "data" / "train.jsonl").is_file():
        from .dataset import read_jsonl

        dataset = Dataset(read_jsonl(run_dir / "data" / "train.jsonl"), read_jsonl(run_dir / "data" / "val.jsonl"), repo)
    budget_end = t0 + cfg.max_minutes * 60 if cfg.max_minutes else None
    deadline = t0 + (budget_end - t0) * (1 - AFTER_TRAINING_SHARE) if budget_end else None
    leaf = graph.leaf_ids()
    cands = candidate_source
    if dataset is None or (cands is None and len(leaf) > cfg.eval_max_ids):
        cands = cands if cands is not None else CandidateSource(graph)
    if dataset is None:
        if progress:
            progress("dataset", 0, 1, {})
        history = list(history)
        if cfg.history_limit and len(history) > cfg.history_limit:  # the most recent ones (history is by date)
            history = sorted(history, key=lambda h: h.date)[-cfg.history_limit:]
        dataset = build_dataset(graph, repo=repo, history=history, feedback=feedback,
                                variants_per_source=cfg.variants, reasoning_ratio=cfg.reasoning_ratio,
                                candidates_ratio=cfg.candidates_ratio, candidates_k=cfg.candidates_k,
                                val_fraction=cfg.val_fraction, seed=cfg.seed, candidate_source=cands,
                                deadline=rows_deadline(deadline))
    if not dataset.train:
        raise ValueError("no training rows: the graph has no leaf modules with text to learn from")
    if run_dir is None:
        run_dir = store.new_run()
    dataset.write(run_dir / "data")
    ds_hash = dataset.hash()

    if model_and_tokenizer is not None:
        model, tok = model_and_tokenizer
    else:
        if progress:
            progress("load model", 0, 1, {})
        model, tok = load_for_training(cfg, cache_dir, backend)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if not hasattr(model, "peft_config"):
        model = add_lora(model, cfg, backend)
    model.to(device)
    model.train()
    bf16 = use_bf16(cfg, device)
    # the cache works under bf16 autocast as in fp32 (it keeps bf16 either way): this CPU reports AVX512-BF16, and
    # leaving the cache off there cost later epochs about half their speed (bench/README.md, stop 25)
    prefix = FrozenPrefix.maybe(model, cfg, device)

    encoded = [encode_row(tok, r.prompt, r.completion, cfg.max_seq_len) for r in dataset.train]
    lengths = [len(i) for i, _ in encoded]
    per_epoch = math.ceil(len(encoded) / cfg.batch_size)
    total = max(1, math.ceil(per_epoch * cfg.epochs / cfg.grad_accum))
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    step, tokens, elapsed_before, losses = 0, 0, 0.0, []
    if resume and (run_dir / "checkpoint" / "state.json").is_file():
        st = _load_checkpoint(run_dir, model, opt)
        if st.get("dataset_hash") != ds_hash:
            raise ValueError("the checkpoint was made on a different dataset; train without --resume")
        step, tokens, elapsed_before, losses = st["step"], st["tokens"], st["elapsed"], st.get("losses", [])
        log.info("resuming %s at step %d", run_dir, step)

    # the retrieval matcher the fusion is tuned against (rebuilt without the validation changes) is built before
    # training, so its minutes count before the training deadline and not after the budget
    held_retrieval, held_note = None, "skipped: too little of the budget left"
    if deadline is None or deadline - time.time() >= HELD_OUT_MIN_SHARE * (budget_end - t0):
        held_retrieval = held_out_retrieval(graph, dataset.val, cands)
        held_note = "rebuilt without the validation changes" if held_retrieval is not None else "unavailable"
    stopped = ""
    t_train = time.time()
    step_seconds = 0.0  # the last step's duration: a step that would end past the deadline is not begun
    recent: list[float] = []  # the last steps' durations: the pace the schedule's horizon is planned at
    progress_lr, warm = 0.0, cfg.warmup_steps  # the warm-up only ever shortens: a run never goes back into it
    lr = None  # the last step's rate (none when no step runs)
    micro = [b for e in range(math.ceil(cfg.epochs) + 1) for b in _schedule(lengths, cfg.batch_size, cfg.seed, e)]
    while step < total:
        if deadline and time.time() + step_seconds > deadline:
            stopped = "max_minutes"
            break
        t_step = time.time()
        if stop and stop():
            stopped = "stopped"
            break
        horizon = _horizon(step, total, deadline, recent, t_step)
        warm = min(warm, max(1, horizon // 10))
        lr, progress_lr = _lr_at(step, horizon, cfg, progress_lr, warm)
        for g in opt.param_groups:
            g["lr"] = lr
        loss_sum = 0.0
        for a in range(cfg.grad_accum):
            bidx = micro[(step * cfg.grad_accum + a) % len(micro)]
            part, n_tok = batch_backward(model, encoded, bidx, tok.pad_token_id, device, prefix=prefix,
                                         micro_tokens=cfg.micro_tokens, scale=1.0 / cfg.grad_accum, bf16=bf16)
            loss_sum += part
            tokens += n_tok
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        step_seconds = time.time() - t_step
        recent = (recent + [step_seconds])[-10:]
        losses.append(round(loss_sum, 5))
        if progress:
            progress("train", step, total, {"loss": loss_sum, "lr": lr})
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
            _save_checkpoint(run_dir, model, opt, {"step": step, "tokens": tokens, "dataset_hash": ds_hash,
                                                   "elapsed": elapsed_before + time.time() - t_train,
                                                   "losses": losses})
    train_seconds = elapsed_before + time.time() - t_train

    model.eval()
    model.save_pretrained(run_dir / "adapter")
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    # validation (on the merged model, as `lm` serves it) gets half of what is left of the budget, the served
    # calibration the rest
    eval_end = time.time() + (budget_end - time.time()) / 2 if budget_end else None
    metrics = evaluate(merged, tok, dataset.val, leaf, max_rows=cfg.eval_rows, max_ids=cfg.eval_max_ids,
                       cands=cands, seed=cfg.seed, progress=progress, deadline=eval_end)
    metrics.update({"train_loss_first": losses[0] if losses else None,
                    "train_loss_last": sum(losses[-10:]) / max(1, len(losses[-10:])) if losses else None,
                    "steps": step, "planned_steps": total, "tokens": tokens, "last_lr": lr,
                    "tokens_per_s": round(tokens / train_seconds, 1) if train_seconds > 0 else 0.0,
                    "train_seconds": round(train_seconds, 1), "stopped_early": stopped or None,
                    "seconds_before_training": round(t_train - t0, 1),  # dataset, model load, tokenizing
                    "rows_not_built": dataset.not_built, "fusion_retrieval": held_note,
                    "frozen_cache_rows": len(prefix.rows) if prefix else None,
                    "frozen_cache_mb": round(prefix.used / 2**20, 1) if prefix else None,
                    "peak_rss_mb": _peak_rss_mb()})

    # write the folders
    try:
        calibration = calibrate_serving(merged, tok, dataset.val, leaf, max_rows=cfg.eval_rows, seed=cfg.seed,
                                        retrieval=held_retrieval, graph=graph,
                                        repo=dataset.repo or repo, deadline=budget_end)
    except Exception as e:  # calibration is an improvement, never a reason to lose a trained model
        log.warning("train.calibration-failed error=%s", e)
        calibration = None
    tmp_merged = run_dir / ".merged.tmp"
    shutil.rmtree(tmp_merged, ignore_errors=True)
    merged.save_pretrained(tmp_merged)
    tok.save_pretrained(tmp_merged)
    shutil.rmtree(run_dir / "merged", ignore_errors=True)
    os.replace(tmp_merged, run_dir / "merged")
    meta = {
        "base_model": cfg.base_model if model_and_tokenizer is None else getattr(model, "name_or_path", "custom"),
        "graph_version": graph.version, "commit": graph.commit, "repo": repo,
        "module_ids": leaf, "ids_hash": graph.ids_hash(),
        "dataset_hash": ds_hash, "dataset": dataset.stats() | {"rows_per_module": None},
        "config": cfg.to_dict(), "backend": backend, "device": device, "bf16": bf16, "threads": threads,
        "metrics": metrics, "created_at": _now(), "seconds": round(time.time() - t0, 1),
        "candidates_from": (cands.name or None) if cands is not None else None,
        "calibration": calibration,
    }
    meta["dataset"].pop("rows_per_module", None)
    write_json_atomic(run_dir / "metadata.json", meta)
    shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    if not publish_run:
        published, reason = False, "not published (dry run)"
    elif step == 0:
        published, reason = False, "not published: no training step ran (raise --max-minutes)"
    else:
        published, reason = store.publish(run_dir, meta)
    meta["published"] = published
    meta["publish_reason"] = reason
    write_json_atomic(run_dir / "metadata.json", meta)
    return TrainResult(run_dir, metrics, published, reason, meta)
