"""`modmatch settings`: every setting, its environment variable, value (secrets hidden) and help."""
from __future__ import annotations

import click

from . import settings


@click.command("settings")
def settings_cmd() -> None:
    """Every setting, its environment variable, default and help."""
    for s in settings.SETTINGS:
        val = "(secret)" if s.secret else settings.get(s.name)
        click.echo(f"{settings.env_name(s.name):27} {val!s:28} {s.help}")
