"""The commands the service and the git hooks start, run the way production runs them: real processes.

The job runner's default training command (`python -m bot.cli train PATH --json`) and the hooks' fallback
(`python -m bot.cli refresh PATH`) once crashed on a circular import that no in-process test could see.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import hooks
from bot.jobs import JobRunner, default_train_command
from bot.state import AppState, RepoState
from indexer.build import index
from indexer.store import Store, db_path_for
from waiting import wait_for

FILES = {
    "storage/cache.py": '"""Disk cache."""\n\ndef evict_lru():\n    """Evict the least recently used page."""\n',
    "storage/pages.py": '"""Pages."""\n\ndef write_page():\n    """Write a page to disk."""\n',
    "network/tls.py": '"""TLS."""\n\ndef tls_handshake():\n    """Perform the TLS handshake."""\n',
    "network/sockets.py": '"""Sockets."""\n\ndef open_socket():\n    """Open a TCP socket."""\n',
}


@pytest.mark.parametrize("module", ["bot.cli", "bot.hooks"])
def test_the_modules_the_service_starts_run_as_main(module):
    r = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with the real SmolLM2 tokenizer, saved as a model folder."""
    from inference.models import tiny_random_model

    d = tmp_path_factory.mktemp("tiny-model")
    model, tok = tiny_random_model(hidden=32)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_default_training_job_runs_the_real_command(git_repo, tiny_model_dir):
    """A queued training job runs `python -m bot.cli train` in a subprocess, as the service does, to the end."""
    git_repo.commit("initial", {**FILES, ".modmatch.toml": (
        "[trainer]\n"
        f'base_model = "{tiny_model_dir}"\n'
        "max_steps = 2\nbatch_size = 2\nvariants = 1\neval_rows = 4\ncheckpoint_every = 0\nthreads = 1\n")})
    for i, (msg, f) in enumerate([("Evict pages sooner when the cache is full", "storage/cache.py"),
                                  ("Handshake fails with old TLS servers", "network/tls.py"),
                                  ("Write pages atomically", "storage/pages.py"),
                                  ("Sockets leak on timeout", "network/sockets.py")] * 3):
        git_repo.commit(msg, {f: (git_repo.root / f).read_text() + f"# {i}\n"})
    st = AppState()
    rs = st.add(RepoState("core", git_repo.root, matcher="lexical"))
    index(git_repo.root, rs.store, full=True)
    assert default_train_command(git_repo.root)[:3] == [sys.executable, "-m", "bot.cli"]

    runner = JobRunner(st, refresh_delay=0.0, poll_interval=0, retrain_at="")
    runner.start()
    try:
        runner.queue_train("core", "test")
        job = wait_for(lambda: next((j for j in runner.recent() if j["kind"] == "train"
                                     and j["state"] not in ("queued", "running")), None), 600, "the training job")
    finally:
        runner.shutdown()
    out = job["outcome"]
    assert job["state"] == "ok", out
    assert out["returncode"] == 0
    assert out["result"]["metrics"]["steps"] == 2
    assert Path(out["result"]["run"]).is_dir()


def test_hook_fallback_refreshes_with_the_real_command(git_repo, tmp_path, monkeypatch):
    """No service answers: the hook runs `python -m bot.cli refresh` itself. The hook finds MODMATCH_HOME as it was
    when it was installed, even though git's environment does not carry it."""
    home = Path(os.environ["MODMATCH_HOME"])
    first = git_repo.commit("initial", FILES)
    store = Store(db_path_for(home, git_repo.root))
    index(git_repo.root, store, full=True)
    assert store.graph_info()["commit"] == first

    monkeypatch.setenv("MODMATCH_URL", "http://127.0.0.1:9")  # nothing listens there
    log = tmp_path / "hooks.log"
    monkeypatch.setenv("MODMATCH_HOOK_LOG", str(log))
    hooks.install(git_repo.root)

    env = {k: v for k, v in os.environ.items() if not k.startswith("MODMATCH_HOME")}
    git_repo.git("checkout", "-q", "-b", "feature", env=None)
    second = git_repo.commit("add a cipher", {"network/cipher.py": "def encrypt():\n    return 1\n"})
    subprocess.run(["git", "-C", str(git_repo.root), "checkout", "-q", "main"], check=True, env=env)
    subprocess.run(["git", "-C", str(git_repo.root), "-c", "user.name=t", "-c", "user.email=t@e", "merge", "-q",
                    "--ff-only", "feature"], check=True, env=env)

    def refreshed():
        s = Store(store.path)
        try:
            return s.graph_info().get("commit") == second
        finally:
            s.close()

    wait_for(refreshed, 120, "the hook's refresh")
    wait_for(lambda: log.exists() and "ran " in log.read_text() and "rc=0" in log.read_text(), 30, "the log")


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_commands_run_in_a_folder_of_the_repository_use_the_repository(git_repo, tmp_path):
    """An operator indexes a repository and asks from wherever they stand. In a folder of the repository, `index`
    indexes the repository (with its history, not the folder as a plain one) and `modules` / `show` / `refresh`
    read it. Elsewhere, `ask` says where nothing is indexed and which repository is, and leaves no empty database
    behind."""
    git_repo.commit("initial", FILES)
    head = git_repo.commit("Evict pages sooner when the cache is full",
                           {"storage/cache.py": FILES["storage/cache.py"] + "# sooner\n"})
    home = Path(os.environ["MODMATCH_HOME"])
    inner = git_repo.root / "storage"

    r = _cli(inner, "index", "--no-matcher", "--json")
    assert r.returncode == 0, r.stderr
    assert Store(db_path_for(home, git_repo.root)).graph_info()["commit"] == head
    assert not db_path_for(home, inner).exists()
    assert json.loads(r.stdout)["history_added"] == 2

    r = _cli(inner, "modules", "--json")
    assert r.returncode == 0, r.stderr
    assert {"storage", "network"} <= {n["id"] for n in json.loads(r.stdout)["nodes"]}
    r = _cli(inner, "show", "network")
    assert r.returncode == 0 and "tls_handshake" in r.stdout, r.stderr
    r = _cli(inner, "refresh", "--no-matcher", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["parsed"] == 0, r.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = sorted((home / "repos").iterdir())
    r = _cli(elsewhere, "ask", "evict cache pages")
    assert r.returncode == 1
    assert "is not in an indexed repository" in r.stderr and str(git_repo.root.resolve()) in r.stderr, r.stderr
    assert sorted((home / "repos").iterdir()) == before
