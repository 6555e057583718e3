"""Matchers on a real (small) git repository: ranking, CJK, degenerate graphs and inputs."""
from __future__ import annotations

import numpy as np
import pytest

from gitrepo import make_repo
from indexer.build import index
from indexer.store import Store
from inference.base import Match, capabilities, create, default_eval_names, names
from inference.calibration import Calibrator, softmax
from inference.errors import BadInputError, UnknownMatcherError

MATCHERS = ["lexical", "history", "dense", "hybrid"]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = make_repo(tmp_path_factory.mktemp("repo") / "proj")
    return index(root, Store(tmp_path_factory.mktemp("store") / "g.db")).graph


@pytest.fixture(scope="module")
def matchers(graph):
    return {n: create(n, graph) for n in MATCHERS}


def test_registry():
    assert set(MATCHERS) <= set(names())
    with pytest.raises(UnknownMatcherError):
        create("nope", None)
    with pytest.raises(UnknownMatcherError):
        capabilities("nope")


def test_capabilities_are_declared_at_registration():
    """Callers ask the registry whether a matcher needs a model, may be cached, or is evaluated by default."""
    assert default_eval_names() == ["lexical", "history", "dense", "hybrid"]
    for name in MATCHERS:
        caps = capabilities(name)
        assert caps.cacheable and not caps.needs_model and caps.default_eval
    for name in ("lm", "lm-hybrid"):
        caps = capabilities(name)
        assert caps.needs_model and not caps.cacheable and not caps.default_eval


@pytest.mark.parametrize("name", MATCHERS)
@pytest.mark.parametrize("query,expected", [
    ("the LRU eviction of the disk cache is too slow", "storage"),
    ("TLS handshake fails: certificate rejected", "network"),
    ("button looks wrong in the dark theme", "ui"),
    ("微信支付退款失败，订单金额不对", "payment"),  # Chinese only
    ("process_refund crashes for 支付宝 orders", "payment"),  # mixed
])
def test_obvious_module_first(matchers, name, query, expected):
    res = matchers[name].match(query, k=3)
    assert res and isinstance(res[0], Match)
    assert res[0].module == expected, [(m.module, m.score) for m in res]
    assert 0.0 <= res[0].confidence <= 1.0
    assert all(res[i].score >= res[i + 1].score for i in range(len(res) - 1))
    assert len({m.module for m in res}) == len(res)


@pytest.mark.parametrize("name", ["lexical", "history"])
def test_evidence_names_the_words(matchers, name):
    top = matchers[name].match("the LRU eviction is slow", k=1)[0]
    assert any("lru" in e.lower() for e in top.evidence), top.evidence


def test_chinese_readme_found_by_chinese_query(matchers):
    top = matchers["lexical"].match("发票", k=1)[0]
    assert top.module == "payment"
    assert any("发票" in e for e in top.evidence)


@pytest.mark.parametrize("name", MATCHERS)
@pytest.mark.parametrize("bad", ["", "   \n\t", b"\x00\x01\x02\x03\xff\xfe\x00\x00"])
def test_empty_or_binary_text_raises(matchers, name, bad):
    with pytest.raises(BadInputError):
        matchers[name].match(bad)


@pytest.mark.parametrize("name", MATCHERS)
def test_text_without_words_gives_low_confidence(matchers, name):
    res = matchers[name].match("!!! ??? ...", k=5)
    assert len(res) == 5
    assert res[0].confidence < 0.6


def test_answers_are_leaf_modules_only(graph, matchers):
    leaves = set(graph.leaf_ids())
    for m in matchers.values():
        assert {x.module for x in m.match("storage network ui payment", k=10)} <= leaves


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory):
    """A plain folder (no git, so no history) with one module."""
    root = tmp_path_factory.mktemp("tiny") / "proj"
    (root / "core").mkdir(parents=True)
    (root / "core" / "engine.py").write_text('"""Engine."""\n\ndef run_engine():\n    """Run it."""\n')
    g = index(root, Store(tmp_path_factory.mktemp("tstore") / "t.db")).graph
    assert not g.history
    return g


