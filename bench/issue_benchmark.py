"""The issue benchmark (issue 11): real GitHub issue texts of the dev repositories, each paired with
the modules its fix touched, asked of the matchers built on the history BEFORE that fix.

    nice -n 10 .venv/bin/python bench/issue_benchmark.py pair     # texts + git history -> bench/issue_cases.toml
    nice -n 10 .venv/bin/python bench/issue_benchmark.py          # run: -> bench/results/issues/
        [--only pytest svelte] [--cases bench/issue_cases.toml] [--texts /work/bench-data/issue_texts]
        [--out bench/results/issues] [--work-dir /tmp/modmatch-issues] [--matcher hybrid --matcher lexical ...]
        [--min-cjk 5] [--code LABEL] [--keep] [--matchers-from DEV_WORK_DIR] [--zh-titles /work/bench-data/zh_titles]
        [--en-titles /work/bench-data/en_titles]

What a case is. A GitHub issue (not a pull request) of one of the dev repositories of
`bench/dev_repos.toml`, whose text is its title, a blank line and the start of its description as the
stored issue corpus shows it (the description only: cut before the first comment, header lines
dropped, at most 1,200 characters), and whose gold answer is the set of modules touched by the
commit(s) that fixed it.

Pairing rule (`fixes()` below; every commit reachable from any ref of the local clone, `git log --all`):
a commit fixes issue #N when its message says so with a closing keyword, `fix`, `fixes`, `fixed`,
`close`, `closes`, `closed`, `resolve`, `resolves`, `resolved` (any case, an optional colon), followed
by `#N` or the issue's URL `https://github.com/<owner>/<repo>/issues/N` (also in a list: `Fixes #1,
#2 and #3`). A reference `owner/other#N` to another repository does not count. For dromara/hutool,
whose commits rarely use keywords, the project's own convention counts too: `issue#N@Github` in the
commit message or in a line the commit adds to CHANGELOG.md (the maintainers log each fix there
with the issue it fixes), and `github issue N`. For 1Panel-dev/1Panel, whose pull-request template
asks for the issue the change answers as `Refs <issue URL>` (squash-merged into the commit message),
`Refs` counts as a keyword too (`REFS_KEYWORD`). Issues with no such commit are left out; so are issues
the stored corpus shows only as a pull request.

Gold modules: the modules the fix commit(s) touched, exactly as the dev benchmark derives a case from
a commit: `inference.evaluate.history_split` at the cut-off mines the later commits into cases with
the cut-off graph's file -> module mapping and the training-history filters (bots, reverts, version
bumps, formatting, no module, more than `history_max_modules` modules); an issue's gold is the union
of the modules of its fix commits found among those cases. An issue whose fix commit is dropped by
those filters, or touches only modules that did not exist at the cut-off, is dropped (counted in the
JSON).

Cut-off per repository (`pair`): a case is only asked of a graph and history from before its fix, so
the fix commit is never in the training history. The issue-set cut-off is the dev benchmark's cut-off
of that repository when at least `--min-cases` (30) paired issues have their first fix after it (the
split is the same as the dev benchmark's); otherwise the latest date that leaves `--min-cases` paired
issues after it (the day before the `--min-cases`-th latest first fix). Issues fixed before the
cut-off are not cases. At run time each fix commit is checked again: it must not be an ancestor of
the cut-off commit (a leak) and must be one of the split's cases.

Windows (`--window-days`, 365): a labeller in service reads each new issue with the graph of that
week, not of years before, so no case is asked of a graph more than a window older than its fix
(beyond the dev cut-off's own year). Cases fixed after the dev cut-off are asked at the dev cut-off;
the earlier ones are grouped from the latest back: a window holds the remaining cases whose first
fix lies within `--window-days` of the latest one, and its cut-off is the day before its earliest
first fix. `pair` writes each case's `cutoff`; `run` builds the matchers once per window and scores
each case on its own window's split (a case without a `cutoff` uses the repository's). Per-repository
figures pool the windows' cases; `windows` in the JSON lists each window's cut-off, modules, training
changes and cases.

Metrics per repository: Acc@1, Acc@3, MRR of `hybrid` (what `ask` serves without a trained model)
and of `lexical` / `history` as references; the cases whose text holds CJK characters ("mixed",
reported where a repository has at least `--min-cjk`) and the other ones; label trust of the top-1
confidence (ECE, top-1 precision at coverage 0.60, the precision-0.95 threshold and its coverage);
and a text-blind "prior" reference, the constant answer made of the modules the training history
touched most often (`prior_baseline`): a fix usually touches the main source module, the tests and a
changelog too, so a matcher must beat the prior to show that it read the issue
(`--prior-only` adds it to existing results without rerunning the matchers). And the GitHub labeller as
it acts (`labeller_window`): each window's build labels at its own operating point (the threshold chosen
on its held-out history for precision 0.95, what the service uses without a configured one), gives no
label where the matcher says the issue is not about the repository, and two labels at most: the share of
issues labelled, how often the first label is right (Wilson 95 % interval), the share of labels right
(`--labeller-only` adds it to existing results from the builds `--keep` pickled).
Chinese titles (`--zh-titles DIR`): cross-language matching, a Chinese requirement against a repository whose
code, docs and history are English. Where `<DIR>/<name>.jsonl` gives an issue's title as a Chinese-speaking
reporter would write it (url, title_zh; translated by hand, identifiers, commands and file names kept as
written, outside the repository as the texts are), the issue is also asked by its English title alone and by
its Chinese title alone, with the same gold (`titles` in the JSON: Acc@1, Acc@3, and how many each language
had answered as not about the repository).
English titles (`--en-titles DIR`): the other way round, for a Chinese-led repository whose issues and change
texts are Chinese: where `<DIR>/<name>.jsonl` gives an issue's title as an English-speaking user would write it
(url, title_en; the same rules), the issue is also asked by its Chinese title as filed and by its English title
alone (`titles_en` in the JSON).
Each issue is read as the GitHub labeller reads it: title and body through `bot.github.text.issue_text`
(until stop 33 the stored text as it is). Means are over repositories. Writes `<out>/<name>.json` per repository (with the modmatch commit it
ran on, the cut-off, per-case results by issue URL: gold, top-3, confidence; never the texts),
`<out>/summary.json` and `<out>/report.md`, and prints the tables.

Where the texts are. Issue texts are third-party material and are NOT in the repository. They lie
outside it, one JSON object a line, in `<texts>/<name>.jsonl` (default /work/bench-data/issue_texts;
fields: repo, number, url, title, text, created). `bench/issue_cases.toml` lists per repository the
cut-off and every case's issue URL and fix commits, nothing else. To rebuild the texts: for each URL
of the manifest, look the issue up in the stored GitHub issue corpus (the project's `search` tool,
corpus `issues`, a query made of the repository name and the issue's subject; keep the result whose
`url` is that URL and which says `issue #N`), then write `title` and `title + "\\n\\n" + description`
(the excerpt after its `author · description · date` line, cut before the first `· comment ·` /
`· review` line, at most 1,200 characters) into the JSONL. The set was gathered that way: many
searches per repository on its topics and on the subjects of fixes after the cut-off, keeping every
issue of the repository that the results showed and that pairs with a fix. The selection therefore
leans towards issues that the corpus's similarity search finds from such words. jellyfin, laravel and
brew (stop 38) were gathered the other way round: every issue their fix commits name (`fixes()`, first
fix after 2023-08 for jellyfin and laravel, 2024-08 for brew) was looked up by the words of its fix
commit, and kept where the corpus holds it as an issue (not a pull request): 44 of 48, 62 of 82 and
93 of 110; go-zero (stop 47) the same way over its whole history, by a helper session: 81 of 97; apache/kyuubi
(stop 50) the same way over the 227 numbers its fixes after the dev cut-off close, by two helper sessions: 52 of 227
(most of the others are the pull requests themselves: its merge script writes `Closes #<PR> from <branch>`, and a
pull request fixed without an issue names its own number). The corpus files
square/okhttp's issues under the name `lysine-dev/okhttp` (same numbers and texts; the commits say
`Closes: https://github.com/square/okhttp/issues/N`): those results are kept under the square/okhttp URL.

The local clones are those of `bench/dev_repos.toml` (see bench/dev_benchmark.py for recreating them).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import pickle
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dev_benchmark import (COV, COVERAGE, DEFAULT, MATCHERS, PCOV, PRECISION, THR, accuracy,  # noqa: E402
                           calibration_plots, calibration_section, code_commit, f3, load_manifest, log, mean_of,
                           outcome_cells, write_outputs)
from bot.github.text import issue_text  # noqa: E402
from bot.state import _operating_point, auto_threshold, no_module_reason  # noqa: E402
from indexer.modules import ROOT_ID  # noqa: E402
from indexer.source import git  # noqa: E402
from inference.base import create  # noqa: E402
from inference.cache import code_version  # noqa: E402
from inference.evaluate import (Case, has_cjk, history_split, labeller_outcome, pooled_outcome,  # noqa: E402
                                run_matcher, trust_metrics)

TEXTS = Path("/work/bench-data/issue_texts")
CASES = ROOT / "bench" / "issue_cases.toml"
_CLOSING = r"fix(?:e[sd])?|close[sd]?|resolve[sd]?"
KEYWORD = rf"\b(?:{_CLOSING})\b\s*:?\s*"
REFS_KEYWORD = rf"\b(?:{_CLOSING}|refs?)\b\s*:?\s*"
REFS_CONVENTION = {"1panel"}  # repositories whose pull-request template writes `Refs <issue>` for the issue answered


# --- pairing --------------------------------------------------------------------------------------
def referenced_issues(message: str, source: str, refs: bool = False) -> set[int]:
    """Issue numbers a commit message says it fixes (the rule of the docstring; `refs`: `Refs` counts too)."""
    url = rf"https?://github\.com/{re.escape(source)}/issues/"
    out: set[int] = set()
    for m in re.finditer((REFS_KEYWORD if refs else KEYWORD) + rf"((?:(?:#|{url})\d+(?:\s*(?:,|and|&)\s*)?)+)", message, re.I):
        out |= {int(x) for x in re.findall(r"(?:#|/issues/)(\d+)", m.group(1))}
    out |= {int(x) for x in re.findall(r"issue\s*#(\d+)\s*@\s*github", message, re.I)}
    out |= {int(x) for x in re.findall(r"github\s+issue\s+#?(\d+)", message, re.I)}
    return out


def fixes(path: str, source: str, changelog: bool = False, refs: bool = False) -> dict[int, dict[str, str]]:
    """issue number -> {fix commit sha: commit date} over every ref of the clone."""
    out: dict[int, dict[str, str]] = {}
    for rec in git(path, "log", "--all", "--format=\x1e%H\x1f%cI\x1f%B").split("\x1e")[1:]:
        sha, date, msg = rec.split("\x1f", 2)
        for n in referenced_issues(msg, source, refs):
            out.setdefault(n, {})[sha] = date
    if changelog:  # hutool: the issue a fix names in the CHANGELOG.md line it adds
        for rec in git(path, "log", "--all", "--format=\x1e%H\x1f%cI", "-p", "--", "CHANGELOG.md").split("\x1e")[1:]:
            head, _, diff = rec.partition("\n")
            sha, date = head.split("\x1f")
            for line in diff.splitlines():
                if line.startswith("+") and not line.startswith("+++"):
                    for n in re.findall(r"issue\s*#(\d+)\s*@\s*github", line, re.I):
                        out.setdefault(int(n), {})[sha] = date
    return out


def read_texts(folder: Path, name: str) -> dict[int, dict]:
    f = folder / f"{name}.jsonl"
    if not f.is_file():
        return {}
    rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {int(r["number"]): r for r in rows}


def read_titles(folder: Path, name: str, field: str) -> dict[str, str]:
    """Issue URL -> its title written by hand in another language (`<folder>/<name>.jsonl`: url and `field`,
    title_zh as a Chinese-speaking reporter would write it, title_en as an English-speaking user would)."""
    f = folder / f"{name}.jsonl"
    if not f.is_file():
        return {}
    rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["url"]: r[field] for r in rows}


def titles_window(m, wcases: list, en: dict[str, str], zh: dict[str, str]) -> dict[str, list]:
    """The window's issues that have a Chinese title, asked by their English title and by their Chinese title alone
    (same gold): what a Chinese-speaking reporter's one line gets against an English repository."""
    pairs = [c for c in wcases if c.id in zh and c.id in en]
    out: dict[str, list] = {}
    for lang, title in (("en", en), ("zh", zh)):
        asked = [Case(title[c.id], c.gold, c.id) for c in pairs]
        out[lang] = run_matcher(m, asked)
        out[lang + "_not_about"] = [no_module_reason(m, c.text) is not None for c in asked]
    return out


