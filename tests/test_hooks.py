"""Git hooks, with real git: install, chain an existing hook, fire on merge/checkout/rewrite/push, uninstall."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from bot import hooks
from bot.hooks_cmd import hooks_group
from click.testing import CliRunner
from waiting import wait_for as _wait_for


def wait_for(fn, timeout=20.0):
    return _wait_for(fn, timeout, "the hook")


class Recorder(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Recorder.seen.append((self.path, self.headers.get("Authorization"), json.loads(body)))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def service(monkeypatch):
    """A local HTTP server standing in for `modmatch serve`; the hooks find it through MODMATCH_URL."""
    Recorder.seen = []
    srv = HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("MODMATCH_URL", f"http://127.0.0.1:{srv.server_port}")
    monkeypatch.setenv("MODMATCH_API_TOKEN", "tok")
    yield Recorder.seen
    srv.shutdown()


def test_install_fires_on_checkout_merge_rewrite_and_uninstall_restores(git_repo, service, tmp_path):
    git_repo.commit("initial", {"a.py": "x = 1\n"})
    hooks_dir = git_repo.root / ".git" / "hooks"
    existing = hooks_dir / "post-merge"
    marker = tmp_path / "existing-ran"
    original = f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 3\n"
    existing.write_text(original)
    existing.chmod(0o755)

    r = CliRunner().invoke(hooks_group, ["install", str(git_repo.root)])
    assert r.exit_code == 0, r.output
    assert "the existing hook runs first" in r.output
    assert hooks.status(git_repo.root) == {"post-merge": "modmatch (chaining)", "post-checkout": "modmatch",
                                           "post-rewrite": "modmatch"}
    assert (hooks_dir / "post-merge.modmatch-chained").read_text() == original

    git_repo.git("checkout", "-q", "-b", "feature")  # post-checkout, a branch switch
    wait_for(lambda: any(b["reason"] == "hook:post-checkout" for _, _, b in service))
    path, token, body = service[0]
    assert path == "/api/refresh" and token == "Bearer tok" and body["path"] == str(git_repo.root.resolve())

    git_repo.commit("feature work", {"b.py": "y = 2\n"})
    git_repo.git("commit", "-q", "--amend", "-m", "feature work, amended")  # post-rewrite (stdin: old new)
    wait_for(lambda: any(b["reason"] == "hook:post-rewrite" for _, _, b in service))
    git_repo.git("checkout", "-q", "main")
    git_repo.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")  # post-merge, chained
    wait_for(lambda: any(b["reason"] == "hook:post-merge" for _, _, b in service))
    assert marker.read_text().strip() == "0"  # the existing hook ran, with git's argument (not a squash)

    wait_for(lambda: sum(b["reason"] == "hook:post-checkout" for _, _, b in service) == 2)  # `checkout main`
    n = len(service)
    git_repo.git("checkout", "-q", "--", "a.py")  # a checkout of files: nothing to refresh
    time.sleep(0.5)
    assert len(service) == n

    r = CliRunner().invoke(hooks_group, ["uninstall", str(git_repo.root)])
    assert r.exit_code == 0, r.output
    assert existing.read_text() == original and os.access(existing, os.X_OK)
    assert sorted(p.name for p in hooks_dir.iterdir() if not p.name.endswith(".sample")) == ["post-merge"]
    assert hooks.status(git_repo.root) == {"post-merge": "other"}


def test_hook_never_blocks_or_fails_git(git_repo, monkeypatch, tmp_path):
    """No service listens: the hook falls back to the refresh command, in the background; git returns at once."""
    git_repo.commit("initial", {"a.py": "x = 1\n"})
    marker = tmp_path / "refreshed"
    slow = tmp_path / "refresh.sh"
    slow.write_text(f"#!/bin/sh\nsleep 3\necho \"$1\" > {marker}\nexit 1\n")
    slow.chmod(0o755)
    monkeypatch.setenv("MODMATCH_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MODMATCH_HOOK_COMMAND", f"{slow} {{path}}")
    log = tmp_path / "hooks.log"
    monkeypatch.setenv("MODMATCH_HOOK_LOG", str(log))
    hooks.install(git_repo.root)
    t0 = time.time()
    git_repo.git("checkout", "-q", "-b", "other")
    assert time.time() - t0 < 2.5  # git did not wait for the slow refresh
    wait_for(lambda: marker.exists() and marker.read_text().strip())
    assert marker.read_text().strip() == str(git_repo.root.resolve())
    wait_for(lambda: log.exists() and "rc=1" in log.read_text())
    assert "unreachable" in log.read_text()
    assert "tok" not in log.read_text()


def test_server_hook_in_bare_repository(git_repo, service, tmp_path):
    git_repo.commit("initial", {"a.py": "x = 1\n"})
    bare = tmp_path / "central.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(git_repo.root), str(bare)], check=True)
    done = hooks.install(bare, server=True)
    assert [d.split(": ")[1] for d in done] == ["installed"] and (bare / "hooks" / "post-receive").exists()
    git_repo.git("remote", "add", "origin", str(bare))
    git_repo.commit("pushed", {"b.py": "y = 2\n"})
    git_repo.git("push", "-q", "origin", "main")
    wait_for(lambda: service)
    assert service[0][2] == {"path": str(bare.resolve()), "reason": "hook:post-receive"}
    assert hooks.uninstall(bare) == [f"{bare.resolve() / 'hooks' / 'post-receive'}: removed"]


def test_reinstall_is_idempotent_and_foreign_hook_survives(git_repo):
    git_repo.commit("initial", {"a.py": "x = 1\n"})
    hooks.install(git_repo.root)
    assert all("updated" in line for line in hooks.install(git_repo.root))
    d = git_repo.root / ".git" / "hooks"
    assert not list(d.glob("*.modmatch-chained"))
    (d / "post-checkout").write_text("#!/bin/sh\necho someone else\n")  # replaced by another tool
    out = hooks.uninstall(git_repo.root)
    assert (d / "post-checkout").exists() and not (d / "post-merge").exists()
    assert len(out) == 2
