"""`modmatch doctor`: check configuration, device, models, database and tokens; say what is missing.

    modmatch doctor
    modmatch doctor --repo core=~/src/core --json
"""
from __future__ import annotations

import json

import click


@click.command("doctor")
@click.option("--repo", "repos", multiple=True, help="name=/path to check (default: setting repos).")
@click.option("--json", "as_json", is_flag=True)
def doctor_cmd(repos: tuple[str, ...], as_json: bool) -> None:
    """Check configuration, device, models, database and tokens; say what is missing."""
    from .doctor import run_checks

    checks = run_checks(repos)
    if as_json:
        click.echo(json.dumps([c._asdict() for c in checks], indent=1))
    else:
        marks = {"ok": click.style("ok  ", fg="green"), "warn": click.style("warn", fg="yellow"),
                 "fail": click.style("FAIL", fg="red")}
        for c in checks:
            click.echo(f"{marks[c.status]} {c.name:18} {c.message}")
    if any(c.status == "fail" for c in checks):
        raise SystemExit(1)
