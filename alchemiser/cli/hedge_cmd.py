"""`alchemiser hedge ...`: the tail-hedge book from the command line.

``status`` (hedges, spend against the caps, scenario payoff, the protection
floor, the kill switch), ``evaluate`` (today's evaluation, explained),
``roll-check`` (what would roll now), ``history``, ``disable`` / ``enable``
(the persisted kill switch) and ``plan`` (accept an external RebalancePlanned
event). Verbs that need the market go through :mod:`alchemiser.cli.broker_access`:
on the simulated broker they read the book at the stored simulation time and
never move it.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from alchemiser.broker.base import BrokerError
from alchemiser.cli.broker_access import CliServices, open_trading, trading_clock
from alchemiser.cli.common import (
    CliFailure,
    CliState,
    log_to_stderr,
    open_database,
    pass_state,
    run,
)
from alchemiser.cli.common import (
    print_table as _table,
)
from alchemiser.clock import NEW_YORK, Clock
from alchemiser.domain.trading import OptionSnapshot
from alchemiser.exit_codes import ExitCode
from alchemiser.hedging.book import book_payoff, book_quotes
from alchemiser.hedging.context import EXECUTION_QUEUE, PLAN_QUEUE
from alchemiser.hedging.evaluator import HedgeEvaluator
from alchemiser.hedging.events import REBALANCE_PLANNED
from alchemiser.hedging.executor import hedge_id_for
from alchemiser.hedging.roller import RollCandidate, RollManager
from alchemiser.hedging.sizing import floor_scenario
from alchemiser.settings import Settings
from alchemiser.settings.hedging import HedgingSettings
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import session_factory
from alchemiser.store.hedges import ACTIVE, HedgeStore, HedgeView, KillSwitch
from alchemiser.store.queue import DurableQueue
from alchemiser.trading_calendar import TradingCalendar, nyse_calendar

__all__ = ["hedge_group"]

KILL_SWITCH_DISABLED = "KILL_SWITCH_DISABLED"
KILL_SWITCH_ENABLED = "KILL_SWITCH_ENABLED"
# The moves `hedge status` reprices the book at (percent of the underlying).
STATUS_MOVES = (Decimal(-10), Decimal(-20), Decimal(-30))
# Plan ids go into dedupe keys and a 128-character column: keep them plain.
PLAN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,99}")
EVALUATION_LOOKBACK = 50
WHY_WIDTH = 110


@click.group("hedge")
def hedge_group() -> None:
    """Tail hedges: status, evaluation, rolls, history and the kill switch."""


# -- shared helpers ------------------------------------------------------------------------


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def money(value: Any) -> str:
    """Dollars with 2 decimals ('-' when unknown)."""
    amount = _dec(value)
    return "-" if amount is None else f"{amount:.2f}"


def pct_of(value: Any, nav: Decimal) -> str:
    """``value`` as a percentage of NAV, 2 decimals."""
    amount = _dec(value)
    if amount is None or nav <= 0:
        return "n/a"
    return f"{100 * amount / nav:.2f} %"


def _pct(value: Decimal) -> str:
    return f"{value:.2f} %"


def _when(at: datetime) -> str:
    return at.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M %Z")


def _legs(hedge: HedgeView) -> str:
    return f"{hedge.long_symbol}/-{hedge.short_symbol}" if hedge.short_symbol else hedge.long_symbol


def _clip(text: str, width: int = WHY_WIDTH) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def session_of(calendar: TradingCalendar, now: datetime) -> date:
    """The NYSE session ``now`` belongs to: today's, else the next one."""
    day = now.astimezone(NEW_YORK).date()
    return day if calendar.is_session(day) else calendar.next_session(day)


def _time_label(services: CliServices) -> str:
    kind = "simulated time" if services.sim is not None else "wall time"
    return f"{_when(services.clock.now())} ({kind}; account {services.hedging.account})"


def _broker_failure(exc: Exception) -> CliFailure:
    return CliFailure(f"the broker did not answer: {exc}", ExitCode.ERROR)


def _check_plan_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if not PLAN_ID_PATTERN.fullmatch(value):
        raise click.BadParameter(
            "1-100 characters: letters, digits and . _ : @ / - (starting with a letter or digit)",
            ctx=ctx,
            param=param,
        )
    return value


