"""The weekly risk review, on the last NYSE session of each ISO week (Thursday when Friday is
a holiday): NAV over the week, hedge premium spent, the VaR/ES trend, the worst stress
scenario, the alerts opened and how many intraday snapshots were taken. Stored and logged.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import structlog

from alchemiser.alerts.model import AlertLevel
from alchemiser.clock import NEW_YORK, Clock
from alchemiser.store.alerts import AlertStore
from alchemiser.store.hedges import HedgeStore
from alchemiser.store.risk import EOD, RiskStore, WeeklyReviewRow
from alchemiser.trading_calendar import TradingCalendar

__all__ = ["is_last_session_of_week", "review_text", "weekly_review"]

log = structlog.stdlib.get_logger("alchemiser.risk")

_SERIOUS = (AlertLevel.CRITICAL, AlertLevel.EMERGENCY)


def is_last_session_of_week(calendar: TradingCalendar, day: date) -> bool:
    """Whether ``day`` is a session and the next session falls in another ISO week."""
    if not calendar.is_session(day):
        return False
    return calendar.next_session(day).isocalendar()[:2] != day.isocalendar()[:2]


def _money(x: Decimal | str | None) -> str:
    return "n/a" if x is None else f"{Decimal(x):,.2f}"


def _cents(x: Decimal | None) -> Decimal | None:
    """Money to the cent (PostgreSQL hands back 150000 as 1.5E+5)."""
    return None if x is None else x.quantize(Decimal("0.01"))


def _week_start(day: date) -> date:
    return date.fromordinal(day.toordinal() - day.weekday())


async def weekly_review(
    store: RiskStore,
    hedges: HedgeStore,
    alerts: AlertStore,
    calendar: TradingCalendar,
    clock: Clock,
    session_date: date,
    nav_now: Decimal,
) -> WeeklyReviewRow | None:
    """Store and log the week's review if ``session_date`` ends the week; else None."""
    if not is_last_session_of_week(calendar, session_date):
        log.info("weekly_review_not_due", session_date=session_date.isoformat())
        return None
    now = clock.now()
    monday = _week_start(session_date)
    sessions = calendar.sessions_in_range(monday, session_date)
    week_from = datetime.combine(monday, time(0), NEW_YORK)

    daily = await store.daily(monday, session_date)
    eods = await store.snapshots(monday, session_date, kind=EOD)
    before = await store.last_eod_before(sessions[0])
    if before is not None:
        nav_start, start_basis = before.nav, f"close of {before.session_date}"
    elif eods:
        nav_start, start_basis = eods[0].nav, f"close of {eods[0].session_date}"
    else:
        nav_start, start_basis = None, "no stored close"
    last_eod = eods[-1] if eods and eods[-1].session_date == session_date else None
    nav_end, end_basis = (
        (last_eod.nav, f"close of {session_date}") if last_eod else (nav_now, "broker now")
    )
    change = None if nav_start is None else nav_end - nav_start
    change_pct = (
        None
        if change is None or nav_start is None or nav_start <= 0
        else (change / nav_start * 100).quantize(Decimal("0.01"))
    )

    mtd, ytd = await hedges.spend(now)
    week_spend = await hedges.spend_between(week_from, now)

    opened = [
        a
        for a in await alerts.alerts(include_resolved=True, limit=1000)
        if a.opened_at >= week_from
    ]
    by_level: dict[str, int] = {}
    for a in opened:
        by_level[a.initial_level.value] = by_level.get(a.initial_level.value, 0) + 1
    serious = sorted({a.key for a in opened if a.level in _SERIOUS})

    latest = daily[-1] if daily else None
    worst = None
    if latest and latest.stress:
        w = min(latest.stress, key=lambda r: Decimal(r["pnl"]))
        worst = {"name": w["name"], "pnl": w["pnl"], "pnl_pct_nav": w["pnl_pct_nav"]}

    summary: dict[str, Any] = {
        "week_ending": session_date,
        "sessions": len(sessions),
        "nav": {
            "start": _cents(nav_start),
            "start_basis": start_basis,
            "end": _cents(nav_end),
            "end_basis": end_basis,
            "change": _cents(change),
            "change_pct": change_pct,
        },
        "hedge_premium": {
            "week": _cents(week_spend),
            "month_to_date": _cents(mtd),
            "year_to_date": _cents(ytd),
        },
        "var": [
            {
                "session_date": d.session_date,
                "var": _cents(d.var_historical),
                "es": _cents(d.es_historical),
                "var_delta_gamma": _cents(d.var_delta_gamma),
                "note": d.note,
            }
            for d in daily
        ],
        "confidence": latest.confidence if latest else None,
        "worst_stress": worst,
        "hedge_payoff_pct_nav": latest.hedge_payoff_pct_nav if latest else None,
        "alerts": {"opened": len(opened), "by_level": by_level, "critical_or_worse": serious},
        "intraday_snapshots": await store.count_snapshots(monday, session_date),
    }
    text = review_text(summary)
    review = WeeklyReviewRow(session_date, now, summary, text)
    await store.save_weekly(review)
    log.info("weekly_review", week_ending=session_date.isoformat(), text=text)
    return review


def review_text(s: dict[str, Any]) -> str:
    """The review as a few plain lines."""
    nav = s["nav"]
    lines = [f"Week ending {s['week_ending']} ({s['sessions']} sessions)."]
    if nav["change"] is None:
        lines.append(f"NAV {_money(nav['end'])} ({nav['end_basis']}); no close before it stored.")
    else:
        lines.append(
            f"NAV {_money(nav['start'])} ({nav['start_basis']}) -> {_money(nav['end'])} "
            f"({nav['end_basis']}): {_money(nav['change'])} ({nav['change_pct']} %)."
        )
    hp = s["hedge_premium"]
    lines.append(
        f"Hedge premium: {_money(hp['week'])} this week, {_money(hp['month_to_date'])} month to "
        f"date, {_money(hp['year_to_date'])} year to date."
    )
    with_var = [v for v in s["var"] if v["var"] is not None]
    if with_var:
        first, last = with_var[0], with_var[-1]
        conf = (Decimal(s["confidence"]) * 100).normalize()
        lines.append(
            f"VaR {conf:f} %: {_money(first['var'])} -> {_money(last['var'])}, ES "
            f"{_money(first['es'])} -> {_money(last['es'])} ({len(with_var)} sessions with VaR)."
        )
    elif s["var"]:
        lines.append(f"No VaR this week: {s['var'][-1]['note']}.")
    else:
        lines.append("No end-of-day risk stored this week.")
    if s["worst_stress"]:
        w = s["worst_stress"]
        payoff = s["hedge_payoff_pct_nav"]
        lines.append(
            f"Worst stress: {w['name']} {_money(w['pnl'])} ({w['pnl_pct_nav']} % NAV); hedge "
            f"payoff at -20 %: {'n/a' if payoff is None else f'{payoff} % NAV'}."
        )
    al = s["alerts"]
    levels = ", ".join(f"{k} {v}" for k, v in sorted(al["by_level"].items()))
    serious = ", ".join(al["critical_or_worse"]) or "none"
    lines.append(
        f"Alerts opened: {al['opened']}{f' ({levels})' if levels else ''}; critical or worse: "
        f"{serious}. Intraday snapshots: {s['intraday_snapshots']}."
    )
    return "\n".join(lines)
