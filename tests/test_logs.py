"""Log lines: one JSON event per line with the stable fields, library logs included, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.logs import configure_logging, register_secret
from alchemiser.scheduler import JobContext, JobRunner, JobSpec
from alchemiser.settings.core import LoggingSettings
from tests.helpers import make_services


def parse(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_every_line_is_one_json_event_with_utc_timestamp_and_correlation_id() -> None:
    buf = io.StringIO()
    configure_logging(LoggingSettings(format="auto"), buf)  # StringIO is not a TTY: JSON
    structlog.stdlib.get_logger("alchemiser.test").info("something_happened", amount="1.25")
    logging.getLogger("sqlalchemy.engine").warning("library says %s", "hi")

    ours, library = parse(buf)
    assert ours["event"] == "something_happened" and ours["amount"] == "1.25"
    assert library["event"] == "library says hi" and library["logger"] == "sqlalchemy.engine"
    for record in (ours, library):
        stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
        assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
        assert record["correlation_id"]
        assert record["level"] in {"info", "warning"}


def test_console_format_is_key_value_text() -> None:
    buf = io.StringIO()
    configure_logging(LoggingSettings(format="console"), buf)
    structlog.stdlib.get_logger("alchemiser.test").info("heartbeat", uptime_seconds=5)
    line = buf.getvalue().strip()
    assert "heartbeat" in line and "uptime_seconds=5" in line
    assert not line.startswith("{")


def test_levels_per_logger_apply_and_can_change() -> None:
    buf = io.StringIO()
    configure_logging(LoggingSettings(format="json", levels={"alchemiser.noisy": "ERROR"}), buf)
    structlog.stdlib.get_logger("alchemiser.noisy").info("hidden")
    structlog.stdlib.get_logger("alchemiser.noisy").error("shown_error")
    structlog.stdlib.get_logger("alchemiser.quiet").info("shown_info")
    structlog.stdlib.get_logger("alchemiser.quiet").debug("hidden_debug")
    assert [r["event"] for r in parse(buf)] == ["shown_error", "shown_info"]

    from alchemiser.logs import apply_levels

    apply_levels(LoggingSettings(level="DEBUG", levels={}))
    structlog.stdlib.get_logger("alchemiser.noisy").info("now_shown")
    assert parse(buf)[-1]["event"] == "now_shown"


def test_registered_secrets_are_masked_everywhere_including_tracebacks() -> None:
    buf = io.StringIO()
    configure_logging(LoggingSettings(format="json"), buf)
    register_secret("PKSECRETVALUE42")
    register_secret("postgresql+asyncpg://user:dbpassw0rd@host/db")
    log = structlog.stdlib.get_logger("alchemiser.test")
    log.info(
        "connecting", key="PKSECRETVALUE42", url="postgresql+asyncpg://user:dbpassw0rd@host/db"
    )
    logging.getLogger("asyncpg").error("auth with %s failed", "dbpassw0rd")
    try:
        raise RuntimeError("token PKSECRETVALUE42 rejected")
    except RuntimeError:
        log.exception("call_failed")
    out = buf.getvalue()
    assert "PKSECRETVALUE42" not in out and "dbpassw0rd" not in out
    assert out.count("**********") >= 4
    assert "postgresql+asyncpg://user:**********@host/db" in out


async def test_a_job_run_binds_its_own_correlation_id(engine: AsyncEngine, tmp_path: Path) -> None:
    buf = io.StringIO()
    configure_logging(LoggingSettings(format="json"), buf)
    clock = ManualClock(datetime(2026, 11, 23, 15, 30, tzinfo=NEW_YORK))
    services = await make_services(engine, clock)
    inner = structlog.stdlib.get_logger("alchemiser.test")

    async def job(ctx: JobContext) -> None:
        inner.info("inside_job", passed_id=ctx.correlation_id)

    runner = JobRunner(services)
    await runner.run(JobSpec("one", "hedge_evaluation", job))
    await runner.run(JobSpec("two", "hedge_evaluation", job))
    records = [r for r in parse(buf) if r.get("job") in {"one", "two"}]
    by_job: dict[str, set[str]] = {}
    for r in records:
        by_job.setdefault(r["job"], set()).add(r["correlation_id"])
    assert set(by_job) == {"one", "two"}
    assert all(len(ids) == 1 for ids in by_job.values())  # one id per run, on every line of it
    assert by_job["one"] != by_job["two"]
    inside = [r for r in records if r["event"] == "inside_job"]
    assert all(r["correlation_id"] == r["passed_id"] for r in inside)
