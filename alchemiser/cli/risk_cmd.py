"""`alchemiser risk`: the book's greeks, limits with usage, stress table and last VaR/ES;
`alchemiser risk history`: the stored end-of-day risk rows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import partial

import click

from alchemiser.cli.broker_access import open_trading, trading_clock
from alchemiser.cli.common import CliState, log_to_stderr, open_database, run
from alchemiser.clock import NEW_YORK
from alchemiser.risk.limits import LimitUsage, limit_usage
from alchemiser.risk.pretrade import sector_of
from alchemiser.risk.report import RiskReport, current_risk
from alchemiser.settings import Settings
from alchemiser.store.engine import session_factory
from alchemiser.store.risk import DailyRiskRow, RiskStore, WeeklyReviewRow
from alchemiser.trading_calendar import nyse_calendar

__all__ = ["risk_command"]


def _num(x: Decimal | None, places: int = 2) -> str:
    return "-" if x is None else f"{x:,.{places}f}"


@click.group("risk", invoke_without_command=True)
@click.pass_context
def risk_command(ctx: click.Context) -> None:
    """Greeks by strategy, limits with their usage, stress P&L and the last stored VaR/ES."""
    if ctx.invoked_subcommand is not None:
        return
    settings = ctx.ensure_object(CliState).settings()
    log_to_stderr(settings)

    async def go() -> tuple[RiskReport, list[LimitUsage], DailyRiskRow | None]:
        async with open_trading(settings) as services:
            report = await current_risk(
                services.broker,
                services.hedging.store,
                services.hedging.reference,
                settings.risk,
                services.clock,
            )
            usage = limit_usage(
                report.positions,
                report.greeks,
                report.nav,
                settings.risk,
                partial(sector_of, services.hedging.reference),
            )
            latest = await RiskStore(services.sessions, services.hedging.account).latest_daily()
            return report, usage, latest

    report, usage, latest = run(go())
    click.echo(f"NAV: {report.nav:.2f}   positions: {len(report.positions)}")
    click.echo("\ngreeks (dollars)      delta   beta-delta  gamma/1%   theta/day   vega/pt")
    rows = {**report.greeks.by_strategy, "book": report.greeks.total}
    for name, g in rows.items():
        click.echo(
            f"  {name:<12} {g.delta_dollars:>12.2f} {g.beta_delta_dollars:>12.2f} "
            f"{g.gamma_dollars:>10.2f} {g.theta:>11.2f} {g.vega:>9.2f}"
        )
    _print_limits(usage, settings)
    click.echo(
        "\nstress scenarios            P&L     % NAV   by strategy (hedge / income / equity)"
    )
    for result in report.stress.scenarios:
        by = result.pnl_by_strategy
        click.echo(
            f"  {result.name:<20} {result.pnl:>12.2f} {result.pnl_pct_nav or 0:>8.2f}   "
            f"{by.get('hedge', 0):.2f} / {by.get('income', 0):.2f} / {by.get('equity', 0):.2f}"
        )
    if report.stress.hedge_payoff_pct_nav is not None:
        click.echo(f"\nhedge payoff at -20 %: {report.stress.hedge_payoff_pct_nav:.2f} % NAV")
    click.echo("")
    click.echo(_var_line(latest, settings))


def _print_limits(usage: list[LimitUsage], settings: Settings) -> None:
    approach = settings.risk.alerts.approach_pct_of_limit
    click.echo(
        f"\nlimits (alert at {approach} % of a limit)          value         limit     usage"
    )
    for u in usage:
        state = "OVER" if u.breach else ("near" if u.usage_pct >= approach else "")
        if state and not u.alerted:
            state += " (equity book: reported, not alerted)"
        places = 0 if u.key == "income_positions" else 4 if abs(u.limit) < 10 else 2
        click.echo(
            f"  {u.label:<36} {_num(u.value, places):>12} {_num(u.limit, places):>13} "
            f"{_num(u.usage_pct):>8} %  {state}"
        )


def _var_line(row: DailyRiskRow | None, settings: Settings) -> str:
    if row is None:
        return (
            "VaR/ES: no VaR yet: the risk_eod job stores it after each close once every "
            f"underlying has {settings.risk.min_history_sessions} sessions of closes "
            "(`alchemiser history import SYMBOL FILE.csv` loads history)"
        )
    if row.var_historical is None:
        return f"VaR/ES ({row.session_date}): no VaR: {row.note}"
    text = (
        f"VaR {(row.confidence * 100).normalize():f} % 1-day ({row.session_date}, {row.sessions_used} sessions): "
        f"historical {_num(row.var_historical)}, ES {_num(row.es_historical)}, "
        f"delta-gamma {_num(row.var_delta_gamma)}"
    )
    return text + (f" ({row.note})" if row.note else "")


@risk_command.command("history")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650))
@click.pass_context
def history_command(ctx: click.Context, days: int) -> None:
    """Stored end-of-day risk of the last DAYS calendar days, and the last weekly review."""
    settings = ctx.ensure_object(CliState).settings()

    async def go() -> tuple[list[DailyRiskRow], WeeklyReviewRow | None]:
        async with open_database(settings) as engine:
            sessions = session_factory(engine)
            clock = await trading_clock(settings, sessions, nyse_calendar())
            today = clock.now().astimezone(NEW_YORK).date()
            store = RiskStore(sessions, settings.broker.account)
            weekly = await store.weekly(limit=1)
            return await store.daily(today - timedelta(days=days), today), (
                weekly[0] if weekly else None
            )

    rows, weekly = run(go())
    if not rows:
        click.echo(f"no end-of-day risk stored in the last {days} days")
    else:
        click.echo(
            "session          NAV         VaR          ES   delta-gamma  sessions  hedge@-20%  note"
        )
        for r in rows:
            payoff = "-" if r.hedge_payoff_pct_nav is None else f"{r.hedge_payoff_pct_nav:.2f} %"
            click.echo(
                f"{r.session_date}  {_num(r.nav):>12} {_num(r.var_historical):>11} "
                f"{_num(r.es_historical):>11} {_num(r.var_delta_gamma):>12} "
                f"{r.sessions_used:>9}  {payoff:>10}  {r.note or ''}"
            )
    if weekly is not None:
        click.echo(f"\nlast weekly review:\n{weekly.text}")
