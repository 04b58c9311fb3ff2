"""Clock: wall time, accelerated simulated time and manual time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alchemiser.clock import NEW_YORK, Clock, ManualClock, RealClock, SimClock, to_new_york

START = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


def test_clocks_satisfy_the_protocol() -> None:
    assert isinstance(RealClock(), Clock)
    assert isinstance(SimClock(START), Clock)
    assert isinstance(ManualClock(START), Clock)


def test_real_clock_reads_aware_utc_wall_time() -> None:
    clock = RealClock()
    now = clock.now()
    assert now.tzinfo is UTC
    assert abs(now.timestamp() - time.time()) < 5
    assert clock.speed == 1.0
    assert clock.monotonic() <= clock.monotonic()


async def test_real_clock_sleeps() -> None:
    clock = RealClock()
    before = clock.monotonic()
    await clock.sleep(0.01)
    await clock.sleep_until(clock.now() + timedelta(milliseconds=10))
    await clock.sleep(-1)  # negative is a plain yield
    assert clock.monotonic() - before >= 0.015


def test_to_new_york() -> None:
    ny = to_new_york(datetime(2026, 11, 27, 18, 0, tzinfo=UTC))
    assert ny.tzinfo is NEW_YORK
    assert (ny.hour, ny.minute) == (13, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        to_new_york(datetime(2026, 11, 27, 18, 0))


@pytest.mark.parametrize("factory", [SimClock, ManualClock])
def test_naive_start_is_rejected(factory: type[SimClock]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        factory(datetime(2026, 1, 2, 9, 30))


@pytest.mark.parametrize("speed", [0, -1.0, float("nan"), float("inf")])
def test_bad_speed_is_rejected(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        SimClock(START, speed=speed)


def test_sim_clock_reports_utc_from_any_zone() -> None:
    clock = ManualClock(datetime(2026, 11, 23, 9, 30, tzinfo=NEW_YORK))
    assert clock.now() == START
    assert clock.now().tzinfo is UTC


async def test_accelerated_clock_runs_speed_times_faster() -> None:
    clock = SimClock(START, speed=36_000)
    real_before = time.monotonic()
    await clock.sleep(36)  # about 1 ms of real time
    real_elapsed = time.monotonic() - real_before
    assert clock.now() - START >= timedelta(seconds=36)
    assert clock.monotonic() >= 36
    # Loose upper bound: a 1 ms sleep must not have taken a real second.
    assert real_elapsed < 1.0


async def test_accelerated_concurrent_sleepers_wake_in_order() -> None:
    clock = SimClock(START, speed=36_000)
    woke: list[tuple[int, datetime]] = []

    async def sleeper(n: int, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((n, clock.now()))

    await asyncio.gather(sleeper(3, 30), sleeper(1, 10), sleeper(2, 20))
    assert [n for n, _ in woke] == [1, 2, 3]
    for n, at in woke:
        assert at >= START + timedelta(seconds=10 * n)


async def test_manual_clock_stands_still() -> None:
    clock = ManualClock(START)
    assert clock.manual
    assert clock.speed == 0.0
    await asyncio.sleep(0.01)
    assert clock.now() == START
    assert clock.monotonic() == 0.0


async def test_manual_sleepers_wake_in_order_exactly_at_their_deadlines() -> None:
    clock = SimClock(START, speed=None)
    woke: list[tuple[str, datetime]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [
        asyncio.create_task(sleeper("c", 300)),
        asyncio.create_task(sleeper("a", 60)),
        asyncio.create_task(sleeper("b", 120)),
    ]
    await asyncio.sleep(0)
    assert clock.pending_sleepers == 3
    assert clock.next_deadline() == START + timedelta(seconds=60)

    await clock.advance(59)
    assert woke == []  # not before the deadline

    await clock.advance(61)  # now START + 120: "a" and "b" are due, "c" is not
    assert woke == [
        ("a", START + timedelta(seconds=60)),
        ("b", START + timedelta(seconds=120)),
    ]
    assert clock.now() == START + timedelta(seconds=120)

    await clock.advance_to(START + timedelta(hours=1))
    assert woke[-1] == ("c", START + timedelta(seconds=300))
    assert clock.now() == START + timedelta(hours=1)
    await asyncio.gather(*tasks)


async def test_advance_wakes_a_looping_sleeper_at_every_step() -> None:
    clock = ManualClock(START)
    ticks: list[datetime] = []

    async def every_minute() -> None:
        while True:
            await clock.sleep(60)
            ticks.append(clock.now())

    task = asyncio.create_task(every_minute())
    await asyncio.sleep(0)
    await clock.advance(600)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ticks == [START + timedelta(minutes=m) for m in range(1, 11)]
    assert clock.pending_sleepers == 0


async def test_sleep_until_with_an_offset_zone_and_a_past_deadline() -> None:
    clock = ManualClock(START)
    deadline = datetime(2026, 11, 23, 10, 0, tzinfo=timezone(timedelta(hours=-5)))
    task = asyncio.create_task(clock.sleep_until(deadline))
    await asyncio.sleep(0)
    await clock.advance(29 * 60)
    assert not task.done()
    await clock.advance(60)
    await task
    await clock.sleep_until(START)  # already past: returns at once
    with pytest.raises(ValueError, match="timezone-aware"):
        await clock.sleep_until(datetime(2026, 11, 23, 10, 0))


async def test_cancelled_sleeper_is_forgotten() -> None:
    clock = ManualClock(START)
    task = asyncio.create_task(clock.sleep(10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending_sleepers == 0
    await clock.advance(20)
    assert clock.now() == START + timedelta(seconds=20)


async def test_time_never_goes_backwards() -> None:
    clock = ManualClock(START)
    with pytest.raises(ValueError, match="backwards"):
        await clock.advance(-1)
    with pytest.raises(ValueError, match="backwards"):
        await clock.advance_to(START - timedelta(seconds=1))


async def test_pause_resume_and_speed_change() -> None:
    clock = SimClock(START, speed=36_000)
    clock.pause()
    assert clock.manual
    paused_at = clock.now()
    await asyncio.sleep(0.005)
    assert clock.now() == paused_at

    task = asyncio.create_task(clock.sleep(36))
    await asyncio.sleep(0.005)
    assert not task.done()  # paused: time does not reach the deadline by itself
    clock.resume()
    assert clock.speed == 36_000
    await asyncio.wait_for(task, timeout=5)
    assert clock.now() >= paused_at + timedelta(seconds=36)

    await clock.advance(0)  # running: a target time already passed is not an error
    before = clock.now()
    await clock.advance(3600)
    assert clock.now() >= before + timedelta(hours=1)

    clock.set_speed(None)
    assert clock.manual
    clock.set_speed(1.0)
    assert clock.speed == 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=20))
def test_manual_sleepers_always_wake_in_deadline_order(delays: list[int]) -> None:
    async def scenario() -> None:
        clock = ManualClock(START)
        woke: list[float] = []

        async def sleeper(seconds: int) -> None:
            await clock.sleep(seconds)
            woke.append(clock.monotonic())
            assert clock.monotonic() == seconds

        tasks = [asyncio.create_task(sleeper(d)) for d in delays]
        await asyncio.sleep(0)
        await clock.advance(max(delays))
        await asyncio.gather(*tasks)
        assert woke == sorted(float(d) for d in delays)

    asyncio.run(scenario())