def choose_cutoff(first_fixes: list[str], dev_cutoff: str, min_cases: int) -> str:
    """The dev cut-off if >= min_cases first fixes lie after it, else the day before the min_cases-th latest."""
    days = sorted(d[:10] for d in first_fixes)
    if not days or sum(d > dev_cutoff for d in days) >= min_cases:
        return dev_cutoff
    edge = days[-min_cases] if len(days) >= min_cases else days[0]
    return min(dev_cutoff, (dt.date.fromisoformat(edge) - dt.timedelta(days=1)).isoformat())


def window_cutoffs(firsts: dict[int, str], dev_cutoff: str, days: int) -> dict[int, str]:
    """Issue number -> the cut-off of its window (the module docstring's rule): the dev cut-off for fixes after it,
    else the day before the earliest first fix of a group of at most `days` days, grouped from the latest back."""
    out = {n: dev_cutoff for n, d in firsts.items() if d[:10] > dev_cutoff}
    rest = sorted((n for n in firsts if n not in out), key=lambda n: (firsts[n], n), reverse=True)
    while rest:
        latest = dt.date.fromisoformat(firsts[rest[0]][:10])
        group = [n for n in rest if (latest - dt.date.fromisoformat(firsts[n][:10])).days <= days]
        first = min(dt.date.fromisoformat(firsts[n][:10]) for n in group)
        for n in group:
            out[n] = (first - dt.timedelta(days=1)).isoformat()
        grouped = set(group)
        rest = [n for n in rest if n not in grouped]
    return out


def toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def manifest_blocks(path: Path) -> dict[str, str]:
    """The `[[repo]]` blocks of an existing manifest by repository name (text as written)."""
    if not path.is_file():
        return {}
    chunks = re.split(r"(?m)^(?=\[\[repo\]\]\s*$)", path.read_text())
    out = {}
    for ch in chunks[1:]:
        m = re.search(r'(?m)^name = "([^"]+)"', ch)
        if m:
            out[m.group(1)] = ch.rstrip("\n") + "\n"
    return out


def pair(repos: list[dict], todo: list[dict], a: argparse.Namespace) -> int:
    """Write the manifest for `todo`; with `--only`, the other repositories keep their blocks as they are."""
    lines = ["# The issue benchmark's cases (bench/issue_benchmark.py; written by its `pair` command).",
             "# Per repository: the cut-off and, per case, the issue URL and the commits that fixed it.",
             "# No issue text is kept here: the texts lie outside the repository (see the script's docstring).", ""]
    kept = manifest_blocks(Path(a.cases))
    names = {r["name"] for r in todo}
    for r in repos:
        if r["name"] not in names:
            if r["name"] in kept:
                lines.append(kept[r["name"]])
            continue
        texts = read_texts(Path(a.texts), r["name"])
        if not texts:
            log(f"{r['name']}: no texts in {a.texts}; skipped")
            continue
        fx = fixes(r["path"], r["source"], changelog=r["name"] == "hutool", refs=r["name"] in REFS_CONVENTION)
        paired = {n: fx[n] for n in texts if n in fx}
        firsts = {n: min(v.values()) for n, v in paired.items()}
        cutoff = choose_cutoff(list(firsts.values()), r["cutoff"], a.min_cases)
        after = sorted((n for n, d in firsts.items() if d[:10] > cutoff), key=lambda n: (firsts[n], n))
        windows = window_cutoffs({n: firsts[n] for n in after}, r["cutoff"], a.window_days)
        log(f"{r['name']}: {len(texts)} texts, {len(paired)} paired with a fix, cut-off {cutoff} "
            f"(dev {r['cutoff']}), {len(after)} fixed after it, {len(set(windows.values()))} window(s)")
        lines += ["[[repo]]", f"name = {toml_str(r['name'])}", f"source = {toml_str(r['source'])}",
                  f"cutoff = {toml_str(cutoff)}", f"dev_cutoff = {toml_str(r['cutoff'])}", f"min_cases = {a.min_cases}",
                  f"window_days = {a.window_days}", f"windows = {len(set(windows.values()))}",
                  f"texts = {len(texts)}", f"paired = {len(paired)}", f"fixed_before_cutoff = {len(paired) - len(after)}", ""]
        for n in after:
            shas = sorted(paired[n], key=lambda s: (paired[n][s], s))
            lines += ["[[repo.case]]", f"url = {toml_str(texts[n]['url'])}", f"number = {n}",
                      f"first_fix = {toml_str(firsts[n][:10])}", f"cutoff = {toml_str(windows[n])}",
                      "fixes = [" + ", ".join(toml_str(s) for s in shas) + "]", ""]
    Path(a.cases).write_text("\n".join(lines))
    log(f"wrote {a.cases}")
    return 0


