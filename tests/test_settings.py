"""The settings table: every setting documented, secrets never shown, files for secrets."""
from __future__ import annotations

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


def test_models_dir_is_one_folder_per_repository(tmp_path):
    a, b = tmp_path / "a" / "repo", tmp_path / "b" / "repo"
    assert settings.models_dir(a) != settings.models_dir(b)
    assert settings.models_dir(a).parent == settings.home() / "models"
