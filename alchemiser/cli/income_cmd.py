"""`alchemiser income ...` and `alchemiser approvals ...`: the income book from the command line.

``income screen`` runs the screen now without recording or trading (what the
daemon's job would propose, and why the rest was rejected); ``--explain
SYMBOL`` prints every rule's result for each contract of that name.
``income positions`` and ``income history`` read the stored book.
``approvals list / approve ID / reject ID`` answer the manual-approval queue:
an approved trade is sent by the running daemon; approvals expire at the
close of the session they were proposed in.
"""

from __future__ import annotations

import getpass
from collections import Counter
from datetime import datetime
from decimal import Decimal

import click

from alchemiser.cli.broker_access import open_trading, trading_clock
from alchemiser.cli.common import (
    CliFailure,
    CliState,
    log_to_stderr,
    open_database,
    pass_state,
    print_table,
    run,
)
from alchemiser.clock import NEW_YORK
from alchemiser.income.screening import IncomeScreener, ScreenReport
from alchemiser.settings import Settings
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import session_factory
from alchemiser.store.income import (
    ApprovalError,
    ApprovalView,
    IncomeEventView,
    IncomePositionView,
    IncomeStore,
    WheelView,
)
from alchemiser.trading_calendar import nyse_calendar

__all__ = ["approvals_group", "income_group"]

RATIONALE_WIDTH = 100


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M %Z")


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _clip(text: str, width: int = RATIONALE_WIDTH) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


@click.group("income")
def income_group() -> None:
    """Covered calls and cash-secured puts: the screen, open positions and history."""


@income_group.command("screen")
@click.option("--explain", "explain", metavar="SYMBOL", help="Every rule's result for SYMBOL.")
@pass_state
def screen(state: CliState, explain: str | None) -> None:
    """Run the screen now (nothing recorded, nothing traded) and show its decisions."""
    settings = state.settings()
    log_to_stderr(settings)
    symbol = explain.strip().upper() if explain else None
    report = run(_screen(settings, symbol))
    _print_screen(report, symbol)


async def _screen(settings: Settings, explain: str | None) -> ScreenReport:
    async with open_trading(settings) as services:
        today = services.clock.now().astimezone(NEW_YORK).date()
        return await IncomeScreener(services.income).run(today, record=False, explain=explain)


def _print_screen(report: ScreenReport, explain: str | None) -> None:
    click.echo(f"income screen for {report.session_date.isoformat()}")
    if report.skipped:
        click.echo(f"  skipped: {report.skipped}")
    for kind, names in report.universe.items():
        click.echo(f"  {kind} universe: {', '.join(names) or 'none'}")
    dropped = ", ".join(f"{k} {v}" for k, v in report.quotes_dropped.most_common()) or "none"
    click.echo(f"  quotes: {report.quotes_seen} seen, dropped: {dropped}")
    removed = ", ".join(f"{k} {v}" for k, v in report.removed_by_rule.most_common()) or "none"
    click.echo(f"  candidates: {report.candidates}, removed by rule: {removed}")
    for name, error in sorted(report.errors.items()):
        click.echo(f"  {name}: {error}")
    click.echo("")
    if report.scored:
        rows = [
            (
                s.candidate.symbol,
                s.candidate.kind,
                str(s.contracts),
                f"{s.candidate.mid:.2f}",
                f"{s.candidate.annual_yield_pct:.1f} %",
                f"{s.quant:.2f}",
                f"{s.advisor:.2f}",
                f"{s.fit:.2f}",
                f"{s.total:.2f}",
                s.decision,
                _clip(s.rationale),
            )
            for s in sorted(report.scored, key=lambda x: -x.total)
        ]
        header = (
            "CONTRACT",
            "KIND",
            "QTY",
            "MID",
            "YIELD",
            "QUANT",
            "ADVISOR",
            "FIT",
            "SCORE",
            "DECISION",
            "RATIONALE",
        )
        print_table(header, rows)
    else:
        click.echo("no contract passed every rule")
    if explain is not None:
        click.echo("")
        if not report.explained:
            click.echo(f"{explain}: not in the universe, or no valid quote (see above)")
        for candidate, results in report.explained:
            failed = [r for r in results if not r.passed]
            verdict = (
                "passes every rule"
                if not failed
                else "rejected: "
                + "; ".join(f"{r.rule} {r.value} (needs {r.limit})" for r in failed)
            )
            click.echo(f"{candidate.symbol} {candidate.kind}: {verdict}")


@income_group.command("positions")
@pass_state
def positions(state: CliState) -> None:
    """Open covered calls and cash-secured puts, and wheel cycles holding shares."""
    settings = state.settings()
    log_to_stderr(settings)
    open_positions, wheels = run(_positions(settings))
    if not open_positions:
        click.echo("no open income position")
    else:
        print_table(
            ("ID", "KIND", "CONTRACT", "QTY", "CREDIT", "PER_SHARE", "OPENED", "WHEEL"),
            [
                (
                    p.id,
                    p.kind,
                    p.symbol,
                    str(p.contracts),
                    _money(p.credit),
                    _money(p.credit_per_share),
                    _when(p.opened_at),
                    p.wheel_id or "-",
                )
                for p in open_positions
            ],
        )
    click.echo("")
    if not wheels:
        click.echo("no wheel holding shares")
        return
    print_table(
        ("WHEEL", "UNDERLYING", "SHARES", "COST_BASIS", "PREMIUM", "SINCE"),
        [
            (
                w.id,
                w.underlying,
                str(w.shares),
                _money(w.cost_basis),
                _money(w.premium),
                _when(w.started_at),
            )
            for w in wheels
        ],
    )


