"""The durable job queue: the in-database stand-in for the original design's SQS queue.

A job moves ``pending -> running -> done``; a failure sends it back to
``pending`` after a backoff, and after ``max_attempts`` (default 3) attempts it
moves to ``dead`` (the dead-letter queue) where it waits for a person to look
and ``redrive`` it.

Semantics a caller can rely on:

- **Dedupe.** ``dedupe_key`` is unique across the table. Enqueueing a key that
  already exists is a no-op that returns the existing job id (even when two
  enqueues race: INSERT ... ON CONFLICT DO NOTHING). The key stays taken for as
  long as the row exists, i.e. until retention deletes the done job, so a
  daily key such as ``hedge-eval:2026-01-05`` never runs twice.
- **Claim.** ``claim`` hands out the oldest available job (by ``available_at``,
  then id) that is pending, or running with an expired lease. On PostgreSQL the
  row is taken with ``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent
  claimers never get the same job; on SQLite every transaction is BEGIN
  IMMEDIATE (one writer), which makes the claim exclusive by itself.
- **Visibility timeout.** A claim leases the job for its visibility timeout
  (default 900 s); ``extend`` renews the lease for long work. A lease that
  expires makes the job claimable again (at-least-once delivery: executors
  must be idempotent, as every order is).
- **Leases.** ``complete``, ``fail`` and ``extend`` succeed only for the worker
  that holds the job now. A worker whose lease expired *and* whose job was
  claimed by another gets ``LeaseLost``; if nobody re-claimed it yet, its
  completion is still accepted (the work was done once, by it). Worker ids
  must therefore be unique per claimer (process and task).
- **Dead-letter.** After ``max_attempts`` attempts a job is dead: through
  ``fail`` on the last attempt, or when the lease of its last attempt expires
  (an executor that crashes every time does not loop forever). ``redrive`` puts
  a dead job back to pending with its attempts reset.

Retention (``purge_expired``, default 4 days, as SQS's default). A trading
daemon must never lose a message silently, so retention never deletes unfinished
work:

- pending jobs that have been claimable for longer than retention (measured
  from ``available_at``, so a delayed or redriven job gets a full window), and
  running jobs whose lease expired longer than retention ago, move to ``dead``
  with ``last_error = "retention expired"``: visible in ``queue dlq``;
- running jobs whose lease expired on their last attempt move to ``dead`` (the
  same rule ``claim`` applies, swept here for queues nobody is claiming);
- done jobs finished longer than retention ago are deleted (this frees their
  dedupe keys);
- dead jobs are kept until someone redrives them: they are the record that a
  person has something to look at, and they are few.

Payloads are stored as plain JSON (see ``to_json_safe``: Decimal becomes its
exact string, datetimes ISO 8601). ``last_error`` is cut to 4000 characters.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.clock import Clock
from alchemiser.settings.core import QueueSettings
from alchemiser.store.audit import (
    clip_correlation_id,
    current_correlation_id,
    in_transaction,
    to_json_safe,
)
from alchemiser.store.engine import dialect_insert
from alchemiser.store.models import Job
from alchemiser.store.types import clip_text

# Backoff after a failure when the caller gives none: 30 s, 60 s, 120 s ... capped.
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 900
LAST_ERROR_MAX = 4000
QUEUE_NAME_MAX = 64
WORKER_ID_MAX = 128
DEDUPE_KEY_MAX = 255
RETENTION_EXPIRED = "retention expired"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class QueueError(Exception):
    """A queue operation that cannot be done; the message says why."""


class JobNotFound(QueueError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class LeaseLost(QueueError):
    """The worker no longer holds the job: its lease expired and another took it, or it ended."""

    def __init__(self, job_id: int, worker_id: str, holder: str | None, status: str) -> None:
        if status == JobStatus.RUNNING:
            why = f"it is now held by {holder!r} (the lease expired and the job was claimed again)"
        else:
            why = f"it is {status} now"
        super().__init__(f"worker {worker_id!r} no longer holds job {job_id}: {why}")
        self.job_id = job_id
        self.worker_id = worker_id
        self.holder = holder
        self.status = status


class JobNotDead(QueueError):
    def __init__(self, job_id: int, status: str) -> None:
        super().__init__(
            f"job {job_id} is {status}, not dead: only dead-lettered jobs can be redriven"
        )
        self.job_id = job_id
        self.status = status


@dataclass(frozen=True)
class EnqueueResult:
    job_id: int
    created: bool  # False: a job with this dedupe key already existed


@dataclass(frozen=True)
class ClaimedJob:
    """A job handed to a worker, with the lease it holds."""

    id: int
    queue: str
    payload: dict[str, Any]
    attempt: int  # 1 on the first delivery
    max_attempts: int
    worker_id: str
    claimed_until: datetime
    dedupe_key: str | None
    correlation_id: str | None

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


@dataclass(frozen=True)
class JobInfo:
    """A job as stored, for listing and inspection."""

    id: int
    queue: str
    payload: dict[str, Any]
    dedupe_key: str | None
    status: JobStatus
    attempts: int
    max_attempts: int
    visibility_timeout_seconds: int
    available_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None
    last_error: str | None
    correlation_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Job) -> JobInfo:
        return cls(
            id=row.id,
            queue=row.queue,
            payload=row.payload,
            dedupe_key=row.dedupe_key,
            status=JobStatus(row.status),
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            visibility_timeout_seconds=row.visibility_timeout_seconds,
            available_at=row.available_at,
            claimed_by=row.claimed_by,
            claimed_until=row.claimed_until,
            last_error=row.last_error,
            correlation_id=row.correlation_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class PurgeResult:
    dead_lettered: int  # unfinished jobs past retention, now in the dead-letter queue
    exhausted: int  # expired leases on their last attempt, now dead
    deleted: int  # done jobs past retention, removed


def default_retry_delay(attempts: int) -> int:
    """Exponential backoff after the ``attempts``-th failed attempt."""
    return min(RETRY_BASE_SECONDS << max(attempts - 1, 0), RETRY_MAX_SECONDS)


class DurableQueue:
    """Named queues of JSON jobs in the ``jobs`` table."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: Callable[[], QueueSettings] = QueueSettings,
    ) -> None:
        self._sessions = session_factory
        self._clock = clock
        # Read at each call, so an edit of [queue] applies to the next job.
        self._settings = settings

    # -- producing -----------------------------------------------------------

    async def enqueue(
        self,
        queue: str,
        payload: Mapping[str, Any],
        *,
        dedupe_key: str | None = None,
        delay_seconds: float = 0,
        max_attempts: int | None = None,
        visibility_timeout_seconds: int | None = None,
        correlation_id: str | None = None,
        session: AsyncSession | None = None,
    ) -> EnqueueResult:
        """Add a job; with an existing ``dedupe_key`` do nothing and return that job's id.

        With ``session`` the job is written in the caller's transaction (it
        becomes visible when the caller commits, together with whatever caused it).
        """
        _check_name("queue", queue, QUEUE_NAME_MAX)
        if dedupe_key is not None:
            _check_name("dedupe_key", dedupe_key, DEDUPE_KEY_MAX)
        if delay_seconds < 0:
            raise ValueError(f"delay_seconds must be >= 0, got {delay_seconds}")
        defaults = self._settings()
        if max_attempts is None:
            max_attempts = defaults.max_attempts
        if visibility_timeout_seconds is None:
            visibility_timeout_seconds = defaults.visibility_timeout_seconds
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if visibility_timeout_seconds < 1:
            raise ValueError(
                f"visibility_timeout_seconds must be >= 1, got {visibility_timeout_seconds}"
            )
        now = self._now()
        values = {
            "queue": queue,
            "payload": to_json_safe(dict(payload)),
            "dedupe_key": dedupe_key,
            "status": JobStatus.PENDING.value,
            "attempts": 0,
            "max_attempts": max_attempts,
            "visibility_timeout_seconds": visibility_timeout_seconds,
            "available_at": now + timedelta(seconds=delay_seconds),
            "correlation_id": clip_correlation_id(correlation_id or current_correlation_id()),
            "created_at": now,
            "updated_at": now,
        }
        async with in_transaction(self._sessions, session) as s:
            insert = dialect_insert(s)
            # Two rounds: if the conflicting row vanished (purged) between the
            # insert and the lookup, the second insert takes the key.
            for _ in range(2):
                stmt = (
                    insert(Job)
                    .values(**values)
                    .on_conflict_do_nothing(index_elements=[Job.dedupe_key])
                )
                new_id = (await s.execute(stmt.returning(Job.id))).scalar_one_or_none()
                if new_id is not None:
                    return EnqueueResult(job_id=new_id, created=True)
                # A conflict: on PostgreSQL the insert waited for the other
                # transaction to commit, so this read (a new snapshot) sees its row.
                existing = (
                    await s.execute(select(Job.id).where(Job.dedupe_key == dedupe_key))
                ).scalar_one_or_none()
                if existing is not None:
                    return EnqueueResult(job_id=existing, created=False)
        raise QueueError(
            f"could not enqueue {queue!r} with dedupe key {dedupe_key!r}: the key keeps changing hands"
        )

    # -- consuming -----------------------------------------------------------

    async def claim(self, queue: str, worker_id: str) -> ClaimedJob | None:
        """Lease the oldest available job of ``queue`` to ``worker_id``, or None if there is none."""
        _check_name("worker_id", worker_id, WORKER_ID_MAX)
        now = self._now()
        async with self._sessions() as s, s.begin():
            candidates = (
                select(Job)
                .where(
                    Job.queue == queue,
                    or_(
                        and_(Job.status == JobStatus.PENDING.value, Job.available_at <= now),
                        and_(Job.status == JobStatus.RUNNING.value, Job.claimed_until <= now),
                    ),
                )
                .order_by(Job.available_at, Job.id)
                .limit(1)
            )
            if s.get_bind().dialect.name == "postgresql":
                # Skip rows another claimer is taking right now instead of waiting for them.
                candidates = candidates.with_for_update(skip_locked=True)
            while True:
                job = (await s.execute(candidates)).scalar_one_or_none()
                if job is None:
                    return None
                if job.status == JobStatus.RUNNING and job.attempts >= job.max_attempts:
                    # The last attempt's lease ran out (its worker died or hung):
                    # dead-letter it rather than hand it out forever. Our own
                    # change hides it from the next round of the loop.
                    _dead_letter(job, now, _exhausted_message(job))
                    await s.flush()
                    continue
                job.status = JobStatus.RUNNING.value
                job.attempts += 1
                job.claimed_by = worker_id
                job.claimed_until = now + timedelta(seconds=job.visibility_timeout_seconds)
                job.updated_at = now
                await s.flush()
                return ClaimedJob(
                    id=job.id,
                    queue=job.queue,
                    payload=job.payload,
                    attempt=job.attempts,
                    max_attempts=job.max_attempts,
                    worker_id=worker_id,
                    claimed_until=job.claimed_until,
                    dedupe_key=job.dedupe_key,
                    correlation_id=job.correlation_id,
                )

    async def complete(self, job_id: int, worker_id: str) -> None:
        """Mark the job done; only its current lease holder may."""
        now = self._now()
        async with self._sessions() as s, s.begin():
            await self._update_held(
                s,
                job_id,
                worker_id,
                status=JobStatus.DONE.value,
                claimed_until=None,
                updated_at=now,
            )

    async def fail(
        self,
        job_id: int,
        worker_id: str,
        error: str,
        retry_delay_seconds: float | None = None,
    ) -> JobInfo:
        """Record a failed attempt: back to pending after a backoff, or dead on the last attempt.

        ``retry_delay_seconds`` None means exponential backoff from 30 s (capped at 900 s).
        """
        now = self._now()
        async with self._sessions() as s, s.begin():
            job = await self._held(s, job_id, worker_id)
            if job.attempts >= job.max_attempts:
                _dead_letter(job, now, _clip_error(error))
            else:
                delay = (
                    default_retry_delay(job.attempts)
                    if retry_delay_seconds is None
                    else max(retry_delay_seconds, 0)
                )
                job.status = JobStatus.PENDING.value
                job.available_at = now + timedelta(seconds=delay)
                job.claimed_until = None
                job.last_error = _clip_error(error)
                job.updated_at = now
            await s.flush()
            return JobInfo.from_row(job)

    async def extend(self, job_id: int, worker_id: str, seconds: float) -> datetime:
        """Heartbeat: the lease now ends ``seconds`` from now. Returns the new end."""
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        now = self._now()
        until = now + timedelta(seconds=seconds)
        async with self._sessions() as s, s.begin():
            await self._update_held(s, job_id, worker_id, claimed_until=until, updated_at=now)
        return until

    # -- operating -----------------------------------------------------------

    async def get(self, job_id: int) -> JobInfo:
        async with self._sessions() as s, s.begin():
            job = await s.get(Job, job_id)
            if job is None:
                raise JobNotFound(job_id)
            return JobInfo.from_row(job)

    async def list(
        self, queue: str | None = None, status: str | None = None, limit: int = 100
    ) -> builtins.list[JobInfo]:
        """Jobs, newest first, optionally of one queue and one status."""
        stmt = select(Job)
        if queue is not None:
            stmt = stmt.where(Job.queue == queue)
        if status is not None:
            stmt = stmt.where(Job.status == JobStatus(status).value)
        stmt = stmt.order_by(Job.id.desc()).limit(limit)
        async with self._sessions() as s, s.begin():
            return [JobInfo.from_row(j) for j in (await s.execute(stmt)).scalars()]

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100
    ) -> builtins.list[JobInfo]:
        """The dead-letter queue: jobs that used up their attempts or outlived retention."""
        return await self.list(queue=queue, status=JobStatus.DEAD, limit=limit)

    async def redrive(self, job_id: int, *, session: AsyncSession | None = None) -> JobInfo:
        """Put a dead job back to pending, available now, attempts reset and error cleared.

        Returns the job as it was *before* the redrive (its last error is what
        an operator wants to keep in the audit entry). With ``session`` the
        change joins the caller's transaction.
        """
        now = self._now()
        async with in_transaction(self._sessions, session) as s:
            job = await _locked(s, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job.status != JobStatus.DEAD:
                raise JobNotDead(job_id, job.status)
            before = JobInfo.from_row(job)
            job.status = JobStatus.PENDING.value
            job.attempts = 0
            job.last_error = None
            job.available_at = now
            job.claimed_by = None
            job.claimed_until = None
            job.updated_at = now
            await s.flush()
            return before

    async def purge_expired(self, retention_seconds: float | None = None) -> PurgeResult:
        """Apply retention (see the module docstring): dead-letter stale work, delete old done jobs."""
        if retention_seconds is None:
            retention_seconds = self._settings().retention_days * 86400
        if retention_seconds <= 0:
            raise ValueError(f"retention_seconds must be > 0, got {retention_seconds}")
        now = self._now()
        cutoff = now - timedelta(seconds=retention_seconds)
        async with self._sessions() as s, s.begin():
            stale = await s.execute(
                update(Job)
                .where(
                    or_(
                        and_(Job.status == JobStatus.PENDING.value, Job.available_at < cutoff),
                        and_(Job.status == JobStatus.RUNNING.value, Job.claimed_until < cutoff),
                    )
                )
                .values(
                    status=JobStatus.DEAD.value,
                    claimed_until=None,
                    last_error=RETENTION_EXPIRED,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            exhausted = await s.execute(
                update(Job)
                .where(
                    Job.status == JobStatus.RUNNING.value,
                    Job.claimed_until <= now,
                    Job.attempts >= Job.max_attempts,
                )
                .values(
                    status=JobStatus.DEAD.value,
                    claimed_until=None,
                    last_error=(
                        "visibility timeout expired on the last attempt ("
                        + func.coalesce(Job.claimed_by, "?")
                        + ")"
                    ),
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            deleted = await s.execute(
                delete(Job)
                .where(Job.status == JobStatus.DONE.value, Job.updated_at < cutoff)
                .execution_options(synchronize_session=False)
            )
        return PurgeResult(
            dead_lettered=_rowcount(stale),
            exhausted=_rowcount(exhausted),
            deleted=_rowcount(deleted),
        )

    async def counts(self, queue: str | None = None) -> dict[str, int]:
        """Jobs per status (every status present, zeros included)."""
        stmt = select(Job.status, func.count()).group_by(Job.status)
        if queue is not None:
            stmt = stmt.where(Job.queue == queue)
        result = {status.value: 0 for status in JobStatus}
        async with self._sessions() as s, s.begin():
            for status, n in await s.execute(stmt):
                result[status] = n
        return result

    # -- internals -----------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock.now()
        if now.tzinfo is None:
            raise ValueError("the clock returned a naive datetime; it must be timezone-aware UTC")
        return now

    async def _held(self, s: AsyncSession, job_id: int, worker_id: str) -> Job:
        """The job, locked, if ``worker_id`` holds it now; otherwise the reason why not."""
        job = await _locked(s, job_id)
        if job is None:
            raise JobNotFound(job_id)
        if job.status != JobStatus.RUNNING or job.claimed_by != worker_id:
            raise LeaseLost(job_id, worker_id, job.claimed_by, job.status)
        return job

    async def _update_held(
        self, s: AsyncSession, job_id: int, worker_id: str, **values: Any
    ) -> None:
        # One conditional UPDATE: atomic against a concurrent re-claim on both databases.
        done = await s.execute(
            update(Job)
            .where(
                Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.claimed_by == worker_id
            )
            .values(**values)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
        if done.scalar_one_or_none() is None:
            await self._held(s, job_id, worker_id)  # raises the precise reason
            raise LeaseLost(job_id, worker_id, None, "unknown")  # pragma: no cover - unreachable


async def _locked(s: AsyncSession, job_id: int) -> Job | None:
    stmt = select(Job).where(Job.id == job_id)
    if s.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await s.execute(stmt)).scalar_one_or_none()


def _dead_letter(job: Job, now: datetime, error: str) -> None:
    job.status = JobStatus.DEAD.value
    job.claimed_until = None
    job.last_error = error
    job.updated_at = now


def _exhausted_message(job: Job) -> str:
    return (
        f"visibility timeout expired on the last attempt ({job.attempts} of {job.max_attempts},"
        f" held by {job.claimed_by})"
    )


def _rowcount(result: Any) -> int:
    # UPDATE/DELETE results are CursorResults; the generic Result type does not say so.
    return int(getattr(result, "rowcount", 0) or 0)


def _clip_error(error: str) -> str:
    return clip_text(str(error), LAST_ERROR_MAX)


def _check_name(what: str, value: str, max_len: int) -> None:
    if not value or len(value) > max_len:
        raise ValueError(f"{what} must be 1..{max_len} characters, got {value!r}")
