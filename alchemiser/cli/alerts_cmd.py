"""`alchemiser alerts list|ack`: the persisted alerts of the account.

Works while the daemon runs: acknowledging writes the row the daemon's
escalation reads, so an acknowledged alert stops escalating at its next tick.
Acknowledging does not lift a REDUCING trading state: that is
`alchemiser trading resume`.
"""

from __future__ import annotations

import getpass
from datetime import datetime

import click

from alchemiser.alerts.model import AlertState
from alchemiser.cli.broker_access import trading_clock
from alchemiser.cli.common import CliFailure, CliState, open_database, pass_state, run
from alchemiser.clock import NEW_YORK
from alchemiser.exit_codes import ExitCode
from alchemiser.settings import Settings
from alchemiser.store.alerts import AlertStore, AlertView
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import session_factory
from alchemiser.trading_calendar import nyse_calendar

__all__ = ["alerts_group"]

TITLE_WIDTH = 60


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M %Z")


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@click.group("alerts")
def alerts_group() -> None:
    """Alerts: list them and acknowledge them (an acknowledged alert stops escalating)."""


@alerts_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include resolved alerts.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10000))
@pass_state
def list_command(state: CliState, show_all: bool, limit: int) -> None:
    """Unresolved alerts, newest first (with --all, resolved ones too)."""
    alerts = run(_list(state.settings(), show_all, limit))
    if not alerts:
        click.echo("no alerts" if show_all else "no open alerts")
        return
    click.echo(f"{'ID':>6}  {'LEVEL':<9}  {'STATE':<12}  {'OPENED':<20}  {'KEY':<24}  TITLE")
    for a in alerts:
        click.echo(
            f"{a.id:>6}  {a.level.value:<9}  {a.state.value:<12}  {_when(a.opened_at):<20}  "
            f"{_short(a.key, 24):<24}  {_short(a.title, TITLE_WIDTH)}"
        )
    unacked = sum(1 for a in alerts if a.state is AlertState.OPEN)
    click.echo(f"unacknowledged: {unacked}")


async def _list(settings: Settings, show_all: bool, limit: int) -> list[AlertView]:
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = await trading_clock(settings, sessions, nyse_calendar())
        store = AlertStore(sessions, clock, settings.broker.account)
        return await store.alerts(include_resolved=show_all, limit=limit)


@alerts_group.command("ack")
@click.argument("alert_id", type=click.IntRange(min=1))
@click.option("--by", "by", default=None, help="Who acknowledges, for the audit (default: login).")
@pass_state
def ack_command(state: CliState, alert_id: int, by: str | None) -> None:
    """Acknowledge alert ALERT_ID: a person has it, so it stops escalating (audited)."""
    before, after = run(_ack(state.settings(), alert_id, by or _user()))
    if before is None or after is None:
        raise CliFailure(f"no alert {alert_id} for this account", ExitCode.ERROR)
    if before.state is AlertState.ACKNOWLEDGED:
        click.echo(
            f"alert {alert_id} was already acknowledged by {before.acknowledged_by} "
            f"at {_when(before.acknowledged_at)}"
        )
        return
    if before.state is AlertState.RESOLVED:
        click.echo(f"alert {alert_id} is resolved: nothing to acknowledge")
        return
    click.echo(f"alert {alert_id} acknowledged ({after.level.value}: {after.title})")
    if after.level.value == "EMERGENCY":
        click.echo("trading stays REDUCING until `alchemiser trading resume`")


async def _ack(
    settings: Settings, alert_id: int, by: str
) -> tuple[AlertView | None, AlertView | None]:
    account = settings.broker.account
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = await trading_clock(settings, sessions, nyse_calendar())
        store = AlertStore(sessions, clock, account)
        audit = AuditLog(sessions, clock, account)
        async with store.transaction() as s:
            before, after = await store.acknowledge(alert_id, by, session=s)
            if before is not None and before.state is AlertState.OPEN:
                await audit.record(
                    "ALERT_ACKNOWLEDGED",
                    related_ids={"alert_id": alert_id},
                    details={"by": by, "key": before.key, "level": before.level.value},
                    session=s,
                )
        return before, after
