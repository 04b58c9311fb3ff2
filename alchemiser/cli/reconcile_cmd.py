"""`alchemiser reconcile [--accept]`: reconcile our records with the broker once, by hand.

The daemon reconciles at start-up and after each session; this verb runs the
same reconciliation while it is stopped (it takes the daemon's single-instance
lock, so the two never work the same orders at once). Without ``--accept`` an
unexplained mismatch halts opening trades and the verb exits 1. With
``--accept`` the broker's current state is taken as the truth: our records are
adjusted to it (every change audited) and a reconciliation halt is lifted.

On the simulated broker it reads the book at the stored simulation time and
never moves it.
"""

from __future__ import annotations

import asyncio
import getpass
import sys

import click

from alchemiser.broker.base import BrokerError
from alchemiser.broker.reconcile import ReconcileReport
from alchemiser.cli.broker_access import open_trading
from alchemiser.cli.common import CliFailure, CliState, log_to_stderr, pass_state, run
from alchemiser.exit_codes import ExitCode
from alchemiser.settings import Settings
from alchemiser.store.instance_lock import instance_lock_for
from alchemiser.wiring import build_reconciler

__all__ = ["reconcile_command"]

# A reconciliation reads a few dozen things from the broker; past this, something hangs.
TIMEOUT_SECONDS = 300.0


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; the audit row still matters more
        return "unknown"


@click.command("reconcile")
@click.option(
    "--accept",
    is_flag=True,
    help="Take the broker's current state as the truth: adjust our records to it "
    "(audited) and lift a reconciliation halt.",
)
@click.option("--by", "by", default=None, help="Who accepts, for the audit (default: your login).")
@pass_state
def reconcile_command(state: CliState, accept: bool, by: str | None) -> None:
    """Reconcile orders, hedges and positions with the broker once and print the report.

    Exits 1 when a mismatch remains (trading is then halted) without --accept.
    """
    settings = state.settings()
    log_to_stderr(settings)
    report = run(_reconcile(settings, accept, by or _user()))
    for line in report.lines():
        click.echo(line)
    if report.mismatches and not accept:
        click.echo(
            "mismatches remain: opening trades are halted; fix them at the broker and run "
            "`alchemiser reconcile` again, or accept the broker's state with "
            "`alchemiser reconcile --accept`",
            err=True,
        )
        sys.exit(int(ExitCode.ERROR))


async def _reconcile(settings: Settings, accept: bool, by: str) -> ReconcileReport:
    account = settings.broker.account
    async with open_trading(settings) as services:
        url = settings.database.url.get_secret_value()
        lock = instance_lock_for(services.engine, url, account)
        if not await lock.acquire():
            raise CliFailure(
                f"a daemon is running for account {account!r} ({lock.description} is held): "
                "it reconciles at start-up and after each session. Stop it to reconcile by "
                "hand, or lift a halt with `alchemiser trading resume`",
                ExitCode.ALREADY_RUNNING,
            )
        try:
            clock = services.clock
            reconciler = build_reconciler(
                services.broker,
                services.sessions,
                clock,
                services.calendar,
                services.audit,
                services.hedging.store,
                account,
                income=services.income.store,
            )
            try:
                return await asyncio.wait_for(
                    reconciler.run(accept=accept, accepted_by=by), TIMEOUT_SECONDS
                )
            except (BrokerError, TimeoutError) as exc:
                raise CliFailure(
                    f"reconciliation incomplete, nothing was halted or accepted: {exc}"
                ) from None
        finally:
            await lock.release()
