"""NYSE sessions, holidays and early closes, from exchange_calendars' "XNYS".

The exchange_calendars tables are copied once into plain Python structures, so
every query is a dict lookup or a bisect (schedulers and Hypothesis tests ask
many times) and pandas never leaks into the rest of the project.

Dates are ``datetime.date`` (a New York trading day); instants are aware
datetimes, returned in UTC.
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from alchemiser.clock import NEW_YORK, RealClock, ensure_aware

__all__ = [
    "CALENDAR_START",
    "CalendarRangeError",
    "NotASessionError",
    "TradingCalendar",
    "nyse_calendar",
]

# The project backtests from 1990.
CALENDAR_START = date(1990, 1, 1)
# Years past the current one the default calendar covers (to 31 December).
YEARS_AHEAD = 2


class CalendarRangeError(ValueError):
    """A date lies outside the range the calendar was built for."""


class NotASessionError(ValueError):
    """A session-only question was asked about a date that is not an NYSE session."""


def _check_date(d: date, what: str = "date") -> date:
    # datetime is a subclass of date; accepting one would silently drop its time zone.
    if isinstance(d, datetime) or not isinstance(d, date):
        raise TypeError(f"{what} must be a datetime.date, got {type(d).__name__}")
    return d


class TradingCalendar:
    """The NYSE trading calendar between two dates (inclusive)."""

    def __init__(self, start: date = CALENDAR_START, end: date | None = None) -> None:
        # Slow import (pandas): only pay for it when a calendar is built.
        import exchange_calendars  # type: ignore[import-untyped]

        _check_date(start, "start")
        if end is None:
            end = date(RealClock().now().year + YEARS_AHEAD, 12, 31)
        _check_date(end, "end")
        if end < start:
            raise ValueError(f"calendar end {end} is before its start {start}")
        self._first = start
        self._last = end
        with warnings.catch_warnings():
            # exchange_calendars 4.13 trips pandas 3.1's Series.values deprecation
            # while building; it is theirs to fix and says nothing about our data.
            warnings.simplefilter("ignore", DeprecationWarning)
            xnys = exchange_calendars.get_calendar(
                "XNYS", start=start.isoformat(), end=end.isoformat()
            )
        sessions = [ts.date() for ts in xnys.sessions]
        opens = [ts.to_pydatetime().astimezone(UTC) for ts in xnys.opens]
        closes = [ts.to_pydatetime().astimezone(UTC) for ts in xnys.closes]
        self._sessions: list[date] = sessions
        self._open: dict[date, datetime] = dict(zip(sessions, opens, strict=True))
        self._close: dict[date, datetime] = dict(zip(sessions, closes, strict=True))
        self._early: frozenset[date] = frozenset(ts.date() for ts in xnys.early_closes)

    # Pickle as the range only: a trigger stored in a job store must not carry
    # ten thousand sessions with it, and the tables are rebuilt (cached) on load.
    def __reduce__(self) -> tuple[Any, tuple[date, date]]:
        return (_restore_calendar, (self._first, self._last))

    def __repr__(self) -> str:
        return f"TradingCalendar(XNYS, {self._first}..{self._last})"

    # -- range -------------------------------------------------------------------

    @property
    def first_date(self) -> date:
        """First date covered (inclusive)."""
        return self._first

    @property
    def last_date(self) -> date:
        """Last date covered (inclusive)."""
        return self._last

    def covers(self, d: date) -> bool:
        return self._first <= _check_date(d) <= self._last

    def _in_range(self, d: date) -> date:
        if not self.covers(d):
            raise CalendarRangeError(
                f"{d} is outside the NYSE calendar's range {self._first}..{self._last}"
            )
        return d

    def _session(self, d: date) -> date:
        if self._in_range(d) not in self._open:
            raise NotASessionError(f"{d} is not an NYSE session (weekend or holiday)")
        return d

    # -- sessions ----------------------------------------------------------------

    def is_session(self, d: date) -> bool:
        """Whether the NYSE trades on ``d``."""
        return self._in_range(d) in self._open

    def session_open(self, d: date) -> datetime:
        """When session ``d`` opens (aware, UTC)."""
        return self._open[self._session(d)]

    def session_close(self, d: date) -> datetime:
        """When session ``d`` closes (aware, UTC); early on early-close days."""
        return self._close[self._session(d)]

    def is_early_close(self, d: date) -> bool:
        """Whether session ``d`` closes before the regular 16:00 (False on non-sessions)."""
        return self._in_range(d) in self._early

    def next_session(self, d: date, inclusive: bool = False) -> date:
        """The first session after ``d`` (or on it, when ``inclusive``)."""
        self._in_range(d)
        i = (
            bisect.bisect_left(self._sessions, d)
            if inclusive
            else bisect.bisect_right(self._sessions, d)
        )
        if i >= len(self._sessions):
            raise CalendarRangeError(
                f"no NYSE session {'on or ' if inclusive else ''}after {d} within the "
                f"calendar's range {self._first}..{self._last}"
            )
        return self._sessions[i]

    def previous_session(self, d: date, inclusive: bool = False) -> date:
        """The last session before ``d`` (or on it, when ``inclusive``)."""
        self._in_range(d)
        i = (
            bisect.bisect_right(self._sessions, d)
            if inclusive
            else bisect.bisect_left(self._sessions, d)
        )
        if i == 0:
            raise CalendarRangeError(
                f"no NYSE session {'on or ' if inclusive else ''}before {d} within the "
                f"calendar's range {self._first}..{self._last}"
            )
        return self._sessions[i - 1]

    def sessions_in_range(self, start: date, end: date) -> list[date]:
        """Sessions from ``start`` to ``end``, both inclusive (empty if ``end < start``)."""
        self._in_range(start)
        self._in_range(end)
        lo = bisect.bisect_left(self._sessions, start)
        hi = bisect.bisect_right(self._sessions, end)
        return self._sessions[lo:hi]

    def iter_sessions(self, start: date) -> Iterator[date]:
        """Sessions on or after ``start``, to the end of the calendar."""
        self._in_range(start)  # checked now, not on the first next()
        return iter(self._sessions[bisect.bisect_left(self._sessions, start) :])

    # -- instants ----------------------------------------------------------------

    def session_date_of(self, dt: datetime) -> date | None:
        """The New York date of ``dt`` if that date is a session, else None.

        The whole New York day counts, before the open and after the close too.
        """
        d = ensure_aware(dt, "dt").astimezone(NEW_YORK).date()
        return d if self.is_session(d) else None

    def is_open_at(self, dt: datetime) -> bool:
        """Whether the market is open at ``dt``: open <= dt < close."""
        d = self.session_date_of(dt)
        return d is not None and self._open[d] <= dt < self._close[d]


@lru_cache(maxsize=4)
def _calendar(start: date, end: date) -> TradingCalendar:
    return TradingCalendar(start, end)


@lru_cache(maxsize=1)
def nyse_calendar() -> TradingCalendar:
    """The shared NYSE calendar: 1990-01-01 to 31 December two years after this one."""
    return _calendar(CALENDAR_START, date(RealClock().now().year + YEARS_AHEAD, 12, 31))


def _restore_calendar(start: date, end: date) -> TradingCalendar:
    """Unpickle: reuse the shared calendar when it covers the stored range."""
    shared = nyse_calendar()
    if shared.first_date <= start and end <= shared.last_date:
        return shared
    return _calendar(start, end)
