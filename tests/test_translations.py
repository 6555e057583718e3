"""Translations of the documentation (`docs/zh`, `docs/ja`, ...) hold the words of a language the code does not:
a question asked in that language must still reach the code, unless it is about the translation.

One real git repository laid out like FastAPI: the library in `fastapi/`, its documentation in English and in three
translations, and a history of code changes and translation changes."""
from __future__ import annotations

import random

import pytest

from inference.base import create
from inference.evidence import about_translation
from indexer.build import index
from indexer.modules import translation_folders, translation_modules
from indexer.store import Store
from conftest import GitRepo

DOCS = {
    "en": "# Dependencies\n\nDependency injection: a dependency is solved once per request and its value cached for "
          "sub-dependencies. Security and background tasks use dependencies too.\n",
    "zh": "# 依赖项\n\n依赖注入：每个请求只解析一次依赖项，并为子依赖缓存它的值。安全和后台任务也使用依赖项。\n",
    "ja": "# 依存関係\n\n依存性注入：依存関係はリクエストごとに一度だけ解決され、その値はサブ依存関係のためにキャッシュされます。\n",
    "de": "# Abhängigkeiten\n\nDependency Injection: eine Abhängigkeit wird pro Request einmal aufgelöst und ihr Wert "
          "für Unterabhängigkeiten zwischengespeichert.\n",
}
CODE = {
    "fastapi/dependencies.py": "def solve_dependencies(request):\n    '''Solve the dependency tree, caching values.'''\n",
    "fastapi/routing.py": "class APIRouter:\n    def include_router(self, router):\n        pass\n",
    "fastapi/background.py": "class BackgroundTasks:\n    def add_task(self, func):\n        pass\n",
    "fastapi/security.py": "class OAuth2PasswordBearer:\n    pass\n",
}
CODE_CHANGES = ["Fix dependency cache for sub-dependencies", "Solve dependencies once per request",
                "Fix background tasks added in dependencies", "Fix include_router losing the dependency overrides",
                "Cache dependency values with use_cache", "Fix security dependencies in routers"]


@pytest.fixture(scope="module")
def docs_repo(tmp_path_factory):
    repo = GitRepo(tmp_path_factory.mktemp("tr") / "repo")
    files = dict(CODE)
    for lang, text in DOCS.items():  # enough pages that each language's documentation is a module of its own
        for page in ("dependencies", "security", "background-tasks", *(f"tutorial-{i}" for i in range(22))):
            files[f"docs/{lang}/docs/{page}.md"] = text
    repo.commit("initial layout", files, date="2024-01-01T12:00:00+00:00")
    rnd = random.Random(3)
    names = {"zh": "Chinese", "ja": "Japanese", "de": "German"}
    for i in range(150):
        if i % 3:
            path = rnd.choice(sorted(CODE))
            text = rnd.choice(CODE_CHANGES)
        else:
            lang = rnd.choice(sorted(names))
            path = f"docs/{lang}/docs/dependencies.md"
            text = f"🌐 Update {names[lang]} translation for docs/{lang}/docs/dependencies.md"
        files[path] += f"\n<!-- {i} -->\n"
        repo.commit(text, {path: files[path]}, date=f"2024-{1 + i // 28:02d}-{1 + i % 28:02d}T12:00:00+00:00")
    root = repo.root
    g = index(root, Store(tmp_path_factory.mktemp("store") / "db.sqlite")).graph
    return g, create("hybrid", g), root


def test_translation_folders_are_found_by_their_language_tags():
    ids = ["docs/en/docs", "docs/zh/docs", "docs/zh-hant/docs", "docs/ja/docs/advanced", "fastapi", "src/it",
           "src/main", "src/test", "web/locales/pt-BR", "web/locales/de", "web/locales/en", "lib/go", "lib/js",
           "lib/py"]
    assert translation_modules(ids) == {"docs/zh/docs": "zh", "docs/zh-hant/docs": "zh", "docs/ja/docs/advanced": "ja",
                                        "web/locales/pt-BR": "pt", "web/locales/de": "de"}
    assert translation_modules(["src/it", "src/de", "src/main"]) == {}  # two tags are no set of translations
    assert translation_folders(ids) == ["docs/ja", "docs/zh", "docs/zh-hant", "web/locales/de", "web/locales/pt-BR"]


def test_a_question_in_chinese_reaches_the_code_not_the_chinese_documentation(docs_repo):
    g, m, _ = docs_repo
    assert translation_modules(list(g.modules)) == {"docs/zh": "zh", "docs/ja": "ja", "docs/de": "de"}
    first = m.match("依赖注入的缓存在子依赖中不生效", k=3)
    assert first[0].module == "fastapi", [(x.module, x.confidence) for x in first]
    shown = {x.module: x for x in m.match("依赖注入的缓存在子依赖中不生效", k=len(g.modules))}
    assert any("a translation (zh)" in e for e in shown["docs/zh"].evidence)
    # about the translation: the Chinese documentation is the answer
    assert m.match("中文文档里依赖注入那一节的翻译有错别字", k=1)[0].module == "docs/zh"
    assert m.match("🌐 Update Japanese translation for docs/ja/docs/dependencies.md", k=1)[0].module == "docs/ja"


@pytest.mark.parametrize("text,about", [
    ("🌐 Add Chinese translation for docs/zh/docs/index.md", True), ("typo in the docs", True),
    ("中文文档有错别字", True), ("依赖注入的缓存在子依赖中不生效", False), ("Fix the dependency cache", False),
])
def test_about_translation(text, about):
    assert about_translation(text) is about


def test_doctor_names_the_translations(docs_repo, monkeypatch):
    """An operator sees why `docs/zh` is not the answer to a question asked in Chinese."""
    import json

    from click.testing import CliRunner

    from bot.cli import cli

    _, _, root = docs_repo
    monkeypatch.setenv("MODMATCH_REPOS", f"api={root}")
    assert CliRunner().invoke(cli, ["index", str(root), "--no-matcher"]).exit_code == 0
    r = CliRunner().invoke(cli, ["doctor", "--json"])
    repo = next(c for c in json.loads(r.stdout) if c["name"] == "repo api")
    assert repo["message"].endswith("translations, answered first only for texts about translations or the "
                                    "documentation: docs/de/, docs/ja/, docs/zh/")
