from __future__ import annotations

import asyncio
from datetime import datetime

from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.sim_time import ClosedHoursSkipper, next_open_at_or_after
from alchemiser.trading_calendar import nyse_calendar


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


def test_next_open_skips_weekends_and_holidays() -> None:
    cal = nyse_calendar()
    assert next_open_at_or_after(cal, ny(2026, 11, 25, 8, 0)) == ny(2026, 11, 25, 9, 30)
    assert next_open_at_or_after(cal, ny(2026, 11, 25, 9, 30)) == ny(2026, 11, 25, 9, 30)
    assert next_open_at_or_after(cal, ny(2026, 11, 25, 16, 0)) == ny(2026, 11, 27, 9, 30)
    assert next_open_at_or_after(cal, ny(2026, 11, 27, 14, 0)) == ny(2026, 11, 30, 9, 30)


async def test_skips_closed_hours_but_stops_at_every_deadline_on_the_way() -> None:
    clock = ManualClock(ny(2026, 11, 27, 13, 5))  # after the 13:00 early close, Friday
    woken: list[datetime] = []

    async def sleeper(at: datetime) -> None:
        await clock.sleep_until(at)
        woken.append(clock.now())

    task = asyncio.create_task(sleeper(ny(2026, 11, 27, 13, 15)))
    await asyncio.sleep(0)
    busy = False
    skipper = ClosedHoursSkipper(clock, nyse_calendar(), is_idle=lambda: not busy)

    assert await skipper.step() == ny(2026, 11, 27, 13, 15)  # the after-close job's deadline first
    await task
    assert woken == [ny(2026, 11, 27, 13, 15)]

    busy = True
    assert await skipper.step() is None  # never jumps while a job runs
    busy = False
    assert await skipper.step() == ny(2026, 11, 30, 9, 30)  # then straight to Monday's open
    assert await skipper.step() is None  # open: time flows by itself
