"""The refresh of a push that only modifies files patches the stored graph in place (build._patch): it must store
exactly what a full index of the same commit stores, fall back to a rebuild whenever paths change, and lose
nothing when it is interrupted."""
from __future__ import annotations

import json
import pickle
import random
import sqlite3
from collections import Counter

import pytest

from indexer import build as build_mod
from indexer import store as store_mod
from indexer.build import index, refresh
from indexer.errors import IndexerError
from indexer.store import Store

VOCAB = ["audio", "buffer", "mixer", "sample", "codec", "stream", "render", "shader", "texture", "camera", "socket",
         "packet", "retry", "cache", "token", "parser", "lexer", "schema", "query", "index", "vector", "matrix",
         "kernel", "thread", "queue", "signal", "filter", "window", "resample", "decode", "encode", "frame"]


def py_file(rng: random.Random, imports: list[str]) -> str:
    lines = [f"from {imp} import helper" for imp in imports]
    lines.append(f'"""{" ".join(rng.sample(VOCAB, 4))} utilities."""')
    for _ in range(rng.randint(1, 5)):
        a, b = rng.sample(VOCAB, 2)
        lines.append(f'def {a}_{b}():\n    """{rng.choice(VOCAB)} {rng.choice(VOCAB)}."""\n    return 1\n')
    return "\n".join(lines) + "\n"


def tables(store: Store) -> dict:
    """Everything a graph is stored as (the graph row's build time aside)."""
    c = store.conn
    return {
        "files": c.execute("SELECT * FROM files ORDER BY path").fetchall(),
        "modules": c.execute("SELECT * FROM modules ORDER BY id").fetchall(),
        "terms": c.execute("SELECT * FROM terms ORDER BY module, word").fetchall(),
        "edges": c.execute("SELECT * FROM edges ORDER BY src, dst, kind").fetchall(),
        "graph": c.execute("SELECT version, [commit] FROM graph").fetchall(),
        "history": c.execute("SELECT * FROM history ORDER BY [commit], kind").fetchall(),
    }


