"""The scheduler on the NYSE calendar, and the once-per-session rule of job runs."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.scheduler import DaemonScheduler, JobContext, JobRunner, JobSpec
from tests.helpers import make_services, wait_for


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


class Recorder:
    """A job handler that remembers when it ran (and can be told to fail)."""

    def __init__(self, clock: ManualClock, fail_times: int = 0) -> None:
        self.clock = clock
        self.runs: list[tuple[date, datetime]] = []
        self.fail_times = fail_times

    async def __call__(self, ctx: JobContext) -> None:
        self.runs.append((ctx.session_date, self.clock.now().astimezone(NEW_YORK)))
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("job blew up")


async def test_no_run_on_a_holiday_and_early_close_shifts_close_relative_jobs(
    engine: AsyncEngine,
) -> None:
    clock = ManualClock(ny(2026, 11, 25, 9, 0))
    services = await make_services(engine, clock)
    close_job = Recorder(clock)
    wall_job = Recorder(clock)
    jobs = [
        JobSpec("close_relative", "hedge_evaluation", close_job),  # default close-30m
        JobSpec("wall_time", "income_screen", wall_job),  # default open+60m
    ]
    runner = JobRunner(services)
    scheduler = DaemonScheduler(clock, services.calendar, services.settings, runner, jobs)
    scheduler.start()
    try:
        # Jump from one scheduled fire to the next through Thanksgiving week,
        # letting each run finish before time moves on.
        end = ny(2026, 12, 1, 0, 0)
        while True:
            await wait_for(
                lambda: not runner.running and clock.pending_sleepers > 0, what="driver idle"
            )
            deadline = clock.next_deadline()
            if deadline is None or deadline > end:
                break
            await clock.advance_to(deadline)
    finally:
        await scheduler.shutdown(5)

    assert [(d, t.strftime("%H:%M")) for d, t in close_job.runs] == [
        (date(2026, 11, 25), "15:30"),
        (date(2026, 11, 27), "12:30"),  # 13:00 early close, so close-30m is 12:30
        (date(2026, 11, 30), "15:30"),
    ]
    assert date(2026, 11, 26) not in {d for d, _ in wall_job.runs}  # Thanksgiving
    assert [d for d, _ in wall_job.runs] == [
        date(2026, 11, 25),
        date(2026, 11, 27),
        date(2026, 11, 30),
    ]
    assert all(t.strftime("%H:%M") == "10:30" for _, t in wall_job.runs)


async def test_a_second_trigger_on_the_same_session_is_a_no_op(engine: AsyncEngine) -> None:
    clock = ManualClock(ny(2026, 11, 23, 15, 30))
    services = await make_services(engine, clock)
    job = Recorder(clock)
    spec = JobSpec("hedge_evaluation", "hedge_evaluation", job)
    runner = JobRunner(services)

    assert await runner.run(spec) == "done"
    await clock.advance(600)
    assert await runner.run(spec) == "already_ran"
    assert len(job.runs) == 1

    # Another daemon instance (after a restart) on the same day also sees it done.
    restarted = JobRunner(await make_services(engine, clock))
    assert await restarted.run(spec) == "already_ran"

    # The next session runs again.
    await clock.advance_to(ny(2026, 11, 24, 15, 30))
    assert await runner.run(spec) == "done"
    assert [d for d, _ in job.runs] == [date(2026, 11, 23), date(2026, 11, 24)]


async def test_a_failed_run_may_be_retried_the_same_day_and_is_recorded(
    engine: AsyncEngine,
) -> None:
    clock = ManualClock(ny(2026, 11, 23, 15, 30))
    services = await make_services(engine, clock)
    job = Recorder(clock, fail_times=1)
    spec = JobSpec("flaky", "hedge_evaluation", job)
    runner = JobRunner(services)

    assert await runner.run(spec) == "failed"
    recent = await services.job_runs.recent()
    assert recent[0].status == "failed" and "job blew up" in (recent[0].error or "")

    assert await runner.run(spec) == "done"
    assert await runner.run(spec) == "already_ran"
    recent = await services.job_runs.recent()
    assert [(r.job_name, r.status) for r in recent] == [("flaky", "done")]


async def test_a_run_outside_a_session_is_skipped(engine: AsyncEngine) -> None:
    clock = ManualClock(ny(2026, 11, 26, 15, 30))  # Thanksgiving
    services = await make_services(engine, clock)
    job = Recorder(clock)
    assert await JobRunner(services).run(JobSpec("x", "hedge_evaluation", job)) == "skipped"
    assert job.runs == []


async def test_editing_a_job_schedule_reschedules_it(engine: AsyncEngine, tmp_path: Path) -> None:
    config = tmp_path / "alchemiser.toml"
    config.write_text("")
    clock = ManualClock(ny(2026, 11, 23, 9, 0))
    services = await make_services(engine, clock, config)
    job = Recorder(clock)
    runner = JobRunner(services)
    scheduler = DaemonScheduler(
        clock,
        services.calendar,
        services.settings,
        runner,
        [JobSpec("eval", "hedge_evaluation", job)],
    )
    scheduler.start()
    try:
        assert scheduler.next_runs()[0]["at"].startswith("2026-11-23T15:30")
        config.write_text('[schedule]\nhedge_evaluation = "14:00"\n')
        assert services.settings.reload().applied
        await wait_for(lambda: clock.pending_sleepers > 0, what="driver re-armed")
        assert scheduler.next_runs()[0]["at"].startswith("2026-11-23T14:00")
        assert clock.next_deadline() == ny(2026, 11, 23, 14, 0)
        await clock.advance_to(ny(2026, 11, 23, 14, 0))
        await wait_for(lambda: len(job.runs) == 1 and not runner.running, what="job ran")
    finally:
        await scheduler.shutdown(5)
    assert job.runs[0][1].strftime("%H:%M") == "14:00"


@pytest.mark.parametrize("grace", [0.2])
async def test_shutdown_lets_a_running_job_finish_within_grace(
    engine: AsyncEngine, grace: float
) -> None:
    import asyncio

    clock = ManualClock(ny(2026, 11, 23, 15, 30))
    services = await make_services(engine, clock)
    finished = asyncio.Event()

    async def slow(ctx: JobContext) -> None:
        await asyncio.sleep(0.05)
        finished.set()

    runner = JobRunner(services)
    scheduler = DaemonScheduler(clock, services.calendar, services.settings, runner, [])
    task = asyncio.create_task(runner.run(JobSpec("slow", "hedge_evaluation", slow)))
    await wait_for(lambda: bool(runner.running), what="job started")
    await scheduler.shutdown(grace)
    assert finished.is_set() and task.done() and task.result() == "done"

    # A job that outlives the grace period is cancelled and recorded as interrupted.
    async def stuck(ctx: JobContext) -> None:
        await asyncio.sleep(3600)

    task = asyncio.create_task(runner.run(JobSpec("stuck", "hedge_evaluation", stuck)))
    await wait_for(lambda: bool(runner.running), what="job started")
    await scheduler.shutdown(grace)
    assert task.cancelled()
    runs = {r.job_name: r for r in await services.job_runs.recent()}
    assert runs["stuck"].status == "failed" and runs["stuck"].error == "interrupted by shutdown"
