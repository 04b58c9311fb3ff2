"""Scheduled jobs: declared once, fired on NYSE sessions, run at most once per session date.

On the real clock, APScheduler 3's ``AsyncIOScheduler`` fires the jobs. On a
``SimClock`` (accelerated or manual) APScheduler cannot be used, because it
reads the wall clock itself; a small driver walks the same triggers on the
simulated clock instead, so the same jobs and the same run-once rule apply in
simulation and backtests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from alchemiser.clock import NEW_YORK, Clock, SimClock
from alchemiser.session_triggers import SessionTrigger
from alchemiser.settings import LiveSettings, Settings
from alchemiser.store.job_runs import JobRuns
from alchemiser.trading_calendar import TradingCalendar

if TYPE_CHECKING:
    from alchemiser.daemon import Services

log = structlog.stdlib.get_logger("alchemiser.scheduler")


@dataclass(frozen=True)
class JobContext:
    """What a job run gets: its day, its correlation id, and the daemon's wired services."""

    name: str
    session_date: date
    correlation_id: str
    services: Services

    @property
    def clock(self) -> Clock:
        return self.services.clock

    @property
    def settings(self) -> LiveSettings:
        return self.services.settings


JobHandler = Callable[[JobContext], Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    """A scheduled job. ``schedule_key`` names its spec in ``[schedule]`` (e.g. "close-30m")."""

    name: str
    schedule_key: str
    handler: JobHandler
    description: str = ""

    def spec(self, settings: Settings) -> str:
        return str(getattr(settings.schedule, self.schedule_key))


@dataclass
class JobRunner:
    """Runs one job for one session date, once: the idempotency and the log lines live here."""

    services: Services
    running: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def clock(self) -> Clock:
        return self.services.clock

    @property
    def calendar(self) -> TradingCalendar:
        return self.services.calendar

    @property
    def job_runs(self) -> JobRuns:
        return self.services.job_runs

    @property
    def instance_id(self) -> str:
        return self.services.instance_id

    def session_date_for(self, when: datetime) -> date | None:
        """The session a run at ``when`` belongs to: that New York date if it is a session."""
        day = when.astimezone(NEW_YORK).date()
        return day if self.calendar.is_session(day) else None

    async def run(self, spec: JobSpec) -> str:
        """Run ``spec`` for today's session; returns 'done', 'failed', 'skipped' or 'already_ran'."""
        task = asyncio.current_task()
        if task is not None:
            self.running.add(task)
        correlation_id = uuid.uuid4().hex
        try:
            with structlog.contextvars.bound_contextvars(
                correlation_id=correlation_id, job=spec.name
            ):
                return await self._run(spec, correlation_id)
        finally:
            if task is not None:
                self.running.discard(task)

    async def _run(self, spec: JobSpec, correlation_id: str) -> str:
        now = self.clock.now()
        session = self.session_date_for(now)
        if session is None:
            log.info("job_skipped_not_session", at=now.isoformat())
            return "skipped"
        outcome = await self.job_runs.start(
            spec.name, session, self.instance_id, correlation_id, now
        )
        if not outcome.started:
            existing = outcome.existing
            log.info(
                "job_already_ran",
                session_date=session.isoformat(),
                status=existing.status if existing else None,
                earlier_correlation_id=existing.correlation_id if existing else None,
            )
            return "already_ran"
        assert outcome.run_id is not None
        # Durations are wall time: how long the work took, whatever the simulated clock did.
        started = asyncio.get_running_loop().time()
        log.info("job_started", session_date=session.isoformat())
        context = JobContext(spec.name, session, correlation_id, self.services)
        try:
            await spec.handler(context)
        except asyncio.CancelledError:
            await self.job_runs.finish(
                outcome.run_id, self.clock.now(), error="interrupted by shutdown"
            )
            log.warning("job_interrupted", session_date=session.isoformat())
            raise
        except Exception as exc:
            await self.job_runs.finish(
                outcome.run_id, self.clock.now(), error=f"{type(exc).__name__}: {exc}"
            )
            log.exception("job_failed", session_date=session.isoformat())
            return "failed"
        await self.job_runs.finish(outcome.run_id, self.clock.now())
        log.info(
            "job_finished",
            session_date=session.isoformat(),
            seconds=round(asyncio.get_running_loop().time() - started, 3),
        )
        return "done"


class DaemonScheduler:
    """Fires the declared jobs on their session triggers; reschedules when their spec is edited."""

    def __init__(
        self,
        clock: Clock,
        calendar: TradingCalendar,
        settings: LiveSettings,
        runner: JobRunner,
        jobs: list[JobSpec],
    ) -> None:
        self._clock = clock
        self._calendar = calendar
        self._settings = settings
        self.runner = runner
        self._jobs = {job.name: job for job in jobs}
        self._aps: AsyncIOScheduler | None = None
        self._driver: asyncio.Task[None] | None = None
        self._sim_next: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        settings.on_change(self._on_settings_change)

    @property
    def simulated(self) -> bool:
        return isinstance(self._clock, SimClock)

    def trigger_for(self, job: JobSpec, settings: Settings | None = None) -> BaseTrigger:
        return SessionTrigger(self._calendar, job.spec(settings or self._settings.current))

    def start(self) -> None:
        if not self._settings.schedule.enabled:
            log.warning("scheduler_disabled", note="schedule.enabled = false: no job will run")
            return
        if self.simulated:
            self._driver = asyncio.create_task(self._drive_simulated(), name="sim-scheduler")
        else:
            self._aps = AsyncIOScheduler(timezone=NEW_YORK)
            for job in self._jobs.values():
                self._add_aps_job(job)
            self._aps.start()
        log.info("scheduler_started", jobs=self.next_runs(), simulated=self.simulated)

    def _add_aps_job(self, job: JobSpec) -> None:
        assert self._aps is not None
        self._aps.add_job(
            self.runner.run,
            trigger=self.trigger_for(job),
            args=[job],
            id=job.name,
            name=job.name,
            coalesce=True,  # a backlog of missed fires runs once, not once per miss
            max_instances=1,  # a job never overlaps itself
            misfire_grace_time=self._settings.schedule.misfire_grace_seconds,
            replace_existing=True,
        )

    def next_runs(self) -> list[dict[str, str]]:
        """Each job's next fire time (New York), for the heartbeat and `status`."""
        runs: list[tuple[datetime, str]] = []
        if self._aps is not None:
            for aps_job in self._aps.get_jobs():
                if aps_job.next_run_time is not None:
                    runs.append((aps_job.next_run_time, aps_job.id))
        else:
            now = self._clock.now()
            for job in self._jobs.values():
                when = self._sim_next.get(job.name) or self.trigger_for(job).get_next_fire_time(
                    None, now
                )
                if when is not None:
                    runs.append((when, job.name))
        return [
            {"job": name, "at": when.astimezone(NEW_YORK).isoformat(timespec="minutes")}
            for when, name in sorted(runs)
        ]

    def _on_settings_change(self, old: Settings, new: Settings) -> None:
        changed = [j for j in self._jobs.values() if j.spec(old) != j.spec(new)]
        grace_changed = old.schedule.misfire_grace_seconds != new.schedule.misfire_grace_seconds
        if self._aps is not None:
            for job in self._jobs.values():
                if job in changed or grace_changed:
                    self._aps.modify_job(
                        job.name, misfire_grace_time=new.schedule.misfire_grace_seconds
                    )
                if job in changed:
                    self._aps.reschedule_job(job.name, trigger=self.trigger_for(job, new))
        for job in changed:
            self._sim_next.pop(job.name, None)
            log.info("job_rescheduled", job=job.name, old=job.spec(old), new=job.spec(new))
        if changed:
            self._wake.set()

    async def _drive_simulated(self) -> None:
        last: dict[str, datetime] = {}
        while not self._stopping:
            now = self._clock.now()
            for job in self._jobs.values():
                if job.name not in self._sim_next:
                    nxt = self.trigger_for(job).get_next_fire_time(last.get(job.name), now)
                    if nxt is not None:
                        self._sim_next[job.name] = nxt
            if not self._sim_next:
                return
            due_at = min(self._sim_next.values())
            self._wake.clear()
            sleeper = asyncio.ensure_future(self._clock.sleep_until(due_at))
            waker = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            for pending in (sleeper, waker):
                pending.cancel()
            if self._wake.is_set():
                continue  # a schedule changed, or we are stopping: look again
            now = self._clock.now()
            grace = self._settings.schedule.misfire_grace_seconds
            for name, when in sorted(self._sim_next.items(), key=lambda item: item[1]):
                if when > now or self._stopping:
                    continue
                del self._sim_next[name]
                last[name] = when
                if self._late_seconds(now, when) > grace:
                    log.warning("job_misfired", job=name, scheduled=when.isoformat())
                    continue
                await self.runner.run(self._jobs[name])

    def _late_seconds(self, now: datetime, when: datetime) -> float:
        """How late a simulated fire is, in real seconds: the earlier jobs' own run time,
        multiplied by an accelerated clock, is not the daemon being late."""
        speed = self._clock.speed
        return 0.0 if speed <= 0 else (now - when).total_seconds() / speed

    async def shutdown(self, grace_seconds: float) -> None:
        """Take no new jobs; give running ones ``grace_seconds`` to finish, then cancel them."""
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        self._stopping = True
        self._wake.set()
        if self._driver is not None:
            # The driver runs jobs inline: it ends after the one in progress.
            _done, pending = await asyncio.wait({self._driver}, timeout=grace_seconds)
            if pending:
                self._driver.cancel()
                log.warning("jobs_cancelled_at_shutdown", count=1)
            await asyncio.gather(self._driver, return_exceptions=True)
        running = set(self.runner.running)
        if running:
            log.info("waiting_for_running_jobs", count=len(running), grace_seconds=grace_seconds)
            _done, pending = await asyncio.wait(running, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning("jobs_cancelled_at_shutdown", count=len(pending))
