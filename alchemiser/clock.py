"""The project's only source of time.

Everything that needs "now", a sleep or a duration takes a :class:`Clock`, so
the same code runs on wall time (``RealClock``), on accelerated simulated time
(``SimClock(start, speed=3600)``) and on time that moves only when a test or a
backtest says so (``ManualClock(start)``, the same as ``SimClock(start, speed=None)``).

No other module may call ``datetime.now()``, ``time.time()`` or ``time.monotonic()``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

__all__ = [
    "NEW_YORK",
    "UTC",
    "Clock",
    "ManualClock",
    "RealClock",
    "SimClock",
    "ensure_aware",
    "to_new_york",
]

NEW_YORK = ZoneInfo("America/New_York")

# A real sleep longer than this is split, so a wall-clock step (NTP, a suspended
# host) delays a wake-up by at most this much instead of by the whole sleep.
_REAL_SLEEP_CHUNK_SECONDS = 60.0

# How many times ``SimClock.advance`` yields to the event loop after waking a
# sleeper, so the woken task (and tasks it hands work to) run at that instant
# and can register their next sleep before time moves on.
DEFAULT_SETTLE_YIELDS = 8


def ensure_aware(dt: datetime, what: str = "datetime") -> datetime:
    """Return ``dt`` if it carries a UTC offset; a naive datetime is a ValueError."""
    if not isinstance(dt, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {dt.isoformat()}")
    return dt


def to_new_york(dt: datetime) -> datetime:
    """The same instant as an America/New_York wall time (naive input is rejected)."""
    return ensure_aware(dt).astimezone(NEW_YORK)


def _check_seconds(seconds: float) -> float:
    if math.isnan(seconds):
        raise ValueError("seconds must be a number, got NaN")
    return float(seconds)


@runtime_checkable
class Clock(Protocol):
    """A source of time: wall time, accelerated simulated time or manual time."""

    @property
    def speed(self) -> float:
        """Clock seconds per real second: 1.0 for wall time, 0.0 while time only moves by hand."""
        ...

    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds of this clock's time from an arbitrary origin; never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (zero or negative: just yield)."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Wait until ``now() >= when`` (``when`` must be aware)."""
        ...


class RealClock:
    """Wall time. Sleeps are asyncio sleeps."""

    __slots__ = ()

    @property
    def speed(self) -> float:
        return 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, _check_seconds(seconds)))

    async def sleep_until(self, when: datetime) -> None:
        ensure_aware(when, "when")
        # Re-read the wall clock after each chunk: it can step while we sleep.
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, _REAL_SLEEP_CHUNK_SECONDS))
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return "RealClock()"


