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
    """Store today's ATM implied volatility of each hedge ETF (for IV percentiles)."""
    await capture_iv(ctx.services.hedging, ctx.session_date)


# An intent touched this recently may still be worked by its executor: left alone.
EOD_IN_FLIGHT_GRACE_SECONDS = 900


async def eod_reconcile(ctx: JobContext) -> None:
    """After the close: reconcile with the broker (settles expiries and exercises too)."""
    services = ctx.services
    report = await build_reconciler(
        services.broker,
        services.sessions,
        services.clock,
        services.calendar,
        services.audit,
        services.hedging.store,
        services.hedging.account,
        in_flight_grace_seconds=EOD_IN_FLIGHT_GRACE_SECONDS,
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
        name="queue_maintenance",
        schedule_key="queue_maintenance",
        handler=queue_maintenance,
        description="queue retention: expire stale messages to dead-letter, delete old done ones",
    ),
)