@pytest.fixture
def rebuilds(monkeypatch):
    """How many times an index fell back to rebuilding the graph from the complete file list."""
    calls = []
    real = build_mod._rebuild
    monkeypatch.setattr(build_mod, "_rebuild", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_patched_refresh_stores_what_a_full_index_stores(git_repo, tmp_path, rebuilds):
    """Random edits of existing files (new words, so other modules' keywords move; new and dropped imports, so
    edges move): after each, the patched store equals a fresh full index, row for row."""
    rng = random.Random(3)
    mods = [f"pkg{i}" for i in range(8)]
    files = {f"{m}/f{j}.py": py_file(rng, []) for m in mods for j in range(3)}
    files["pkg0/README.md"] = "# Pkg0\n\nThe first package: audio buffers and their mixer.\n"
    files["node_modules/dep/x.js"] = "function x() {}\n"  # skipped: its changes are not the graph's
    git_repo.commit("initial", files)
    store = Store(tmp_path / "inc.db")
    index(git_repo.root, store, full=True)
    seen = Counter()
    for step in range(10):
        edits = {}
        for path in rng.sample(sorted(p for p in files if p.endswith(".py")), rng.randint(1, 3)):
            imports = [f"{m}.f{rng.randint(0, 2)}" for m in rng.sample(mods, rng.randint(0, 2))]
            edits[path] = py_file(rng, imports)
        if step == 4:
            edits["pkg0/README.md"] = "# Pkg0\n\nNow about texture caches and shader kernels.\n"
        if step == 6:
            edits = {"node_modules/dep/x.js": "function y() {}\n"}
        files.update(edits)
        git_repo.commit(f"edit {step}", edits)
        before, edges = len(rebuilds), tables(store)["edges"]
        res = refresh(git_repo.root, store)
        seen["other modules rekeyed"] += bool(set(res.changed_modules) - {p.split("/")[0] for p in edits})
        seen["edges moved"] += tables(store)["edges"] != edges
        assert len(rebuilds) == before, "a modification only: the graph is patched, not rebuilt"
        fresh_store = Store(tmp_path / f"fresh{step}.db")
        fresh = index(git_repo.root, fresh_store, full=True)
        assert tables(store) == tables(fresh_store), step
        assert res.graph.version == fresh.graph.version
        assert res.graph.to_json(include_history=False) == fresh.graph.to_json(include_history=False)
        assert [h.to_dict() for h in res.graph.history] == [h.to_dict() for h in fresh.graph.history]
        assert Store(store.path).load_graph().to_json() == fresh_store.load_graph().to_json()
        if step == 6:
            assert res.parsed == 0 and res.changed_modules == [] and res.changed_files == []
        else:
            assert res.parsed == len(edits) and set(res.changed_files) == set(edits)
    assert seen["other modules rekeyed"] >= 2 and seen["edges moved"] >= 2, seen  # the cases under test happened


def test_added_removed_or_linked_files_rebuild(git_repo, tmp_path, rebuilds):
    git_repo.commit("initial", {"a/x.py": "def ax():\n    pass\n", "b/y.py": "def by():\n    pass\n"})
    store = Store(tmp_path / "s.db")
    index(git_repo.root, store, full=True)
    steps = [({"a/z.py": "def az():\n    pass\n"}, []), ({}, ["a/z.py"])]
    for edits, delete in steps:
        git_repo.commit("change", edits, delete=delete)
        n = len(rebuilds)
        res = refresh(git_repo.root, store)
        assert len(rebuilds) == n + 1
        fresh = Store(tmp_path / f"f{n}.db")
        assert res.graph.version == index(git_repo.root, fresh, full=True).graph.version
        assert tables(store) == tables(fresh)
    (git_repo.root / "a" / "link.py").symlink_to("x.py")  # links are never indexed: nothing to rebuild
    git_repo.commit("a link")
    n = len(rebuilds)
    refresh(git_repo.root, store)
    assert len(rebuilds) == n


def test_interrupted_patch_keeps_the_previous_graph(git_repo, tmp_path, monkeypatch, rebuilds):
    """A failure inside save_graph's transaction, after the file, module, term and edge rows are written, leaves
    every table as it was; the next refresh finishes the job."""
    git_repo.commit("initial", {"a/x.py": "def ax():\n    pass\n", "b/y.py": "from a.x import ax\n"})
    store = Store(tmp_path / "s.db")
    index(git_repo.root, store, full=True)
    before, n = tables(store), len(rebuilds)
    git_repo.commit("edit", {"b/y.py": "def by_shader_texture():\n    pass\n"})

    now = store_mod._now
    calls = []

    def power_cut():  # the run's start is recorded; the graph row, written last in save_graph, is not
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("power cut")
        return now()

    monkeypatch.setattr(store_mod, "_now", power_cut)
    with pytest.raises(IndexerError):
        refresh(git_repo.root, store)
    monkeypatch.setattr(store_mod, "_now", now)
    assert tables(Store(store.path)) == before
    res = refresh(git_repo.root, Store(store.path))
    assert len(rebuilds) == n  # both were patches
    fresh = Store(tmp_path / "f.db")
    assert res.graph.version == index(git_repo.root, fresh, full=True).graph.version
    assert tables(Store(store.path)) == tables(fresh)


def test_terms_move_to_rows_and_refresh_the_same(git_repo, tmp_path):
    """m005: a store written with terms as a JSON column (m004) gets the same terms as rows, and refreshes to
    what a full index gives."""
    from indexer.migrations import m005_term_rows

    git_repo.commit("initial", {"a/x.py": "def ax_audio():\n    pass\n", "b/y.py": "def by_video():\n    pass\n"})
    store = Store(tmp_path / "old.db")
    index(git_repo.root, store, full=True)
    store.close()
    rows = tables(Store(tmp_path / "old.db"))
    conn = sqlite3.connect(tmp_path / "old.db")
    with conn:  # back to the m004 form
        conn.execute("ALTER TABLE modules ADD COLUMN terms TEXT NOT NULL DEFAULT '{}'")
        terms: dict = {}
        for mid, w, v in conn.execute("SELECT module, word, weight FROM terms"):
            terms.setdefault(mid, {})[w] = v
        conn.executemany("UPDATE modules SET terms=? WHERE id=?", [(json.dumps(t), mid) for mid, t in terms.items()])
        conn.execute("DROP TABLE terms")
        conn.execute("DELETE FROM _migrations WHERE name='m005_term_rows'")
    conn.close()
    migrated = Store(tmp_path / "old.db")
    assert tables(migrated)["terms"] == rows["terms"]
    assert [r[1] for r in migrated.conn.execute("PRAGMA table_info(modules)")] == [
        "id", "parent", "fingerprint", "record", "keywords"]
    assert m005_term_rows.__name__ in {r[0] for r in migrated.conn.execute("SELECT name FROM _migrations")}
    git_repo.commit("edit", {"a/x.py": "def ax_audio_mixer():\n    pass\n"})
    res = refresh(git_repo.root, migrated)
    fresh = Store(tmp_path / "f.db")
    assert res.graph.version == index(git_repo.root, fresh, full=True).graph.version
    assert tables(migrated) == tables(fresh)


def test_stored_modules_decode_when_read(git_repo, tmp_path):
    """load_graph leaves each module's record undecoded until a field is read; the modules behave as plain
    ones (equality, to_dict, pickling)."""
    from indexer.records import Module

    git_repo.commit("initial", {"a/x.py": "def ax():\n    '''Ax.'''\n", "b/y.py": "class By:\n    pass\n"})
    store = Store(tmp_path / "s.db")
    built = index(git_repo.root, store, full=True).graph
    g = store.load_graph()
    assert all("_record" in m.__dict__ for m in g.modules.values())
    assert g.version == built.version and g.leaf_ids() == built.leaf_ids() and g.keyword_index == built.keyword_index
    assert g.module_of("a/x.py") == "a"
    for mid, m in built.modules.items():
        lazy = store.load_graph().modules[mid]
        assert lazy == m and lazy.to_dict() == m.to_dict()
        assert pickle.loads(pickle.dumps(store.load_graph().modules[mid])) == m
        assert isinstance(lazy, Module) and "_record" not in lazy.__dict__
    assert [s.name for s in g.modules["b"].symbols] == ["By"]
    with pytest.raises(AttributeError):
        g.modules["a"].no_such_field  # noqa: B018
    # each field read first of all gives what was stored: a field with a plain default (`description = ""`) was
    # read from the class, so the service's module list showed no names or descriptions
    from dataclasses import fields

    for mid, m in built.modules.items():
        for f in fields(Module):
            assert getattr(store.load_graph().modules[mid], f.name) == getattr(m, f.name), (mid, f.name)
    assert built.modules["a"].description == "Defines ax." and built.modules["a"].name == "a"


def test_an_upgrade_that_describes_modules_differently_reaches_a_stored_graph(git_repo, tmp_path, monkeypatch):
    """Stored modules are reused under an equal fingerprint. The code that derives a module's description is in
    that fingerprint: before, a new rule in describe.py alone reached existing installations only where someone
    remembered to bump BUILD_VERSION."""
    from indexer import graph as graph_mod

    git_repo.commit("initial", {"a/x.py": "def ax():\n    '''Ax.'''\n", "b/y.py": "class By:\n    pass\n"})
    store = Store(tmp_path / "s.db")
    index(git_repo.root, store, full=True)
    assert store.load_graph().modules["a"].description == "Defines ax."
    # the upgrade: describe.py's bytes differ (so do the indexer's rules: the refresh cannot patch), and so does
    # what it writes
    monkeypatch.setattr(build_mod, "rules_version", lambda config, pv: "upgraded")
    monkeypatch.setattr(graph_mod, "derivation_version", lambda: "upgraded", raising=False)
    monkeypatch.setattr(graph_mod, "describe", lambda m, records: f"{m.id}, described anew")
    refresh(git_repo.root, store)
    g = store.load_graph()
    assert g.modules["a"].description == "a, described anew" and g.modules["b"].description == "b, described anew"


def test_stored_modules_decode_once_under_threads(git_repo, tmp_path):
    """The service reads one graph from many threads: a module decoded by two at once is never half there."""
    import sys
    import threading

    git_repo.commit("initial", {f"m{i}/x.py": "".join(f"def f{i}_{j}():\n    pass\n" for j in range(150)) for i in range(20)})
    store = Store(tmp_path / "s.db")
    want = {mid: m.to_dict() for mid, m in index(git_repo.root, store, full=True).graph.modules.items()}
    errors = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(20):
            g = store.load_graph(with_history=False)

            def read(g=g):
                try:
                    for mid, m in g.modules.items():
                        assert m.files == want[mid]["files"] and m.stats == want[mid]["stats"]
                        assert [s.name for s in m.symbols] == [s["name"] for s in want[mid]["symbols"]]
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

            threads = [threading.Thread(target=read) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        sys.setswitchinterval(switch)
    assert not errors, errors[:3]


def test_keywords_given_df_equal_keywords():
    from indexer.describe import keywords, keywords_given_df

    rng = random.Random(11)
    for _ in range(30):
        terms = {f"m{i}": Counter({w: rng.choice([1, 2.5, 0.3, 3, 7.25]) for w in rng.sample(VOCAB + ["12", "ab"], 8)})
                 for i in range(rng.randint(1, 12))}
        df = Counter(w for c in terms.values() for w in c)
        some = dict(rng.sample(sorted(terms.items()), rng.randint(1, len(terms))))
        expected = keywords(terms)
        assert keywords_given_df(some, df, len(terms)) == {mid: expected[mid] for mid in some}
