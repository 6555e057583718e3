"""The settings table: every setting documented, secrets never shown, files for secrets."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from click.testing import CliRunner

from bot import settings
from bot.cli import cli


def test_every_setting_is_documented_and_listed():
    names = [s.name for s in settings.SETTINGS]
    assert len(names) == len(set(names))
    out = CliRunner().invoke(cli, ["settings"]).output
    for s in settings.SETTINGS:
        assert s.help.strip(), f"setting {s.name} has no help"
        assert f"MODMATCH_{s.name.upper()}" in out


def test_secrets_come_from_env_or_file_and_are_never_printed(tmp_path, monkeypatch):
    secret = next(s for s in settings.SETTINGS if s.secret)
    env = f"MODMATCH_{secret.name.upper()}"
    assert settings.get(secret.name) is None  # no default: a missing secret fails closed
    f = tmp_path / "secret"
    f.write_text("s3cr3t-from-file\n")
    f.chmod(0o600)
    monkeypatch.setenv(env + "_FILE", str(f))
    assert settings.get(secret.name) == "s3cr3t-from-file"
    monkeypatch.setenv(env, "s3cr3t-from-env")
    assert settings.get(secret.name) == "s3cr3t-from-env"
    out = CliRunner().invoke(cli, ["settings"]).output
    assert "s3cr3t" not in out


def test_model_store_is_one_folder_per_repository(tmp_path):
    from bot.state import RepoState

    a, b = tmp_path / "a" / "repo", tmp_path / "b" / "repo"
    assert settings.model_store(a) != settings.model_store(b)
    assert settings.model_store(a).root.parent == settings.home() / "models"
    a.mkdir(parents=True)
    assert RepoState("repo", a).models == settings.model_store(a)  # the service and the CLI agree


# --- configuration is read once, in bot/settings.py -------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("indexer", "inference", "trainer", "bot")


def _env_reads(tree: ast.AST):
    """(line, key expression) of every read of one environment variable: os.environ.get(k), os.getenv(k),
    os.environ[k], k in os.environ."""
    def is_environ(n):
        return isinstance(n, ast.Attribute) and n.attr == "environ"

    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and n.args and (
                (isinstance(n.func, ast.Attribute) and n.func.attr in ("get", "pop") and is_environ(n.func.value))
                or (isinstance(n.func, ast.Attribute) and n.func.attr == "getenv")):
            yield n.lineno, n.args[0]
        elif isinstance(n, ast.Subscript) and is_environ(n.value) and isinstance(n.ctx, ast.Load):
            yield n.lineno, n.slice
        elif isinstance(n, ast.Compare) and any(is_environ(c) for c in n.comparators):
            yield n.lineno, n.left


def test_no_modmatch_variable_is_read_outside_settings():
    """The engines take parameters; bot/ reads MODMATCH_* only through bot/settings.py. A read whose name is not
    a literal could be one, so it counts too."""
    bad = []
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            if f == ROOT / "bot" / "settings.py":
                continue
            for line, key in _env_reads(ast.parse(f.read_text(encoding="utf-8"))):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)
                        and not key.value.startswith("MODMATCH_")):
                    bad.append(f"{f.relative_to(ROOT)}:{line}: {ast.unparse(key)}")
    assert not bad, "environment read outside bot/settings.py:\n" + "\n".join(bad)


def test_the_check_finds_a_read():
    """The scan above is not blind: each form of read is found."""
    code = ("import os\nos.environ.get('MODMATCH_X')\nos.getenv(name)\nos.environ['MODMATCH_Y']\n"
            "'MODMATCH_Z' in os.environ\nos.environ.get('HF_HUB_OFFLINE')\n")
    keys = [ast.unparse(k) for _, k in _env_reads(ast.parse(code))]
    assert keys == ["'MODMATCH_X'", "name", "'MODMATCH_Y'", "'MODMATCH_Z'", "'HF_HUB_OFFLINE'"]


def test_every_variable_the_code_and_docs_name_is_a_setting():
    """`modmatch settings` lists everything: no MODMATCH_<NAME> in the code or the guides lacks a table entry
    (MODMATCH_TEST_* configure the test suite, not modmatch)."""
    known = {settings.env_name(s.name) for s in settings.SETTINGS}
    files = [f for pkg in PACKAGES for f in (ROOT / pkg).rglob("*.py")]
    files += [ROOT / "README.md", *(ROOT / "deploy").iterdir()]
    missing = {}
    for f in files:
        for var in re.findall(r"MODMATCH_[A-Z0-9_]+", f.read_text(encoding="utf-8", errors="replace")):
            if var.removesuffix("_FILE") not in known and not var.startswith("MODMATCH_TEST_"):  # tests' own
                missing.setdefault(var, str(f.relative_to(ROOT)))
    assert not missing, missing


def test_compute_config_is_read_once_from_the_settings(monkeypatch):
    from inference.config import ComputeConfig, cpu_threads

    assert settings.compute() == ComputeConfig()  # the table's defaults are the engines' defaults
    for k, v in {"DEVICE": "CPU", "DTYPE": "bf16", "THREADS": "3", "FAST_LM": "false", "CPU_WEIGHTS": "fp32"}.items():
        monkeypatch.setenv(f"MODMATCH_{k}", v)
    c = settings.compute()
    assert c == ComputeConfig(device="cpu", dtype="bf16", threads=3, fast_lm=False, cpu_weights="fp32")
    assert c.fp16_weights is False and cpu_threads(c.threads) == 3
    monkeypatch.setenv("MODMATCH_THREADS", "many")  # not a number: the policy decides
    assert settings.compute().threads is None and cpu_threads(None) >= 1


def test_typed_getters(monkeypatch):
    monkeypatch.setenv("MODMATCH_PORT", "9000")
    monkeypatch.setenv("MODMATCH_MATCH_WAIT", "2.5")
    monkeypatch.setenv("MODMATCH_GITHUB_COMMENT", "")  # blank: the default (true)
    monkeypatch.setenv("MODMATCH_OPEN_READS", "yes")
    assert settings.get_int("port", 1) == 9000 and settings.get_float("match_wait") == 2.5
    assert settings.get_bool("github_comment") and settings.get_bool("open_reads")
    monkeypatch.setenv("MODMATCH_PORT", "eighty")
    assert settings.get_int("port", 8750) == 8750


def test_each_typed_setting_is_checked_as_its_kind(monkeypatch):
    """The table declares a setting's kind once; `problem()` (which `modmatch doctor` reports) checks it."""
    assert all(settings.problem(s.name) is None for s in settings.SETTINGS)  # the defaults parse
    bad = {"PORT": "eighty", "MATCH_WAIT": "soon", "FAST_LM": "maybe", "RETRAIN_AT": "25:00",
           "GITHUB_LABEL_THRESHOLD": "high"}
    for k, v in bad.items():
        monkeypatch.setenv(f"MODMATCH_{k}", v)
    found = {s.name: settings.problem(s.name) for s in settings.SETTINGS if settings.problem(s.name)}
    assert set(found) == {k.lower() for k in bad}
    assert found["fast_lm"] == "MODMATCH_FAST_LM='maybe' is not true or false"
    from bot.doctor import _settings

    assert {c.name for c in _settings() if c.status == "fail"} == set(found)
    for k, v in {"PORT": "80", "MATCH_WAIT": "2.5", "FAST_LM": "off", "RETRAIN_AT": "23:59",
                 "GITHUB_LABEL_THRESHOLD": "auto"}.items():
        monkeypatch.setenv(f"MODMATCH_{k}", v)
    assert [c.status for c in _settings()] == ["ok"]


def test_typed_getters_are_used_on_settings_of_that_kind():
    """bot/ reads an int setting with get_int, a bool with get_bool, ...: the kind in the table is the truth."""
    want = {"get_int": {"int"}, "get_float": {"number", "int"}, "get_bool": {"bool"},
            "get_auto_float": {"auto-number"}}
    kinds = {s.name: s.kind for s in settings.SETTINGS}
    seen, wrong = 0, []
    for f in (ROOT / "bot").rglob("*.py"):
        for n in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in want
                    and n.args and isinstance(n.args[0], ast.Constant)):
                seen += 1
                if kinds.get(n.args[0].value) not in want[n.func.attr]:
                    wrong.append(f"{f.relative_to(ROOT)}:{n.lineno}: {n.func.attr}({n.args[0].value!r})")
    assert seen >= 10 and not wrong, wrong
