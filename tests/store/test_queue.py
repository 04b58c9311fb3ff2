"""The durable queue on SQLite and PostgreSQL: dedupe, claims, leases, dead-letter, retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.clock import ManualClock
from alchemiser.store.engine import session_factory
from alchemiser.store.models import Job
from alchemiser.store.queue import (
    RETENTION_EXPIRED,
    DurableQueue,
    JobNotDead,
    JobNotFound,
    JobStatus,
    LeaseLost,
    default_retry_delay,
)

START = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def queue(engine: AsyncEngine, clock: ManualClock) -> DurableQueue:
    return DurableQueue(session_factory(engine), clock)


async def _rows(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as s:
        return (await s.execute(select(func.count()).select_from(Job))).scalar_one()


# -- enqueue -------------------------------------------------------------------


async def test_enqueue_with_an_existing_dedupe_key_is_a_no_op(
    queue: DurableQueue, engine: AsyncEngine
) -> None:
    first = await queue.enqueue("hedge", {"n": 1}, dedupe_key="hedge-eval:2026-01-05")
    again = await queue.enqueue("hedge", {"n": 2}, dedupe_key="hedge-eval:2026-01-05")
    assert first.created and not again.created
    assert again.job_id == first.job_id
    assert (await queue.get(first.job_id)).payload == {"n": 1}  # the first payload stays
    assert await _rows(engine) == 1


async def test_jobs_without_a_dedupe_key_are_all_kept(
    queue: DurableQueue, engine: AsyncEngine
) -> None:
    a = await queue.enqueue("q", {})
    b = await queue.enqueue("q", {})
    assert a.created and b.created and a.job_id != b.job_id
    assert await _rows(engine) == 2


async def test_concurrent_enqueues_of_one_key_create_one_job(
    queue: DurableQueue, engine: AsyncEngine
) -> None:
    results = await asyncio.gather(
        *(queue.enqueue("q", {"i": i}, dedupe_key="same") for i in range(6))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.job_id for r in results}) == 1
    assert await _rows(engine) == 1


async def test_payload_is_stored_as_plain_json(queue: DurableQueue) -> None:
    when = datetime(2026, 1, 5, 15, 30, tzinfo=UTC)
    job = await queue.enqueue(
        "q", {"premium": Decimal("1234.50"), "at": when, "status": JobStatus.DONE}
    )
    assert (await queue.get(job.job_id)).payload == {
        "premium": "1234.50",
        "at": "2026-01-05T15:30:00+00:00",
        "status": "done",
    }


async def test_enqueue_takes_the_correlation_id_from_the_log_context(
    queue: DurableQueue,
) -> None:
    with structlog.contextvars.bound_contextvars(correlation_id="corr-42"):
        bound = await queue.enqueue("q", {})
        explicit = await queue.enqueue("q", {}, correlation_id="given")
    assert (await queue.get(bound.job_id)).correlation_id == "corr-42"
    assert (await queue.get(explicit.job_id)).correlation_id == "given"
    claimed = await queue.claim("q", "w")
    assert claimed is not None and claimed.correlation_id == "corr-42"


async def test_enqueue_in_the_callers_transaction_rolls_back_with_it(
    queue: DurableQueue, engine: AsyncEngine
) -> None:
    sessions = session_factory(engine)
    async with sessions() as s, s.begin():
        await queue.enqueue("q", {}, dedupe_key="k", session=s)
        await s.rollback()
    assert await _rows(engine) == 0
    async with sessions() as s, s.begin():
        await queue.enqueue("q", {}, dedupe_key="k", session=s)
    assert await _rows(engine) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queue": ""},
        {"queue": "x" * 65},
        {"delay_seconds": -1},
        {"max_attempts": 0},
        {"visibility_timeout_seconds": 0},
        {"dedupe_key": ""},
    ],
)
async def test_enqueue_rejects_bad_arguments(
    queue: DurableQueue, kwargs: dict[str, object]
) -> None:
    args: dict[str, object] = {"queue": "q", "payload": {}} | kwargs
    with pytest.raises(ValueError):
        await queue.enqueue(**args)  # type: ignore[arg-type]


# -- claim -----------------------------------------------------------------------


async def test_claim_is_fifo_by_available_at_and_respects_delay(
    queue: DurableQueue, clock: ManualClock
) -> None:
    late = await queue.enqueue("q", {"name": "late"}, delay_seconds=60)
    first = await queue.enqueue("q", {"name": "first"})
    second = await queue.enqueue("q", {"name": "second"})
    mid = await queue.enqueue("q", {"name": "mid"}, delay_seconds=30)
    await queue.enqueue("other", {"name": "elsewhere"})

    got = [await queue.claim("q", "w1"), await queue.claim("q", "w1")]
    assert [j.id for j in got if j] == [first.job_id, second.job_id]
    assert await queue.claim("q", "w1") is None  # the delayed ones are not visible yet

    await clock.advance(29)
    assert await queue.claim("q", "w1") is None
    await clock.advance(1)
    job = await queue.claim("q", "w1")
    assert job is not None and job.id == mid.job_id and job.payload == {"name": "mid"}
    await clock.advance(30)
    job = await queue.claim("q", "w1")
    assert job is not None and job.id == late.job_id
    assert await queue.claim("q", "w1") is None


async def test_claim_leases_the_job(queue: DurableQueue) -> None:
    created = await queue.enqueue(
        "q", {"x": 1}, dedupe_key="k", visibility_timeout_seconds=120, max_attempts=5
    )
    job = await queue.claim("q", "worker-a")
    assert job is not None
    assert (job.id, job.queue, job.attempt, job.max_attempts, job.dedupe_key) == (
        created.job_id,
        "q",
        1,
        5,
        "k",
    )
    assert job.worker_id == "worker-a"
    assert job.claimed_until == START + timedelta(seconds=120)
    info = await queue.get(job.id)
    assert info.status == JobStatus.RUNNING and info.claimed_by == "worker-a"
    assert info.attempts == 1


async def test_concurrent_claimers_get_every_job_exactly_once(
    queue: DurableQueue, engine: AsyncEngine
) -> None:
    ids = [(await queue.enqueue("q", {"i": i})).job_id for i in range(20)]

    async def claimer(n: int) -> list[int]:
        # Each claim opens its own session, so each claimer has its own connection.
        got = []
        while (job := await queue.claim("q", f"worker-{n}")) is not None:
            got.append(job.id)
            await asyncio.sleep(0)  # let the others interleave
        return got

    per_claimer = await asyncio.gather(*(claimer(n) for n in range(8)))
    claimed = [i for got in per_claimer for i in got]
    assert sorted(claimed) == ids  # every job, none twice
    counts = await queue.counts()
    assert counts["running"] == 20 and counts["pending"] == 0


# -- leases and visibility ---------------------------------------------------------


async def test_an_unfinished_job_is_claimable_again_after_its_visibility_timeout(
    queue: DurableQueue, clock: ManualClock
) -> None:
    created = await queue.enqueue("q", {}, visibility_timeout_seconds=60)
    first = await queue.claim("q", "w1")
    assert first is not None

    await clock.advance(59)
    assert await queue.claim("q", "w2") is None
    await clock.advance(1)
    second = await queue.claim("q", "w2")
    assert second is not None and second.id == created.job_id and second.attempt == 2

    with pytest.raises(LeaseLost, match="held by 'w2'"):
        await queue.complete(first.id, "w1")
    with pytest.raises(LeaseLost):
        await queue.fail(first.id, "w1", "boom")
    with pytest.raises(LeaseLost):
        await queue.extend(first.id, "w1", 60)
    await queue.complete(second.id, "w2")
    assert (await queue.get(created.job_id)).status == JobStatus.DONE
    with pytest.raises(LeaseLost, match="it is done now"):
        await queue.complete(second.id, "w2")


async def test_the_holder_may_finish_after_its_lease_expired_if_nobody_took_the_job(
    queue: DurableQueue, clock: ManualClock
) -> None:
    await queue.enqueue("q", {}, visibility_timeout_seconds=60)
    job = await queue.claim("q", "w1")
    assert job is not None
    await clock.advance(120)
    await queue.complete(job.id, "w1")
    assert (await queue.get(job.id)).status == JobStatus.DONE
    assert await queue.claim("q", "w2") is None


async def test_extend_keeps_the_lease(queue: DurableQueue, clock: ManualClock) -> None:
    await queue.enqueue("q", {}, visibility_timeout_seconds=60)
    job = await queue.claim("q", "w1")
    assert job is not None
    await clock.advance(50)
    until = await queue.extend(job.id, "w1", 100)
    assert until == START + timedelta(seconds=150)
    await clock.advance(99)
    assert await queue.claim("q", "w2") is None
    await clock.advance(1)
    assert await queue.claim("q", "w2") is not None
    with pytest.raises(ValueError):
        await queue.extend(job.id, "w2", 0)


async def test_unknown_jobs_are_reported(queue: DurableQueue) -> None:
    with pytest.raises(JobNotFound, match="job 999 does not exist"):
        await queue.complete(999, "w")
    with pytest.raises(JobNotFound):
        await queue.fail(999, "w", "x")
    with pytest.raises(JobNotFound):
        await queue.get(999)


async def test_only_a_claimed_job_can_be_completed(queue: DurableQueue) -> None:
    created = await queue.enqueue("q", {})
    with pytest.raises(LeaseLost, match="it is pending now"):
        await queue.complete(created.job_id, "w")


# -- failures and the dead-letter queue -------------------------------------------


async def test_failures_back_off_then_dead_letter_after_three_attempts(
    queue: DurableQueue, clock: ManualClock
) -> None:
    created = await queue.enqueue("q", {})
    for attempt in (1, 2):
        job = await queue.claim("q", "w")
        assert job is not None and job.attempt == attempt and not job.is_last_attempt
        info = await queue.fail(job.id, "w", f"boom {attempt}")
        assert info.status == JobStatus.PENDING and info.last_error == f"boom {attempt}"
        delay = default_retry_delay(attempt)
        assert info.available_at == clock.now() + timedelta(seconds=delay)
        await clock.advance(delay - 1)
        assert await queue.claim("q", "w") is None  # backing off
        await clock.advance(1)

    job = await queue.claim("q", "w")
    assert job is not None and job.attempt == 3 and job.is_last_attempt
    info = await queue.fail(job.id, "w", "boom 3\nTraceback ...")
    assert info.status == JobStatus.DEAD and info.last_error == "boom 3\nTraceback ..."
    await clock.advance(3600)
    assert await queue.claim("q", "w") is None
    dead = await queue.dead_letters()
    assert [j.id for j in dead] == [created.job_id]


async def test_fail_with_an_explicit_retry_delay(queue: DurableQueue, clock: ManualClock) -> None:
    await queue.enqueue("q", {})
    job = await queue.claim("q", "w")
    assert job is not None
    await queue.fail(job.id, "w", "later", retry_delay_seconds=0)
    again = await queue.claim("q", "w")
    assert again is not None and again.id == job.id and again.attempt == 2


async def test_a_job_whose_lease_keeps_expiring_is_dead_lettered(
    queue: DurableQueue, clock: ManualClock
) -> None:
    crashing = await queue.enqueue("q", {"crash": True}, visibility_timeout_seconds=60)
    for attempt in (1, 2, 3):
        job = await queue.claim("q", f"w{attempt}")
        assert job is not None and job.id == crashing.job_id and job.attempt == attempt
        await clock.advance(60)  # the worker died: its lease runs out
    healthy = await queue.enqueue("q", {"crash": False})

    # The exhausted job is dead-lettered on the way and the next job is handed out.
    job = await queue.claim("q", "w4")
    assert job is not None and job.id == healthy.job_id
    dead = await queue.get(crashing.job_id)
    assert dead.status == JobStatus.DEAD and dead.attempts == 3
    assert dead.last_error is not None and "visibility timeout expired" in dead.last_error
    assert "w3" in dead.last_error


async def test_redrive_puts_a_dead_job_back(queue: DurableQueue, clock: ManualClock) -> None:
    created = await queue.enqueue("q", {"p": 1}, max_attempts=1)
    job = await queue.claim("q", "w")
    assert job is not None
    await queue.fail(job.id, "w", "broken")
    await clock.advance(600)

    before = await queue.redrive(created.job_id)
    assert before.status == JobStatus.DEAD and before.last_error == "broken"
    after = await queue.get(created.job_id)
    assert after.status == JobStatus.PENDING and after.attempts == 0
    assert after.last_error is None and after.claimed_by is None
    assert after.available_at == clock.now()
    again = await queue.claim("q", "w")
    assert again is not None and again.id == created.job_id and again.attempt == 1

    with pytest.raises(JobNotDead, match="is running, not dead"):
        await queue.redrive(created.job_id)
    with pytest.raises(JobNotFound):
        await queue.redrive(12345)


# -- retention, listing, counts -----------------------------------------------------


async def test_purge_expired_dead_letters_stale_work_and_deletes_old_done_jobs(
    queue: DurableQueue, clock: ManualClock
) -> None:
    day = 86400
    old_done = await queue.enqueue("q", {}, dedupe_key="old-done")
    job = await queue.claim("q", "w")
    assert job is not None and job.id == old_done.job_id
    await queue.complete(job.id, "w")
    old_pending = await queue.enqueue("slow", {})
    delayed = await queue.enqueue("slow", {}, delay_seconds=3 * day)
    lost = await queue.enqueue("abandoned", {}, visibility_timeout_seconds=60, max_attempts=5)
    assert await queue.claim("abandoned", "w") is not None
    old_dead = await queue.enqueue("q", {}, max_attempts=1)
    job = await queue.claim("q", "w")
    assert job is not None
    await queue.fail(job.id, "w", "kept")

    await clock.advance(3 * day)
    exhausted = await queue.enqueue("q2", {}, visibility_timeout_seconds=60, max_attempts=1)
    assert await queue.claim("q2", "w") is not None
    recent_done = await queue.enqueue("q3", {})
    job = await queue.claim("q3", "w")
    assert job is not None
    await queue.complete(job.id, "w")
    active = await queue.enqueue("q4", {}, visibility_timeout_seconds=10 * day)
    assert await queue.claim("q4", "w") is not None

    await clock.advance(day + 120)  # past retention for everything from the first day
    result = await queue.purge_expired()
    assert (result.dead_lettered, result.exhausted, result.deleted) == (2, 1, 1)

    with pytest.raises(JobNotFound):
        await queue.get(old_done.job_id)
    for job_id in (old_pending.job_id, lost.job_id):
        info = await queue.get(job_id)
        assert info.status == JobStatus.DEAD and info.last_error == RETENTION_EXPIRED
    info = await queue.get(exhausted.job_id)
    assert info.status == JobStatus.DEAD and "last attempt" in (info.last_error or "")
    assert (await queue.get(old_dead.job_id)).status == JobStatus.DEAD
    assert (await queue.get(old_dead.job_id)).last_error == "kept"
    assert (await queue.get(delayed.job_id)).status == JobStatus.PENDING
    assert (await queue.get(recent_done.job_id)).status == JobStatus.DONE
    assert (await queue.get(active.job_id)).status == JobStatus.RUNNING

    # The purged done job's dedupe key is free again.
    assert (await queue.enqueue("q", {}, dedupe_key="old-done")).created
    with pytest.raises(ValueError):
        await queue.purge_expired(0)


async def test_list_filters_and_counts(queue: DurableQueue) -> None:
    a = await queue.enqueue("q", {})
    b = await queue.enqueue("q", {})
    c = await queue.enqueue("other", {})
    job = await queue.claim("q", "w")
    assert job is not None and job.id == a.job_id

    assert [j.id for j in await queue.list()] == [c.job_id, b.job_id, a.job_id]  # newest first
    assert [j.id for j in await queue.list(queue="q")] == [b.job_id, a.job_id]
    assert [j.id for j in await queue.list(status="running")] == [a.job_id]
    assert [j.id for j in await queue.list(limit=1)] == [c.job_id]
    assert await queue.dead_letters() == []
    with pytest.raises(ValueError):
        await queue.list(status="bogus")

    assert await queue.counts() == {"pending": 2, "running": 1, "done": 0, "dead": 0}
    assert await queue.counts(queue="other") == {"pending": 1, "running": 0, "done": 0, "dead": 0}