@pytest.mark.parametrize("name", MATCHERS)
def test_one_module_no_history(tiny_graph, name):
    m = create(name, tiny_graph)
    res = m.match("run the engine", k=5)
    assert [x.module for x in res] == tiny_graph.leaf_ids()
    assert m.match("???", k=3)  # no words at all: still an answer


def test_history_matcher_without_history_uses_descriptions(tiny_graph, graph):
    from indexer.records import HistoryExample  # noqa: F401
    from inference.calibration import with_history

    g = with_history(graph, [])
    m = create("history", g)
    assert m.match("write-ahead log fsync", k=1)[0].module == "storage"
    assert any("no history" in e for e in m.match("write-ahead log", k=1)[0].evidence)


def test_hybrid_parts_and_weights(matchers):
    h = matchers["hybrid"]
    assert set(h.parts) == {"lexical", "history", "dense"}
    assert abs(sum(h.weights.values()) - 1.0) < 1e-6 or sum(h.weights.values()) > 0


def test_calibrator_is_monotone_and_bounded():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 500)
    ok = rng.uniform(0, 1, 500) < raw ** 2  # over-confident raw scores
    cal = Calibrator.fit(raw, ok)
    assert cal.method == "isotonic"
    grid = np.linspace(0, 1, 21)
    out = cal.predict(grid)
    assert np.all(np.diff(out) >= -1e-12) and out.min() >= 0 and out.max() <= 1
    assert abs(cal.predict(0.9) - 0.81) < 0.15 and cal.predict(0.3) < 0.25
    assert Calibrator.from_dict(cal.to_dict()).predict(0.5) == pytest.approx(cal.predict(0.5))
    assert Calibrator.fit([0.5] * 3, [1, 0, 1]).method in ("identity", "constant")
    assert softmax(np.array([1.0, 1.0])).tolist() == [0.5, 0.5]


def test_matcher_cache_round_trip_and_corruption(graph, tmp_path):
    from inference import cache

    fresh = cache.cached_matcher("hybrid", graph, tmp_path)  # builds and writes
    files = list(tmp_path.glob("hybrid-*.pkl"))
    assert len(files) == 1 and graph.version in files[0].name
    loaded = cache.cached_matcher("hybrid", graph, tmp_path)  # reads
    assert loaded is not fresh and loaded.graph is graph
    q = "the LRU eviction of the disk cache is too slow"
    assert [m.to_dict() for m in loaded.match(q, 3)] == [m.to_dict() for m in fresh.match(q, 3)]
    files[0].write_bytes(b"not a pickle")  # corrupt: rebuilt, not fatal
    again = cache.cached_matcher("hybrid", graph, tmp_path)
    assert again.match(q, 1)[0].module == fresh.match(q, 1)[0].module
    assert files[0].read_bytes() != b"not a pickle"


def test_history_weighs_recent_changes_more(graph):
    """Old changes taught one module, recent ones another for the same words: the recency weighting
    follows the recent ones; without it the bigger, older group wins."""
    from indexer.records import HistoryExample
    from inference.calibration import with_history
    from inference.history_clf import HistoryMatcher

    a, b = graph.leaf_ids()[:2]
    def change(i, year, mid):
        return HistoryExample(f"{i:040x}", f"{year}-03-01T00:00:00+00:00", "fix the frobnicator overflow", "",
                              (f"{mid}/x.c",), (mid,))
    hist = [change(i, 2021, a) for i in range(30)] + [change(100 + i, 2024, b) for i in range(10)]
    g = with_history(graph, hist)
    assert HistoryMatcher(g, half_life_days=None).match("frobnicator overflow", k=1)[0].module == a
    assert HistoryMatcher(g).match("frobnicator overflow", k=1)[0].module == b


