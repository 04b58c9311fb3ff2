"""Session triggers: schedule specs, early closes, holidays, DST, APScheduler contract."""

from __future__ import annotations

import itertools
import pickle
import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from alchemiser.clock import NEW_YORK
from alchemiser.session_triggers import (
    ScheduleSpec,
    SessionIntervalTrigger,
    SessionTrigger,
    fire_times,
    parse_schedule,
)
from alchemiser.settings.core import ScheduleSettings
from alchemiser.trading_calendar import TradingCalendar, nyse_calendar

THANKSGIVING = date(2026, 11, 26)
BLACK_FRIDAY = date(2026, 11, 27)


@pytest.fixture(scope="module")
def cal() -> TradingCalendar:
    return nyse_calendar()


def ny(d: date, hh: int, mm: int) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=NEW_YORK)


def day_range(d: date) -> tuple[datetime, datetime]:
    return ny(d, 0, 0), ny(d, 23, 59)


# -- parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("15:30", ScheduleSpec("wall", hour=15, minute=30)),
        ("00:00", ScheduleSpec("wall")),
        ("open+60m", ScheduleSpec("open", offset_minutes=60)),
        ("open-5m", ScheduleSpec("open", offset_minutes=-5)),
        ("close-30m", ScheduleSpec("close", offset_minutes=-30)),
        ("close+015m", ScheduleSpec("close", offset_minutes=15)),
    ],
)
def test_parse_schedule(text: str, spec: ScheduleSpec) -> None:
    assert parse_schedule(text) == spec


def test_spec_round_trips_through_str() -> None:
    for text in ("15:30", "09:05", "open+60m", "close-30m", "close+0m"):
        assert parse_schedule(str(parse_schedule(text))) == parse_schedule(text)


