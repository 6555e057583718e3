"""Training rows in prompt → completion form, built from the graph, history and feedback.

Every row follows inference/prompt.py (the serving contract)::

    {"prompt": "Task: match ...\\nRequirement: crash when decoding wav files\\nAnswer:",
     "completion": " modules: audio",             # or " thinking: ...\\nmodules: audio"
     "modules": ["audio"], "source": "graph:symbol", "group": "audio|sym|decode_wav", "mode": "plain",
     "text": "crash when decoding wav files", "candidates": ["audio", "network", ...]}

Sources: (1) the graph (descriptions, keywords, aliases, symbol names / docstrings) turned into
requirement-like sentences by templates (feature requests, bug reports, questions), (2) history
examples (the caller passes only those before an evaluation cutoff), (3) feedback examples.
Augmentation keeps the meaning: several templates per source sentence, synonym replacement,
dropping non-essential words, reordering clauses, Chinese templates when the repository has CJK text.

All variants of one source sentence share a `group`; the train / validation split is by group, so
no phrasing of a validation sentence is ever trained on. With enough history the validation groups are the latest
past changes (`recent_groups`): the model is judged on what comes next.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from indexer.graph import ModuleGraph
from indexer.records import HistoryExample
from indexer.text import has_cjk, split_identifier, words
from inference.base import ranking
from inference.prompt import build_completion, candidates_prompt

# --- templates -------------------------------------------------------------------------------------

FEATURE = [
    "Add support for {x}",
    "We need {x}",
    "Please implement {x}",
    "Improve {x}",
    "Feature request: {x}",
    "It would be great to have better {x}",
]
BUG = [
    "Bug: {x} is broken",
    "Crash in {x}",
    "{x} fails with an error",
    "Wrong result from {x} after the last release",
    "Regression in {x}",
]
QUESTION = [
    "Where is {x} handled?",
    "Which code deals with {x}?",
    "How does {x} work?",
    "Who owns {x}?",
]
SENTENCE = [  # for full sentences (descriptions, docstrings)
    "{X}",
    "Requirement: {x}",
    "{X} — this needs changes",
    "We want to change how we {xv}",
]
CJK_TEMPLATES = [
    "需要支持{x}",
    "{x}出现崩溃",
    "{x}在哪里处理？",
    "优化{x}",
]

# A small table of software verbs and nouns with meaning-preserving alternatives.
SYNONYMS: dict[str, list[str]] = {
    "add": ["introduce", "implement"], "remove": ["delete", "drop"], "delete": ["remove"],
    "create": ["make", "build"], "load": ["read", "open"], "read": ["load", "parse"], "write": ["save", "store"],
    "save": ["write", "persist"], "store": ["save", "keep"], "send": ["transmit", "push"], "receive": ["get", "accept"],
    "fetch": ["download", "retrieve"], "download": ["fetch"], "upload": ["send", "push"], "parse": ["read", "decode"],
    "decode": ["parse", "unpack"], "encode": ["serialize", "pack"], "compute": ["calculate"], "calculate": ["compute"],
    "show": ["display", "render"], "display": ["show", "render"], "render": ["draw", "display"], "draw": ["render"],
    "start": ["launch", "begin"], "stop": ["halt", "end"], "run": ["execute"], "execute": ["run"],
    "check": ["verify", "validate"], "verify": ["check"], "validate": ["check", "verify"], "handle": ["process"],
    "process": ["handle"], "configure": ["set up"], "initialize": ["set up", "init"], "init": ["initialize"],
    "error": ["failure", "fault"], "bug": ["defect", "issue"], "crash": ["failure", "abort"], "file": ["document"],
    "files": ["documents"], "function": ["routine"], "method": ["function"], "settings": ["options", "preferences"],
    "config": ["configuration", "settings"], "configuration": ["config", "settings"], "option": ["setting"],
    "options": ["settings"], "message": ["notification"], "user": ["customer", "client"], "users": ["customers"],
    "fast": ["quick"], "slow": ["sluggish", "laggy"], "big": ["large"], "large": ["big", "huge"], "small": ["tiny"],
    "connection": ["link", "session"], "request": ["call"], "response": ["reply"], "data": ["information"],
    "support": ["handle"], "improve": ["enhance", "optimize"], "fix": ["repair", "correct"], "broken": ["not working"],
    "fails": ["does not work"], "wrong": ["incorrect", "bad"], "list": ["enumerate"], "search": ["look up", "find"],
    "find": ["search for", "locate"], "update": ["refresh", "change"], "convert": ["transform"],
}

FILLER = {"please", "the", "a", "an", "really", "currently", "basically", "just", "some", "better", "also", "very"}


@dataclass
class Source:
    """One source sentence with its gold modules; variants are rendered from it."""

    text: str
    modules: list[str]
    source: str  # graph:description | graph:keywords | graph:alias | graph:symbol | history | feedback
    group: str
    kind: str = "sentence"  # sentence | phrase | raw
    date: str = ""  # a past change's date (ISO 8601); empty for graph-made sentences and feedback


@dataclass
class Row:
    prompt: str
    completion: str
    modules: list[str]
    source: str
    group: str
    mode: str  # plain | reasoning
    text: str = ""
    candidates: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Dataset:
    train: list[Row]
    val: list[Row]
    repo: str = ""
    not_built: int = 0  # training rows left out because the time for building rows ran out (`build_dataset`)

    def hash(self) -> str:
        h = hashlib.sha256()
        for r in self.train + self.val:
            h.update(json.dumps(r.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        return h.hexdigest()[:16]

    def write(self, folder: str | Path) -> dict[str, Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = {}
        for name, rows in (("train", self.train), ("val", self.val)):
            p = folder / f"{name}.jsonl"
            write_jsonl(rows, p)
            out[name] = p
        return out

    def stats(self) -> dict:
        def lens(rows):
            return sorted(len(r.prompt) + len(r.completion) for r in rows)

        per_mod = Counter(m for r in self.train for m in r.modules[:1])
        allr = self.train + self.val
        ls = lens(allr)
        pct = (lambda q: ls[min(len(ls) - 1, int(q * len(ls)))] if ls else 0)
        return {
            "train": len(self.train), "val": len(self.val),
            "groups_train": len({r.group for r in self.train}), "groups_val": len({r.group for r in self.val}),
            "reasoning": sum(r.mode == "reasoning" for r in allr), "plain": sum(r.mode == "plain" for r in allr),
            "with_candidates": sum(bool(r.candidates) for r in allr),
            "sources": dict(Counter(r.source for r in allr)),
            "not_built": self.not_built,
            "rows_per_module": dict(per_mod.most_common()),
            "chars": {"min": ls[0] if ls else 0, "p50": pct(0.5), "p90": pct(0.9), "max": ls[-1] if ls else 0},
        }


def write_jsonl(rows: Iterable[Row], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[Row]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(Row(**json.loads(line)))
    return rows


# --- sources ---------------------------------------------------------------------------------------

_SENT_SPLIT = re.compile(r"(?<=[.!?。！？])\s+")


def _sentences(text: str, limit: int = 3) -> list[str]:
    out = []
    for s in _SENT_SPLIT.split(" ".join(text.split())):
        s = s.strip().rstrip(".。")
        if 12 <= len(s) <= 220 and len(words(s)) >= 2:
            out.append(s)
        if len(out) >= limit:
            break
    return out


def _ident_phrase(name: str) -> str:
    return " ".join(p.lower() for p in split_identifier(name) if p)


def graph_sources(graph: ModuleGraph, max_symbols: int = 6) -> list[Source]:
    out: list[Source] = []
    leaves = graph.leaf_ids()
    for mid in leaves:
        m = graph.modules[mid]
        for i, s in enumerate(_sentences(m.description)):
            out.append(Source(s, [mid], "graph:description", f"{mid}|desc|{i}"))
        for a in m.aliases:
            out.append(Source(a, [mid], "graph:alias", f"{mid}|alias|{a}", kind="phrase"))
        kws = [k for k in m.keywords if not k.isdigit()]
        for i in range(0, min(len(kws), 9), 3):
            chunk = kws[i:i + 3]
            if chunk:
                phrase = chunk[0] if len(chunk) == 1 else ", ".join(chunk[:-1]) + " and " + chunk[-1]
                out.append(Source(phrase, [mid], "graph:keywords", f"{mid}|kw|{i}", kind="phrase"))
        seen = 0
        names: set[str] = set()
        for sym in m.symbols:
            if seen >= max_symbols:
                break
            if sym.name in names:
                continue
            names.add(sym.name)
            phrase = _ident_phrase(sym.name)
            if len(phrase) < 4:
                continue
            seen += 1
            out.append(Source(phrase, [mid], "graph:symbol", f"{mid}|sym|{sym.name}", kind="phrase"))
            for j, s in enumerate(_sentences(sym.doc, limit=1)):
                out.append(Source(s, [mid], "graph:symbol", f"{mid}|doc|{sym.name}|{j}"))
    return out


def history_sources(examples: Sequence[HistoryExample], graph: ModuleGraph, source: str = "history",
                    max_modules: int = 3) -> list[Source]:
    valid = set(graph.leaf_ids())
    out = []
    for ex in examples:
        mods = [m for m in ex.modules if m in valid][:max_modules]
        if not mods:
            continue
        body = " ".join(ex.body.split())[:240]
        text = ex.subject.strip() + (". " + body if body else "")
        if len(words(text)) < 2:
            continue
        origin = "feedback" if ex.kind == "feedback" else source
        out.append(Source(text, mods, origin, f"{source}|{ex.commit}", kind="raw",
                          date=ex.date if origin == "history" else ""))
    return out


def feedback_sources(path_or_examples, graph: ModuleGraph) -> list[Source]:
    """From a JSONL file of {"text", "gold_modules"} or from HistoryExamples (store.feedback())."""
    if isinstance(path_or_examples, (str, Path)):
        exs = []
        with open(path_or_examples, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                d = json.loads(line)
                text = d.get("text", "")
                mods = d.get("gold_modules") or d.get("modules") or []
                head, _, body = text.partition("\n")
                exs.append(HistoryExample(f"fb{i}", "", head, body, (), tuple(mods), "feedback"))
    else:
        exs = list(path_or_examples)
    return history_sources(exs, graph, source="feedback")


# --- augmentation ----------------------------------------------------------------------------------

def synonym_replace(text: str, rng: random.Random, p: float = 0.5) -> str:
    def sub(m: re.Match) -> str:
        w = m.group(0)
        alts = SYNONYMS.get(w.lower())
        if not alts or rng.random() > p:
            return w
        alt = rng.choice(alts)
        return alt.capitalize() if w[0].isupper() else alt

    return re.sub(r"[A-Za-z]+", sub, text)


def drop_filler(text: str, rng: random.Random) -> str:
    toks = text.split(" ")
    kept = [t for t in toks if t.lower().strip(",.") not in FILLER or rng.random() < 0.3]
    return " ".join(kept) if len(kept) >= 2 else text


def reorder_clauses(text: str) -> str:
    for sep in (", and ", " and ", ", "):
        if sep in text:
            a, b = text.split(sep, 1)
            if len(a) > 3 and len(b) > 3:
                b = b.rstrip(".?!")
                return b[0].upper() + b[1:] + sep + a[0].lower() + a[1:]
    return text


def _lower_first(s: str) -> str:
    return s[0].lower() + s[1:] if s and not s[:2].isupper() else s


def _verb_phrase(s: str) -> str:
    """'Decodes WAV files' → 'decode WAV files' (crude, for 'how we {xv}')."""
    first, _, rest = s.partition(" ")
    f = first.lower()
    if f.endswith("es") and len(f) > 4 and f[-3] in "sxzh":
        f = f[:-2]
    elif f.endswith("s") and not f.endswith("ss") and len(f) > 3:
        f = f[:-1]
    return (f + " " + rest).strip()


def variants(src: Source, n: int, rng: random.Random, cjk: bool = False) -> list[str]:
    """Up to n distinct meaning-preserving phrasings of one source sentence."""
    base = " ".join(src.text.split())
    if src.kind == "raw":
        outs = [base]
        cand = [synonym_replace(base, rng), drop_filler(base, rng)]
    else:
        x = _lower_first(base)
        pool = [t.format(x=x) for t in FEATURE + BUG + QUESTION]
        if src.kind == "sentence":
            pool += [t.format(x=x, X=base, xv=_verb_phrase(x)) for t in SENTENCE]
            outs = [base]
        else:
            outs = []
        rng.shuffle(pool)
        cand = []
        for p in pool:
            r = rng.random()
            if r < 0.35:
                p = synonym_replace(p, rng)
            elif r < 0.55:
                p = drop_filler(p, rng)
            elif r < 0.7:
                p = reorder_clauses(p)
            cand.append(p)
        if cjk:
            cand.insert(rng.randrange(len(cand) + 1), rng.choice(CJK_TEMPLATES).format(x=base))
    for c in cand:
        c = " ".join(c.split())
        if c and c not in outs:
            outs.append(c)
        if len(outs) >= n:
            break
    return outs[:n]


# --- thinking and candidates -----------------------------------------------------------------------

def module_depth(mid: str) -> int:
    return 0 if mid in ("", ".") else mid.count("/") + 1


def build_thinking(text: str, modules: list[str], graph: ModuleGraph, max_terms: int = 5) -> str:
    """Key terms found in the text that are keywords of the gold modules (or keyword-index hits
    pointing to them), the functional area (parent module's name and description words) and the
    module level. Everything comes from the graph and the text; nothing is invented."""
    gold = modules[0]
    m = graph.modules.get(gold)
    toks = list(dict.fromkeys(words(text)))
    kw = set()
    for mid in modules:
        mm = graph.modules.get(mid)
        if mm:
            kw.update(k.lower() for k in mm.keywords)
            kw.update(words(mm.name))
    terms = [t for t in toks if t in kw or gold in graph.keyword_index.get(t, ())]
    if not terms:
        terms = [t for t in toks if t in graph.keyword_index][:max_terms]
    terms = terms[:max_terms]
    area = ""
    parent = graph.modules.get(m.parent) if m and m.parent else None
    if parent is not None and parent.parent is not None:  # not the repository root
        desc = [w for w in words(parent.description) if w not in words(parent.name)][:3]
        area = " ".join([parent.name] + desc)
    elif m is not None:
        area = " ".join(words(m.name)[:1] + [w for w in words(m.description)][:3])
    parts = ["key terms: " + (", ".join(terms) if terms else "none")]
    if area:
        parts.append("area: " + area)
    parts.append(f"level: {gold} (depth {module_depth(gold)})")
    return "; ".join(parts)


class CandidateSource:
    """Top-k module IDs from a retrieval matcher ("hybrid", else "lexical"); none when neither exists."""

    def __init__(self, graph: ModuleGraph, names: Sequence[str] = ("hybrid", "lexical"), matcher=None):
        self.graph = graph
        self.matcher = matcher
        self.name = getattr(matcher, "name", "") if matcher is not None else ""
        if matcher is None:
            from inference.base import create
            from inference.errors import UnknownMatcherError

            for n in names:
                try:
                    self.matcher = create(n, graph)
                    self.name = n
                    break
                except (UnknownMatcherError, ImportError):
                    continue
        self.leaves = set(graph.leaf_ids())

    def __call__(self, text: str, k: int) -> list[str]:
        if self.matcher is None:
            return []
        try:
            ids = [m for m, _ in ranking(self.matcher, text, k)]
        except Exception:  # a matcher must never break dataset building
            return []
        return [m for m in ids if m in self.leaves][:k]


# --- rows ------------------------------------------------------------------------------------------

def split_groups(groups: Sequence[str], val_fraction: float, seed: int) -> set[str]:
    """The validation groups: a seeded random share of the distinct groups, at least one when possible."""
    uniq = sorted(set(groups))
    rng = random.Random(seed)
    rng.shuffle(uniq)
    n = int(round(len(uniq) * val_fraction))
    if len(uniq) >= 2:
        n = max(1, min(n, len(uniq) - 1))
    else:
        n = 0
    return set(uniq[:n])


# past changes needed to validate on the latest of them; with fewer, validation is a random share of all groups
MIN_RECENT_VAL = 20


def recent_groups(sources: Sequence[Source], val_fraction: float) -> set[str]:
    """The validation groups when the history allows it: the latest `val_fraction` of the past changes that made
    rows (by date), and nothing else. The model is judged, calibrated and gated on what comes next, as the
    retrieval matcher's calibrator is on its latest changes: a random share of groups holds graph-made sentences
    and changes whose neighbours in time were trained on, which makes both the model and retrieval look better than
    they will be on new texts (pytest, 2025-08 cut-off: lm-hybrid 0.92 on random validation rows, 0.83 on the 200
    changes after the cut-off). Empty when fewer than MIN_RECENT_VAL would be held out."""
    hist = sorted((s for s in sources if s.date), key=lambda s: (s.date, s.group))
    n = int(round(len(hist) * val_fraction))
    return {s.group for s in hist[-n:]} if n >= MIN_RECENT_VAL and n < len(hist) else set()


def build_dataset(graph: ModuleGraph, *, repo: str = "", history: Sequence[HistoryExample] = (),
                  feedback=None, variants_per_source: int = 4, reasoning_ratio: float = 0.5,
                  candidates_ratio: float = 0.7, candidates_k: int = 5, val_fraction: float = 0.15,
                  seed: int = 0, candidate_source: CandidateSource | None = None,
                  extra_sources: Sequence[Source] = (), deadline: float | None = None) -> Dataset:
    """Rows from the graph, the given history (already cut off by the caller) and feedback.

    A row with candidates costs a retrieval call (tens of milliseconds: thousands of rows take minutes on a CPU).
    With a `deadline` (a `time.time()`), the validation rows are made first and the training rows in a random
    order until it passes; the ones not made by then are left out (`Dataset.not_built`): a run with a few minutes
    to train could not use them anyway."""
    rng = random.Random(seed)
    cjk = any(has_cjk(m.description) or any(has_cjk(a) for a in m.aliases) for m in graph.modules.values())
    sources = graph_sources(graph) + history_sources(history, graph)
    if feedback is not None:
        sources += feedback_sources(feedback, graph)
    sources += list(extra_sources)
    val_groups = (recent_groups(sources, val_fraction)
                  or split_groups([s.group for s in sources], val_fraction, seed))
    cands = candidate_source if candidate_source is not None else CandidateSource(graph)

    texts: list[tuple[str, Source]] = []
    for src in sources:
        n = variants_per_source if src.kind != "raw" else max(1, variants_per_source // 2)
        for t in variants(src, n, rng, cjk=cjk):
            texts.append((t, src))
    # per split, the items in a random order (the order training rows are made and kept in), and an exact
    # reasoning ratio: a shuffled mask with round(ratio * n) reasoning rows, so rows cut by a deadline keep it too
    rows_train: list[Row] = []
    rows_val: list[Row] = []
    not_built = 0
    for is_val in (True, False):  # validation first: a deadline cuts training rows short, never those
        items = [(t, s) for t, s in texts if (s.group in val_groups) == is_val]
        rng.shuffle(items)
        n_reason = int(round(reasoning_ratio * len(items)))
        mask = [True] * n_reason + [False] * (len(items) - n_reason)
        rng.shuffle(mask)
        for j, ((t, s), reasoning) in enumerate(zip(items, mask)):
            if not is_val and deadline is not None and rows_train and time.time() > deadline:
                not_built = len(items) - j
                break
            row = _render(t, s, graph, repo, reasoning, cands, candidates_ratio, candidates_k, rng,
                          insert_gold=not is_val)
            (rows_val if is_val else rows_train).append(row)
    return Dataset(rows_train, rows_val, repo, not_built)


def _render(text: str, src: Source, graph: ModuleGraph, repo: str, reasoning: bool, cands: CandidateSource,
            candidates_ratio: float, k: int, rng: random.Random, insert_gold: bool) -> Row:
    cand_ids: list[str] = []
    if rng.random() < candidates_ratio:
        cand_ids = cands(text, k)
        gold = src.modules[0]
        if cand_ids and insert_gold and gold not in cand_ids:
            cand_ids = cand_ids[:k - 1]
            cand_ids.insert(rng.randrange(len(cand_ids) + 1), gold)
    prompt = candidates_prompt(text, repo, graph, cand_ids)
    thinking = build_thinking(text, src.modules, graph) if reasoning else None
    return Row(prompt, build_completion(src.modules, thinking), list(src.modules), src.source, src.group,
               "reasoning" if reasoning else "plain", text, cand_ids)


def print_stats(ds: Dataset, console=None, top: int = 15) -> dict:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    s = ds.stats()
    console.print(f"[bold]dataset[/bold] {s['train']} train rows ({s['groups_train']} groups), {s['val']} validation rows "
                  f"({s['groups_val']} groups); reasoning {s['reasoning']} / plain {s['plain']}; "
                  f"with candidates {s['with_candidates']}")
    t = Table("module", "train rows", title="rows per module (first gold)")
    for mid, n in list(s["rows_per_module"].items())[:top]:
        t.add_row(mid, str(n))
    if len(s["rows_per_module"]) > top:
        t.add_row("…", f"{len(s['rows_per_module']) - top} more modules")
    console.print(t)
    c = s["chars"]
    console.print(f"length (prompt+completion chars): min {c['min']}, median {c['p50']}, p90 {c['p90']}, max {c['max']}; "
                  f"sources: {', '.join(f'{k} {v}' for k, v in sorted(s['sources'].items()))}")
    return s
