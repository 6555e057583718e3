"""The models folder of a repository: one layout (the trainer's), read and published through ModelStore."""
from __future__ import annotations

import json

from inference.modelstore import CURRENT, ModelStore, is_run


def _run(store: ModelStore, accuracy: float, ids_hash: str = "h1"):
    run = store.new_run()
    (run / "merged").mkdir()
    (run / "merged" / "config.json").write_text("{}")
    meta = {"metrics": {"accuracy": accuracy}, "ids_hash": ids_hash}
    (run / "metadata.json").write_text(json.dumps(meta))
    return run, meta


def test_publish_current_and_runs(tmp_path):
    store = ModelStore(tmp_path / "models" / "repo-abc")
    assert store.current() is None and store.current_run() is None and store.runs() == []
    assert store.pointer_mtime() is None and store.current_metadata() == {} and store.plots() == []
    a, meta_a = _run(store, 0.8)
    b, meta_b = _run(store, 0.7)
    assert a.name != b.name and store.runs() == [a, b] and is_run(a)
    assert store.publish(a, meta_a) == (True, "published")
    assert store.current_run() == a.resolve() and store.current()["run"] == f"runs/{a.name}"
    assert store.current_metadata()["metrics"]["accuracy"] == 0.8 and store.pointer_mtime() is not None
    ok, why = store.publish(b, meta_b)  # worse on the same modules: refused
    assert not ok and "below" in why and store.current_run() == a.resolve()
    ok, _ = store.publish(b, dict(meta_b, ids_hash="h2"))  # the modules changed: the old run is stale
    assert ok and store.current_run() == b.resolve() and store.current()["previous"] == f"runs/{a.name}"
    assert sorted(p.name for p in store.root.iterdir()) == [CURRENT, "runs"]  # no temp files left


def test_unreadable_pointer_and_resumable_run(tmp_path):
    store = ModelStore(tmp_path / "m")
    store.root.mkdir()
    (store.root / CURRENT).write_text("{half a pointer")
    assert store.current() is None and store.current_run() is None
    run = store.new_run()
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / "state.json").write_text("{}")
    assert store.resumable_run() == run
    (run / "metadata.json").write_text("{}")  # finished: nothing to resume
    assert store.resumable_run() is None


def test_plots_of_the_current_run_first(tmp_path):
    store = ModelStore(tmp_path / "m")
    run, meta = _run(store, 0.5)
    store.publish(run, meta)
    (run / "report").mkdir()
    (run / "report" / "accuracy.png").write_bytes(b"run")
    (store.root / "report").mkdir()
    (store.root / "report" / "accuracy.png").write_bytes(b"folder")
    (store.root / "report" / "recall.png").write_bytes(b"folder")
    (store.root / "report" / "notes.txt").write_text("not a plot")
    plots = store.plots()
    assert [p.name for p in plots] == ["accuracy.png", "recall.png"] and plots[0].read_bytes() == b"run"


def test_of_repository_uses_the_database_key(tmp_path):
    from indexer.store import db_path_for

    home, repo = tmp_path / "home", tmp_path / "src" / "core"
    store = ModelStore.of_repository(home, repo)
    assert store.root == home / "models" / db_path_for(home, repo).stem