# --- running --------------------------------------------------------------------------------------
def is_ancestor(path: str, old: str, new: str) -> bool:
    return subprocess.run(["git", "-C", path, "merge-base", "--is-ancestor", old, new]).returncode == 0


def prior_baseline(graph, cases: list[Case]) -> dict:
    """The text-blind reference: always answer the modules most often touched by the training history
    (the cut-off graph's past changes), in that order. Acc@1/Acc@3 of that constant answer."""
    counts = Counter(m for h in graph.history for m in h.modules)
    top = [m for m, _ in counts.most_common(3)]
    n = max(1, len(cases))
    return {"modules": top, "acc@1": sum(bool(top) and top[0] in c.gold for c in cases) / n,
            "acc@3": sum(any(m in c.gold for m in top) for c in cases) / n}


def case_windows(spec: dict) -> list[str]:
    """The cut-offs of a repository's windows, oldest first (a case without its own `cutoff` uses the repository's)."""
    return sorted({c.get("cutoff", spec["cutoff"]) for c in spec.get("case", [])}) or [spec["cutoff"]]


def pooled_prior(priors: list[tuple[dict, int]]) -> dict:
    """The windows' `prior_baseline`s (each with its number of cases) pooled over their cases; the modules are
    those of the last window."""
    n = max(1, sum(k for _, k in priors))
    return {"modules": priors[-1][0]["modules"] if priors else [],
            "acc@1": sum(p["acc@1"] * k for p, k in priors) / n, "acc@3": sum(p["acc@3"] * k for p, k in priors) / n}


def split_cases(entry: dict, spec: dict, a: argparse.Namespace, cutoff: str | None = None):
    """The split at one window's cut-off (default: the repository's) and the issue cases asked on it:
    (split, cases, dropped)."""
    cutoff = cutoff or spec["cutoff"]
    work = Path(a.work_dir) / entry["name"]
    work.mkdir(parents=True, exist_ok=True)
    split = history_split(entry["path"], cutoff, work)
    by_commit = {c.id: c for c in split.cases}
    texts = read_texts(Path(a.texts), entry["name"])
    cases: list[Case] = []
    dropped: dict[str, list[str]] = {}
    for c in spec.get("case", []):
        if c.get("cutoff", spec["cutoff"]) != cutoff:
            continue
        url, shas = c["url"], c["fixes"]
        if int(c["number"]) not in texts:
            dropped.setdefault("no text", []).append(url)
            continue
        if any(is_ancestor(entry["path"], s, split.cutoff) for s in shas):
            dropped.setdefault("fix in training history (leak)", []).append(url)
            continue
        gold = list(dict.fromkeys(m for s in shas if s in by_commit for m in by_commit[s].gold))
        if not gold:
            dropped.setdefault("fix dropped by the history filters or not on HEAD", []).append(url)
            continue
        t = texts[int(c["number"])]
        body = t["text"][len(t["title"]):] if t["text"].startswith(t["title"]) else t["text"]
        cases.append(Case(issue_text(t["title"], body), tuple(gold), url, c.get("first_fix", "")))
    return split, cases, dropped


def labeller_window(m, cases: list, res: list) -> dict:
    """What the GitHub labeller does with one window's issues: the threshold the service labels at without a configured
    one (`bot.state.auto_threshold` of the operating point the build chose on its held-out history), no label where the matcher says an issue is
    not about the repository (`no_module_reason`), two labels at most (`inference.evaluate.labeller_outcome`)."""
    op = _operating_point(m)
    flags = [no_module_reason(m, c.text) is not None for c in cases]
    return {**labeller_outcome(res, auto_threshold(op), flags), "operating_point": op}


def labeller_only(entry: dict, spec: dict, row: dict, a: argparse.Namespace) -> dict:
    """Fill in the labeller's outcome (`labeller_window`) of an existing result from the builds `--keep` pickled (the
    window's graph re-read from its split database in --work-dir)."""
    from inference.cache import _attach

    outcomes = []
    for w in row.get("windows", []):
        pkl = Path(a.work_dir) / entry["name"] / f"hybrid-{w['cutoff']}.pkl"
        if not w.get("cases") or not pkl.is_file():
            w["labeller"] = None
            continue
        with open(pkl, "rb") as fh:
            d = pickle.load(fh)
        _attach(d["matcher"], split_cases(entry, spec, a, w["cutoff"])[0].graph)
        cases = [Case(text, tuple(gold), cid) for cid, text, gold in d["cases"]]
        w["labeller"] = labeller_window(d["matcher"], cases, run_matcher(d["matcher"], cases))
        outcomes.append(w["labeller"])
        del d
    row["matchers"][DEFAULT]["labeller"] = pooled_outcome(outcomes)
    row["labeller_code"] = a.code or code_commit()
    return row


