"""Every scheduled job of the daemon, declared in one place.

Each job names its schedule key in ``[schedule]``; the scheduler fires it on
NYSE sessions and runs it at most once per session date. Strategy modules add
their jobs here as they arrive (hedge evaluation, roll check, income screen...).
"""

from __future__ import annotations

import structlog

from alchemiser.scheduler import JobContext, JobSpec

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


JOBS: tuple[JobSpec, ...] = (
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