def test_a_text_that_repeats_past_changes_gets_what_they_touched(graph, monkeypatch):
    """"Javadoc" said 10 times before, 6 times in one module and 4 in another, while many more changes of a third
    module use the word among others: the repeats lead, in their proportions, with the evidence saying so; a text
    that repeats nothing is scored as without them; the online update (SGD) learns new repeats."""
    from indexer.records import HistoryExample
    from inference import history_clf
    from inference.calibration import with_history
    from inference.history_clf import HistoryMatcher, repeat_key

    assert repeat_key("Javadoc (#1234)") == repeat_key("  javadoc. ") != repeat_key("Javadoc fixes")
    assert repeat_key(" !? #12 ") is None
    a, b, c = graph.leaf_ids()[:3]

    def change(i, text, mid):
        return HistoryExample(f"{i:040x}", f"2024-03-{1 + i % 28:02d}T00:00:00+00:00", text, "", (f"{mid}/x.c",),
                              (mid,))
    hist = ([change(i, "Javadoc", a) for i in range(6)] + [change(10 + i, "Javadoc.", b) for i in range(4)]
            + [change(100 + i, f"javadoc of the parser, part {i}: tokens and javadoc tags", c) for i in range(40)])
    g = with_history(graph, hist)
    with_rep, without = HistoryMatcher(g), HistoryMatcher(g, repeat_prior=None)
    p, q = with_rep.scores("Javadoc (#77)"), without.scores("Javadoc (#77)")
    ia, ib, ic = (with_rep.index[m] for m in (a, b, c))
    lam = 10 / (10 + history_clf.REPEAT_PRIOR)
    assert p[ia] >= lam * 0.6 and p[ib] >= lam * 0.4 and p[ia] > p[ib] > p[ic], p
    assert p[ib] > q[ib] + 0.1  # the classifier alone gives the minority of the repeats little
    assert with_rep.match("Javadoc", k=1)[0].module == a
    assert any("same text: 60%" in e for e in with_rep.evidence("Javadoc", a))
    other = "the parser drops javadoc tags"
    assert np.allclose(with_rep.scores(other), without.scores(other))

    monkeypatch.setattr(history_clf, "LR_MAX_CELLS", 0)
    sgd = HistoryMatcher(g)
    assert sgd.kind == "sgd"
    more = [change(200 + i, "Javadoc", c) for i in range(30)]
    up = sgd.updated(with_history(graph, hist + more))
    assert up is not None and up.repeats.keys.size == sgd.repeats.keys.size + 30
    share = up.repeats.distribution("javadoc")[0]
    assert share[ic] > share[ia] > share[ib] > 0