async def _positions(settings: Settings) -> tuple[list[IncomePositionView], list[WheelView]]:
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = await trading_clock(settings, sessions, nyse_calendar())
        store = IncomeStore(sessions, clock, settings.broker.account)
        return await store.open_positions(), await store.wheels()


@income_group.command("history")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=10_000),
    default=20,
    show_default=True,
    help="At most N positions and N events.",
)
@pass_state
def history(state: CliState, limit: int) -> None:
    """Past income positions with realised P&L, wheel cycles and every transition."""
    settings = state.settings()
    log_to_stderr(settings)
    positions_, events, wheels = run(_history(settings, limit))
    closed = positions_
    premium = sum((p.credit for p in closed), Decimal(0))
    realised = sum((p.realized_pnl or Decimal(0) for p in closed), Decimal(0))
    states = Counter(p.state for p in closed)
    click.echo(
        f"positions (newest first, at most {limit}): premium {premium:.2f}, realised option "
        f"P&L {realised:.2f}, " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
    )
    if closed:
        print_table(
            ("ID", "KIND", "CONTRACT", "STATE", "REASON", "OPENED", "CREDIT", "BUYBACK", "PNL"),
            [
                (
                    p.id,
                    p.kind,
                    p.symbol,
                    p.state,
                    p.close_reason or "-",
                    _when(p.opened_at),
                    _money(p.credit),
                    _money(p.close_cost),
                    _money(p.realized_pnl),
                )
                for p in closed
            ],
        )
    click.echo("")
    click.echo("wheel cycles:")
    if not wheels:
        click.echo("  none")
    else:
        print_table(
            ("WHEEL", "UNDERLYING", "STATE", "SHARES", "COST_BASIS", "PREMIUM", "PNL"),
            [
                (
                    w.id,
                    w.underlying,
                    w.state,
                    str(w.shares),
                    _money(w.cost_basis),
                    _money(w.premium),
                    _money(w.realized_pnl),
                )
                for w in wheels
            ],
        )
    click.echo("")
    click.echo(f"events (newest first, at most {limit}):")
    if not events:
        click.echo("  none")
        return
    print_table(
        ("WHEN", "EVENT", "POSITION", "WHEEL", "PNL"),
        [
            (_when(e.at), e.event, e.position_id or "-", e.wheel_id or "-", _money(e.realized_pnl))
            for e in events
        ],
    )


async def _history(
    settings: Settings, limit: int
) -> tuple[list[IncomePositionView], list[IncomeEventView], list[WheelView]]:
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = await trading_clock(settings, sessions, nyse_calendar())
        store = IncomeStore(sessions, clock, settings.broker.account)
        return (
            await store.history(limit=limit),
            await store.events(limit=limit),
            await store.wheels(state=None),
        )


# -- approvals ------------------------------------------------------------------------------


@click.group("approvals")
def approvals_group() -> None:
    """Income trades waiting for you (income.approval = "manual"); they expire at the close."""


@approvals_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Answered and expired ones too.")
@pass_state
def approvals_list(state: CliState, show_all: bool) -> None:
    """Pending approvals (id, contract, contracts, least credit, score, expiry, rationale)."""
    settings = state.settings()
    log_to_stderr(settings)
    items = run(_approvals(settings, show_all))
    if not items:
        click.echo("no approval waiting" if not show_all else "no approval")
        return
    print_table(
        ("ID", "STATE", "KIND", "CONTRACT", "QTY", "MIN_CREDIT", "SCORE", "EXPIRES", "RATIONALE"),
        [
            (
                str(a.id),
                a.state,
                a.kind,
                a.symbol,
                str(a.contracts),
                _money(a.min_credit),
                _money(a.score),
                _when(a.expires_at),
                _clip(a.rationale, 80),
            )
            for a in items
        ],
    )


async def _approvals(settings: Settings, show_all: bool) -> list[ApprovalView]:
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = await trading_clock(settings, sessions, nyse_calendar())
        store = IncomeStore(sessions, clock, settings.broker.account)
        await store.expire_due()
        return await store.approvals(None if show_all else ("PENDING",))


@approvals_group.command("approve")
@click.argument("approval_id", type=click.IntRange(min=1))
@pass_state
def approve(state: CliState, approval_id: int) -> None:
    """Approve a pending trade: the running daemon sends it (before the close)."""
    settings = state.settings()
    log_to_stderr(settings)
    view = run(_decide(settings, approval_id, True, ""))
    click.echo(
        f"approval {view.id} APPROVED: sell {view.contracts} {view.symbol} at a credit of at "
        f"least {view.min_credit:.2f} per share; the daemon sends it (it expires "
        f"{_when(view.expires_at)})"
    )


@approvals_group.command("reject")
@click.argument("approval_id", type=click.IntRange(min=1))
@click.option("--note", default="", help="Why (kept with the approval).")
@pass_state
def reject(state: CliState, approval_id: int, note: str) -> None:
    """Reject a pending trade: nothing is sent."""
    settings = state.settings()
    log_to_stderr(settings)
    view = run(_decide(settings, approval_id, False, note))
    click.echo(f"approval {view.id} REJECTED: {view.symbol} will not be sold")


async def _decide(settings: Settings, approval_id: int, approve: bool, note: str) -> ApprovalView:
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = await trading_clock(settings, sessions, nyse_calendar())
        store = IncomeStore(sessions, clock, settings.broker.account)
        by = getpass.getuser()
        try:
            view = await store.decide(approval_id, approve, by, note)
        except ApprovalError as exc:
            raise CliFailure(str(exc)) from None
        await AuditLog(sessions, clock, settings.broker.account).record(
            "INCOME_APPROVAL_" + ("APPROVED" if approve else "REJECTED"),
            related_ids={"approval_id": str(approval_id), "intent_key": view.intent_key},
            details={"by": by, "note": note, "symbol": view.symbol},
        )
        return view
