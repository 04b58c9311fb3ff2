"""`alchemiser run`: the daemon in the foreground (systemd and docker run it this way)."""

from __future__ import annotations

import asyncio
import sys

import click

from alchemiser.cli.common import CliState, pass_state
from alchemiser.daemon import Daemon


@click.command("run")
@pass_state
def run_command(state: CliState) -> None:
    """Start the daemon; runs until SIGTERM or Ctrl-C, then stops cleanly."""
    loaded = state.loaded()
    code = asyncio.run(Daemon(loaded).run())
    sys.exit(code)
