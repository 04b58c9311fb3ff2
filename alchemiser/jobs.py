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


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        name="queue_maintenance",
        schedule_key="queue_maintenance",
        handler=queue_maintenance,
        description="queue retention: expire stale messages to dead-letter, delete old done ones",
    ),
)
