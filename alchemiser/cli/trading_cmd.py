"""`alchemiser trading status|resume`: the persisted trading state of the account.

``ACTIVE`` lets the daemon open positions; ``HALTED`` (a reconciliation
mismatch, or an operator) and the risk engine's ``REDUCING`` / ``EMERGENCY``
refuse opening orders and let closing ones through. The state lives in the
database, so these verbs work while the daemon runs: it reads the state
before every order.
"""

from __future__ import annotations

import getpass
from datetime import datetime

import click

from alchemiser.cli.broker_access import trading_clock
from alchemiser.cli.common import CliState, open_database, pass_state, run
from alchemiser.clock import NEW_YORK
from alchemiser.settings import Settings
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import session_factory
from alchemiser.store.reconcile_state import (
    ExternalPositionView,
    TradingMode,
    TradingStateStore,
    TradingStateView,
)
from alchemiser.trading_calendar import nyse_calendar

__all__ = ["trading_group"]


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; the audit row still matters more
        return "unknown"


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M %Z")


@click.group("trading")
def trading_group() -> None:
    """Whether the daemon may open positions: status and resume."""


@trading_group.command("status")
@pass_state
def status_command(state: CliState) -> None:
    """The trading state, why and since when, the last reconciliation and external positions."""
    settings = state.settings()
    current, externals = run(_status(settings))
    click.echo(f"account:          {current.account}")
    line = f"trading:          {current.state.value}"
    if current.state is not TradingMode.ACTIVE:
        line += " (opening orders refused; closing orders pass)"
    click.echo(line)
    if current.reason:
        click.echo(f"reason:           {current.reason}")
    if current.since is not None:
        click.echo(f"since:            {_when(current.since)} (by {current.changed_by})")
    click.echo(f"last reconciled:  {_when(current.last_reconciled_at)}")
    if current.accepted_by:
        click.echo(f"last accepted:    {_when(current.accepted_at)} by {current.accepted_by}")
    if externals:
        click.echo("external option positions (adopted, never managed):")
        for e in externals:
            click.echo(f"  {e.symbol:<22} {e.qty:>8}  since {_when(e.first_seen)}  {e.note}")
    else:
        click.echo("external option positions: none")
    if current.state is not TradingMode.ACTIVE:
        click.echo("lift it with `alchemiser trading resume` (or `alchemiser reconcile --accept`)")


async def _status(settings: Settings) -> tuple[TradingStateView, list[ExternalPositionView]]:
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = await trading_clock(settings, sessions, nyse_calendar())
        store = TradingStateStore(sessions, clock, settings.broker.account)
        return await store.trading_state(), await store.external_positions()


@trading_group.command("resume")
@click.option("--reason", default="", help="Why trading may resume (kept in the audit).")
@click.option("--by", "by", default=None, help="Who resumes, for the audit (default: your login).")
@pass_state
def resume_command(state: CliState, reason: str, by: str | None) -> None:
    """Lift a halt: opening orders are allowed again (audited)."""
    settings = state.settings()
    before, after = run(_resume(settings, by or _user(), reason.strip()))
    if before.state is TradingMode.ACTIVE:
        click.echo("trading is already ACTIVE: nothing to resume")
        return
    click.echo(
        f"trading resumed: {before.state.value} -> {after.state.value} "
        f"(was: {before.reason or 'no reason recorded'})"
    )


async def _resume(
    settings: Settings, by: str, reason: str
) -> tuple[TradingStateView, TradingStateView]:
    account = settings.broker.account
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = await trading_clock(settings, sessions, nyse_calendar())
        store = TradingStateStore(sessions, clock, account)
        audit = AuditLog(sessions, clock, account)
        before = await store.trading_state()
        if before.state is TradingMode.ACTIVE:
            return before, before
        async with store.transaction() as s:
            after = await store.resume(by, reason=reason or "resumed by an operator", session=s)
            await audit.record(
                "TRADING_RESUMED",
                details={
                    "by": by,
                    "via": "trading resume",
                    "reason": reason,
                    "previous_state": before.state.value,
                    "previous_reason": before.reason,
                    "previous_since": before.since,
                },
                session=s,
            )
        return before, after