def _check_reason(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("must say why", ctx=ctx, param=param)
    return value.strip()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; the audit row still matters more
        return "unknown"


# -- status --------------------------------------------------------------------------------


@dataclass
class _Status:
    at: str
    nav: Decimal
    active: list[HedgeView]
    quotes: dict[str, OptionSnapshot]
    today: date
    month_to_date: Decimal
    year_to_date: Decimal
    vol_shift: Decimal
    payoffs: dict[Decimal, Decimal]
    floor_move: Decimal
    floor_payoff: Decimal
    latest: dict[str, Any] | None
    switch: KillSwitch
    settings: HedgingSettings


@hedge_group.command("status")
@pass_state
def status(state: CliState) -> None:
    """Active hedges, premium spend against the caps, scenario payoff, floor and kill switch."""
    settings = state.settings()
    log_to_stderr(settings)
    report = run(_status(settings))
    _echo_status(report)


async def _status(settings: Settings) -> _Status:
    async with open_trading(settings) as services:
        ctx = services.hedging
        hedging = ctx.hedging
        now = services.clock.now()
        active = await ctx.store.active()
        shift = hedging.templates.tail_first.scenario_vol_shift_points
        floor_move, floor_shift = floor_scenario(hedging)
        try:
            nav = (await services.broker.get_account()).equity
            quotes = await book_quotes(services.broker, active)
            payoffs = {
                move: await book_payoff(services.broker, active, now, ctx.rate, move, shift)
                for move in STATUS_MOVES
            }
            if floor_move in payoffs and floor_shift == shift:
                floor_payoff = payoffs[floor_move]
            else:
                floor_payoff = await book_payoff(
                    services.broker, active, now, ctx.rate, floor_move, floor_shift
                )
        except (BrokerError, TimeoutError) as exc:
            raise _broker_failure(exc) from None
        mtd, ytd = await ctx.store.spend(now)
        latest = await ctx.store.evaluations(limit=1)
        return _Status(
            at=_time_label(services),
            nav=nav,
            active=active,
            quotes=quotes,
            today=now.astimezone(NEW_YORK).date(),
            month_to_date=mtd,
            year_to_date=ytd,
            vol_shift=shift,
            payoffs=payoffs,
            floor_move=floor_move,
            floor_payoff=floor_payoff,
            latest=latest[0] if latest else None,
            switch=await ctx.store.kill_switch(),
            settings=hedging,
        )


def _hedge_value(hedge: HedgeView, quotes: Mapping[str, OptionSnapshot]) -> Decimal | None:
    """What the hedge is worth at the quotes' mids (None when a leg has no usable quote)."""
    value = Decimal(0)
    legs = [(hedge.long_symbol, 1)]
    if hedge.short_symbol:
        legs.append((hedge.short_symbol, -1))
    for symbol, sign in legs:
        snap = quotes.get(symbol)
        if snap is None or snap.ask <= 0:
            return None
        value += sign * snap.mid * hedge.contracts * 100
    return value


def _echo_status(r: _Status) -> None:
    nav, caps = r.nav, r.settings.caps
    click.echo(f"hedge book at {r.at}")
    click.echo(f"NAV: {money(nav)}")
    click.echo("")
    _echo_active(r)
    click.echo("")
    month_cap = nav * caps.monthly_pct / 100
    year_cap = nav * caps.annual_pct / 100
    click.echo("premium spend (the caps are hard limits):")
    click.echo(
        f"  month to date: {money(r.month_to_date)} of {money(month_cap)} monthly cap "
        f"({pct_of(r.month_to_date, nav)} of {_pct(caps.monthly_pct)} NAV), "
        f"{money(max(Decimal(0), month_cap - r.month_to_date))} left"
    )
    click.echo(
        f"  year to date:  {money(r.year_to_date)} of {money(year_cap)} annual cap "
        f"({pct_of(r.year_to_date, nav)} of {_pct(caps.annual_pct)} NAV), "
        f"{money(max(Decimal(0), year_cap - r.year_to_date))} left"
    )
    low, high = caps.target_band_min_pct, caps.target_band_max_pct
    if nav > 0:
        ytd_pct = 100 * r.year_to_date / nav
        where = "below" if ytd_pct < low else "above" if ytd_pct > high else "within"
        click.echo(
            f"  target band {low:g}-{high:g} % NAV a year: year to date {_pct(ytd_pct)} is {where} the band"
        )
    click.echo("")
    click.echo(f"scenario payoff of the hedge book (implied vol +{r.vol_shift:g} points):")
    for move, payoff in r.payoffs.items():
        click.echo(f"  {move:g} %: {money(payoff)} ({pct_of(payoff, nav)} NAV)")
    click.echo("")
    _echo_floor(r)
    click.echo("")
    _echo_switch(r.settings.enabled, r.switch)


def _echo_active(r: _Status) -> None:
    if not r.active:
        click.echo("active hedges: none")
        return
    click.echo(f"active hedges: {len(r.active)}")
    rows = []
    paid = Decimal(0)
    worth: Decimal | None = Decimal(0)
    for h in r.active:
        value = _hedge_value(h, r.quotes)
        paid += h.premium_paid
        worth = worth + value if worth is not None and value is not None else None
        rows.append(
            (
                h.id,
                h.underlying,
                h.template,
                _legs(h),
                h.expiry.isoformat(),
                str((h.expiry - r.today).days),
                str(h.contracts),
                money(h.premium_paid),
                money(value),
            )
        )
    header = (
        "ID",
        "UNDERLYING",
        "TEMPLATE",
        "LEGS",
        "EXPIRY",
        "DTE",
        "CONTRACTS",
        "PREMIUM_PAID",
        "VALUE",
    )
    _table(header, rows)
    click.echo(f"total premium paid {money(paid)}, current value {money(worth)}")


def _echo_floor(r: _Status) -> None:
    caps, nav = r.settings.caps, r.nav
    floor = nav * caps.protection_floor_pct / 100
    head = (
        f"protection floor: {_pct(caps.protection_floor_pct)} NAV ({money(floor)}) "
        f"at {r.floor_move:g} %: book pays {money(r.floor_payoff)}"
    )
    if r.floor_payoff >= floor:
        click.echo(f"{head}: met")
        return
    shortfall = floor - r.floor_payoff
    click.echo(f"{head}: NOT MET, shortfall {money(shortfall)} ({pct_of(shortfall, nav)} NAV)")
    if r.latest is None:
        click.echo("  why: no evaluation recorded yet (run `alchemiser hedge evaluate`)")
        return
    click.echo(f"  latest evaluation, session {r.latest['session_date']}:")
    for line in _why(r.latest.get("explanation") or {}, r.latest.get("skip_reason")):
        click.echo(f"    {line}")


def _why(explanation: Mapping[str, Any], skip_reason: str | None) -> list[str]:
    """The evaluation's reasons in a few lines: binding constraint, skip reason, shortfall."""
    decision = explanation.get("decision") or {}
    lines = [f"skip reason: {skip_reason or 'none (it bought)'}"]
    if decision.get("binding_constraint"):
        lines.append(
            f"binding constraint: {decision['binding_constraint']} "
            f"(budget {money(decision.get('budget'))})"
        )
    if decision.get("shortfall") is not None:
        lines.append(
            f"shortfall after it: {money(decision['shortfall'])} "
            f"(floor {money(decision.get('floor'))}, projected {money(decision.get('projected_floor_payoff'))})"
        )
    if decision.get("fallback_applied"):
        lines.append(f"fallback applied: {decision['fallback_applied']}")
    if explanation.get("no_contract"):
        lines.append(f"no suitable contract: {_clip(explanation['no_contract'].get('reason', ''))}")
    if explanation.get("data_error"):
        lines.append(f"market data unavailable: {_clip(explanation['data_error'])}")
    return lines


def _echo_switch(config_enabled: bool, switch: KillSwitch) -> None:
    click.echo("kill switch:")
    click.echo(f"  config hedging.enabled: {'true' if config_enabled else 'false'}")
    if switch.changed_at is None:
        click.echo("  persisted switch: enabled (never changed)")
    else:
        state = "enabled" if switch.enabled else "DISABLED"
        reason = f": {switch.reason}" if switch.reason else ""
        click.echo(
            f"  persisted switch: {state} by {switch.changed_by} at {_when(switch.changed_at)}{reason}"
        )
    on = config_enabled and switch.enabled
    click.echo(f"  new hedges: {'allowed' if on else 'STOPPED'}")


# -- evaluate ------------------------------------------------------------------------------


@hedge_group.command("evaluate")
@click.option("--dry-run", is_flag=True, help="Evaluate and print; record and enqueue nothing.")
@click.option(
    "--plan-id",
    callback=_check_plan_id,
    metavar="ID",
    help="The rebalance plan this evaluation follows (one evaluation per session and plan).",
)
@pass_state
def evaluate(state: CliState, dry_run: bool, plan_id: str | None) -> None:
    """Run today's hedge evaluation and explain it; record and enqueue it for the daemon.

    One evaluation per session (and plan): a second run the same day says so and
    changes nothing. While the market is closed only --dry-run runs (a recorded
    evaluation would be a 'market_closed' skip that takes the session's slot).
    """
    settings = state.settings()
    log_to_stderr(settings)
    run(_evaluate(settings, dry_run, plan_id))


async def _evaluate(settings: Settings, dry_run: bool, plan_id: str | None) -> None:
    async with open_trading(settings) as services:
        ctx = services.hedging
        now = services.clock.now()
        session = session_of(services.calendar, now)
        prior = await _stored_evaluation(ctx.store, session, plan_id)
        if prior is not None and not dry_run:
            click.echo(
                f"already evaluated for session {session} (plan {plan_id or '-'}): "
                "nothing recorded or enqueued"
            )
            _echo_evaluation(prior["event"], prior["explanation"], title="the recorded evaluation")
            return
        if not dry_run and not services.calendar.is_open_at(now):
            raise CliFailure(
                f"the market is closed at {_when(now)}: a recorded evaluation would be skipped "
                "as market_closed and use up the session's evaluation; use --dry-run to see it",
                ExitCode.ERROR,
            )
        try:
            outcome = await HedgeEvaluator(ctx).evaluate(session, plan_id, dry_run=dry_run)
        except TimeoutError as exc:
            raise _broker_failure(exc) from None
        _echo_evaluation(
            outcome.event,
            outcome.explanation,
            title=f"hedge evaluation for session {session} at {_time_label(services)}",
        )
        click.echo("")
        if dry_run:
            note = " (this session is already evaluated)" if prior is not None else ""
            click.echo(f"dry run: nothing recorded or enqueued{note}")
        elif outcome.duplicate:
            click.echo(
                f"already evaluated for session {session} (plan {plan_id or '-'}): "
                "nothing recorded or enqueued"
            )
        elif outcome.enqueued:
            click.echo(f"recorded; enqueued on {EXECUTION_QUEUE} for the daemon to execute")
        elif outcome.event["recommendations"]:
            click.echo(f"recorded; its execution was already on {EXECUTION_QUEUE}")
        else:
            click.echo("recorded; nothing to buy, nothing enqueued")


async def _stored_evaluation(
    store: HedgeStore, session: date, plan_id: str | None
) -> dict[str, Any] | None:
    for row in await store.evaluations(limit=EVALUATION_LOOKBACK):
        if row["session_date"] == session and (row["plan_id"] or None) == plan_id:
            return row
    return None


def _echo_evaluation(event: Mapping[str, Any], explanation: Mapping[str, Any], title: str) -> None:
    """An evaluation (fresh or stored) as readable lines."""
    nav = _dec(event.get("portfolio_nav")) or Decimal(0)
    click.echo(title)
    exposure = explanation.get("exposure") or {}
    parts = [f"NAV {money(nav)}"]
    if exposure:
        parts.append(
            f"exposure {exposure.get('underlying') or '-'} at {_ratio(exposure.get('leverage'))}x NAV "
            f"(multiplier {_ratio(event.get('exposure_multiplier'))}, "
            f"{exposure.get('equity_positions', 0)} equity positions)"
        )
    parts.append(f"vol tier {event.get('vix_tier') or '-'}")
    click.echo("  " + "; ".join(parts))
    spend = explanation.get("spend") or {}
    if spend:
        click.echo(
            f"  spend before: month to date {money(spend.get('month_to_date'))}, "
            f"year to date {money(spend.get('year_to_date'))}"
        )
    if explanation.get("first_try"):
        first = explanation["first_try"]
        click.echo(
            f"  first try {first.get('template')}: {first.get('skip_reason')} "
            f"(shortfall {money(first.get('shortfall'))}); tried the next template"
        )
    decision = explanation.get("decision") or {}
    if decision:
        _echo_decision(decision, nav)
    for key, label in (
        ("selection", "selection"),
        ("over_budget_choice", "first choice (over budget)"),
    ):
        if explanation.get(key):
            _echo_selection(label, explanation[key])
    if explanation.get("no_contract"):
        nc = explanation["no_contract"]
        click.echo(f"  no suitable contract ({nc.get('template')}): {_clip(nc.get('reason', ''))}")
        gates = nc.get("counts_by_gate") or {}
        if gates:
            click.echo("    rejected by gate: " + ", ".join(f"{k} {v}" for k, v in gates.items()))
    if explanation.get("data_error"):
        click.echo(f"  market data unavailable: {_clip(explanation['data_error'])}")
    recommendations = event.get("recommendations") or []
    for rec in recommendations:
        click.echo(
            f"  recommendation: buy {rec.get('contracts_estimated')} "
            f"{rec.get('option_symbol') or rec.get('underlying_symbol')}"
            + (f"/-{rec['short_option_symbol']}" if rec.get("short_option_symbol") else "")
            + f" ({rec.get('hedge_template')}, estimated premium {money(rec.get('estimated_premium'))} "
            f"of budget {money(rec.get('premium_budget'))})"
        )
    if not recommendations:
        click.echo("  recommendation: buy nothing")
    click.echo(f"  skip reason: {event.get('skip_reason') or 'none'}")
    click.echo(f"  correlation id: {event.get('correlation_id') or '-'}")
    for note in explanation.get("notes") or []:
        click.echo(f"  note: {_clip(note)}")


def _ratio(value: Any) -> str:
    amount = _dec(value)
    return "-" if amount is None else f"{amount:.2f}"


def _echo_decision(d: Mapping[str, Any], nav: Decimal) -> None:
    rich = ", rich-IV adjusted" if d.get("rich_adjusted") else ""
    click.echo(
        f"  template {d.get('template')} (tier {d.get('tier') or '-'}{rich}): "
        f"budget {money(d.get('budget'))}, binding constraint: {d.get('binding_constraint') or '-'}"
    )
    if d.get("target_payoff") is not None:
        click.echo(
            f"  target payoff: {money(d['target_payoff'])} ({pct_of(d['target_payoff'], nav)} NAV); "
            f"affordable payoff: {money(d.get('affordable_payoff'))}; "
            f"projected book payoff: {money(d.get('projected_payoff'))}"
        )
    if d.get("floor") is not None:
        met = d.get("floor_met")
        verdict = "met" if met else "not met" if met is False else "unknown"
        fallback = f"; fallback {d['fallback_applied']}" if d.get("fallback_applied") else ""
        click.echo(
            f"  protection floor {money(d['floor'])}: projected {money(d.get('projected_floor_payoff'))}, "
            f"shortfall {money(d.get('shortfall'))} ({verdict}{fallback})"
        )
    click.echo(f"  decided: {d.get('contracts', 0)} contract(s), premium {money(d.get('premium'))}")
    if d.get("year_to_date_pct_after") is not None:
        click.echo(
            f"  year to date after: {_pct(Decimal(str(d['year_to_date_pct_after'])))} NAV "
            f"({d.get('annual_band')} the target band)"
        )


def _echo_selection(label: str, s: Mapping[str, Any]) -> None:
    click.echo(
        f"  {label}: {' / '.join(s.get('legs') or [])}, expiry {s.get('expiry')} ({s.get('dte')} DTE), "
        f"mid {money(s.get('mid'))}, limit at most {money(s.get('max_limit_price'))}, "
        f"{money(s.get('premium_per_contract'))} a contract, payoff {money(s.get('payoff_per_contract'))} "
        f"a contract ({_ratio(s.get('payoff_multiple'))}x)"
    )
    if s.get("why"):
        click.echo(f"    why: {_clip(s['why'], 2 * WHY_WIDTH)}")


# -- roll-check ----------------------------------------------------------------------------


@hedge_group.command("roll-check")
@pass_state
def roll_check(state: CliState) -> None:
    """Which active hedges would roll now, and why (nothing is enqueued or traded)."""
    settings = state.settings()
    log_to_stderr(settings)
    run(_roll_check(settings))


async def _roll_check(settings: Settings) -> None:
    async with open_trading(settings) as services:
        ctx = services.hedging
        now = services.clock.now()
        active = {h.id: h for h in await ctx.store.active()}
        try:
            due = await RollManager(ctx, services.hedge_executor).check(
                session_of(services.calendar, now), enqueue=False
            )
        except (BrokerError, TimeoutError) as exc:
            raise _broker_failure(exc) from None
        click.echo(f"roll check at {_time_label(services)}")
        if not due:
            click.echo(f"no hedge needs rolling ({len(active)} active hedge(s) checked)")
            return
        rows = []
        for roll in due:
            h = active[roll.hedge_id]
            rows.append(
                (
                    h.id,
                    h.underlying,
                    h.template,
                    _legs(h),
                    h.expiry.isoformat(),
                    str(roll.dte),
                    _roll_why(roll, h, ctx.hedging),
                )
            )
        click.echo(f"{len(due)} of {len(active)} active hedge(s) would roll now:")
        _table(("ID", "UNDERLYING", "TEMPLATE", "LEGS", "EXPIRY", "DTE", "WHY"), rows)
        click.echo("nothing enqueued: the daemon's roll check rolls them")


def _roll_why(roll: RollCandidate, hedge: HedgeView, settings: HedgingSettings) -> str:
    tail, spread = settings.templates.tail_first, settings.templates.smoothing
    text = {
        "critical_dte": f"{roll.dte} DTE is below the critical {tail.critical_dte}",
        "dte_threshold": f"{roll.dte} DTE is below the roll threshold {tail.roll_below_dte}",
        "spread_value": f"spread worth less than {spread.roll_value_below_pct_of_width:g} % of its width",
        "long_delta": f"long |delta| above {spread.roll_long_abs_delta_above:g}",
        "short_delta": f"short |delta| above {spread.roll_short_abs_delta_above:g}",
        "cadence": f"held {spread.roll_every_days_held} days or more",
    }.get(roll.reason, "")
    return f"{roll.reason}: {text}" if text else roll.reason


# -- history -------------------------------------------------------------------------------


@hedge_group.command("history")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=1000),
    default=20,
    show_default=True,
    help="At most N hedges and N evaluations.",
)
@pass_state
def history(state: CliState, limit: int) -> None:
    """Past and present hedges (with realised P&L) and recent evaluations, newest first."""
    settings = state.settings()
    log_to_stderr(settings)
    account = settings.broker.account
    hedges, evaluations, bought = run(_history(settings, limit))
    click.echo(f"hedges (newest first, at most {limit}):")
    if not hedges:
        click.echo("  none")
    else:
        rows = [
            (
                h.id,
                h.underlying,
                h.template,
                _legs(h),
                h.expiry.isoformat(),
                h.state,
                str(h.contracts),
                _when(h.entry_at),
                money(h.premium_paid),
                money(h.proceeds),
                money(h.realized_pnl) if h.state != ACTIVE else "open",
            )
            for h in hedges
        ]
        header = (
            "ID",
            "UNDERLYING",
            "TEMPLATE",
            "LEGS",
            "EXPIRY",
            "STATE",
            "CONTRACTS",
            "OPENED",
            "PREMIUM",
            "PROCEEDS",
            "REALISED_PNL",
        )
        _table(header, rows)
    click.echo("")
    click.echo(f"evaluations (newest first, at most {limit}):")
    if not evaluations:
        click.echo("  none")
        return
    eval_rows = [
        (
            str(e["session_date"]),
            e["plan_id"] or "-",
            money(((e.get("explanation") or {}).get("decision") or {}).get("shortfall")),
            _outcome(e, account, bought),
        )
        for e in evaluations
    ]
    _table(("SESSION", "PLAN", "SHORTFALL", "OUTCOME"), eval_rows)


