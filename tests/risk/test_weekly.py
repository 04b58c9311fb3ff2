"""The weekly review runs only on the week's last session (Thursday before Good Friday)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.alerts.model import AlertLevel
from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.risk.weekly import is_last_session_of_week
from alchemiser.risk_jobs import weekly_review_job
from alchemiser.scheduler import JobContext
from alchemiser.store.risk import EOD, DailyRiskRow, RiskStore, SnapshotRow
from alchemiser.trading_calendar import nyse_calendar
from tests.helpers import make_services

D = Decimal
WEDNESDAY, THURSDAY = date(2026, 4, 1), date(2026, 4, 2)  # Friday 3 April 2026: Good Friday
FRIDAY_BEFORE = date(2026, 3, 27)


def test_the_last_session_of_the_week() -> None:
    cal = nyse_calendar()
    assert is_last_session_of_week(cal, date(2026, 1, 9))  # an ordinary Friday
    assert not is_last_session_of_week(cal, date(2026, 1, 8))
    assert is_last_session_of_week(cal, THURSDAY)  # Good Friday closed
    assert not is_last_session_of_week(cal, WEDNESDAY)
    assert not is_last_session_of_week(cal, date(2026, 4, 3))  # not a session at all
    assert is_last_session_of_week(cal, date(2026, 12, 24))  # Christmas on a Friday


def _daily(day: date, nav: str, var: str | None, note: str | None = None) -> DailyRiskRow:
    stress = [
        {"name": "index_down_20", "pnl": "-60000", "pnl_pct_nav": "-40"},
        {"name": "index_down_30", "pnl": "-90000", "pnl_pct_nav": "-60"},
    ]
    return DailyRiskRow(
        session_date=day,
        at=datetime.combine(day, time(16, 10), NEW_YORK),
        nav=D(nav),
        confidence=D("0.95"),
        var_historical=None if var is None else D(var),
        es_historical=None if var is None else D(var) * 2,
        var_delta_gamma=None,
        var_delta_normal=None,
        sessions_used=0 if var is None else 250,
        note=note,
        stress=stress,
        hedge_payoff_pct_nav=D("1.5"),
        details={},
    )


async def test_the_review_is_stored_only_on_the_weeks_last_session(engine: AsyncEngine) -> None:
    clock = ManualClock(datetime.combine(WEDNESDAY, time(16, 40), NEW_YORK))
    services = await make_services(engine, clock)
    store = RiskStore(services.sessions, "default")
    for day, nav in ((FRIDAY_BEFORE, "150000"), (THURSDAY, "147000")):
        snap = SnapshotRow(clock.now(), day, EOD, D(nav), {}, [])
        await store.add_snapshot(snap)
    await store.add_snapshot(SnapshotRow(clock.now(), WEDNESDAY, "intraday", D(1), {}, []))
    await store.save_daily(_daily(WEDNESDAY, "149000", "3000"))
    await store.save_daily(_daily(THURSDAY, "147000", "3300"))
    await services.alerts.raise_alert("risk_limit:vega", AlertLevel.CRITICAL, "vega over")

    def ctx(day: date) -> JobContext:
        return JobContext("weekly_review", day, uuid.uuid4().hex, services)

    await weekly_review_job(ctx(WEDNESDAY))
    assert await store.weekly() == []

    await clock.advance_to(datetime.combine(THURSDAY, time(16, 40), NEW_YORK))
    await weekly_review_job(ctx(THURSDAY))
    [review] = await store.weekly()
    s = review.summary
    assert review.week_ending == THURSDAY and s["sessions"] == 4
    assert s["nav"]["start"] == "150000.00" and s["nav"]["start_basis"] == "close of 2026-03-27"
    assert s["nav"]["end"] == "147000.00" and s["nav"]["change_pct"] == "-2.00"
    assert [v["var"] for v in s["var"]] == ["3000.00", "3300.00"]
    assert s["worst_stress"]["name"] == "index_down_30"
    assert s["alerts"] == {
        "opened": 1,
        "by_level": {"CRITICAL": 1},
        "critical_or_worse": ["risk_limit:vega"],
    }
    assert s["intraday_snapshots"] == 1
    assert s["hedge_premium"] == {
        "week": "0.00",
        "month_to_date": "0.00",
        "year_to_date": "0.00",
    }
    assert "150,000.00 (close of 2026-03-27) -> 147,000.00 (close of 2026-04-02)" in review.text
    assert "VaR 95 %: 3,000.00 -> 3,300.00" in review.text
