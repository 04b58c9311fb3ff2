"""The embedded default end to end: the daemon on the simulated broker, market and clock."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from alchemiser.daemon import Daemon
from alchemiser.settings import load_settings
from tests.helpers import wait_for


def records(buf: io.StringIO, event: str) -> list[dict[str, Any]]:
    found = []
    for line in buf.getvalue().splitlines():
        record = json.loads(line)
        if record["event"] == event:
            found.append(record)
    return found


async def run_until(path: Path, predicate_event: str, count: int) -> tuple[io.StringIO, int]:
    buf = io.StringIO()
    daemon = Daemon(load_settings(path, env={}), env={}, log_stream=buf, handle_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_for(
            lambda: len(records(buf, predicate_event)) >= count or task.done(),
            limit=60,
            what=f"{count} x {predicate_event}",
        )
    finally:
        daemon.request_stop("test over")
        code = await asyncio.wait_for(task, 30)
    return buf, code


async def test_sim_daemon_trades_days_in_seconds_and_a_restart_continues_the_same_book(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "alchemiser.toml"
    config.write_text('[logging]\nformat = "json"\n[sim]\nspeed = 20000\nstart_date = 2026-11-23\n')

    first, code = await run_until(config, "daily_summary", 4)
    assert code == 0
    [ready] = records(first, "sim_ready")
    assert ready["seeded_now"] is True
    summaries = records(first, "daily_summary")
    days = [s["session_date"] for s in summaries]
    # Thanksgiving is skipped; the day after (an early close) still has its summary.
    assert days[:4] == ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-27"]
    nav = [float(s["nav"]) for s in summaries]
    assert 100_000 < nav[0] < 200_000  # the default scenario's $150k book
    assert len({s["spy"] for s in summaries}) > 1  # the market moves
    last_day = days[-1]

    second, code = await run_until(config, "daily_summary", 1)
    assert code == 0
    [again] = records(second, "sim_ready")
    assert again["seeded_now"] is False  # the stored book continues
    resumed = datetime.fromisoformat(again["clock"])
    assert resumed.date().isoformat() >= last_day
    later = [s["session_date"] for s in records(second, "daily_summary")]
    assert later and later[0] > last_day  # no session summarised twice