async def _history(
    settings: Settings, limit: int
) -> tuple[list[HedgeView], list[dict[str, Any]], dict[str, HedgeView]]:
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = await trading_clock(settings, sessions, nyse_calendar())
        store = HedgeStore(sessions, clock, settings.broker.account)
        hedges = await store.history(limit=limit)
        evaluations = await store.evaluations(limit=limit)
        # What each evaluation bought, even when the hedge list stops before it.
        bought = {h.id: h for h in hedges}
        for e in evaluations:
            for hedge_id in _bought_ids(e, settings.broker.account):
                if hedge_id not in bought:
                    found = await store.get(hedge_id)
                    if found is not None:
                        bought[hedge_id] = found
        return hedges, evaluations, bought


def _bought_ids(evaluation: Mapping[str, Any], account: str) -> list[str]:
    """The hedge ids the executor gives this evaluation's purchases (its intent keys)."""
    event = evaluation.get("event") or {}
    session = str(evaluation["session_date"])
    plan = evaluation.get("plan_id") or "-"
    count = len(event.get("recommendations") or [])
    return [hedge_id_for(f"hedge-open:{account}:{session}:{plan}:{i}") for i in range(count)]


def _outcome(evaluation: Mapping[str, Any], account: str, hedges: Mapping[str, HedgeView]) -> str:
    if evaluation.get("skip_reason"):
        return f"skipped: {evaluation['skip_reason']}"
    recs = (evaluation.get("event") or {}).get("recommendations") or []
    parts = []
    for rec, hedge_id in zip(recs, _bought_ids(evaluation, account), strict=True):
        decided = f"decided {rec.get('contracts_estimated')} {rec.get('option_symbol')}"
        hedge = hedges.get(hedge_id)
        if hedge is None:
            parts.append(f"{decided}, none bought (yet)")
        else:
            parts.append(
                f"{decided}, bought: {hedge.id} {hedge.state}, premium {money(hedge.premium_paid)}"
            )
    return "; ".join(parts) or "nothing to buy"