@dataclass(order=True)
class _Sleeper:
    deadline: datetime
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class SimClock:
    """Simulated time.

    With a ``speed`` (> 0) simulated time flows ``speed`` times faster than real
    time from ``start``: ``now() = start + real elapsed × speed`` and
    ``sleep(s)`` takes ``s / speed`` real seconds. With ``speed=None`` the clock
    is *manual*: it stands still until :meth:`advance` / :meth:`advance_to`.

    Either way, :meth:`advance` and :meth:`advance_to` jump time forward and wake
    every pending sleeper whose deadline they pass, one at a time in deadline
    order, with ``now()`` equal to that sleeper's deadline while it runs. That is
    what makes tests and backtests deterministic. :meth:`pause`,
    :meth:`resume` and :meth:`set_speed` switch between the two modes.

    Not thread-safe: use it from the event loop's thread.
    """

    def __init__(
        self,
        start: datetime,
        speed: float | None = 1.0,
        *,
        settle_yields: int = DEFAULT_SETTLE_YIELDS,
    ) -> None:
        ensure_aware(start, "SimClock start")
        self._start = start.astimezone(UTC)
        self._base_sim = self._start
        self._base_real = time.monotonic()
        self._speed = 0.0 if speed is None else self._valid_speed(speed)
        # The rate resume() returns to after a pause.
        self._resume_speed = self._speed or 1.0
        self._settle_yields = max(0, settle_yields)
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._advancing = False

    @staticmethod
    def _valid_speed(speed: float) -> float:
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
            raise ValueError(
                f"speed must be a finite number > 0 (or None for manual), got {speed!r}"
            )
        return float(speed)

    # -- reading time ------------------------------------------------------------

    @property
    def speed(self) -> float:
        """Simulated seconds per real second; 0.0 while paused or manual."""
        return self._speed

    @property
    def manual(self) -> bool:
        """True while time moves only through :meth:`advance` / :meth:`advance_to`."""
        return self._speed == 0.0

    @property
    def start(self) -> datetime:
        return self._start

    def now(self) -> datetime:
        if self._speed == 0.0:
            return self._base_sim
        elapsed = (time.monotonic() - self._base_real) * self._speed
        return self._base_sim + timedelta(seconds=elapsed)

    def monotonic(self) -> float:
        return (self.now() - self._start).total_seconds()

    # -- sleeping ----------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        seconds = _check_seconds(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        if math.isinf(seconds):
            await asyncio.get_running_loop().create_future()  # forever, like asyncio.sleep(inf)
        await self.sleep_until(self.now() + timedelta(seconds=seconds))

    async def sleep_until(self, when: datetime) -> None:
        ensure_aware(when, "when")
        if when <= self.now():
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, _Sleeper(when.astimezone(UTC), next(self._seq), future))
        self._rearm()
        try:
            await future
        finally:
            # A cancelled sleeper stays in the heap and is skipped when reached;
            # re-arming keeps the real-time timer pointed at a live deadline.
            if future.cancelled():
                self._rearm()

    @property
    def pending_sleepers(self) -> int:
        """How many sleeps are waiting for their deadline."""
        return sum(1 for s in self._sleepers if not s.future.done())

    def next_deadline(self) -> datetime | None:
        """The earliest pending sleep deadline, or None (lets a driver jump straight to it)."""
        self._drop_done()
        return self._sleepers[0].deadline if self._sleepers else None

    # -- moving time -------------------------------------------------------------

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (>= 0), waking due sleepers in deadline order."""
        seconds = _check_seconds(seconds)
        if seconds < 0:
            raise ValueError(f"time cannot go backwards: advance({seconds})")
        await self.advance_to(self.now() + timedelta(seconds=seconds))

    async def advance_to(self, when: datetime) -> None:
        """Move time forward to ``when``, waking due sleepers in deadline order.

        Each woken sleeper runs (for a few event-loop turns) with ``now()`` at its
        own deadline, so a task that sleeps again inside the window is woken
        again inside the same call. On a manual clock ``when`` earlier than
        ``now()`` is a ValueError; on a running clock time may already have
        flowed past it, so time is simply not moved.
        """
        ensure_aware(when, "when")
        target = when.astimezone(UTC)
        if target < self.now() and self.manual:
            raise ValueError(
                f"time cannot go backwards: advance_to({target.isoformat()}) "
                f"but now is {self.now().isoformat()}"
            )
        if self._advancing:
            raise RuntimeError("SimClock.advance is already running in another task")
        self._advancing = True
        try:
            while True:
                self._drop_done()
                if not self._sleepers or self._sleepers[0].deadline > target:
                    break
                sleeper = heapq.heappop(self._sleepers)
                if sleeper.deadline > self.now():
                    self._set_time(sleeper.deadline)
                sleeper.future.set_result(None)
                for _ in range(self._settle_yields):
                    await asyncio.sleep(0)
            if target > self.now():
                self._set_time(target)
        finally:
            self._advancing = False
            self._rearm()

    def pause(self) -> None:
        """Stop time flowing by itself (manual mode) until :meth:`resume`."""
        self._set_speed(0.0)

    def resume(self, speed: float | None = None) -> None:
        """Let time flow again at ``speed`` (default: the speed before the pause, else 1.0)."""
        self._set_speed(self._valid_speed(speed if speed is not None else self._resume_speed))

    def set_speed(self, speed: float | None) -> None:
        """Change the rate of time; ``None`` pauses (manual mode)."""
        self._set_speed(0.0 if speed is None else self._valid_speed(speed))

    # -- internals ---------------------------------------------------------------

    def _set_speed(self, speed: float) -> None:
        # Rebase first so the time already elapsed is kept at the old rate.
        self._set_time(self.now())
        if self._speed > 0:
            self._resume_speed = self._speed
        self._speed = speed
        self._rearm()

    def _set_time(self, when: datetime) -> None:
        self._base_sim = when
        self._base_real = time.monotonic()

    def _drop_done(self) -> None:
        while self._sleepers and self._sleepers[0].future.done():
            heapq.heappop(self._sleepers)

    def _rearm(self) -> None:
        """Wake sleepers that are due and, if time flows, set a real timer for the next one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._advancing:
            return  # advance_to wakes sleepers itself, one at a time
        now = self.now()
        while True:
            self._drop_done()
            if not self._sleepers or self._sleepers[0].deadline > now:
                break
            heapq.heappop(self._sleepers).future.set_result(None)
        if self._sleepers and self._speed > 0:
            head = self._sleepers[0]
            delay = (head.deadline - now).total_seconds() / self._speed
            # The timer may fire a hair early; _rearm then just sets a new one.
            self._timer = head.future.get_loop().call_later(delay, self._rearm)

    def __repr__(self) -> str:
        mode = "manual" if self.manual else f"speed={self._speed:g}"
        return f"{type(self).__name__}(now={self.now().isoformat()}, {mode})"


class ManualClock(SimClock):
    """A :class:`SimClock` that stands still until advanced: ``SimClock(start, speed=None)``."""

    def __init__(self, start: datetime, *, settle_yields: int = DEFAULT_SETTLE_YIELDS) -> None:
        super().__init__(start, speed=None, settle_yields=settle_yields)
