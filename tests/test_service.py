"""The HTTP service: the API through an in-process ASGI client, and once end to end over a real socket."""
from __future__ import annotations

import json
import re
import socket
import threading
import time

import httpx
import pytest
from starlette.testclient import TestClient

from bot.jobs import JobRunner
from bot.service import create_app
from bot.state import AppState, RepoState
from indexer.build import index

FILES = {
    "storage/cache.py": '"""Disk cache with least-recently-used eviction."""\n\nclass DiskCache:\n    def evict_lru(self):\n        """Evict the least recently used page."""\n',
    "storage/README.md": "# Storage\n\nDisk cache, LRU eviction and the write-ahead log.\n",
    "network/http_client.py": '"""HTTP client with retries."""\n\ndef retry_request(url):\n    """Retry a request with exponential backoff."""\n',
    "network/README.md": "# Network\n\nHTTP client, TLS handshake, connection pooling.\n",
    "ui/widgets.py": '"""Widgets."""\n\nclass Button:\n    """A clickable button in the dark theme."""\n',
}
TOKEN = "s3cret-token-for-tests"


def make_state(git_repo, name="core", indexed=True) -> AppState:
    git_repo.commit("initial layout", FILES)
    state = AppState()
    rs = state.add(RepoState(name, git_repo.root, matcher="lexical"))
    if indexed:
        index(git_repo.root, rs.store, full=True)
    return state


@pytest.fixture
def state(git_repo):
    return make_state(git_repo)


@pytest.fixture
def client(state, monkeypatch):
    monkeypatch.setenv("MODMATCH_API_TOKEN", TOKEN)
    return TestClient(create_app(state, body_limit=4096))


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def test_match_ranks_modules_with_versions(client):
    r = client.post("/api/match", json={"text": "LRU eviction of the disk cache", "repo": "core", "k": 3})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["repo"] == "core" and d["matcher"] == "lexical" and d["graph_version"]
    assert 1 <= len(d["matches"]) <= 3
    top = d["matches"][0]
    assert top["module"] == "storage" and 0 <= top["confidence"] <= 1 and isinstance(top["evidence"], list)
    from inference.base import percent

    assert top["percent"] == percent(top["confidence"])  # as people read it: the page shows this, not its own rounding
    assert "model_version" in d


def test_match_says_when_the_first_answer_is_below_the_label_threshold(client, monkeypatch):
    """The caution Slack and `ask` give under a first answer below the label threshold, the API gives too."""
    monkeypatch.setenv("MODMATCH_GITHUB_LABEL_THRESHOLD", "0")
    d = client.post("/api/match", json={"text": "LRU eviction of the disk cache"}).json()
    first = d["matches"][0]["confidence"]
    assert d["low_confidence"] is None and first < 1.0
    monkeypatch.setenv("MODMATCH_GITHUB_LABEL_THRESHOLD", str((first + 1.0) / 2))  # just above the first answer
    d = client.post("/api/match", json={"text": "LRU eviction of the disk cache"}).json()
    assert d["low_confidence"].startswith("low confidence: the first answer is at "), d["low_confidence"]