# -- the kill switch -----------------------------------------------------------------------


@hedge_group.command("disable")
@click.option(
    "--reason",
    required=True,
    callback=_check_reason,
    help="Why hedging stops (kept with the switch and audited).",
)
@pass_state
def disable(state: CliState, reason: str) -> None:
    """Stop new hedges: set the persisted kill switch off (existing hedges are kept)."""
    settings = state.settings()
    log_to_stderr(settings)
    before = run(_set_switch(settings, False, reason))
    was = "" if before.enabled else " (it was already disabled)"
    click.echo(f"hedging disabled by user: {reason}{was}")
    click.echo("new hedges stop; active hedges are kept. `alchemiser hedge enable` resumes.")


@hedge_group.command("enable")
@click.option("--reason", default="", help="Why hedging resumes (optional, audited).")
@pass_state
def enable(state: CliState, reason: str) -> None:
    """Allow new hedges again: set the persisted kill switch on."""
    settings = state.settings()
    log_to_stderr(settings)
    before = run(_set_switch(settings, True, reason.strip()))
    was = "" if not before.enabled else " (it was already enabled)"
    click.echo(f"hedging enabled by user{was}")
    if not settings.hedging.enabled:
        click.echo(
            "note: config hedging.enabled is false, so new hedges stay stopped until it is true"
        )


