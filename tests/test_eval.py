"""Metrics, case files, the temporal split and the `eval` / `ask` commands."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from gitrepo import CUTOFF, commit, git, make_repo
from indexer.build import index
from indexer.store import Store
from inference.base import create
from inference.errors import CasesError
from inference.evaluate import (Case, abstention_share, distinct_rank_share, evaluate, has_cjk, history_split,
                                labeller_outcome, load_cases, pooled_outcome, precision_at_coverage, resolve_cutoff,
                                run_refreshed, strip_subject_tags, threshold_for_precision, trust_metrics,
                                write_report)
from inference.calibration import expected_calibration_error
from inference.metrics import (CaseResult, accuracy_at, compute_metrics, coverage_curve, mrr, per_module_recall,
                               reliability, wilson_interval)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("repo") / "proj")


@pytest.fixture(scope="module")
def graph(repo, tmp_path_factory):
    return index(repo, Store(tmp_path_factory.mktemp("store") / "g.db")).graph


# --- metrics --------------------------------------------------------------------------------------
RESULTS = [
    CaseResult(("a",), ["a", "b", "c"], [0.9, 0.05, 0.05]),  # rank 1
    CaseResult(("b",), ["a", "b", "c"], [0.6, 0.3, 0.1]),  # rank 2
    CaseResult(("c", "d"), ["a", "b", "e", "f", "d"], [0.4, 0.3, 0.1, 0.1, 0.1]),  # rank 5
    CaseResult(("z",), ["a", "b", "c"], [0.2, 0.2, 0.2]),  # absent
]


def test_metrics_by_hand():
    assert accuracy_at(RESULTS, 1) == 0.25
    assert accuracy_at(RESULTS, 3) == 0.5
    assert accuracy_at(RESULTS, 5) == 0.75
    assert mrr(RESULTS) == pytest.approx((1 + 0.5 + 0.2 + 0) / 4)
    m = compute_metrics(RESULTS)
    assert m["cases"] == 4 and m["acc@1"] == 0.25 and m["mrr"] == pytest.approx(0.425)
    pm = per_module_recall(RESULTS)
    assert pm["a"] == {"cases": 1, "recall@1": 1.0}
    assert pm["b"] == {"cases": 1, "recall@1": 0.0}
    assert set(pm) == {"a", "b", "c", "d", "z"}
    curve = {p["threshold"]: p for p in coverage_curve(RESULTS, [0.0, 0.5, 0.95])}
    assert curve[0.0]["coverage"] == 1.0 and curve[0.0]["precision"] == 0.25
    assert curve[0.5]["coverage"] == 0.5 and curve[0.5]["precision"] == 0.5  # 0.9 (right) and 0.6 (wrong)
    assert curve[0.95]["coverage"] == 0.0 and curve[0.95]["precision"] is None
    assert compute_metrics([])["acc@1"] == 0.0


# --- label trust ----------------------------------------------------------------------------------
def _res(conf_right):
    return [CaseResult(("a",), ["a" if ok else "b", "c"], [c, c / 2]) for c, ok in conf_right]


def test_precision_at_coverage_and_threshold():
    rs = _res([(0.9, True), (0.8, True), (0.7, False), (0.6, True), (0.5, False)])
    assert precision_at_coverage(rs, 0.6) == pytest.approx(2 / 3)  # 0.9, 0.8, 0.7
    assert precision_at_coverage(rs, 0.4) == 1.0
    thr = threshold_for_precision(rs, 0.95)
    assert thr["threshold"] == 0.8 and thr["coverage"] == 0.4 and thr["precision"] == 1.0
    assert threshold_for_precision(rs, 0.7)["threshold"] == 0.6  # 3 of 4 right at >= 0.6
    assert threshold_for_precision(_res([(0.9, False), (0.5, True)]))["threshold"] is None
    # a constant confidence: ties count at their average precision, whatever the order
    flat = _res([(0.8, True), (0.8, False), (0.8, False), (0.8, True), (0.8, False)])
    assert precision_at_coverage(flat, 0.6) == pytest.approx(0.4)
    assert abstention_share([0.1, 0.85, 0.79], 0.8) == pytest.approx(2 / 3)
    assert abstention_share([0.1], None) is None
    # a text the matcher says is not about the repository gets no label, however confident its first answer
    assert abstention_share([0.1, 0.85, 0.79], 0.8, [False, True, False]) == 1.0
    assert abstention_share([0.1, 0.85, 0.9], 0.8, [False, False, True]) == pytest.approx(2 / 3)


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), Statistics in Medicine 17:857, table II: 81 of 263 -> 0.2553-0.3662; 0 of 10 -> 0-0.2775
    lo, hi = wilson_interval(81, 263)
    assert (lo, hi) == (pytest.approx(0.2553, abs=5e-5), pytest.approx(0.3662, abs=5e-5))
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=5e-5))
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=5e-5)
    assert wilson_interval(0, 0) is None
    # more cases, a narrower interval around the same share
    assert (lambda a, b: a[1] - a[0] > b[1] - b[0])(wilson_interval(19, 20), wilson_interval(190, 200))


def test_labeller_outcome_acts_as_the_labeller():
    rs = [CaseResult(("a",), ["a", "b", "c"], [0.9, 0.85, 0.1]),   # two labels, the first right, the second wrong
          CaseResult(("b",), ["a", "b", "c"], [0.95, 0.2, 0.1]),   # one label, wrong
          CaseResult(("c",), ["c", "a", "b"], [0.5, 0.3, 0.2]),    # below the threshold: no label
          CaseResult(("a",), ["a", "b", "c"], [0.99, 0.98, 0.97]),  # not about the repository: no label at all
          CaseResult(("a", "b"), ["b", "a", "c"], [0.9, 0.8, 0.8])]  # two labels (not three), both right
    out = labeller_outcome(rs, 0.8, [False, False, False, True, False])
    assert out["labelled"] == 3 and out["coverage"] == pytest.approx(3 / 5) and out["no_module"] == 1
    assert out["precision"] == pytest.approx(2 / 3)
    assert out["labels"] == 5 and out["label_precision"] == pytest.approx(3 / 5)
    assert out["precision_interval"] == wilson_interval(2, 3)
    # unflagged, the confident foreign text is labelled too; max_labels 1 gives one label per text
    one = labeller_outcome(rs, 0.8, max_labels=1)
    assert one["labelled"] == 4 and one["labels"] == 4 and one["precision"] == pytest.approx(3 / 4)
    assert labeller_outcome(rs, None) is None
    none = labeller_outcome(rs, 1.0)
    assert none["labelled"] == 0 and none["precision"] is None and none["precision_interval"] is None
    # windows (or repositories) at their own thresholds pool over their texts
    both = pooled_outcome([out, none, None])
    assert both["texts"] == 10 and both["labelled"] == 3 and both["precision"] == pytest.approx(2 / 3)
    assert both["no_module"] == 1
    assert both["label_precision"] == pytest.approx(3 / 5) and both["precision_interval"] == wilson_interval(2, 3)
    assert pooled_outcome([None]) is None


def test_distinct_ranks_and_trust_metrics():
    rs = [CaseResult(("a",), list("abcde"), [0.3, 0.2, 0.1, 0.05, 0.01]),
          CaseResult(("a",), list("bacde"), [0.7, 0.1, 0.1, 0.1, 0.1])]
    assert distinct_rank_share(rs) == 0.5
    t = trust_metrics(rs)
    assert t["distinct_ranks"] == 0.5 and t["precision@cov0.60"] == 0.0  # the more confident one is wrong
    assert t["threshold@p0.95"] is None and t["coverage@p0.95"] == 0.0
    assert t["ece"] == pytest.approx(0.7)  # 0.3 and right, 0.7 and wrong: both 0.7 off
    assert t["confidence_gap"] == pytest.approx(0.0)  # mean confidence 0.5, one of two right
    over = trust_metrics([CaseResult(("a",), list("bacde"), [0.9, 0.1, 0.1, 0.1, 0.1])] * 4)
    assert over["confidence_gap"] == pytest.approx(0.9) and over["ece_floor"] > 0
    assert has_cjk("OpenCL 后端") and not has_cjk("OpenCL backend: naïve café")


# --- subject tags ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, want", [
    ("[OpenCL:Bugfix] fix x", "fix x"),
    ("fix(ssr): x", "x"),
    ("feat(compiler)!: drop y", "drop y"),
    ("IoUring: x", "x"),
    ("net/http: x", "x"),
    ("*: regenerate protobuf files", "regenerate protobuf files"),
    ("io, net: x", "x"),
    ("LANG-1234: x", "x"),
    ("[skip ci] fix x", "fix x"),
    ("[skip ci]", ""),
    ("[pre-commit.ci] [ruff] fix(core): net/http: x y", "x y"),
    ("[A] - x", "x"),
    ("【优化】 卷积 x86", "卷积 x86"),
    ("fix:fix CI (#2924)", "fix CI (#2924)"),
    ("optimize:remove the Docker link (#6218)", "remove the Docker link (#6218)"),
    ("rt: x\n\nbody: with a colon", "x\n\nbody: with a colon"),
    ("✨ feat(im): 修一批 WS 健壮性", "修一批 WS 健壮性"),  # yudao-vue3: a gitmoji before the conventional tag
    ("♻️ refactor: x y", "x y"),
    ("🐞 fix:修复退出登录", "修复退出登录"),
    (":wrench: use Maven Central Portal", "use Maven Central Portal"),  # Sa-Token: a gitmoji's code
    ("🧑‍💻 dev env", "dev env"),
])
def test_strip_subject_tags(text, want):
    assert strip_subject_tags(text) == want


@pytest.mark.parametrize("text", [
    "Fix the parser: it crashes on empty input",
    "Make IoUring faster\n\nNote: only on Linux",
    "std::vector leaks in Mat",
    "https://example.com is down",
    "10:30 is the deadline",
    "Foo:bar is wrong",
    "修复：卷积在 Mali 上太慢",
    "DataSizeUtil 新增format方法",
    "a_forty_one_character_long_identifier_xyz: x",  # longer than a tag
    "✨",  # nothing after it
    "a ✨ b",
])
def test_strip_subject_tags_keeps_sentences(text):
    assert strip_subject_tags(text) == text


# --- case files -----------------------------------------------------------------------------------
def test_load_cases(tmp_path, graph):
    p = tmp_path / "c.jsonl"
    p.write_text('{"text": "LRU cache", "gold_modules": ["storage"], "extra": 1}\n\n'
                 '{"text": "tls", "gold_modules": ["network", "storage"]}\n', encoding="utf-8")
    cases = load_cases(p, graph)
    assert [c.gold for c in cases] == [("storage",), ("network", "storage")]


@pytest.mark.parametrize("line,msg", [
    ('{"text": "x", "gold_modules": ["nowhere"]}', "unknown module"),
    ('{"text": "   ", "gold_modules": ["storage"]}', "empty"),
    ('{"text": "x", "gold_modules": []}', "gold_modules"),
    ('{"text": "x"', "JSON"),
    ('["x"]', "object"),
])
def test_bad_cases_name_the_line(tmp_path, graph, line, msg):
    p = tmp_path / "c.jsonl"
    p.write_text('{"text": "ok", "gold_modules": ["storage"]}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(CasesError, match=f":2: .*{msg}"):
        load_cases(p, graph)


def test_evaluate_and_report(tmp_path, graph):
    cases = [Case("LRU eviction in the disk cache", ("storage",)), Case("TLS certificate", ("network",)),
             Case("支付宝退款", ("payment",)), Case("dark theme button", ("ui",))]
    rep = evaluate(graph, cases, ["lexical", "history"])
    for r in rep.runs:
        assert r.metrics["acc@1"] == 1.0, r.name
    folder = write_report(rep, tmp_path / "rep")
    for f in ("report.md", "metrics.json", "accuracy.png", "precision_coverage.png", "reliability.png",
              "per_module_recall.png"):
        assert (folder / f).stat().st_size > 0
    metrics = json.loads((folder / "metrics.json").read_text())["matchers"]
    assert metrics["lexical"]["acc@1"] == 1.0
    # every case sits in one reliability bin, and the bins add up to the ECE the report gives
    for m in metrics.values():
        bins = m["reliability"]
        assert sum(b["cases"] for b in bins) == len(cases)
        assert sum(b["cases"] * abs(b["confidence"] - b["accuracy"]) for b in bins) / len(cases) == \
            pytest.approx(m["ece"])
    assert "## Calibration" in (folder / "report.md").read_text()


def test_reliability_bins_match_the_ece():
    conf = [0.05, 0.15, 0.15, 0.55, 0.95, 1.0, 0.999]
    right = [0, 0, 1, 1, 1, 1, 0]
    bins = reliability(conf, right)
    assert [(b["lo"], b["cases"]) for b in bins] == [(0.0, 1), (0.1, 2), (0.5, 1), (0.9, 3)]
    assert bins[1]["accuracy"] == 0.5 and bins[1]["confidence"] == pytest.approx(0.15)
    assert bins[-1]["accuracy"] == pytest.approx(2 / 3)  # a confidence of exactly 1 is in the last bin
    assert sum(b["cases"] * abs(b["confidence"] - b["accuracy"]) for b in bins) / len(conf) == \
        pytest.approx(expected_calibration_error(conf, right))
    with pytest.raises(ValueError):
        reliability([0.5], [])


# --- the temporal split ---------------------------------------------------------------------------
def test_cutoff_resolution(repo):
    by_date = resolve_cutoff(repo, CUTOFF)
    last_before = git(repo, "log", "--first-parent", "-1", "--format=%H", "--before=2024-06-01 23:59:59").strip()
    assert by_date == last_before
    assert resolve_cutoff(repo, by_date[:10]) == by_date
    with pytest.raises(Exception):
        resolve_cutoff(repo, "1999-01-01")


def test_split_never_sees_the_future(repo, tmp_path):
    head = git(repo, "rev-parse", "HEAD").strip()
    status = git(repo, "status", "--porcelain")
    split = history_split(repo, CUTOFF, tmp_path / "st")
    g = split.graph
    # the module and the words that only appear after the cut-off are nowhere in the graph or its history
    assert "telemetry" not in g.modules
    blob = json.dumps(g.to_json(include_history=True), ensure_ascii=False).lower()
    for word in ("zyxmetrics", "quuxfrobnicate", "telemetry", "微信支付退款失败"):
        assert word not in blob, word
    assert g.history and all(h.date <= split.cutoff_date for h in g.history)
    assert g.commit == split.cutoff
    # cases: the later changes, on the cut-off's modules only
    texts = [c.text for c in split.cases]
    assert any("quuxfrobnicate" in t for t in texts)
    assert not any("zyxmetrics" in t for t in texts)  # touched only a module born after the cut-off
    assert all(set(c.gold) <= set(g.leaf_ids()) for c in split.cases)
    wal = next(c for c in split.cases if "write-ahead log metrics" in c.text)
    assert wal.gold == ("storage",)  # telemetry dropped from a mixed change
    assert all(c.date > split.cutoff_date for c in split.cases)
    # the checkout is untouched
    assert git(repo, "rev-parse", "HEAD").strip() == head and git(repo, "status", "--porcelain") == status
    rep = evaluate(g, split.cases, ["lexical"])
    assert rep.runs[0].metrics["acc@1"] >= 0.6
    # the changes a service would have learned between the cases: oldest first, after the cut-off, every case there
    dates = [h.date for h in split.later]
    assert dates == sorted(dates) and all(d > split.cutoff_date for d in dates)
    assert {c.id for c in split.cases} <= {h.commit for h in split.later}


def test_a_change_to_a_file_moved_after_the_cut_off_belongs_to_its_module_then(tmp_path):
    """`network/` is renamed `net/` after the cut-off: a later fix to `net/tls.py`, or a new file of `net/`, is a
    change to the cut-off's `network` module (it was dropped as a change to a module born after the cut-off, and a
    rename inside a folder that stays, as llmtuner/ -> llamafactory/ under src/, gave the parent instead)."""
    root = make_repo(tmp_path / "proj")
    git(root, "mv", "network", "net", date="2024-08-01T12:00:00+00:00")
    git(root, "commit", "-q", "-m", "move network to net", date="2024-08-01T12:00:00+00:00")
    tls = (root / "net" / "tls.py").read_text(encoding="utf-8")
    commit(root, {"net/tls.py": tls + "# expiry\n"}, "TLS handshake fails with an expired certificate",
           "2024-08-03T12:00:00+00:00")
    commit(root, {"net/quic.py": '"""QUIC."""\n'}, "QUIC transport for the HTTP client", "2024-08-05T12:00:00+00:00")
    split = history_split(root, CUTOFF, tmp_path / "st")
    gold = {c.text: c.gold for c in split.cases}
    assert gold["TLS handshake fails with an expired certificate"] == ("network",)
    assert gold["QUIC transport for the HTTP client"] == ("network",)
    assert gold["move network to net"] == ("network",)


def test_a_refreshed_service_answers_what_the_changes_since_the_cut_off_taught(tmp_path):
    """A word born after the cut-off: the matcher frozen at the cut-off cannot place it, the one that a refresh
    after each day's push brings up to date learns it from the first change that used it."""
    root = make_repo(tmp_path / "proj")
    widgets = root / "ui" / "widgets.py"
    for day, msg in ((20, "ui: zorblax renders off by one pixel"), (24, "zorblax is blank on retina screens")):
        widgets.write_text(widgets.read_text(encoding="utf-8") + f"# {day}\n", encoding="utf-8")
        commit(root, {"ui/widgets.py": widgets.read_text(encoding="utf-8")}, msg, f"2024-07-{day}T12:00:00+00:00")
    split = history_split(root, CUTOFF, tmp_path / "st")
    case = next(c for c in split.cases if c.text.startswith("zorblax is blank"))
    assert case.gold == ("ui",)
    frozen = create("history", split.graph)
    assert frozen.match(case.text, k=1)[0].module != "ui"  # nothing at the cut-off says where zorblax lives
    results, stats = run_refreshed("history", frozen, split.graph, split.later, split.cases)
    assert len(results) == len(split.cases)
    at = split.cases.index(case)
    assert results[at].predicted[0] == "ui" and results[at].gold == ("ui",)
    assert stats["updates"] >= 3 and stats["full_builds"] == 0  # brought up to date, not rebuilt
    # the case that first used the word is answered before it is learned: first as the frozen matcher answers it
    # (the weak ranks below may move: the changes learned meanwhile, a refund failing in `payment`, shift them)
    first = split.cases.index(next(c for c in split.cases if c.text.startswith("ui: zorblax")))
    assert results[first].predicted[0] == frozen.match(split.cases[first].text, k=1)[0].module