@pytest.mark.parametrize(
    "bad", ["", "24:00", "9:30", "15:60", "close-30", "close30m", "noon", "open+1000m", " 15:30"]
)
def test_bad_spec_names_itself(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_schedule(bad)


def test_every_default_schedule_setting_parses() -> None:
    defaults = ScheduleSettings()
    for name in (
        "hedge_evaluation",
        "hedge_roll_check",
        "income_screen",
        "income_manage",
        "iv_capture",
        "eod_reconcile",
        "queue_maintenance",
    ):
        parse_schedule(getattr(defaults, name))


# -- SessionTrigger ------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["15:30", "close-30m", "open+60m"])
def test_no_fire_on_thanksgiving(cal: TradingCalendar, spec: str) -> None:
    trigger = SessionTrigger(cal, spec)
    assert fire_times(trigger, *day_range(THANKSGIVING)) == []
    # Asked on Thanksgiving morning, the next fire is on Black Friday.
    fire = trigger.get_next_fire_time(None, ny(THANKSGIVING, 8, 0))
    assert fire is not None
    assert fire.date() == BLACK_FRIDAY


def test_close_relative_follows_early_close(cal: TradingCalendar) -> None:
    trigger = SessionTrigger(cal, "close-30m")
    assert fire_times(trigger, *day_range(BLACK_FRIDAY)) == [ny(BLACK_FRIDAY, 12, 30)]
    assert fire_times(trigger, *day_range(date(2026, 11, 25))) == [ny(date(2026, 11, 25), 15, 30)]
    eve = date(2026, 12, 24)
    assert fire_times(trigger, *day_range(eve)) == [ny(eve, 12, 30)]


def test_wall_time_fires_after_an_early_close(cal: TradingCalendar) -> None:
    trigger = SessionTrigger(cal, "15:30")
    assert fire_times(trigger, *day_range(BLACK_FRIDAY)) == [ny(BLACK_FRIDAY, 15, 30)]


def test_a_week_of_fires_matches_the_sessions(cal: TradingCalendar) -> None:
    start, end = ny(date(2026, 11, 21), 0, 0), ny(date(2026, 11, 29), 23, 59)
    sessions = cal.sessions_in_range(date(2026, 11, 21), date(2026, 11, 29))
    assert len(sessions) == 4
    for spec in ("15:45", "open+60m", "close-15m", "close+15m"):
        fires = fire_times(SessionTrigger(cal, spec), start, end)
        assert [f.date() for f in fires] == sessions, spec
        assert all(f.tzinfo is NEW_YORK for f in fires)
    opens = fire_times(SessionTrigger(cal, "open+60m"), start, end)
    assert {f.time() for f in opens} == {time(10, 30)}


def test_dst_keeps_new_york_time_and_moves_utc(cal: TradingCalendar) -> None:
    trigger = SessionTrigger(cal, "close-30m")
    before, after = date(2026, 3, 6), date(2026, 3, 9)
    fires = fire_times(trigger, ny(before, 0, 0), ny(after, 23, 59))
    assert fires == [ny(before, 15, 30), ny(after, 15, 30)]
    assert [f.astimezone(UTC).hour for f in fires] == [20, 19]
    fall = fire_times(
        SessionTrigger(cal, "10:00"), ny(date(2026, 10, 30), 0, 0), ny(date(2026, 11, 2), 23, 0)
    )
    assert [f.astimezone(UTC).hour for f in fall] == [14, 15]


def test_previous_fire_time_is_exclusive_and_now_inclusive(cal: TradingCalendar) -> None:
    trigger = SessionTrigger(cal, "close-30m")
    fire = ny(date(2026, 11, 23), 15, 30)
    assert trigger.get_next_fire_time(None, fire) == fire
    assert trigger.get_next_fire_time(fire, fire) == ny(date(2026, 11, 24), 15, 30)
    # APScheduler passes "now" in the scheduler's zone; any aware zone works.
    assert trigger.get_next_fire_time(None, fire.astimezone(UTC) + timedelta(microseconds=1)) == ny(
        date(2026, 11, 24), 15, 30
    )


def test_offsets_crossing_midnight(cal: TradingCalendar) -> None:
    late = SessionTrigger(cal, "close+600m")  # 02:00 the next morning
    fires = fire_times(late, ny(date(2026, 11, 23), 0, 0), ny(date(2026, 11, 28), 23, 0))
    assert fires == [
        ny(date(2026, 11, 24), 2, 0),
        ny(date(2026, 11, 25), 2, 0),
        ny(date(2026, 11, 26), 2, 0),  # for Wednesday 25th, even though the 26th is a holiday
        ny(date(2026, 11, 27), 23, 0),  # Black Friday closes at 13:00
    ]
    early = SessionTrigger(cal, "open-600m")  # 23:30 the evening before
    fires = fire_times(early, ny(date(2026, 11, 24), 0, 0), ny(date(2026, 11, 27), 0, 0))
    assert fires == [ny(date(2026, 11, 24), 23, 30), ny(date(2026, 11, 26), 23, 30)]


def test_trigger_pickles_compactly(cal: TradingCalendar) -> None:
    for trigger in (SessionTrigger(cal, "close-30m"), SessionIntervalTrigger(cal, 5)):
        data = pickle.dumps(trigger)
        assert len(data) < 1000
        restored = pickle.loads(data)
        assert type(restored) is type(trigger)
        assert restored.calendar is cal
        now = ny(date(2026, 11, 27), 9, 0)
        assert restored.get_next_fire_time(None, now) == trigger.get_next_fire_time(None, now)
    assert str(SessionTrigger(cal, "close-30m")) == "session[close-30m]"
    assert str(SessionIntervalTrigger(cal, 5)) == "session_interval[5m]"
    assert "close-30m" in repr(SessionTrigger(cal, "close-30m"))


def test_naive_now_is_rejected(cal: TradingCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SessionTrigger(cal, "15:30").get_next_fire_time(None, datetime(2026, 11, 23, 12, 0))


async def test_apscheduler_accepts_the_triggers(cal: TradingCalendar) -> None:
    scheduler = AsyncIOScheduler(timezone=NEW_YORK)
    scheduler.start(paused=True)
    try:
        job = scheduler.add_job(lambda: None, SessionTrigger(cal, "close-30m"), id="hedge")
        interval = scheduler.add_job(lambda: None, SessionIntervalTrigger(cal, 5), id="risk")
        assert job.next_run_time is not None
        assert cal.is_session(job.next_run_time.date())
        assert interval.next_run_time is not None
        assert cal.session_date_of(interval.next_run_time) is not None
        assert str(job.trigger) == "session[close-30m]"
    finally:
        scheduler.shutdown(wait=False)


# -- SessionIntervalTrigger ----------------------------------------------------------


def test_interval_normal_day(cal: TradingCalendar) -> None:
    d = date(2026, 11, 23)
    fires = fire_times(SessionIntervalTrigger(cal, 5), *day_range(d))
    assert len(fires) == 79
    assert fires[0] == ny(d, 9, 30)
    assert fires[-1] == ny(d, 16, 0)
    assert all(b - a == timedelta(minutes=5) for a, b in itertools.pairwise(fires))


def test_interval_early_close_and_holiday(cal: TradingCalendar) -> None:
    fires = fire_times(SessionIntervalTrigger(cal, 5), *day_range(BLACK_FRIDAY))
    assert len(fires) == 43
    assert fires[-1] == ny(BLACK_FRIDAY, 13, 0)
    assert fire_times(SessionIntervalTrigger(cal, 5), *day_range(THANKSGIVING)) == []


def test_interval_grid_is_anchored_at_the_open(cal: TradingCalendar) -> None:
    d = date(2026, 11, 23)
    fires = fire_times(SessionIntervalTrigger(cal, 7), *day_range(d))
    assert fires[0] == ny(d, 9, 30)
    assert len(fires) == 390 // 7 + 1
    assert fires[-1] == ny(d, 9, 30) + timedelta(minutes=7 * (390 // 7))
    # Started mid-session, the next fire is the next grid point.
    trigger = SessionIntervalTrigger(cal, 5)
    assert trigger.get_next_fire_time(None, ny(d, 10, 1)) == ny(d, 10, 5)
    assert trigger.get_next_fire_time(None, ny(d, 10, 5)) == ny(d, 10, 5)
    assert trigger.get_next_fire_time(ny(d, 10, 5), ny(d, 10, 5)) == ny(d, 10, 10)
    # After the close: the next session's open.
    assert trigger.get_next_fire_time(None, ny(d, 16, 1)) == ny(date(2026, 11, 24), 9, 30)


def test_interval_across_a_weekend_and_dst(cal: TradingCalendar) -> None:
    fires = fire_times(
        SessionIntervalTrigger(cal, 390), ny(date(2026, 10, 30), 0, 0), ny(date(2026, 11, 2), 23, 0)
    )
    assert fires == [
        ny(date(2026, 10, 30), 9, 30),
        ny(date(2026, 10, 30), 16, 0),
        ny(date(2026, 11, 2), 9, 30),
        ny(date(2026, 11, 2), 16, 0),
    ]


@pytest.mark.parametrize("minutes", [0, -5, 2.5, True])
def test_interval_rejects_bad_minutes(cal: TradingCalendar, minutes: int) -> None:
    with pytest.raises(ValueError, match="minutes"):
        SessionIntervalTrigger(cal, minutes)


# -- fire_times works with any trigger ------------------------------------------------


def test_fire_times_with_a_plain_cron_trigger() -> None:
    trigger = CronTrigger(hour=12, timezone=NEW_YORK)
    fires = fire_times(trigger, ny(date(2026, 11, 21), 0, 0), ny(date(2026, 11, 23), 23, 0))
    assert [f.day for f in fires] == [21, 22, 23]


# -- properties ----------------------------------------------------------------------

SPECS = [
    "15:30",
    "09:30",
    "00:05",
    "23:55",
    "open+0m",
    "open+60m",
    "open-30m",
    "close-30m",
    "close+15m",
    "close-390m",
    "close+480m",
]


def expected_time(cal: TradingCalendar, spec: ScheduleSpec, session: date) -> datetime:
    if spec.anchor == "wall":
        return ny(session, spec.hour, spec.minute)
    base = cal.session_open(session) if spec.anchor == "open" else cal.session_close(session)
    return base + timedelta(minutes=spec.offset_minutes)


@settings(max_examples=300, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    text=st.sampled_from(SPECS),
)
def test_next_fire_is_the_specs_time_on_a_session(now: datetime, text: str) -> None:
    cal = nyse_calendar()
    spec = parse_schedule(text)
    fire = SessionTrigger(cal, spec).get_next_fire_time(None, now)
    assert fire is not None
    assert fire >= now
    # Find the session the fire belongs to: it is the spec's time for that session,
    # and no session in between fires at or after now.
    candidates = cal.sessions_in_range(
        (fire.astimezone(NEW_YORK) - timedelta(days=1)).date(),
        fire.astimezone(NEW_YORK).date() + timedelta(days=1),
    )
    owners = [s for s in candidates if expected_time(cal, spec, s) == fire]
    assert len(owners) == 1
    owner = owners[0]
    assert cal.is_session(owner)
    previous = cal.previous_session(owner)
    assert expected_time(cal, spec, previous) < now
    if spec.anchor == "wall":
        assert fire.astimezone(NEW_YORK).date() == owner


@settings(max_examples=200, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.sampled_from([1, 5, 7, 15, 60, 390]),
)
def test_interval_next_fire_is_on_the_grid_inside_a_session(now: datetime, minutes: int) -> None:
    cal = nyse_calendar()
    fire = SessionIntervalTrigger(cal, minutes).get_next_fire_time(None, now)
    assert fire is not None
    assert fire >= now
    session = cal.session_date_of(fire)
    assert session is not None
    open_, close = cal.session_open(session), cal.session_close(session)
    assert open_ <= fire <= close
    assert (fire - open_) % timedelta(minutes=minutes) == timedelta(0)
    # No grid point of this session was skipped between now and the fire.
    earlier = fire - timedelta(minutes=minutes)
    assert earlier < now or earlier < open_
