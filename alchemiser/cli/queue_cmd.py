"""`alchemiser queue list|dlq|redrive`: look at the durable queue and put dead jobs back."""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from datetime import datetime

import click

from alchemiser.cli.common import CliFailure, CliState, open_database, pass_state, run
from alchemiser.clock import RealClock
from alchemiser.exit_codes import ExitCode
from alchemiser.settings import Settings
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import session_factory
from alchemiser.store.queue import DurableQueue, JobInfo, JobNotDead, JobNotFound, JobStatus

QUEUE_REDRIVE = "QUEUE_REDRIVE"
ERROR_WIDTH = 60
KEY_WIDTH = 40

STATUS_CHOICE = click.Choice([s.value for s in JobStatus], case_sensitive=False)


@click.group("queue")
def queue_group() -> None:
    """The durable job queue: list jobs, show the dead-letter queue, redrive a dead job."""


@queue_group.command("list")
@click.option("--queue", "queue_name", metavar="Q", help="Only jobs of this queue.")
@click.option("--status", type=STATUS_CHOICE, help="Only jobs in this status.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most N jobs."
)
@pass_state
def list_jobs(state: CliState, queue_name: str | None, status: str | None, limit: int) -> None:
    """Jobs, newest first, with a count per status."""
    settings = state.settings()

    async def go() -> tuple[list[JobInfo], dict[str, int]]:
        async with open_database(settings) as engine:
            queue = DurableQueue(session_factory(engine), RealClock())
            jobs = await queue.list(queue=queue_name, status=status and status.lower(), limit=limit)
            return jobs, await queue.counts(queue=queue_name)

    jobs, counts = run(go())
    _echo_table(jobs, empty="no jobs")
    click.echo("  ".join(f"{name}: {n}" for name, n in counts.items()))


@queue_group.command("dlq")
@click.option("--queue", "queue_name", metavar="Q", help="Only dead jobs of this queue.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="At most N jobs."
)
@pass_state
def dlq(state: CliState, queue_name: str | None, limit: int) -> None:
    """The dead-letter queue: jobs that used up their attempts or outlived retention."""
    settings = state.settings()

    async def go() -> list[JobInfo]:
        async with open_database(settings) as engine:
            queue = DurableQueue(session_factory(engine), RealClock())
            return await queue.dead_letters(queue=queue_name, limit=limit)

    jobs = run(go())
    _echo_table(jobs, empty="dead-letter queue is empty")
    if jobs:
        click.echo(f"{len(jobs)} dead job(s); `alchemiser queue redrive ID` puts one back")


@queue_group.command("redrive")
@click.argument("job_id", metavar="ID", type=int)
@pass_state
def redrive(state: CliState, job_id: int) -> None:
    """Put dead job ID back on its queue (attempts reset, error cleared) and audit it."""
    settings = state.settings()
    job = run(_redrive(settings, job_id))
    click.echo(
        f"job {job.id} ({job.queue}) redriven: pending again, attempts reset "
        f"(was {job.attempts}/{job.max_attempts}, last error: {_clip(job.last_error, ERROR_WIDTH) or '-'})"
    )


async def _redrive(settings: Settings, job_id: int) -> JobInfo:
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = RealClock()
        queue = DurableQueue(sessions, clock)
        audit = AuditLog(sessions, clock, settings.broker.account)
        # The redrive and its audit entry commit together: no redrive goes unrecorded.
        async with sessions() as session, session.begin():
            try:
                before = await queue.redrive(job_id, session=session)
            except JobNotFound:
                raise CliFailure(f"job {job_id} not found", ExitCode.ERROR) from None
            except JobNotDead as exc:
                raise CliFailure(
                    f"job {job_id} is {exc.status}, not dead: only dead-lettered jobs can be redriven",
                    ExitCode.ERROR,
                ) from None
            await audit.record(
                QUEUE_REDRIVE,
                related_ids={"job_id": before.id},
                details={
                    "queue": before.queue,
                    "dedupe_key": before.dedupe_key,
                    "attempts_before": before.attempts,
                    "last_error": before.last_error,
                    "source": "cli",
                    "user": _user(),
                },
                session=session,
            )
        return before


def _echo_table(jobs: Sequence[JobInfo], *, empty: str) -> None:
    if not jobs:
        click.echo(empty)
        return
    header = ("ID", "QUEUE", "STATUS", "ATTEMPTS", "AVAILABLE_AT (UTC)", "DEDUPE_KEY", "LAST_ERROR")
    rows = [
        (
            str(j.id),
            j.queue,
            j.status.value,
            f"{j.attempts}/{j.max_attempts}",
            _when(j.available_at),
            _clip(j.dedupe_key, KEY_WIDTH) or "-",
            _clip(j.last_error, ERROR_WIDTH) or "-",
        )
        for j in jobs
    ]
    # Every column but the last is padded; the error may run as long as it is.
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def _clip(text: str | None, width: int) -> str:
    if not text:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Traceback"):
        text = lines[-1]  # a Python traceback says what went wrong on its last line
    one_line = " ".join(text.split())  # tracebacks and multi-line errors on one row
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; the audit row still matters more
        return "unknown"
