"""The layers of ARCHITECTURE.md, checked by import-linter: indexer <- inference <- trainer <- bot, no cycles.

The contracts live in pyproject.toml ([tool.importlinter]); this runs `lint-imports` on the tree, and on a small
tree that breaks both contracts, to show that the check can fail.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"  # the test extra installs import-linter (scripts/setup)


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    assert LINT.is_file(), "import-linter is not installed: pip install -e '.[test]'"
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_layers_and_acyclic_contracts_hold():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 kept, 0 broken" in r.stdout


def test_the_contracts_catch_an_arrow_against_the_layers_and_a_cycle(tmp_path):
    files = {
        "indexer/__init__.py": "", "indexer/graph.py": "import bot.cli\n",  # indexer imports bot: against the arrows
        "inference/__init__.py": "", "trainer/__init__.py": "",
        "bot/__init__.py": "", "bot/cli.py": "from . import serve_cmd\n",
        "bot/serve_cmd.py": "def main():\n    from . import cli  # imports back\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    r = _lint(tmp_path)
    assert r.returncode != 0 and "0 kept, 2 broken" in r.stdout, r.stdout + r.stderr
    assert "indexer is not allowed to import bot" in r.stdout and "indexer.graph -> bot.cli" in r.stdout
    assert "No cycles are allowed in bot" in r.stdout and ".serve_cmd -> .cli" in r.stdout
