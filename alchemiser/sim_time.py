"""Accelerated simulated time that skips the hours when the market is closed.

An accelerated ``SimClock`` runs a 6.5-hour session in a few seconds, but
nights and weekends would still take most of the wall time. The keeper jumps
the clock across closed hours, stopping at every pending deadline on the way
(after-close jobs still run, at their own time) and only when no job is
running, so each job sees the time it was scheduled for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import structlog

from alchemiser.clock import NEW_YORK, SimClock
from alchemiser.trading_calendar import TradingCalendar

log = structlog.stdlib.get_logger("alchemiser.sim")


def next_open_at_or_after(calendar: TradingCalendar, when: datetime) -> datetime:
    """The first session open at or after ``when``."""
    day = when.astimezone(NEW_YORK).date()
    if calendar.is_session(day) and calendar.session_open(day) >= when:
        return calendar.session_open(day)
    return calendar.session_open(calendar.next_session(day))


class ClosedHoursSkipper:
    """Moves ``clock`` over closed hours whenever ``is_idle()`` says nothing is running."""

    IdleCheck = Callable[[], bool]

    def __init__(
        self,
        clock: SimClock,
        calendar: TradingCalendar,
        is_idle: IdleCheck,
        poll_seconds: float = 0.05,
    ) -> None:
        self._clock = clock
        self._calendar = calendar
        self._is_idle = is_idle
        self._poll = poll_seconds

    async def step(self) -> datetime | None:
        """One jump if the market is closed and all is idle; returns the new time, if moved."""
        now = self._clock.now()
        if self._calendar.is_open_at(now) or not self._is_idle():
            return None
        target = next_open_at_or_after(self._calendar, now)
        deadline = self._clock.next_deadline()
        if deadline is not None and deadline < target:
            target = deadline
        if target <= now:
            return None
        await self._clock.advance_to(target)
        return target

    async def run(self) -> None:
        """Keep skipping until cancelled; real-time polling, not simulated."""
        while True:
            await asyncio.sleep(self._poll)
            moved = await self.step()
            if moved is not None and self._calendar.is_open_at(moved):
                log.debug("sim_market_open", at=moved.isoformat())
