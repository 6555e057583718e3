"""Many repositories in one process (issue 14): the memory bound unloads the least recently asked repository and
loads it again from its matcher cache; per-repository caches never evict each other; one `modmatch serve` with a
bound of one says `unloaded` on /healthz, /api/repos and stays ready."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bot import state as state_mod
from bot.state import AppState, RepoState
from indexer.build import index, refresh
from waiting import wait_for

REPOS = {
    "alpha": {"storage/cache.py": '"""Disk cache with least-recently-used eviction."""\n\ndef evict_lru():\n    pass\n',
              "network/tls.py": '"""TLS handshake and certificates."""\n\ndef tls_handshake():\n    pass\n'},
    "beta": {"billing/invoice.py": '"""Invoices, taxes and payment reminders."""\n\ndef send_invoice():\n    pass\n',
             "auth/login.py": '"""Login with passwords and two-factor codes."""\n\ndef login():\n    pass\n'},
    "gamma": {"render/shader.py": '"""Shaders, textures and the render pipeline."""\n\ndef compile_shader():\n    pass\n',
              "audio/mixer.py": '"""Audio mixer: volume, channels and effects."""\n\ndef mix():\n    pass\n'},
}
QUESTIONS = {"alpha": ("evict the least recently used cache page", "storage"),
             "beta": ("send the invoice with taxes", "billing"),
             "gamma": ("compile the shader for the render pipeline", "render")}


def make_repos(tmp_path, names=REPOS, folder=None) -> dict:
    """Real git repositories, indexed; `folder`: give every one the same folder name (in different parents)."""
    from conftest import GitRepo as Repo

    out = {}
    for name in names:
        g = Repo(tmp_path / name / (folder or name))
        g.commit("initial", REPOS[name])
        out[name] = g
    return out


def served(tmp_path, max_loaded: int, matcher: str = "lexical", folder=None) -> tuple[AppState, dict]:
    repos = make_repos(tmp_path, folder=folder)
    st = AppState(max_loaded=max_loaded)
    for name, g in repos.items():
        rs = st.add(RepoState(name, g.root, matcher=matcher))
        index(g.root, rs.store, full=True)
    return st, repos


def ask(st: AppState, name: str) -> str:
    text, _ = QUESTIONS[name]
    return st.repo(name).match(text, k=1).matches[0].module


def cache_files(rs: RepoState) -> dict:
    """The repository's cached matchers: name -> inode (a rebuild writes a new file)."""
    return {p.name: p.stat().st_ino for p in rs._cache_dir.glob("*.pkl")}


def test_least_recently_asked_repository_is_unloaded_and_comes_back_from_its_cache(tmp_path):
    st, _ = served(tmp_path, max_loaded=2)
    for name in ("alpha", "beta", "gamma"):
        assert ask(st, name) == QUESTIONS[name][1]
    a = st.repo("alpha")
    assert sorted(st.loaded()) == ["beta", "gamma"]
    assert a.status == "unloaded" and not a.loaded and a.health()["matcher"] == "unloaded" and a.ready
    cached = cache_files(a)
    assert cached, "alpha's matcher was cached when it was built"

    assert ask(st, "alpha") == "storage"  # loaded again, on demand
    assert a.status == "ready" and sorted(st.loaded()) == ["alpha", "gamma"]  # beta is now the oldest
    assert st.repo("beta").status == "unloaded"
    assert cache_files(a) == cached  # loaded from the cache file, not rebuilt (a build writes a new file)


def test_no_bound_keeps_everything(tmp_path):
    st, _ = served(tmp_path, max_loaded=0)
    for name in REPOS:
        ask(st, name)
    assert sorted(st.loaded()) == sorted(REPOS) and all(rs.status == "ready" for rs in st.repos.values())


def test_a_reloading_repository_is_never_unloaded(tmp_path):
    """alpha is the least recently asked, but its reload (after a refresh) is waiting for the builder: the bound
    unloads beta instead, and alpha serves its new graph once the reload is done."""
    st, repos = served(tmp_path, max_loaded=3)
    for name in ("alpha", "beta", "gamma"):
        ask(st, name)
    a = st.repo("alpha")
    repos["alpha"].commit("ui", {"ui/button.py": '"""Buttons and menus."""\n\ndef draw_button():\n    pass\n'})
    refresh(repos["alpha"].root, a.store)
    gate = threading.Event()
    state_mod._BUILDER.submit(gate.wait, 30)  # the process's one builder is busy with another build
    t = threading.Thread(target=a.reload)
    t.start()
    try:
        wait_for(lambda: a.reloading, 10, "the reload to start")
        st.max_loaded = 1
        assert st.evict() == ["beta", "gamma"]  # alpha is the least recently asked, but busy
        assert a.loaded and a.status == "ready"
    finally:
        gate.set()
        t.join(30)
    assert "ui" in a.graph.modules and a.status == "ready" and st.loaded() == ["alpha"]


def test_reload_of_an_unloaded_repository_builds_the_cache_and_stays_unloaded(tmp_path):
    st, repos = served(tmp_path, max_loaded=1)
    ask(st, "alpha")
    ask(st, "beta")
    a = st.repo("alpha")
    assert a.status == "unloaded"
    before = cache_files(a)
    repos["alpha"].commit("ui", {"ui/button.py": '"""Buttons and menus."""\n\ndef draw_button():\n    pass\n'})
    refresh(repos["alpha"].root, a.store)
    a.reload()  # what the refresh job does
    assert a.status == "unloaded" and not a.loaded and st.loaded() == ["beta"]
    after = cache_files(a)
    assert after and after.keys() != before.keys()  # the new graph version's matcher is in the cache
    assert a.served_version() == a.store.graph_info()["version"]
    assert a.match("draw the button", k=1).matches[0].module == "ui"
    assert cache_files(a) == after  # the question loaded it, nothing was built


