"""APScheduler 3 triggers that fire only on NYSE sessions.

A schedule spec (``ScheduleSettings`` in ``alchemiser.settings.core``) is one of:

- ``"HH:MM"`` — that America/New_York wall time on every session. It fires at
  that time even on an early-close day when that is after the close (15:30 on
  2026-11-27, which closes at 13:00): the job decides what to do with a closed
  market. Use a close-relative spec to follow early closes instead.
- ``"open+Nm"`` / ``"open-Nm"`` / ``"close+Nm"`` / ``"close-Nm"`` — N minutes
  after/before *that* session's open or close, so ``close-30m`` is 15:30 on a
  normal day and 12:30 on an early-close day. An offset may cross midnight;
  the fire time still belongs to the session it was computed from.

The triggers follow APScheduler's contract: ``get_next_fire_time(previous, now)``
returns the first fire time strictly after ``previous`` when there is one, else
the first at or after ``now``. Fire times are aware datetimes in New York time
(the triggers' ``timezone``), like ``CronTrigger`` returns its own zone's times.
A time past the end of the calendar raises ``CalendarRangeError`` instead of
returning None, because None would make APScheduler silently drop the job.

:func:`fire_times` iterates any trigger between two instants, so a simulated-clock
driver can reuse these triggers without APScheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

# APScheduler 3 ships no type information.
from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]

from alchemiser.clock import NEW_YORK, ensure_aware
from alchemiser.settings.core import SCHEDULE_SPEC
from alchemiser.trading_calendar import TradingCalendar, nyse_calendar

__all__ = [
    "ScheduleSpec",
    "SessionIntervalTrigger",
    "SessionTrigger",
    "fire_times",
    "parse_schedule",
]

Anchor = Literal["wall", "open", "close"]

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A parsed schedule: a New York wall time, or minutes from the open or close."""

    anchor: Anchor
    # Wall time (anchor == "wall"); zero otherwise.
    hour: int = 0
    minute: int = 0
    # Signed minutes from the open or close (anchor != "wall"); zero otherwise.
    offset_minutes: int = 0

    def fire_time(self, calendar: TradingCalendar, session: date) -> datetime:
        """When this schedule fires for ``session`` (aware, New York time)."""
        if self.anchor == "wall":
            # Sessions are weekdays and DST switches on Sundays: no gaps or folds here.
            return datetime(
                session.year, session.month, session.day, self.hour, self.minute, tzinfo=NEW_YORK
            )
        base = (
            calendar.session_open(session)
            if self.anchor == "open"
            else calendar.session_close(session)
        )
        # Offsets are exact elapsed minutes: add in UTC, then show in New York time.
        return (base + timedelta(minutes=self.offset_minutes)).astimezone(NEW_YORK)

    def __str__(self) -> str:
        if self.anchor == "wall":
            return f"{self.hour:02d}:{self.minute:02d}"
        return f"{self.anchor}{self.offset_minutes:+d}m"


def parse_schedule(spec: str) -> ScheduleSpec:
    """Parse ``"HH:MM"`` or ``"open±Nm"`` / ``"close±Nm"``; anything else is a ValueError."""
    match = SCHEDULE_SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(
            f"{spec!r} is not a schedule: use 'HH:MM' (New York time) or "
            "'open+Nm' / 'close-Nm' (minutes from that session's open or close)"
        )
    if match["anchor"] is None:
        return ScheduleSpec("wall", hour=int(match["hh"]), minute=int(match["mm"]))
    anchor: Anchor = "open" if match["anchor"] == "open" else "close"
    return ScheduleSpec(anchor, offset_minutes=int(match["off"]))


def _threshold(previous_fire_time: datetime | None, now: datetime) -> tuple[datetime, bool]:
    """The instant a next fire must come after, and whether strictly after."""
    if previous_fire_time is not None:
        return ensure_aware(previous_fire_time, "previous_fire_time"), True
    return ensure_aware(now, "now"), False


def _after(candidate: datetime, threshold: datetime, strict: bool) -> bool:
    return candidate > threshold if strict else candidate >= threshold


class SessionTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires once per NYSE session at a :class:`ScheduleSpec`'s time; never on holidays or weekends."""

    __slots__ = ("calendar", "spec", "timezone")

    def __init__(self, calendar: TradingCalendar | None, spec: str | ScheduleSpec) -> None:
        self.calendar = calendar if calendar is not None else nyse_calendar()
        self.spec = spec if isinstance(spec, ScheduleSpec) else parse_schedule(spec)
        self.timezone = NEW_YORK

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        threshold, strict = _threshold(previous_fire_time, now)
        # An offset moves a fire time less than a day from its session's date, so
        # no session before the day before the threshold's New York date can fire
        # after it.
        day = threshold.astimezone(NEW_YORK).date() - _ONE_DAY
        day = max(day, self.calendar.first_date)
        session = self.calendar.next_session(day, inclusive=True)
        while not _after(
            candidate := self.spec.fire_time(self.calendar, session), threshold, strict
        ):
            session = self.calendar.next_session(session)
        return candidate

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "calendar": self.calendar, "spec": str(self.spec)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version", 1) > 1:
            raise ValueError(
                f"Got serialized data for version {state['version']} of "
                f"{self.__class__.__name__}, but only version 1 can be handled"
            )
        self.calendar = state["calendar"]
        self.spec = parse_schedule(state["spec"])
        self.timezone = NEW_YORK

    def __str__(self) -> str:
        return f"session[{self.spec}]"

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} (spec='{self.spec}', timezone='{self.timezone}')>"


class SessionIntervalTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires every ``minutes`` from each session's open up to and including its close.

    The grid is anchored at the open: open, open+N, ... while <= close. The close
    itself fires when it falls on the grid, i.e. when N divides the session's
    length (N=5: 79 fires on a normal day, 43 on a 13:00 early close); otherwise
    the last fire is the last grid point before the close.
    """

    __slots__ = ("calendar", "interval", "minutes", "timezone")

    def __init__(self, calendar: TradingCalendar | None, minutes: int) -> None:
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
            raise ValueError(f"interval must be a whole number of minutes >= 1, got {minutes!r}")
        self.calendar = calendar if calendar is not None else nyse_calendar()
        self.minutes = minutes
        self.interval = timedelta(minutes=minutes)
        self.timezone = NEW_YORK

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        threshold, strict = _threshold(previous_fire_time, now)
        # Every fire lies inside its session's New York day.
        day = max(threshold.astimezone(NEW_YORK).date(), self.calendar.first_date)
        session = self.calendar.next_session(day, inclusive=True)
        while True:
            open_ = self.calendar.session_open(session)
            close = self.calendar.session_close(session)
            if _after(open_, threshold, strict):
                return open_.astimezone(NEW_YORK)
            candidate = open_ + ((threshold - open_) // self.interval) * self.interval
            if not _after(candidate, threshold, strict):
                candidate += self.interval
            if candidate <= close:
                return candidate.astimezone(NEW_YORK)
            session = self.calendar.next_session(session)

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "calendar": self.calendar, "minutes": self.minutes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version", 1) > 1:
            raise ValueError(
                f"Got serialized data for version {state['version']} of "
                f"{self.__class__.__name__}, but only version 1 can be handled"
            )
        self.calendar = state["calendar"]
        self.minutes = state["minutes"]
        self.interval = timedelta(minutes=self.minutes)
        self.timezone = NEW_YORK

    def __str__(self) -> str:
        return f"session_interval[{self.minutes}m]"

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} (minutes={self.minutes}, timezone='{self.timezone}')>"


def fire_times(trigger: BaseTrigger, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time of ``trigger`` from ``start`` to ``end``, both inclusive, in order."""
    ensure_aware(start, "start")
    ensure_aware(end, "end")
    times: list[datetime] = []
    fire: datetime | None = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= end:
        if times and fire <= times[-1]:
            raise RuntimeError(
                f"{trigger} did not move forward: {fire.isoformat()} after {times[-1].isoformat()}"
            )
        times.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return times
