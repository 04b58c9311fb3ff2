"""Every scheduled job of the daemon, declared in one place.

Each job names its schedule key in ``[schedule]``; the scheduler fires it on
NYSE sessions and runs it at most once per session date. Strategy modules add
their jobs here as they arrive (hedge evaluation, roll check, income screen...).
"""

from __future__ import annotations

import structlog

from alchemiser.hedging.context import EXECUTION_QUEUE, ROLL_QUEUE
from alchemiser.hedging.evaluator import HedgeEvaluator
from alchemiser.hedging.iv_capture import capture_iv
from alchemiser.hedging.roller import RollManager
from alchemiser.income.manager import IncomeManager
from alchemiser.income.screening import IncomeScreener
from alchemiser.income.trader import IncomeTrader, act_on_proposals
from alchemiser.risk_jobs import risk_eod, weekly_review_job
from alchemiser.scheduler import JobContext, JobSpec
from alchemiser.wiring import build_reconciler, raise_reconciliation_alert

log = structlog.stdlib.get_logger("alchemiser.jobs")


async def queue_maintenance(ctx: JobContext) -> None:
    """Apply the queue's retention: stale pending work goes to dead-letter, old done rows go."""
    outcome = await ctx.services.queue.purge_expired()
    log.info("queue_maintenance_done", outcome=outcome)


# Index ETFs the daily summary reports, so the log shows where the market went.
SUMMARY_SYMBOLS = ("SPY", "QQQ", "IWM")


async def daily_summary(ctx: JobContext) -> None:
    """One line at the end of each session: NAV, cash, positions and where the indexes closed."""
    broker = ctx.services.broker
    account = await broker.get_account()
    positions = await broker.get_positions()
    quotes = await broker.get_stock_quotes(SUMMARY_SYMBOLS)
    log.info(
        "daily_summary",
        session_date=ctx.session_date.isoformat(),
        nav=str(account.equity),
        cash=str(account.cash),
        buying_power=str(account.buying_power),
        long_market_value=str(account.long_market_value),
        positions=len(positions),
        option_positions=sum(1 for p in positions if p.is_option),
        **{symbol.lower(): str(q.last) for symbol, q in quotes.items()},
    )


async def hedge_evaluation(ctx: JobContext) -> None:
    """Evaluate the hedge book (15:30) and carry out what it decided."""
    services = ctx.services
    try:
        await HedgeEvaluator(services.hedging).evaluate(ctx.session_date)
    except Exception as exc:
        await services.hedge_executor.record_cycle("evaluation", ok=False, error=str(exc))
        raise
    await services.hedge_executor.drain(f"{services.instance_id}:eval", EXECUTION_QUEUE)


async def hedge_roll_check(ctx: JobContext) -> None:
    """Apply the roll rules (15:45) and carry out the rolls that are due."""
    services = ctx.services
    await RollManager(services.hedging, services.hedge_executor).check(ctx.session_date)
    await services.hedge_executor.drain(f"{services.instance_id}:roll", ROLL_QUEUE)


async def iv_capture(ctx: JobContext) -> None:
    """Store today's ATM implied volatility of the hedge ETFs and the income universe."""
    services = ctx.services
    held = [p.symbol for p in await services.broker.get_positions() if not p.is_option]
    extra = sorted({*held, *services.settings.current.income.watch_list})
    await capture_iv(services.hedging, ctx.session_date, extra)


async def income_screen(ctx: JobContext) -> None:
    """Screen, score and decide covered calls and cash-secured puts; sell or queue for approval."""
    income = ctx.services.income
    report = await IncomeScreener(income).run(ctx.session_date, correlation_id=ctx.correlation_id)
    counts = await act_on_proposals(income, [p for p, _ in report.proposals], ctx.session_date)
    log.info("income_screen_acted", session_date=ctx.session_date.isoformat(), **counts)


async def income_manage(ctx: JobContext) -> None:
    """Settle expiries and assignments, then take profit, stop loss, roll or close."""
    income = ctx.services.income
    await IncomeManager(income, IncomeTrader(income)).manage(ctx.session_date)


# An intent touched this recently may still be worked by its executor: left alone.
EOD_IN_FLIGHT_GRACE_SECONDS = 900


async def eod_reconcile(ctx: JobContext) -> None:
    """After the close: reconcile with the broker (settles expiries and exercises too)."""
    services = ctx.services
    # Income shorts that expired or were assigned at the close are settled now, so the next
    # morning's screen sees the cash and shares as they are (the management job does it too).
    await IncomeManager(services.income, IncomeTrader(services.income)).settle()
    report = await build_reconciler(
        services.broker,
        services.sessions,
        services.clock,
        services.calendar,
        services.audit,
        services.hedging.store,
        services.hedging.account,
        in_flight_grace_seconds=EOD_IN_FLIGHT_GRACE_SECONDS,
        income=services.income.store,
    ).run()
    log.info("eod_reconciliation", **report.counts())
    await raise_reconciliation_alert(services.alerts, report)


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        name="hedge_evaluation",
        schedule_key="hedge_evaluation",
        handler=hedge_evaluation,
        description="size and buy tail hedges inside the premium caps",
    ),
    JobSpec(
        name="hedge_roll_check",
        schedule_key="hedge_roll_check",
        handler=hedge_roll_check,
        description="roll hedges before theta bites",
    ),
    JobSpec(
        name="income_screen",
        schedule_key="income_screen",
        handler=income_screen,
        description="screen, score and sell covered calls and cash-secured puts",
    ),
    JobSpec(
        name="income_manage",
        schedule_key="income_manage",
        handler=income_manage,
        description="income exits, rolls, expiries and assignments (the wheel)",
    ),
    JobSpec(
        name="iv_capture",
        schedule_key="iv_capture",
        handler=iv_capture,
        description="daily ATM IV per hedge ETF for IV percentile",
    ),
    JobSpec(
        name="eod_reconcile",
        schedule_key="eod_reconcile",
        handler=eod_reconcile,
        description="settle expired and exercised hedges",
    ),
    JobSpec(
        name="daily_summary",
        schedule_key="daily_summary",
        handler=daily_summary,
        description="end-of-session log line: NAV, cash, positions, index closes",
    ),
    JobSpec(
        name="risk_eod",
        schedule_key="risk_eod",
        handler=risk_eod,
        description="record closes; store VaR/ES, delta-gamma VaR, stress and the eod snapshot",
    ),
    JobSpec(
        name="weekly_review",
        schedule_key="weekly_review",
        handler=weekly_review_job,
        description="weekly risk review on the week's last session",
    ),
    JobSpec(
        name="queue_maintenance",
        schedule_key="queue_maintenance",
        handler=queue_maintenance,
        description="queue retention: expire stale messages to dead-letter, delete old done ones",
    ),
)
