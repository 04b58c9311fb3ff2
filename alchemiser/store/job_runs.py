"""Job runs per session date: the record that makes each scheduled job idempotent per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.store.models import JobRun


@dataclass(frozen=True)
class JobRunView:
    id: int
    job_name: str
    session_date: date
    status: str
    instance_id: str
    correlation_id: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class StartOutcome:
    """Either this run may go ahead (``run_id`` set) or an earlier run covers the day."""

    run_id: int | None
    existing: JobRunView | None = None

    @property
    def started(self) -> bool:
        return self.run_id is not None


class JobRuns:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], account: str) -> None:
        self._sessions = sessions
        self._account = account

    async def start(
        self,
        job_name: str,
        session_date: date,
        instance_id: str,
        correlation_id: str,
        now: datetime,
    ) -> StartOutcome:
        """Claim today's run of a job.

        A run already done, or running in this instance, covers the day. A failed
        run, or one left 'running' by an instance that has since died (the
        single-instance lock guarantees it is not alive), is taken over.
        """
        try:
            async with self._sessions.begin() as session:
                run = JobRun(
                    account=self._account,
                    job_name=job_name,
                    session_date=session_date,
                    status="running",
                    instance_id=instance_id,
                    correlation_id=correlation_id,
                    started_at=now,
                )
                session.add(run)
                await session.flush()
                return StartOutcome(run_id=run.id)
        except IntegrityError:
            pass  # a row for this job and day exists: see whether it may be retried
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(JobRun)
                .where(
                    JobRun.account == self._account,
                    JobRun.job_name == job_name,
                    JobRun.session_date == session_date,
                    or_(
                        JobRun.status == "failed",
                        (JobRun.status == "running") & (JobRun.instance_id != instance_id),
                    ),
                )
                .values(
                    status="running",
                    instance_id=instance_id,
                    correlation_id=correlation_id,
                    started_at=now,
                    finished_at=None,
                    error=None,
                )
                .returning(JobRun.id)
            )
            taken = result.scalar_one_or_none()
            if taken is not None:
                return StartOutcome(run_id=taken)
            existing = await self._get(session, job_name, session_date)
        return StartOutcome(run_id=None, existing=existing)

    async def finish(self, run_id: int, now: datetime, error: str | None = None) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(JobRun)
                .where(JobRun.id == run_id)
                .values(status="failed" if error else "done", finished_at=now, error=error)
            )

    async def recent(self, limit: int = 20) -> list[JobRunView]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(JobRun)
                .where(JobRun.account == self._account)
                .order_by(JobRun.started_at.desc())
                .limit(limit)
            )
            return [_view(r) for r in rows]

    async def _get(
        self, session: AsyncSession, job_name: str, session_date: date
    ) -> JobRunView | None:
        row = await session.scalar(
            select(JobRun).where(
                JobRun.account == self._account,
                JobRun.job_name == job_name,
                JobRun.session_date == session_date,
            )
        )
        return _view(row) if row else None


def _view(row: JobRun) -> JobRunView:
    return JobRunView(
        id=row.id,
        job_name=row.job_name,
        session_date=row.session_date,
        status=row.status,
        instance_id=row.instance_id,
        correlation_id=row.correlation_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
    )