def reused(a: argparse.Namespace, name: str, graph):
    """The dev benchmark's pickled default matcher (`--matchers-from`) where it was built on this very graph (same
    commit, same graph version, same training history) by the same matcher code (`inference.cache.code_version`: the
    matchers' modules and the glossary, which a build copies into its parts), else None: the build is deterministic,
    so this saves building it twice (a quarter of an hour on a large repository)."""
    if not a.matchers_from:
        return None
    pkl = Path(a.matchers_from) / name / "default.pkl"
    if not pkl.is_file():
        return None
    with open(pkl, "rb") as fh:
        d = pickle.load(fh)
    g = d["graph"]
    same = (g.commit == graph.commit and g.version == graph.version
            and [h.commit for h in g.history] == [h.commit for h in graph.history])
    code = d.get("matcher_code") == code_version()
    why = "reusing" if same and code else "not reusing (another graph)" if not same else "not reusing (other matcher code)"
    log(f"{name}: {why} the {DEFAULT} of {pkl} (code {d.get('code')})")
    if not (same and code):
        return None
    from inference.cache import _attach

    _attach(d["matcher"], graph)  # a pickled matcher leaves its graph out
    return d["matcher"]


def run_repo(entry: dict, spec: dict, a: argparse.Namespace) -> dict:
    name = entry["name"]
    t0 = time.perf_counter()
    windows, cases, dropped, results, priors = [], [], {}, {m: [] for m in a.matcher}, []
    builds, scoring = {m: 0.0 for m in a.matcher}, {m: 0.0 for m in a.matcher}
    split_s = 0.0
    zh = read_titles(Path(a.zh_titles), name, "title_zh") if a.zh_titles else {}
    en_tr = read_titles(Path(a.en_titles), name, "title_en") if a.en_titles else {}
    filed = {r["url"]: r["title"] for r in read_texts(Path(a.texts), name).values()} if zh or en_tr else {}
    titles: dict[str, list] = {}
    titles_en: dict[str, list] = {}
    for cut in case_windows(spec):
        t1 = time.perf_counter()
        split, wcases, wdropped = split_cases(entry, spec, a, cut)
        graph = split.graph
        split_s += time.perf_counter() - t1
        for k, v in wdropped.items():
            dropped.setdefault(k, []).extend(v)
        log(f"{name}: window {cut}: cut-off {split.cutoff[:10]} ({split.cutoff_date}), {len(graph.leaf_ids())} "
            f"modules, {len(graph.history)} training changes, {len(wcases)} cases, dropped "
            f"{ {k: len(v) for k, v in wdropped.items()} }")
        priors.append((prior_baseline(graph, wcases), len(wcases)))
        windows.append({"cutoff": cut, "cutoff_commit": split.cutoff, "cutoff_date": split.cutoff_date,
                        "modules": len(graph.leaf_ids()), "training_changes": len(graph.history),
                        "cases": len(wcases)})
        if not wcases:
            continue
        cases += wcases
        for mname in a.matcher:
            t2 = time.perf_counter()
            m = reused(a, name, graph) if mname == DEFAULT else None
            m = m or create(mname, graph)
            t3 = time.perf_counter()
            wres = run_matcher(m, wcases)
            results[mname] += wres
            builds[mname] += t3 - t2
            scoring[mname] += time.perf_counter() - t3
            if mname == DEFAULT:
                windows[-1]["labeller"] = labeller_window(m, wcases, wres)
                if zh:
                    for k, v in titles_window(m, wcases, filed, zh).items():
                        titles.setdefault(k, []).extend(v)
                if en_tr:
                    for k, v in titles_window(m, wcases, en_tr, filed).items():
                        titles_en.setdefault(k, []).extend(v)
            if a.keep and mname == "hybrid":  # for offline probes: the window's build and its cases
                with open(Path(a.work_dir) / name / f"hybrid-{cut}.pkl", "wb") as fh:
                    pickle.dump({"matcher": m, "cases": [(c.id, c.text, list(c.gold)) for c in wcases]}, fh,
                                protocol=pickle.HIGHEST_PROTOCOL)
            del m
    last = windows[-1]
    cjk = [i for i, c in enumerate(cases) if has_cjk(c.text)]
    english = [i for i in range(len(cases)) if i not in set(cjk)]
    n = max(1, len(cases))
    out = {"name": name, "source": entry.get("source", ""), "language": entry["language"],
           "cutoff": windows[0]["cutoff"], "dev_cutoff": entry["cutoff"], "cutoff_commit": windows[0]["cutoff_commit"],
           "cutoff_date": windows[0]["cutoff_date"], "windows": windows,
           "modules": last["modules"], "training_changes": last["training_changes"], "cases": len(cases),
           "listed": len(spec.get("case", [])), "dropped": dropped, "cjk_cases": len(cjk),
           "gold_has_root": sum(ROOT_ID in c.gold for c in cases),
           "prior": pooled_prior(priors),
           "code": a.code or code_commit(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "split_seconds": round(split_s, 1), "matchers": {}, "per_case": {}}
    cut_of = {c["url"]: c.get("cutoff", spec["cutoff"]) for c in spec.get("case", [])}
    for c in cases:
        out["per_case"][c.id] = {"gold": list(c.gold), "first_fix": c.date, "cjk": has_cjk(c.text),
                                 "cutoff": cut_of.get(c.id, spec["cutoff"])}
    for mname in a.matcher:
        res = results[mname]
        row = {**accuracy(res), "cjk": accuracy([res[i] for i in cjk]), "english": accuracy([res[i] for i in english]),
               "top1_root": sum(bool(r.predicted) and r.predicted[0] == ROOT_ID for r in res),
               "top1_root_right": sum(bool(r.predicted) and r.predicted[0] == ROOT_ID and r.rank() == 1 for r in res),
               **trust_metrics(res, COVERAGE, PRECISION), "build_seconds": round(builds[mname], 1),
               "ms_per_case": round(scoring[mname] * 1000 / n, 1)}
        if mname == DEFAULT:
            row["labeller"] = pooled_outcome([w.get("labeller") for w in windows])
        out["matchers"][mname] = row
        for c, r in zip(cases, res):
            out["per_case"][c.id][mname] = {"rank": r.rank(), "top3": list(r.predicted[:3]),
                                            "confidence": round(float(r.top_confidence), 4)}
        log(f"{name}/{mname}: Acc@1 {row['acc@1']:.3f} Acc@3 {row['acc@3']:.3f} MRR {row['mrr']:.3f}; "
            f"build {builds[mname]:.0f}s over {len(windows)} window(s)")
    for key, asked in (("titles", titles), ("titles_en", titles_en)):
        if asked.get("en"):
            out[key] = {"n": len(asked["en"]), "code": out["code"],
                        **{lang: {**accuracy(asked[lang]), "not_about": sum(asked[lang + "_not_about"])}
                           for lang in ("en", "zh")}}
            log(f"{name}: titles alone ({key}), English Acc@1 {out[key]['en']['acc@1']:.3f}, Chinese "
                f"{out[key]['zh']['acc@1']:.3f} ({out[key]['n']} issues)")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def tables(rows: list[dict], a: argparse.Namespace) -> str:
    rows = [r for r in rows if DEFAULT in r["matchers"] and r["cases"]]
    refs = [m for m in ("lexical", "history") if any(m in r["matchers"] for r in rows)]

    def mixed(r, key):
        return r["matchers"][DEFAULT]["cjk"].get(key) if r["cjk_cases"] >= a.min_cjk else None

    out = [f"### Real issue texts: accuracy of `{DEFAULT}` (what `ask` serves) and the references", "",
           "| repository (language) | cut-off | modules | train | cases | Acc@1 | Acc@3 | MRR | mixed n | mixed Acc@1 | "
           "English Acc@1 | " + " | ".join(f"{m} Acc@1 / Acc@3" for m in refs) + " | prior Acc@1 / Acc@3 |",
           "|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * (len(refs) + 1)]
    for r in rows:
        h = r["matchers"][DEFAULT]
        ref = " | ".join(f"{f3(r['matchers'][m]['acc@1'])} / {f3(r['matchers'][m]['acc@3'])}"
                         if m in r["matchers"] else "–" for m in refs)
        wins = len(r.get("windows", [])) or 1
        cut = r["cutoff"] if wins == 1 else f"{r['cutoff']} ({wins} windows, to {r['windows'][-1]['cutoff']})"
        out.append(f"| {r['name']} ({r['language'].split(' (')[0]}) | {cut} | {r['modules']} | "
                   f"{r['training_changes']} | {r['cases']} | **{f3(h['acc@1'])}** | {f3(h['acc@3'])} | {f3(h['mrr'])} | "
                   f"{r['cjk_cases']} | {f3(mixed(r, 'acc@1'))} | {f3(h['english'].get('acc@1'))} | {ref} | "
                   f"{f3(r.get('prior', {}).get('acc@1'))} / {f3(r.get('prior', {}).get('acc@3'))} |")

    def mcol(get):
        return f3(mean_of([get(r) for r in rows]))

    ref_mean = " | ".join(f"{mcol(lambda r, m=m: r['matchers'].get(m, {}).get('acc@1'))} / "
                          f"{mcol(lambda r, m=m: r['matchers'].get(m, {}).get('acc@3'))}" for m in refs)
    out.append(f"| **mean** ({len(rows)}) | | | | {sum(r['cases'] for r in rows)} | "
               f"**{mcol(lambda r: r['matchers'][DEFAULT]['acc@1'])}** | {mcol(lambda r: r['matchers'][DEFAULT]['acc@3'])} | "
               f"{mcol(lambda r: r['matchers'][DEFAULT]['mrr'])} | | {mcol(lambda r: mixed(r, 'acc@1'))} | "
               f"{mcol(lambda r: r['matchers'][DEFAULT]['english'].get('acc@1'))} | {ref_mean} | "
               f"{mcol(lambda r: r.get('prior', {}).get('acc@1'))} / {mcol(lambda r: r.get('prior', {}).get('acc@3'))} |")
    pooled = [c for r in rows for c in r["per_case"].values() if DEFAULT in c]
    if pooled:
        p1 = sum(c[DEFAULT]["rank"] == 1 for c in pooled) / len(pooled)
        out += ["", f"Pooled over all {len(pooled)} cases: `{DEFAULT}` Acc@1 {p1:.3f}."]
    out += ["", f"Gold sets holding the root module `{ROOT_ID}` (a fix that also touched a top-level file such as "
            "CHANGELOG.md), and how many top-1 answers of `" + DEFAULT + "` were that root module (right ones in brackets): "
            + "; ".join(f"{r['name']} {r.get('gold_has_root', 0)}/{r['cases']}, top-1 root "
                        f"{r['matchers'][DEFAULT].get('top1_root', 0)} ({r['matchers'][DEFAULT].get('top1_root_right', 0)})"
                        for r in rows) + "."]
    out += ["", "prior: the text-blind reference, always answering the modules the training history touched "
            "most often (" + "; ".join(f"{r['name']}: " + ", ".join(f"`{m}`" for m in r.get("prior", {}).get("modules", []))
                                       for r in rows) + "); a matcher must beat it to show it read the text."]
    out += ["", f"Mixed: cases whose text holds CJK characters, where a repository has at least {a.min_cjk}; "
            "English: the other cases. train: training changes before the cut-off (modules and train: the last "
            "window's where there are several).", "",
            f"### Label trust of `{DEFAULT}` on the issue texts", "",
            "| repository | ECE | precision @ coverage 0.60 | threshold for precision 0.95 | coverage there | dropped cases |",
            "|---|---|---|---|---|---|"]
    for r in rows:
        h = r["matchers"][DEFAULT]
        drop = ", ".join(f"{k}: {len(v)}" for k, v in r["dropped"].items()) or "none"
        out.append(f"| {r['name']} | {f3(h['ece'])} | {f3(h[PCOV])} | {f3(h[THR])} | {f3(h[COV])} | {drop} |")
    out.append(f"| **mean** | {mcol(lambda r: r['matchers'][DEFAULT]['ece'])} | "
               f"{mcol(lambda r: r['matchers'][DEFAULT][PCOV])} | | {mcol(lambda r: r['matchers'][DEFAULT][COV])} | |")
    lab = [(r, r["matchers"][DEFAULT].get("labeller")) for r in rows]
    if any(o for _, o in lab):
        out += ["", "### The GitHub labeller as it acts on the issue texts", "",
                "The threshold the service labels at without a configured one (each window's operating point, chosen "
                "on its held-out history for precision 0.95); no label where the matcher says the issue is not about "
                "the repository; two labels at most.", "",
                "| repository | issues labelled | first label right [95 % interval] | labels right (labels) | "
                "said not about the repository |", "|---|---|---|---|---|"]
        for r, o in lab:
            out.append(f"| {r['name']} | {outcome_cells(o)} | {o['no_module']} |" if o else f"| {r['name']} | – | – | – | – |")
        pooled = pooled_outcome([o for _, o in lab])
        if pooled:
            out.append(f"| **pooled** | {outcome_cells(pooled)} | {pooled['no_module']} |")
    out += titles_block(rows, "titles", ("en", "English"), ("zh", "Chinese"), [
        "### Chinese titles against English repositories", "",
        "Each issue asked by its title alone, in English as filed and in Chinese as a Chinese-speaking reporter "
        "would write it (translated by hand, identifiers, commands and names kept as written; `--zh-titles`), "
        "with the same gold. not about: answered as not about the repository."])
    out += titles_block(rows, "titles_en", ("zh", "Chinese"), ("en", "English"), [
        "### English titles against Chinese-led repositories", "",
        "Each issue filed with a Chinese title asked by that title alone and by its title in English as an "
        "English-speaking user would write it (translated by hand, identifiers, commands and names kept as "
        "written; `--en-titles`), with the same gold. not about: answered as not about the repository."])
    named = answered(rows)
    sizes = [len(x["right"]) for _, x in named] or [0]
    out += calibration_section(named, per_repo=f"its {min(sizes)} to {max(sizes)} issues")
    codes = sorted({r["code"] for r in rows} | {r["labeller_code"] for r in rows if r.get("labeller_code")})
    out += ["", f"modmatch code: {', '.join(codes)}; runs: "
            + ", ".join(f"{r['name']} {r['date']} ({r['seconds']:.0f} s)" for r in rows) + "."]
    return "\n".join(out)


def titles_block(rows: list[dict], key: str, first: tuple[str, str], second: tuple[str, str],
                 head: list[str]) -> list[str]:
    """The report's block of the issues asked by their titles alone in two languages (`key`: "titles" for
    `--zh-titles`, "titles_en" for `--en-titles`; `first`, `second`: (JSON key, column name), as filed first)."""
    tit = [r for r in rows if r.get(key)]
    if not tit:
        return []
    (a, an), (b, bn) = first, second
    out = [""] + head + ["", f"| repository | issues | {an} title: Acc@1 / Acc@3 | {bn} title: Acc@1 / Acc@3 | "
                             f"not about ({an} / {bn}) | code |", "|---|---|---|---|---|---|"]
    for r in tit:
        t = r[key]
        out.append(f"| {r['name']} | {t['n']} | {f3(t[a]['acc@1'])} / {f3(t[a]['acc@3'])} | "
                   f"{f3(t[b]['acc@1'])} / {f3(t[b]['acc@3'])} | {t[a]['not_about']} / {t[b]['not_about']} | "
                   f"{t['code']} |")
    tot = sum(r[key]["n"] for r in tit)

    def pooled(lang, k):
        return f3(sum(r[key][lang][k] * r[key]["n"] for r in tit) / tot)
    out.append(f"| **pooled** | {tot} | {pooled(a, 'acc@1')} / {pooled(a, 'acc@3')} | "
               f"{pooled(b, 'acc@1')} / {pooled(b, 'acc@3')} | | |")
    return out


def answered(rows: list[dict]) -> list[tuple[str, dict]]:
    """(repository, first answers: confidence and whether right, in case order) of each result, from its per-case
    record (`calibration_section`)."""
    out = []
    for r in rows:
        per = [v[DEFAULT] for v in (r.get("per_case") or {}).values() if DEFAULT in v]
        if per:
            out.append((r["name"], {"confidence": [p["confidence"] for p in per],
                                    "right": [int(p["rank"] == 1) for p in per]}))
    return out


def load_cases(path: str | Path) -> dict[str, dict]:
    import tomllib

    with open(path, "rb") as fh:
        return {r["name"]: r for r in tomllib.load(fh).get("repo", [])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="run", choices=("run", "pair"))
    ap.add_argument("--manifest", default=str(ROOT / "bench" / "dev_repos.toml"), help="the dev repositories")
    ap.add_argument("--cases", default=str(CASES), help="the issue manifest (written by `pair`, read by `run`)")
    ap.add_argument("--texts", default=str(TEXTS), help="folder of <name>.jsonl issue texts (outside the repository)")
    ap.add_argument("--only", nargs="*", help="these repositories; the others keep their last results")
    ap.add_argument("--min-cases", type=int, default=30,
                    help="pair: paired issues wanted after the cut-off (raise it for a repository whose fixes the "
                         "history filters drop: `pair --only NAME --min-cases N`)")
    ap.add_argument("--window-days", type=int, default=365,
                    help="pair: no case is asked of a graph more than this many days older than its fix (see Windows)")
    ap.add_argument("--min-cjk", type=int, default=5, help="report mixed-language cases where at least this many")
    ap.add_argument("--matcher", action="append", help="default: " + ", ".join(MATCHERS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "issues"))
    ap.add_argument("--work-dir", default="/tmp/modmatch-issues", help="split databases")
    ap.add_argument("--keep", action="store_true",
                    help="pickle each window's hybrid and its cases into the work dir (hybrid-<cut-off>.pkl; they "
                         "hold the issue texts, so the work dir stays outside the repository)")
    ap.add_argument("--prior-only", action="store_true",
                    help="run: only (re)compute the text-blind prior baseline into the existing JSON files")
    ap.add_argument("--labeller-only", action="store_true",
                    help="run: only (re)compute the labeller's outcome into the existing JSON files, from the builds "
                         "`--keep` pickled into --work-dir")
    ap.add_argument("--matchers-from", help="a dev benchmark --work-dir: reuse its pickled default matcher for a "
                    "window whose graph is the one it was built on")
    ap.add_argument("--zh-titles", help="a folder of <name>.jsonl (url, title_zh): also ask each such issue by its "
                    "English title alone and by its Chinese title alone (outside the repository, as the texts)")
    ap.add_argument("--en-titles", help="a folder of <name>.jsonl (url, title_en): also ask each such issue by its "
                    "Chinese title alone and by its English title alone (outside the repository, as the texts)")
    ap.add_argument("--code", help="the modmatch version to record (default: git HEAD of this checkout)")
    a = ap.parse_args(argv)
    a.matcher = a.matcher or list(MATCHERS)
    if DEFAULT not in a.matcher:
        a.matcher.insert(0, DEFAULT)
    repos = load_manifest(a.manifest)
    todo = [r for r in repos if not a.only or r["name"] in a.only]
    if a.command == "pair":
        return pair(repos, todo, a)
    specs = load_cases(a.cases)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for r in todo:
        if r["name"] not in specs:
            continue
        if not Path(r["path"]).exists():
            log(f"{r['name']}: no clone at {r['path']}; skipped")
            continue
        if a.prior_only:
            f = out / f"{r['name']}.json"
            if not f.is_file():
                continue
            row = json.loads(f.read_text())
            priors = []
            for cut in case_windows(specs[r["name"]]):
                split, cases, _ = split_cases(r, specs[r["name"]], a, cut)
                priors.append((prior_baseline(split.graph, cases), len(cases)))
            row["prior"] = pooled_prior(priors)
            log(f"{r['name']}: prior {row['prior']}")
        elif a.labeller_only:
            f = out / f"{r['name']}.json"
            if not f.is_file():
                continue
            row = labeller_only(r, specs[r["name"]], json.loads(f.read_text()), a)
            log(f"{r['name']}: labeller {row['matchers'][DEFAULT]['labeller']}")
        else:
            if not read_texts(Path(a.texts), r["name"]):  # the texts are kept outside the repository
                log(f"{r['name']}: no texts in {a.texts}; skipped, its last results kept")
                continue
            row = run_repo(r, specs[r["name"]], a)
        (out / f"{r['name']}.json").write_text(json.dumps(row, indent=1, sort_keys=True, ensure_ascii=False))
    rows = [json.loads((out / f"{r['name']}.json").read_text()) for r in repos
            if r["name"] in specs and (out / f"{r['name']}.json").is_file()]
    text = tables(rows, a)
    summary = {"cases_manifest": str(Path(a.cases).resolve().relative_to(ROOT)) if Path(a.cases).resolve()
               .is_relative_to(ROOT) else a.cases, "default_matcher": DEFAULT,
               "repos": {r["name"]: {k: v for k, v in r.items() if k != "per_case"} for r in rows}}
    calibration_plots(answered(rows), out)
    write_outputs(out, summary, text, "bench/issue_benchmark.py", "Issue benchmark (issue 11): real issue texts", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