def test_match_bad_input(client):
    assert client.post("/api/match", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
    r = client.post("/api/match", content=b"[1, 2]")
    assert r.status_code == 400 and r.json() == {"error": "the body must be a JSON object"}
    assert client.post("/api/match", json={"text": ""}).status_code == 400
    assert client.post("/api/match", json={"text": "x", "k": 0}).status_code == 400
    assert client.post("/api/match", json={"text": "x", "k": "5"}).status_code == 400
    r = client.post("/api/match", json={"text": "x", "repo": "nope"})
    assert r.status_code == 404 and "unknown repository" in r.json()["error"]


def test_body_limit_413_while_reading(client):
    r = client.post("/api/match", content=b'{"text": "' + b"a" * 10_000 + b'"}')
    assert r.status_code == 413 and "error" in r.json()

    def chunks():  # no Content-Length: the limit applies to the bytes as they arrive
        for _ in range(10):
            yield b"x" * 1000

    r = client.post("/api/match", content=chunks())
    assert r.status_code == 413


def test_modules_and_module_ids_with_slashes(client):
    r = client.get("/api/modules", params={"repo": "core"})
    assert r.status_code == 200
    ids = {m["id"] for m in r.json()["modules"]}
    assert {"storage", "network", "ui"} <= ids
    # the service reads its graph from the store: each module's name and description as indexed, not empty
    storage = next(m for m in r.json()["modules"] if m["id"] == "storage")
    assert storage["name"] == "storage" and storage["description"], storage
    r = client.get("/api/modules/storage")
    assert r.status_code == 200 and r.json()["module"]["id"] == "storage"
    assert "storage/cache.py" in r.json()["module"]["files"]
    r = client.get("/api/modules/no/such/module")
    assert r.status_code == 404 and r.json()["error"] == "unknown module 'no/such/module'"
    assert client.get("/api/modules", params={"repo": "nope"}).status_code == 404


def test_not_indexed_is_503(git_repo, monkeypatch):
    state = make_state(git_repo, indexed=False)
    c = TestClient(create_app(state))
    r = c.post("/api/match", json={"text": "cache"})
    assert r.status_code == 503 and "not indexed" in r.json()["error"]
    assert c.get("/healthz").json()["ready"] is False


def test_write_auth(state, monkeypatch):
    monkeypatch.delenv("MODMATCH_API_TOKEN", raising=False)
    runner = JobRunner(state, refresh_delay=3600, poll_interval=0, retrain_at="")
    try:
        c = TestClient(create_app(state, runner=runner))
        r = c.post("/api/refresh", json={}, headers=auth())
        assert r.status_code == 403 and "no api_token" in r.json()["error"]  # fails closed
        monkeypatch.setenv("MODMATCH_API_TOKEN", TOKEN)
        assert c.post("/api/refresh", json={}).status_code == 401
        r = c.post("/api/refresh", json={}, headers=auth("wrong"))
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/api/feedback", json={"text": "x", "modules": ["ui"]}, headers=auth("wrong")).status_code == 401
        runner.start(paused=True)
        r = c.post("/api/refresh", json={"repo": "core"}, headers=auth())
        assert r.status_code == 202 and r.json()["queued"] == ["refresh:core"]
        assert c.post("/api/refresh", json={"repo": "nope"}, headers=auth()).status_code == 404
        r = c.post("/api/refresh", json={"path": str(state.repo().root)}, headers=auth())
        assert r.status_code == 202 and r.json()["repos"] == ["core"]
        jobs = c.get("/api/jobs").json()
        assert [j["job_id"] for j in jobs["jobs"]] == ["refresh:core"] and jobs["jobs"][0]["triggers"] == 2
        assert [p["id"] for p in jobs["pending"]] == ["refresh:core"]
    finally:
        runner.shutdown()


def test_secret_file_token(state, monkeypatch, tmp_path):
    monkeypatch.delenv("MODMATCH_API_TOKEN", raising=False)
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    monkeypatch.setenv("MODMATCH_API_TOKEN_FILE", str(f))
    c = TestClient(create_app(state))
    r = c.post("/api/feedback", json={"text": "the button is too small", "modules": ["ui"]}, headers=auth())
    assert r.status_code == 201 and r.json()["added"] is True


def test_feedback(client, state):
    r = client.post("/api/feedback", json={"text": "dark theme button", "modules": ["ui"], "key": "k1"}, headers=auth())
    assert r.status_code == 201
    r = client.post("/api/feedback", json={"text": "dark theme button", "modules": ["ui"], "key": "k1"}, headers=auth())
    assert r.status_code == 200 and r.json()["added"] is False  # idempotent by key
    r = client.post("/api/feedback", json={"text": "x", "modules": ["nope"]}, headers=auth())
    assert r.status_code == 400 and "unknown module" in r.json()["error"]
    assert client.post("/api/feedback", json={"text": "x", "modules": "ui"}, headers=auth()).status_code == 400


def test_errors_are_json(client):
    r = client.get("/api/nothing-here")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = client.get("/api/match")
    assert r.status_code == 405 and "error" in r.json()


def parse_metrics(text: str) -> dict[str, list[tuple[dict, float]]]:
    """A strict reading of the Prometheus text format (0.0.4): every line is a comment or a sample."""
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$')
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
    out: dict[str, list] = {}
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            typed.add(name)
            continue
        if line.startswith("# HELP ") or not line:
            continue
        m = sample.match(line)
        assert m, f"bad metrics line: {line!r}"
        labels = dict((k, v) for k, v, _ in label.findall(m.group(3) or ""))
        out.setdefault(m.group(1), []).append((labels, float(m.group(4))))
        assert any(m.group(1) == t or m.group(1).startswith(t + "_") for t in typed), m.group(1)
    return out


def test_metrics(client):
    client.post("/api/match", json={"text": "http retries"})
    client.get("/api/modules/storage")
    client.get("/api/modules/nothing")
    m = parse_metrics(client.get("/metrics").text)
    reqs = {(d["route"], d["status"]): v for d, v in m["modmatch_http_requests_total"]}
    assert reqs[("/api/match", "200")] == 1
    assert reqs[("/api/modules/{id:path}", "200")] == 1 and reqs[("/api/modules/{id:path}", "404")] == 1
    buckets = [v for d, v in m["modmatch_http_request_duration_seconds_bucket"] if d["route"] == "/api/match"]
    assert buckets == sorted(buckets) and buckets[-1] == 1
    (info, one), = m["modmatch_repo_info"]
    assert info["repo"] == "core" and info["graph_version"] and one == 1
    assert m["modmatch_jobs_queued"] == [({}, 0.0)]


def test_healthz_and_page(client):
    h = client.get("/healthz").json()  # no lifespan here: nothing was built yet, and health says so
    assert h["live"] is True and h["ready"] is False and h["repos"]["core"]["matcher"] == "cold"
    assert client.get("/readyz").status_code == 503
    assert client.post("/api/match", json={"text": "disk cache"}).status_code == 200  # builds it
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["ready"] is True and h["repos"]["core"]["indexed"] is True
    assert h["repos"]["core"]["matcher"] == "ready" and client.get("/readyz").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "<title>modmatch</title>" in page.text
    assert client.get("/static/app.js").status_code == 200
    model = client.get("/api/model").json()
    assert model["model"] is None and model["plots"] == []
    runs = client.get("/api/runs").json()["runs"]
    assert runs[0]["kind"] == "index" and runs[0]["status"] == "ok"


def test_model_metadata_and_plots(client, state):
    rs = state.repo()
    run = rs.models_dir / "runs" / "20250101-000000"
    (run / "report").mkdir(parents=True)
    (run / "metadata.json").write_text(json.dumps({"base_model": "smollm2-135m", "metrics": {"accuracy": 0.81}}))
    (run / "report" / "accuracy.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (rs.models_dir / "current.json").write_text(json.dumps({"run": "runs/20250101-000000"}))
    d = client.get("/api/model").json()
    assert d["model"]["metrics"]["accuracy"] == 0.81 and d["plots"] == ["accuracy.png"]
    r = client.get("/api/model/plots/accuracy.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert client.get("/api/model/plots/..%2Fmetadata.json").status_code == 404


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """A real uvicorn server on a free localhost port, in a thread."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 15
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def test_end_to_end_over_a_real_socket(state, git_repo, monkeypatch):
    monkeypatch.setenv("MODMATCH_API_TOKEN", TOKEN)
    runner = JobRunner(state, refresh_delay=0.2, poll_interval=0, retrain_at="")
    with ServerThread(create_app(state, runner=runner)) as srv:
        with httpx.Client(base_url=srv.url, timeout=10) as http:
            r = http.post("/api/match", json={"text": "TLS handshake and HTTP retries", "k": 2})
            assert r.status_code == 200 and r.json()["matches"][0]["module"] == "network"
            old = r.json()["graph_version"]
            git_repo.commit("payments", {"payment/refund.py": '"""Refund an order."""\n\ndef refund_order(o):\n    pass\n'})
            assert http.post("/api/refresh", json={"repo": "core", "reason": "test"}, headers=auth()).status_code == 202
            deadline = time.time() + 30
            while time.time() < deadline:
                jobs = http.get("/api/jobs").json()["jobs"]
                if jobs and jobs[0]["state"] in ("ok", "failed"):
                    break
                time.sleep(0.1)
            assert jobs[0]["state"] == "ok", jobs
            assert jobs[0]["duration"] is not None and jobs[0]["outcome"]["added_modules"] == ["payment"]
            r = http.post("/api/match", json={"text": "refund an order"})
            assert r.json()["graph_version"] != old and r.json()["matches"][0]["module"] == "payment"
            m = parse_metrics(http.get("/metrics").text)
            assert m["modmatch_last_refresh_timestamp_seconds"][0][1] > time.time() - 60
    assert not runner.scheduler.running  # the app's lifespan stopped the queue


def test_doctor_says_which_corrections_the_map_no_longer_learns(git_repo, monkeypatch):
    """A correction names a module; when a push removes that module (or a newer rule re-plans the map), the
    correction stays stored but is not learned, and `modmatch doctor` says so instead of dropping it silently."""
    from click.testing import CliRunner

    from bot.doctor_cmd import doctor_cmd
    from indexer.build import refresh

    state = make_state(git_repo)
    rs = state.repos["core"]
    assert rs.add_feedback("buttons look wrong in the dark theme", ["ui"], "api")
    assert rs.add_feedback("pages evicted too early", ["storage"], "api")
    monkeypatch.setenv("MODMATCH_REPOS", f"core={git_repo.root}")

    def check() -> dict:
        r = CliRunner().invoke(doctor_cmd, ["--json"])
        return next(c for c in json.loads(r.output) if c["name"] == "corrections core")

    assert check() == {"name": "corrections core", "status": "ok",
                       "message": "2 correction(s), all naming modules of the map"}
    git_repo.commit("drop the widgets", delete=["ui"])
    refresh(git_repo.root, rs.store)
    c = check()
    assert c["status"] == "warn" and c["message"].startswith("1 of 2 correction(s) name modules the map no longer "
                                                             "has (ui): kept")
    assert len(rs.feedback()) == 2  # nothing was deleted
    # a service database that cannot be read is said in this check, and the repository stays healthy
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    monkeypatch.setenv("MODMATCH_DATABASE_URL", f"postgresql+psycopg://nobody@127.0.0.1:{closed_port}/none")
    r = CliRunner().invoke(doctor_cmd, ["--json"])
    checks = {c["name"]: c for c in json.loads(r.output)}
    assert checks["corrections core"]["status"] == "warn"
    assert checks["corrections core"]["message"].startswith("could not read the corrections")
    assert checks["repo core"]["status"] == "ok"


def test_repos_setting_and_doctor_never_print_secrets(git_repo, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from bot.clibase import parse_repos
    from bot.doctor_cmd import doctor_cmd

    a, b = tmp_path / "a", tmp_path / "b"
    assert parse_repos(["core=" + str(a) + ", " + str(b)]) == {"core": a.resolve(), "b": b.resolve()}
    with pytest.raises(Exception):
        parse_repos([f"x={a},x={b}"])
    git_repo.commit("initial", FILES)
    monkeypatch.setenv("MODMATCH_REPOS", f"core={git_repo.root}")
    monkeypatch.setenv("MODMATCH_API_TOKEN", TOKEN)
    r = CliRunner().invoke(doctor_cmd, [])
    assert TOKEN not in r.output
    assert "api_token" in r.output and "set (environment)" in r.output
    assert "not indexed yet" in r.output and "database" in r.output and "device" in r.output
    assert r.exit_code == 0, r.output
    monkeypatch.setenv("MODMATCH_RETRAIN_AT", "25:99")
    assert CliRunner().invoke(doctor_cmd, []).exit_code == 1


def test_after_an_upgrade_the_earlier_build_answers_while_this_one_builds(git_repo, monkeypatch):
    """A matcher cached by another version of modmatch for the same graph answers at once (its code suffix differs,
    as after an upgrade) while this code's build runs; then the new build takes over and the old file goes. A cached
    file that does not load is not served: the service waits for its build as before."""
    state = make_state(git_repo)
    first = state.repos["core"]
    first.matcher()  # this code's build, cached
    folder = first._cache_dir
    [built] = folder.glob("lexical-*.pkl")
    earlier = built.with_name(built.name[: -len("0123456789.pkl")] + "0123456789.pkl")
    built.rename(earlier)  # as if an earlier modmatch had built it

    gate = threading.Event()
    build = RepoState._build_matcher
    monkeypatch.setattr(RepoState, "_build_matcher", lambda self, graph: (gate.wait(60), build(self, graph))[1])
    monkeypatch.setenv("MODMATCH_API_TOKEN", TOKEN)
    upgraded = AppState()
    rs = upgraded.add(RepoState("core", git_repo.root, matcher="lexical"))
    client = TestClient(create_app(upgraded, body_limit=4096))
    pending = rs.warm()
    deadline = time.monotonic() + 30
    while rs.status != "ready" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pending.done()  # this code's build waits at the gate
    r = client.post("/api/match", json={"text": "evict the least recently used page", "repo": "core"})
    assert r.status_code == 200, r.text
    assert r.json()["matches"][0]["module"] == "storage"
    assert client.get("/healthz").json()["repos"]["core"]["reloading"] is True
    gate.set()
    pending.result(timeout=60)
    assert "reloading" not in client.get("/healthz").json()["repos"]["core"]
    assert rs.matcher()[0] is not None and not earlier.exists()  # the new build replaced the earlier one's file
    assert len(list(folder.glob("lexical-*.pkl"))) == 1

    # an earlier build that does not load is not served: the first question waits for this code's build
    [built] = folder.glob("lexical-*.pkl")
    built.rename(earlier)
    earlier.write_bytes(b"not a pickle")
    gate.clear()
    again = RepoState("core", git_repo.root, matcher="lexical")
    pending = again.warm()
    time.sleep(0.5)
    assert again.status == "building" and not again.loaded
    gate.set()
    pending.result(timeout=60)
    assert again.status == "ready"