async def _set_switch(settings: Settings, enabled: bool, reason: str) -> KillSwitch:
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = await trading_clock(settings, sessions, nyse_calendar())
        account = settings.broker.account
        store = HedgeStore(sessions, clock, account)
        before = await store.kill_switch()
        await store.set_kill_switch(enabled, reason, "user")
        await AuditLog(sessions, clock, account).record(
            KILL_SWITCH_ENABLED if enabled else KILL_SWITCH_DISABLED,
            details={
                "reason": reason,
                "changed_by": "user",
                "was_enabled": before.enabled,
                "source": "cli",
                "user": _user(),
            },
        )
        return before


# -- plan ----------------------------------------------------------------------------------


@hedge_group.command("plan")
@click.argument("plan_id", callback=_check_plan_id)
@pass_state
def plan(state: CliState, plan_id: str) -> None:
    """Accept an external RebalancePlanned event for PLAN_ID (queued once per plan)."""
    settings = state.settings()
    log_to_stderr(settings)
    job_id, created, session = run(_plan(settings, plan_id))
    if created:
        click.echo(f"plan {plan_id} for session {session} queued as job {job_id} on {PLAN_QUEUE}")
    else:
        click.echo(f"plan {plan_id} already queued (job {job_id}); nothing added")


async def _plan(settings: Settings, plan_id: str) -> tuple[int, bool, date]:
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        calendar = nyse_calendar()
        clock: Clock = await trading_clock(settings, sessions, calendar)
        session = session_of(calendar, clock.now())
        account = settings.broker.account
        result = await DurableQueue(sessions, clock, lambda: settings.queue).enqueue(
            PLAN_QUEUE,
            {
                "event_type": REBALANCE_PLANNED,
                "plan_id": plan_id,
                "session_date": session.isoformat(),
            },
            dedupe_key=f"rebalance-planned:{account}:{plan_id}",
        )
        return result.job_id, result.created, session
