"""The `modmatch` command: the group and its options; each command lives in its own module (`bot/*_cmd.py`),
which imports shared helpers from `bot/clibase.py`, never from here.

Getting started::

    modmatch index .                       # build the module graph of this repository
    modmatch modules                       # the module tree with sizes and descriptions
    modmatch show src/layer                # files, symbols, keywords, dependencies, history
    modmatch ask "crash in the vulkan conv shader"   # which modules does this touch?
    modmatch eval --history --cutoff 2025-06-01 .     # measure it on your own history
"""
from __future__ import annotations

import logging
import os
import sys

import click

from . import settings
from .ask_cmd import ask_cmd
from .doctor_cmd import doctor_cmd
from .eval_cmd import eval_cmd
from .hooks_cmd import hooks_group
from .index_cmd import index_cmd, refresh_cmd
from .modules_cmd import modules_cmd, show_cmd
from .serve_cmd import serve_cmd
from .settings_cmd import settings_cmd
from .train_cmd import train_cmd


@click.group()
@click.version_option(package_name="modmatch")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens.")
def cli(verbose: bool) -> None:
    """modmatch: which modules of this repository does a requirement touch?

    Start with `modmatch index PATH`, then `modmatch ask "requirement"`.
    Data lives under $MODMATCH_HOME (see `modmatch settings`).
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    if not verbose:  # the libraries' own progress bars and notices are noise in a CLI that shows its own
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from indexer.text import configure_segmenter

    configure_segmenter(settings.home() / "cache")  # jieba's dictionary cache beside the rest of the data


for _cmd in (index_cmd, refresh_cmd, modules_cmd, show_cmd, ask_cmd, eval_cmd, train_cmd, serve_cmd, hooks_group,
             doctor_cmd, settings_cmd):
    cli.add_command(_cmd)


def main() -> None:  # pragma: no cover - console entry point
    cli(prog_name="modmatch")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