# --- the CLI --------------------------------------------------------------------------------------
@pytest.fixture()
def cli_env(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("MODMATCH_HOME", str(tmp_path / "home"))
    from bot.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["index", str(repo), "--json"])
    assert res.exit_code == 0, res.output
    return runner, cli


def test_cli_eval_cases_json(cli_env, repo, tmp_path):
    runner, cli = cli_env
    p = tmp_path / "c.jsonl"
    p.write_text('{"text": "LRU cache eviction", "gold_modules": ["storage"]}\n'
                 '{"text": "TLS handshake", "gold_modules": ["network"]}\n', encoding="utf-8")
    res = runner.invoke(cli, ["eval", str(repo), "--cases", str(p), "--matcher", "lexical", "--json",
                              "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["cases"] == 2 and data["matchers"]["lexical"]["acc@1"] == 1.0
    assert (tmp_path / "rep" / "report.md").exists()


def test_cli_eval_history_json(cli_env, repo):
    runner, cli = cli_env
    res = runner.invoke(cli, ["eval", str(repo), "--history", "--cutoff", CUTOFF, "--matcher", "lexical",
                              "--matcher", "history", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["cases"] == 5 and set(data["matchers"]) == {"lexical", "history"}
    assert data["info"]["cutoff_date"].startswith("2024-")


def test_cli_eval_history_refreshed(cli_env, repo):
    """`--refreshed`: the same cases, each matcher kept up to date as the service's refreshes keep it."""
    runner, cli = cli_env
    res = runner.invoke(cli, ["eval", str(repo), "--history", "--cutoff", CUTOFF, "--matcher", "history",
                              "--refreshed", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["cases"] == 5 and data["info"]["refreshed"] is True
    notes = data["matchers"]["history"]["notes"]
    assert any(n.startswith("refreshed after each day's changes: 4 updates and 0 full builds over 5 days")
               for n in notes), notes
    res = runner.invoke(cli, ["eval", str(repo), "--cases", "x.jsonl", "--refreshed"])
    assert res.exit_code != 0 and "only apply with --history" in res.output


def test_cli_eval_errors_are_one_line(cli_env, repo, tmp_path):
    runner, cli = cli_env
    p = tmp_path / "c.jsonl"
    p.write_text('{"text": "x", "gold_modules": ["nowhere"]}\n', encoding="utf-8")
    res = runner.invoke(cli, ["eval", str(repo), "--cases", str(p), "--matcher", "lexical"])
    assert res.exit_code != 0 and "unknown module" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["eval", str(repo)])
    assert res.exit_code != 0 and "--cases" in res.output


def test_cli_ask_json(cli_env, repo):
    runner, cli = cli_env
    res = runner.invoke(cli, ["ask", "微信支付退款失败", "--path", str(repo), "--json", "--matcher", "lexical"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["matcher"] == "lexical" and data["matches"][0]["module"] == "payment"
    assert data["matches"][0]["paths"] == ["payment/"]
    assert data["notes"] == [] and data["unread"] == [] and data["no_module"] is None  # this repository writes Chinese
    res = runner.invoke(cli, ["ask", "!!! ??? ...", "--path", str(repo), "--json"])
    data = json.loads(res.output)  # what `ask` prints above the answers, as the API gives it
    assert data["no_module"] and data["notes"] == [f"not confident: {data['no_module']}; none of these may be right"]
    res = runner.invoke(cli, ["ask", "LRU eviction is slow", "--path", str(repo), "--k", "2"])
    assert res.exit_code == 0, res.output
    assert "storage" in res.output and "matcher: hybrid" in res.output
    answers = [ln for ln in res.output.splitlines() if ln[:1].isdigit()]
    assert len(answers) == 2 and answers[0].startswith("1. storage")
    # an answer's evidence, however long, stays indented under it (a wrapped line at the margin read as an answer)
    assert all(ln.startswith("     ") for ln in res.output.splitlines()[1:] if ln.strip() and ln not in answers
               and not ln.startswith("matcher:")), res.output
    res = runner.invoke(cli, ["ask", "   ", "--path", str(repo)])
    assert res.exit_code != 0 and "empty" in res.output


def test_cli_ask_says_when_the_first_answer_is_below_the_label_threshold(cli_env, repo, monkeypatch):
    """What Slack says under such an answer, `ask` says too (it printed a first answer at <1 % without a word)."""
    runner, cli = cli_env
    monkeypatch.setenv("MODMATCH_GITHUB_LABEL_THRESHOLD", "0.999")
    res = runner.invoke(cli, ["ask", "LRU eviction is slow", "--path", str(repo), "--json"])
    data = json.loads(res.output)
    first = data["matches"][0]
    assert first["confidence"] < 0.999
    assert data["low_confidence"].startswith("low confidence: the first answer is at ") and "from >99%" in \
        data["low_confidence"], data["low_confidence"]
    res = runner.invoke(cli, ["ask", "LRU eviction is slow", "--path", str(repo)])
    assert "low confidence: the first answer" in res.output
    monkeypatch.setenv("MODMATCH_GITHUB_LABEL_THRESHOLD", "0")
    data = json.loads(runner.invoke(cli, ["ask", "LRU eviction is slow", "--path", str(repo), "--json"]).output)
    assert data["low_confidence"] is None
    res = runner.invoke(cli, ["ask", "LRU eviction is slow", "--path", str(repo)])
    assert "low confidence" not in res.output


def test_cli_ask_without_a_model_never_imports_torch(cli_env, repo, tmp_path):
    """`ask` with no trained model answers with hybrid (dense part included) from a fresh process without
    importing torch, transformers or sentence-transformers (they cost ~8 s of start-up)."""
    import os
    import subprocess
    import sys

    runner, cli = cli_env
    assert runner.invoke(cli, ["ask", "LRU eviction is slow", "--path", str(repo)]).exit_code == 0  # fills the cache
    code = ("import sys\nfrom bot.cli import main\n"
            f"sys.argv = ['modmatch', 'ask', 'LRU eviction is slow', '--path', {str(repo)!r}, '--json']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ), cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"matcher": "hybrid"' in out.stdout and "storage" in out.stdout
    assert "HEAVY []" in out.stdout, out.stdout[-500:]


def test_ece_floor_is_what_a_calibrated_answerer_shows_on_so_many_cases():
    import numpy as np

    from inference.calibration import ece_noise_floor, expected_calibration_error

    rng = np.random.default_rng(1)
    conf = rng.uniform(0.6, 1.0, 200)
    floor = ece_noise_floor(conf)
    assert 0.02 < floor < 0.08  # 200 cases: a perfectly calibrated answerer is not at 0
    assert ece_noise_floor(np.repeat(conf, 50)) < floor / 4  # it falls with the number of cases (about 1/sqrt(n))
    assert ece_noise_floor([1.0, 1.0, 0.0]) == 0.0 and ece_noise_floor([]) == 0.0
    # outcomes drawn at the stated confidences land around the floor; confidences 0.15 too high land far above it
    drawn = [expected_calibration_error(conf, rng.random(conf.size) < conf) for _ in range(200)]
    assert abs(float(np.median(drawn)) - floor) < 0.01
    over = [expected_calibration_error(conf, rng.random(conf.size) < conf - 0.15) for _ in range(50)]
    assert float(np.median(over)) > floor + 0.08