def test_the_semantic_classifier_learns_modules_from_past_change_subjects(graph, tmp_path):
    """A softmax regression on the change subjects' embeddings: a reworded requirement sharing no word with any past
    change reaches the module whose changes meant the same; excluded commits are not learned; recent changes weigh
    more; the hybrid serves its vote at the share it was given and keeps it through pickling and updates."""
    import pickle

    from indexer.records import HistoryExample
    from inference.calibration import with_history
    from inference.dense import DenseMatcher

    a, b, c = graph.leaf_ids()[:3]
    topics = {a: ["Throttle image uploads per user", "Limit how many pictures one account may send",
                  "Reject photos larger than ten megabytes", "Resize uploaded images before storing them",
                  "Show a progress bar while a picture uploads", "Retry failed image uploads twice",
                  "Strip location metadata from uploaded photos", "Compress large images on upload",
                  "Allow PNG and WebP pictures", "Thumbnail generation for new photos"],
              b: ["Translate the settings page into German", "Add French strings to the UI",
                  "Right-to-left layout for Arabic", "Localise date formats per country",
                  "Japanese translation of the menus", "Fix a typo in the Spanish texts",
                  "Pluralisation rules for Polish", "Pick the language from the browser",
                  "Let users switch the interface language", "Missing Italian labels on the login screen"],
              c: ["Speed up the nightly database backup", "Vacuum old tables after the migration",
                  "Index the orders table by customer", "Slow query on the invoices report",
                  "Add a foreign key from payments to accounts", "Rotate the SQL connection pool",
                  "Archive rows older than a year", "Replica lag alarms for the database",
                  "Migrate the schema to add a status column", "Deadlock when two writers update stock"]}
    hist, i = [], 0
    for mid, subjects in topics.items():
        for subj in subjects:
            i += 1
            hist.append(HistoryExample(f"{i:040x}", f"2024-03-{1 + i % 28:02d}T00:00:00+00:00", subj, "",
                                       (f"{mid}/x.c",), (mid,)))
    g = with_history(graph, hist)
    m = DenseMatcher(g, cache_dir=tmp_path)
    clf = m.fit_classifier()
    assert clf is not None
    for query, want in [("users may post too many photos at once", a), ("the app is not available in Dutch", b),
                        ("the customer table needs an index, reports take minutes", c)]:
        p = m.classify(query, clf)
        assert p is not None and p.sum() == pytest.approx(1.0) and m.ids[int(np.argmax(p))] == want, query
    # commits left out are not learned: without a's changes, nothing points at a
    no_a = m.fit_classifier(exclude={h.commit for h in hist if h.modules == (a,)})
    assert no_a is not None and no_a.probs(m.embed("users may post too many photos at once"))[m.index[a]] == 0
    assert m.fit_classifier(exclude={h.commit for h in hist}) is None  # nothing left to learn from
    assert m.classify("anything") is None  # the matcher's own classifier is the hybrid's to fit
    # recency: the same subjects taught to c long ago and to a lately lean to a
    old = [HistoryExample(f"{900 + j:040x}", "2019-01-01T00:00:00+00:00", s_, "", (f"{c}/x.c",), (c,))
           for j, s_ in enumerate(topics[a])]
    both = DenseMatcher(with_history(graph, hist + old), cache_dir=tmp_path)
    p = both.classify("Throttle image uploads per user", both.fit_classifier())
    assert p[both.index[a]] > p[both.index[c]]
    # the hybrid mixes the vote in at its share: with a share of 1 the served ranking is the classifier's
    h = create("hybrid", g)
    m_h = h.parts["dense"]
    m_h.classifier = m_h.fit_classifier()
    q = "the app is not available in Dutch"
    before = h.scores(q)
    h.semantic_weight = 1.0
    after = h.scores(q)
    assert not np.allclose(before, after) and h.ids[int(np.argmax(after))] == b
    assert "past changes' meaning #1" in h.evidence(q, b)[0]  # `ask` says where the vote put it
    again = pickle.loads(pickle.dumps(h))
    assert np.allclose(again.scores(q), after)
    # a full build with enough held-out history fits it and serves it at the fixed share
    from inference.hybrid import SEMANTIC_WEIGHT, build_hybrid

    many = [HistoryExample(f"{5000 + j:040x}", f"2024-{1 + j // 28 % 12:02d}-{1 + j % 28:02d}T{j % 24:02d}:00:00+00:00",
                           x.subject, "", x.files, x.modules) for j, x in enumerate(hist * 8)]
    built = build_hybrid(with_history(graph, many))
    assert built.semantic_weight == SEMANTIC_WEIGHT and built.parts["dense"].classifier is not None
    assert any("semantic classifier" in n for n in built.notes)


def test_neighbour_evidence_names_a_change_once(graph, tmp_path):
    """A merged pull request is in the history twice, as its title and as its commit's subject ("#821 Registering
    instance should update valid (health)" and the same without the number, alibaba/nacos): `ask` showed the one
    change twice as the past changes alike in meaning, where a second change alike would say more."""
    from indexer.records import HistoryExample
    from inference.calibration import with_history
    from inference.dense import DenseMatcher

    a = graph.leaf_ids()[0]

    def change(i, subject, kind="commit"):
        return HistoryExample(f"{i:040x}", f"2024-03-{1 + i:02d}T00:00:00+00:00", subject, "", (f"{a}/x.c",), (a,),
                              kind)
    hist = [change(1, "#821 Throttle image uploads per user"), change(2, "Throttle image uploads per user (#821)", "pr"),
            change(3, "Limit how many pictures one account may send")]
    m = DenseMatcher(with_history(graph, hist), cache_dir=tmp_path)
    ev = m.neighbour_evidence("Throttle image uploads per user", a, k=3)
    assert len(ev) == 1 and ev[0].count("Throttle image uploads") == 1 and "pictures" in ev[0], ev


