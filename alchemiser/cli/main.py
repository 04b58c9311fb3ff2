"""`alchemiser`: the command line. Exit codes: 0 ok, 1 error, 2 usage, 3 config, 4 database, 5 already running."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from alchemiser import __version__
from alchemiser.cli.alerts_cmd import alerts_group
from alchemiser.cli.common import CliState
from alchemiser.cli.config_cmd import config_group
from alchemiser.cli.db_cmd import db_group
from alchemiser.cli.hedge_cmd import hedge_group
from alchemiser.cli.history_cmd import history_group
from alchemiser.cli.income_cmd import approvals_group, income_group
from alchemiser.cli.queue_cmd import queue_group
from alchemiser.cli.reconcile_cmd import reconcile_command
from alchemiser.cli.risk_cmd import risk_command
from alchemiser.cli.run_cmd import run_command
from alchemiser.cli.sim_cmd import sim_group
from alchemiser.cli.status_cmd import doctor_command, status_command
from alchemiser.cli.trading_cmd import trading_group
from alchemiser.cli.vol_index import vol_index_command
from alchemiser.exit_codes import ExitCode

EPILOG = "Exit codes: 0 ok, 1 error, 2 usage, 3 config error, 4 database error, 5 another instance running."


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ALCHEMISER_CONFIG",
    help="Config file (default: config/alchemiser.toml if present; env ALCHEMISER_CONFIG).",
)
@click.version_option(__version__, prog_name="alchemiser")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Tail hedges and option income for a leveraged US equity book."""
    ctx.obj = CliState(config_path=config_path)


cli.add_command(run_command)
cli.add_command(config_group)
cli.add_command(db_group)
cli.add_command(status_command)
cli.add_command(doctor_command)
cli.add_command(queue_group)
cli.add_command(vol_index_command)
cli.add_command(sim_group)
cli.add_command(hedge_group)
cli.add_command(income_group)
cli.add_command(approvals_group)
cli.add_command(reconcile_command)
cli.add_command(trading_group)
cli.add_command(risk_command)
cli.add_command(history_group)
cli.add_command(alerts_group)


def main() -> None:
    try:
        cli.main(prog_name="alchemiser", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.ERROR))
