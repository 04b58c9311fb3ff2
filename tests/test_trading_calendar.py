"""NYSE trading calendar: sessions, holidays, early closes, DST, range errors."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, time, timedelta

import pytest

from alchemiser.clock import NEW_YORK, RealClock
from alchemiser.trading_calendar import (
    CALENDAR_START,
    CalendarRangeError,
    NotASessionError,
    TradingCalendar,
    nyse_calendar,
)


@pytest.fixture(scope="module")
def cal() -> TradingCalendar:
    return nyse_calendar()


def ny(d: date, hh: int, mm: int) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=NEW_YORK)


def test_shared_calendar_is_cached_and_covers_1990_to_two_years_ahead(cal: TradingCalendar) -> None:
    assert nyse_calendar() is cal
    assert cal.first_date == CALENDAR_START == date(1990, 1, 1)
    assert cal.last_date.year >= RealClock().now().year + 2
    assert cal.last_date == date(cal.last_date.year, 12, 31)


def test_normal_day_opens_0930_and_closes_1600_new_york(cal: TradingCalendar) -> None:
    d = date(2026, 11, 23)
    assert cal.is_session(d)
    assert not cal.is_early_close(d)
    assert cal.session_open(d) == ny(d, 9, 30)
    assert cal.session_close(d) == ny(d, 16, 0)
    assert cal.session_open(d).tzinfo is UTC
    assert cal.session_open(d) == datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "holiday",
    [
        date(2026, 11, 26),  # Thanksgiving
        date(2026, 7, 3),  # Independence Day observed (4 July is a Saturday)
        date(2026, 12, 25),
        date(2026, 1, 1),
        date(1990, 1, 1),
    ],
)
def test_holidays_are_not_sessions(cal: TradingCalendar, holiday: date) -> None:
    assert not cal.is_session(holiday)
    assert not cal.is_early_close(holiday)
    with pytest.raises(NotASessionError, match=str(holiday)):
        cal.session_open(holiday)
    with pytest.raises(NotASessionError):
        cal.session_close(holiday)


@pytest.mark.parametrize("d", [date(2026, 11, 27), date(2026, 12, 24)])
def test_early_closes_at_1300_new_york(cal: TradingCalendar, d: date) -> None:
    assert cal.is_session(d)
    assert cal.is_early_close(d)
    assert cal.session_open(d) == ny(d, 9, 30)
    assert cal.session_close(d) == ny(d, 13, 0)


def test_black_friday_closes_1800_utc(cal: TradingCalendar) -> None:
    assert cal.session_close(date(2026, 11, 27)) == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (date(2026, 3, 6), date(2026, 3, 9)),  # spring forward on Sunday 8 March
        (date(2026, 10, 30), date(2026, 11, 2)),  # fall back on Sunday 1 November
    ],
)
def test_utc_open_moves_an_hour_across_dst(cal: TradingCalendar, before: date, after: date) -> None:
    open_before = cal.session_open(before).timetz()
    open_after = cal.session_open(after).timetz()
    assert {open_before.hour, open_after.hour} == {13, 14}
    assert open_before != open_after
    for d in (before, after):
        assert cal.session_open(d).astimezone(NEW_YORK).time() == time(9, 30)
        assert cal.session_close(d).astimezone(NEW_YORK).time() == time(16, 0)
    assert cal.session_open(date(2026, 3, 9)) == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
    assert cal.session_open(date(2026, 11, 2)) == datetime(2026, 11, 2, 14, 30, tzinfo=UTC)


def test_next_and_previous_session_skip_weekends_and_holidays(cal: TradingCalendar) -> None:
    friday, saturday, sunday, monday = (date(2026, 11, 20) + timedelta(days=i) for i in range(4))
    assert cal.next_session(friday) == monday
    assert cal.next_session(saturday) == monday
    assert cal.next_session(saturday, inclusive=True) == monday
    assert cal.next_session(friday, inclusive=True) == friday
    assert cal.previous_session(monday) == friday
    assert cal.previous_session(sunday) == friday
    assert cal.previous_session(monday, inclusive=True) == monday
    assert cal.previous_session(sunday, inclusive=True) == friday
    # Thanksgiving: Wednesday -> Friday and back.
    assert cal.next_session(date(2026, 11, 25)) == date(2026, 11, 27)
    assert cal.previous_session(date(2026, 11, 27)) == date(2026, 11, 25)
    # Independence Day observed on a Friday: Thursday -> Monday.
    assert cal.next_session(date(2026, 7, 2)) == date(2026, 7, 6)


def test_sessions_in_range(cal: TradingCalendar) -> None:
    week = cal.sessions_in_range(date(2026, 11, 21), date(2026, 11, 29))
    assert week == [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 27)]
    assert cal.sessions_in_range(date(2026, 11, 23), date(2026, 11, 23)) == [date(2026, 11, 23)]
    assert cal.sessions_in_range(date(2026, 11, 24), date(2026, 11, 23)) == []
    assert len(cal.sessions_in_range(date(2025, 1, 1), date(2025, 12, 31))) == 250


def test_session_date_of_uses_the_new_york_date(cal: TradingCalendar) -> None:
    # 01:00 UTC on Tuesday is still Monday evening in New York.
    assert cal.session_date_of(datetime(2026, 11, 24, 1, 0, tzinfo=UTC)) == date(2026, 11, 23)
    assert cal.session_date_of(ny(date(2026, 11, 23), 5, 0)) == date(2026, 11, 23)
    assert cal.session_date_of(ny(date(2026, 11, 26), 12, 0)) is None
    assert cal.session_date_of(ny(date(2026, 11, 22), 12, 0)) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.session_date_of(datetime(2026, 11, 23, 12, 0))


def test_is_open_at(cal: TradingCalendar) -> None:
    d = date(2026, 11, 23)
    assert not cal.is_open_at(ny(d, 9, 29))
    assert cal.is_open_at(ny(d, 9, 30))
    assert cal.is_open_at(ny(d, 15, 59))
    assert not cal.is_open_at(ny(d, 16, 0))  # the close is the first closed instant
    early = date(2026, 11, 27)
    assert cal.is_open_at(ny(early, 12, 59))
    assert not cal.is_open_at(ny(early, 13, 0))
    assert not cal.is_open_at(ny(date(2026, 11, 26), 12, 0))


def test_out_of_range_dates_raise_a_clear_error(cal: TradingCalendar) -> None:
    too_early = date(1989, 12, 29)
    too_late = date(cal.last_date.year + 1, 1, 2)
    for call in (
        lambda: cal.is_session(too_early),
        lambda: cal.is_session(too_late),
        lambda: cal.next_session(too_late),
        lambda: cal.sessions_in_range(too_early, date(1990, 1, 5)),
        lambda: cal.session_date_of(datetime(1989, 12, 29, 15, 0, tzinfo=UTC)),
    ):
        with pytest.raises(CalendarRangeError, match=r"1990-01-01\.\."):
            call()
    assert issubclass(CalendarRangeError, ValueError)
    # Inside the range but with no session beyond it.
    with pytest.raises(CalendarRangeError, match="no NYSE session"):
        cal.next_session(cal.last_date)
    with pytest.raises(CalendarRangeError, match="no NYSE session"):
        cal.previous_session(date(1990, 1, 2))
    assert cal.next_session(date(1990, 1, 1)) == date(1990, 1, 2)
    with pytest.raises(CalendarRangeError):
        cal.iter_sessions(too_late)
    assert list(cal.iter_sessions(cal.last_date - timedelta(days=3)))[-1] <= cal.last_date


def test_datetime_is_not_accepted_as_a_date(cal: TradingCalendar) -> None:
    with pytest.raises(TypeError, match="date"):
        cal.is_session(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


def test_pickles_compactly_and_reuses_the_shared_tables(cal: TradingCalendar) -> None:
    data = pickle.dumps(cal)
    assert len(data) < 500
    assert pickle.loads(data) is cal


def test_historical_1990s_sessions(cal: TradingCalendar) -> None:
    assert cal.is_session(date(1990, 1, 2))
    assert not cal.is_session(date(2001, 9, 11))  # closed after the attacks
    assert cal.is_early_close(date(1990, 12, 24))