def test_concurrent_questions_under_a_bound_of_one(tmp_path):
    """Eight threads ask the three repositories in turn while the bound of one unloads them under their feet:
    every answer is right, and memory ends within the bound."""
    st, _ = served(tmp_path, max_loaded=1)
    names = list(REPOS) * 12

    def one(i):
        name = names[i]
        return name, ask(st, name)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(len(names))))
    assert all(module == QUESTIONS[name][1] for name, module in results)
    st.evict()
    assert len(st.loaded()) == 1
    assert all(rs.status in ("ready", "unloaded") for rs in st.repos.values())


def test_per_repository_caches_never_evict_each_other(tmp_path):
    """Two repositories whose folders have the same name, both built with the served default (hybrid): both caches
    stay; a refresh of one replaces its own cached matcher only."""
    st, repos = served(tmp_path, max_loaded=0, matcher="hybrid", folder="app")
    a, b = st.repo("alpha"), st.repo("beta")
    assert a.root.name == b.root.name == "app" and a._cache_dir != b._cache_dir
    assert ask(st, "alpha") == "storage" and ask(st, "beta") == "billing"
    ca, cb = cache_files(a), cache_files(b)
    assert any(n.startswith("hybrid-") for n in ca) and any(n.startswith("hybrid-") for n in cb)

    repos["alpha"].commit("ui", {"ui/button.py": '"""Buttons and menus."""\n\ndef draw_button():\n    pass\n'})
    refresh(repos["alpha"].root, a.store)
    a.reload()
    assert cache_files(b) == cb  # beta's cache untouched, same files
    new_a = cache_files(a)
    assert len([n for n in new_a if n.startswith("hybrid-")]) == 1 and new_a.keys() != ca.keys()
    assert a.match("draw the button", k=1).matches[0].module == "ui"
    assert ask(st, "beta") == "billing" and cache_files(b) == cb


# --- the real service ------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_a_bound_of_one(tmp_path, _modmatch_home):
    """`modmatch serve` with three repositories and max_loaded_repos=1: each question loads its repository and
    unloads the previous one; /healthz and /api/repos say which; /readyz stays 200."""
    repos = make_repos(tmp_path)
    port = _free_port()
    env = {**os.environ, "MODMATCH_HOME": str(_modmatch_home), "MODMATCH_MATCHER": "lexical",
           "MODMATCH_MAX_LOADED_REPOS": "1", "MODMATCH_POLL_INTERVAL": "0", "MODMATCH_RETRAIN_AT": "",
           "MODMATCH_REFRESH_DELAY": "0", "MODMATCH_THREADS": "1"}
    args = [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)]
    for name, g in repos.items():
        args += ["--repo", f"{name}={g.root}"]
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(args, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready():
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(url + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 180, "the service to index and build every repository")  # the first index is a job
        h = httpx.get(url + "/healthz").json()
        assert h["max_loaded"] == 1 and h["loaded"] == 1
        for name in ("alpha", "beta", "gamma", "alpha"):
            text, module = QUESTIONS[name]
            r = httpx.post(url + "/api/match", json={"text": text, "repo": name, "k": 1}, timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["matches"][0]["module"] == module
            h = httpx.get(url + "/healthz").json()
            assert h["loaded"] == 1 and h["repos"][name]["matcher"] == "ready" and h["repos"][name]["loaded"]
            assert all(v["matcher"] == "unloaded" and not v["loaded"] for k, v in h["repos"].items() if k != name)
        listed = {r["name"]: r for r in httpx.get(url + "/api/repos").json()["repos"]}
        assert listed["beta"]["status"] == "unloaded" and listed["alpha"]["status"] == "ready"
        assert httpx.get(url + "/readyz").status_code == 200
        metrics = httpx.get(url + "/metrics").text
        assert 'modmatch_repos_loaded{max="1"} 1' in metrics
        assert 'modmatch_repo_ready{repo="beta",status="unloaded"} 1' in metrics  # unloaded still answers
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- webhooks of many repositories -----------------------------------------------------------------------------
@pytest.mark.usefixtures("service_db")
def test_a_flood_of_one_repositorys_deliveries_does_not_hold_the_others_back():
    """Eight deliveries of one repository arrive first, then one each of two others: the worker takes the least
    recently served repository's oldest delivery, so the two others go second and third, not ninth and tenth."""
    from bot.github.client import GitHubClients
    from bot.github.db import GitHubDB
    from bot.github.router import Options, Router
    from bot.github.webhook import Webhook

    router, order = Router(), []

    @router.register("issues", "opened")
    def record(event, ctx):
        order.append(event.data["repository"]["full_name"])

    db = GitHubDB()
    hook = Webhook(AppState(), clients=GitHubClients(base_url="http://127.0.0.1:9", token="unused"), db=db,
                   options=Options(), router=router, autostart=False)
    arrivals = [("acme/big", i) for i in range(8)] + [("acme/small", 0), ("acme/tiny", 0)]
    for n, (repo, i) in enumerate(arrivals):
        if n >= 8:
            time.sleep(1.05)  # arrival times are kept to the second: these two arrive later than the flood
        payload = {"action": "opened", "repository": {"full_name": repo}, "issue": {"number": i}}
        assert db.enqueue_delivery(f"d-{n}", "issues", "opened", repo, json.dumps(payload).encode())
    while hook.process_next():
        pass
    assert order[:4] == ["acme/big", "acme/small", "acme/tiny", "acme/big"]
    assert order.count("acme/big") == 8 and len(order) == 10
    assert db.delivery_counts() == {"done": 10}