def test_dense_neighbours_find_past_changes_by_meaning(graph, tmp_path):
    """The nearest past changes by sentence embedding: a paraphrase sharing no word with a past change still reaches
    its module; held-out commits can be left out; vectors are reused from the disk cache and by `updated`."""
    from indexer.records import HistoryExample
    from inference.calibration import with_history
    from inference.dense import DenseMatcher

    a, b = graph.leaf_ids()[:2]

    def change(i, subject, mid):
        return HistoryExample(f"{i:040x}", f"2024-03-{1 + i % 28:02d}T00:00:00+00:00", subject, "", (f"{mid}/x.c",),
                              (mid,))
    hist = [change(1, "Throttle image uploads per user", a), change(2, "Limit how many pictures one account may send",
                                                                       a),
            change(3, "Translate the settings page into German", b), change(4, "Add French strings to the UI", b)]
    g = with_history(graph, hist)
    m = DenseMatcher(g, cache_dir=tmp_path)
    vote = m.neighbours("Rate-limit photo posting\n\nusers flood the server", k=2)
    assert vote is not None and m.ids[int(np.argmax(vote))] == a and vote.sum() == pytest.approx(1.0)
    assert m.ids[int(np.argmax(m.neighbours("localisation of the interface for Spanish", k=2)))] == b
    left = m.neighbours("Rate-limit photo posting", k=2, exclude={hist[0].commit, hist[1].commit})
    assert left is not None and m.ids[int(np.argmax(left))] == b  # only b's changes are left to vote
    assert m.neighbours("") is None
    # `ask` says which past changes voted: only those that touched the module asked about
    ev = m.neighbour_evidence("Rate-limit photo posting", a, k=2)
    assert len(ev) == 1 and "Throttle image uploads" in ev[0] and "German" not in ev[0]
    assert m.neighbour_evidence("Rate-limit photo posting", b, k=2) == []
    assert m.neighbour_evidence("Rate-limit photo posting", a, k=2, min_sim=0.99) == []  # not alike enough
    # a second build reads the vectors from the cache; an update embeds only the new change
    again = DenseMatcher(g, cache_dir=tmp_path)
    assert np.array_equal(again.hist_emb, m.hist_emb)
    g2 = with_history(graph, hist + [change(5, "Cap the upload bandwidth of one client", a)])
    up = m.updated(g2)
    assert up is not None and len(up.hist_keys) == 5 and np.array_equal(up.hist_emb[:4], m.hist_emb)
    assert m.ids[int(np.argmax(up.neighbours("bandwidth cap for a client's uploads", k=1)))] == a


def test_a_vote_share_leaves_its_prior_in_proportion_to_the_evidence():
    """`choose_share`: a held-out slice where another share wins a handful of changes and loses nearly as many keeps
    the prior (the flat slices that made nginx's choice flip between rebuilds); one where it wins many and loses
    none moves nearly all the way to it, and says by how much; between the two, the more it wins the further the
    share moves, with no jump (tigerbeetle's switched from 0.30 to 0.10 between two builds)."""
    from inference.hybrid import choose_share

    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, 400).astype(float)

    def flat(w):  # share 0.3 wins 9 changes and loses 7 of 400: a gain of 0.005, noise
        rows = base.copy()
        if w == 0.3:
            rows[:9] += 1.0
            rows[9:16] -= 1.0
        return rows

    share, why = choose_share(flat, (0.0, 0.1, 0.2, 0.3), prior=0.1)
    assert share == 0.1 and "within chance" in why and "0.30" in why

    def clear(w):  # share 0.2 wins 30 changes, loses none; 0.3 wins 12 and loses 10
        rows = base.copy()
        if w == 0.2:
            rows[:30] += 1.0
        if w == 0.3:
            rows[:12] += 1.0
            rows[12:22] -= 1.0
        return rows

    share, why = choose_share(clear, (0.0, 0.1, 0.2, 0.3), prior=0.1)
    assert 0.19 < share < 0.2 and "toward 0.20, which beats the prior 0.10 by +0.075" in why

    def wins(k):  # share 0.3 wins k changes and loses 10
        def rows_at(w):
            rows = base.copy()
            if w == 0.3:
                rows[:k] += 1.0
                rows[k:k + 10] -= 1.0
            return rows
        return rows_at

    moved = [choose_share(wins(k), (0.0, 0.1, 0.2, 0.3), prior=0.1)[0] for k in range(10, 60, 2)]
    assert moved[0] == 0.1 and all(b >= a for a, b in zip(moved, moved[1:])) and 0.25 < moved[-1] < 0.3
    assert max(b - a for a, b in zip(moved, moved[1:])) < 0.07  # no switch of 0.2 at two standard errors
