"""`alchemiser queue list|dlq|redrive` against a migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.cli.queue_cmd import QUEUE_REDRIVE, queue_group
from alchemiser.clock import ManualClock
from alchemiser.exit_codes import ExitCode
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import session_factory
from alchemiser.store.queue import DurableQueue, JobStatus

START = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
LONG_ERROR = "ValueError: quote for QQQ 2026-03-20 P 400 was crossed\n" + "x" * 200


@pytest.fixture(autouse=True)
def _no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Run where no config/alchemiser.toml exists, so only defaults and the env apply.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def queue(engine: AsyncEngine) -> DurableQueue:
    return DurableQueue(session_factory(engine), ManualClock(START))


async def invoke(db_url: str, *args: str, account: str = "acct-cli") -> Result:
    """Run the click group in a thread: the command calls asyncio.run itself."""
    env = {"DATABASE_URL": db_url, "ALCHEMISER_CONFIG": "", "ALCHEMISER__BROKER__ACCOUNT": account}
    return await asyncio.to_thread(CliRunner().invoke, queue_group, list(args), env=env)


async def _dead_job(queue: DurableQueue, name: str = "hedge", error: str = LONG_ERROR) -> int:
    created = await queue.enqueue(name, {"k": 1}, dedupe_key=f"{name}-dead", max_attempts=1)
    job = await queue.claim(name, "worker-1")
    assert job is not None and job.id == created.job_id
    await queue.fail(job.id, "worker-1", error)
    return created.job_id


async def test_list_prints_a_table_and_counts(queue: DurableQueue, db_url: str) -> None:
    dead_id = await _dead_job(queue)
    pending = await queue.enqueue("income", {}, dedupe_key="income-screen:2026-01-05")

    result = await invoke(db_url, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "ID",
        "QUEUE",
        "STATUS",
        "ATTEMPTS",
        "AVAILABLE_AT",
        "(UTC)",
        "DEDUPE_KEY",
        "LAST_ERROR",
    ]
    assert lines[1].split()[:5] == [str(pending.job_id), "income", "pending", "0/3", "2026-01-05"]
    assert "income-screen:2026-01-05" in lines[1]
    assert "hedge-dead" in lines[2]
    dead_row = lines[2]
    assert dead_row.split()[:4] == [str(dead_id), "hedge", "dead", "1/1"]
    # The error is on one line and cut short.
    assert "ValueError: quote for QQQ" in dead_row and dead_row.endswith("…")
    assert len(dead_row) < 200
    assert lines[-1] == "pending: 1  running: 0  done: 0  dead: 1"


async def test_list_filters(queue: DurableQueue, db_url: str) -> None:
    dead_id = await _dead_job(queue)
    pending = await queue.enqueue("income", {})

    by_queue = await invoke(db_url, "list", "--queue", "income")
    assert by_queue.exit_code == 0, by_queue.output
    rows = by_queue.output.splitlines()[1:-1]
    assert [r.split()[0] for r in rows] == [str(pending.job_id)]
    assert by_queue.output.splitlines()[-1] == "pending: 1  running: 0  done: 0  dead: 0"

    by_status = await invoke(db_url, "list", "--status", "dead", "--limit", "5")
    assert [r.split()[0] for r in by_status.output.splitlines()[1:-1]] == [str(dead_id)]

    nothing = await invoke(db_url, "list", "--queue", "nope")
    assert nothing.exit_code == 0 and nothing.output.splitlines()[0] == "no jobs"

    bad = await invoke(db_url, "list", "--status", "sleeping")
    assert bad.exit_code == ExitCode.USAGE


async def test_dlq_shows_only_dead_jobs(queue: DurableQueue, db_url: str) -> None:
    empty = await invoke(db_url, "dlq")
    assert empty.exit_code == 0 and empty.output.strip() == "dead-letter queue is empty"

    dead_hedge = await _dead_job(queue, "hedge")
    dead_income = await _dead_job(queue, "income")
    await queue.enqueue("hedge", {})

    result = await invoke(db_url, "dlq")
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()[1:-1]
    assert [r.split()[0] for r in rows] == [str(dead_income), str(dead_hedge)]
    assert "2 dead job(s)" in result.output

    only_hedge = await invoke(db_url, "dlq", "--queue", "hedge")
    assert [r.split()[0] for r in only_hedge.output.splitlines()[1:-1]] == [str(dead_hedge)]


async def test_a_traceback_is_shown_by_its_last_line(queue: DurableQueue, db_url: str) -> None:
    error = "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'QQQ'\n"
    await _dead_job(queue, error=error)
    result = await invoke(db_url, "dlq")
    assert result.output.splitlines()[1].endswith("KeyError: 'QQQ'")


async def test_redrive_puts_the_job_back_and_audits_it(
    queue: DurableQueue, engine: AsyncEngine, db_url: str
) -> None:
    job_id = await _dead_job(queue, error="boom")

    result = await invoke(db_url, "redrive", str(job_id))
    assert result.exit_code == 0, result.output
    assert f"job {job_id} (hedge) redriven" in result.output
    assert "last error: boom" in result.output

    job = await queue.get(job_id)
    assert job.status == JobStatus.PENDING and job.attempts == 0 and job.last_error is None

    audit = AuditLog(session_factory(engine), ManualClock(START), account="acct-cli")
    [entry] = await audit.entries(action=QUEUE_REDRIVE)
    assert entry.related_ids == {"job_id": job_id}
    assert entry.details["queue"] == "hedge"
    assert entry.details["dedupe_key"] == "hedge-dead"
    assert entry.details["attempts_before"] == 1
    assert entry.details["last_error"] == "boom"
    assert entry.details["source"] == "cli"


async def test_redrive_refuses_unknown_and_live_jobs(
    queue: DurableQueue, engine: AsyncEngine, db_url: str
) -> None:
    unknown = await invoke(db_url, "redrive", "999")
    assert unknown.exit_code == ExitCode.ERROR
    assert "job 999 not found" in unknown.output

    pending = await queue.enqueue("hedge", {})
    live = await invoke(db_url, "redrive", str(pending.job_id))
    assert live.exit_code == ExitCode.ERROR
    assert f"job {pending.job_id} is pending, not dead" in live.output

    not_a_number = await invoke(db_url, "redrive", "abc")
    assert not_a_number.exit_code == ExitCode.USAGE
    assert "'abc' is not a valid integer" in not_a_number.output

    # Nothing was redriven, so nothing was audited.
    audit = AuditLog(session_factory(engine), ManualClock(START), account="acct-cli")
    assert await audit.entries() == []


async def test_an_unmigrated_database_is_a_database_error(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    result = await invoke(url, "list")
    assert result.exit_code == ExitCode.DATABASE
    assert "alchemiser db upgrade" in result.output
