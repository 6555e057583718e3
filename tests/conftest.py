"""Shared fixtures: a private MODMATCH_HOME for every test, and real git repositories in temp folders."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _modmatch_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MODMATCH_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home


class GitRepo:
    """A real git repository in a temp folder, with controllable commit dates."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._n = 0
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, env: dict | None = None) -> str:
        e = {**os.environ, "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
             "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com", "GIT_CONFIG_NOSYSTEM": "1",
             "HOME": str(self.root.parent), **(env or {})}
        return subprocess.run(["git", "-C", str(self.root), *args], check=True, capture_output=True, text=True, env=e).stdout

    def write(self, files: dict[str, str | bytes]) -> None:
        for rel, content in files.items():
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content, encoding="utf-8")

    def commit(self, message: str, files: dict[str, str | bytes] | None = None, *, delete: list[str] = (),
               date: str | None = None, author: str = "Dev", email: str = "dev@example.com") -> str:
        if files:
            self.write(files)
        for rel in delete:
            self.git("rm", "-q", "-r", rel)
        self.git("add", "-A")
        self._n += 1
        date = date or f"2024-01-{min(self._n, 28):02d}T12:00:00+00:00"
        env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email}
        self.git("commit", "-q", "--allow-empty", "-m", message, env=env)
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture
def git_repo(tmp_path):
    return GitRepo(tmp_path / "repo")


# --- the service database, on SQLite and on PostgreSQL ---------------------------------------------------------
POSTGRES_ENV = "MODMATCH_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _service_engines_closed():
    """Engines a test opened on its service database are closed after it (each test has its own home)."""
    yield
    import sys

    servicedb = sys.modules.get("bot.servicedb")
    if servicedb is not None:
        for url in list(servicedb._OPEN):
            servicedb.forget(url)


@pytest.fixture(scope="session")
def _postgres_admin():
    """An engine on the PostgreSQL server of MODMATCH_TEST_POSTGRES_URL (.ci/run starts one). Without it the
    PostgreSQL cases are skipped on a developer's machine and fail in CI (CI=true): never green by skipping."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"{POSTGRES_ENV} is not set: CI must run the PostgreSQL cases (.ci/run starts a server)")
        pytest.skip(f"{POSTGRES_ENV} is not set (PostgreSQL cases run in CI; see .ci/run)")
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(_postgres_admin):
    """A fresh, empty PostgreSQL database for this test, dropped after it."""
    import uuid

    import sqlalchemy as sa

    name = f"modmatch_t_{uuid.uuid4().hex[:12]}"
    with _postgres_admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = _postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    from bot import servicedb

    servicedb.forget(url)
    with _postgres_admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def service_db(request, monkeypatch, _modmatch_home):
    """The service database both ways: SQLite under the test's home (the default), or a fresh PostgreSQL database
    through MODMATCH_DATABASE_URL, as an operator sets it. Yields the URL."""
    if request.param == "sqlite":
        monkeypatch.delenv("MODMATCH_DATABASE_URL", raising=False)
        yield f"sqlite:///{_modmatch_home / 'service.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("MODMATCH_DATABASE_URL", url)
        yield url
