"""The risk monitor: snapshots of the book's greeks and limit usage, and the alerts they raise.

``RiskMonitor.take`` values the book (``risk.report.current_risk``), measures every
limit (``risk.limits``), stores a snapshot and raises alerts:

- a limit at ``risk.alerts.approach_pct_of_limit`` % of its value or more: WARNING;
  over it (the pre-trade rule says so): CRITICAL; back under the approach level:
  the alert is resolved (it would otherwise escalate to EMERGENCY on its own);
- NAV down more than ``risk.alerts.daily_loss_limit_pct`` % from the last stored
  session close (the newest "eod" snapshot before today; none: no check): an
  EMERGENCY ``daily_loss_limit`` alert, which puts trading in REDUCING.

``run`` takes an intraday snapshot every ``schedule.risk_snapshot_minutes`` (read
at each step) on the session's grid (open, open + N minutes, ...) while NYSE is
open, sleeping on the Clock so it runs on simulated time too. A failed pass is
logged (``risk_snapshot_failed``) and the loop goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import structlog

from alchemiser.alerts.model import AlertLevel
from alchemiser.alerts.service import AlertService
from alchemiser.broker.base import Broker
from alchemiser.clock import NEW_YORK, Clock
from alchemiser.market.reference import ReferenceData
from alchemiser.risk.greeks import BookGreeks
from alchemiser.risk.limits import LimitUsage, limit_usage
from alchemiser.risk.pretrade import sector_of
from alchemiser.risk.report import RiskReport, current_risk
from alchemiser.settings.risk import RiskSettings
from alchemiser.store.alerts import AlertView
from alchemiser.store.hedges import HedgeStore
from alchemiser.store.risk import INTRADAY, RiskStore, SnapshotRow
from alchemiser.trading_calendar import TradingCalendar

__all__ = [
    "DAILY_LOSS_KEY",
    "LIMIT_KEY_PREFIX",
    "DailyLoss",
    "RiskMonitor",
    "RiskPass",
    "daily_loss",
    "greeks_json",
    "next_slot",
]

log = structlog.stdlib.get_logger("alchemiser.risk")

DAILY_LOSS_KEY = "daily_loss_limit"
LIMIT_KEY_PREFIX = "risk_limit:"
_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")
PASS_REST_FACTOR = 4


@dataclass(frozen=True, slots=True)
class DailyLoss:
    nav: Decimal
    previous_nav: Decimal
    previous_session: date
    loss_pct: Decimal  # positive is a loss
    limit_pct: Decimal
    breached: bool

    def as_json(self) -> dict[str, str]:
        return {
            "nav": str(self.nav.quantize(_CENT)),
            "previous_nav": str(self.previous_nav.quantize(_CENT)),
            "previous_session": self.previous_session.isoformat(),
            "loss_pct": str(self.loss_pct),
            "limit_pct": str(self.limit_pct),
        }


def daily_loss(nav: Decimal, previous: SnapshotRow | None, limit_pct: Decimal) -> DailyLoss | None:
    """The loss since the previous stored close, or None without one (or with a NAV ≤ 0)."""
    if previous is None or previous.nav <= 0:
        return None
    loss = (previous.nav - nav) / previous.nav * _HUNDRED
    return DailyLoss(
        nav=nav,
        previous_nav=previous.nav,
        previous_session=previous.session_date,
        loss_pct=loss.quantize(Decimal("0.01")),
        limit_pct=limit_pct,
        breached=loss > limit_pct,
    )


def greeks_json(greeks: BookGreeks) -> dict[str, dict[str, str]]:
    """Greeks by strategy and for the book, money as strings."""
    rows = {**greeks.by_strategy, "book": greeks.total}
    return {
        name: {
            "market_value": str(g.market_value),
            "delta_dollars": str(g.delta_dollars),
            "beta_delta_dollars": str(g.beta_delta_dollars),
            "gamma_dollars": str(g.gamma_dollars),
            "theta": str(g.theta),
            "vega": str(g.vega),
            "rho": str(g.rho),
        }
        for name, g in rows.items()
    }


def next_slot(calendar: TradingCalendar, after: datetime, minutes: int) -> datetime:
    """The first snapshot time strictly after ``after``: a session's open + k × ``minutes``
    before its close."""
    step = timedelta(minutes=max(1, minutes))
    day = after.astimezone(NEW_YORK).date()
    if not calendar.is_session(day):
        day = calendar.next_session(day)
    while True:
        opens, closes = calendar.session_open(day), calendar.session_close(day)
        if after < opens:
            return opens
        k = math.floor((after - opens) / step) + 1
        slot = opens + k * step
        if slot < closes:
            return slot
        day = calendar.next_session(day)


@dataclass(frozen=True)
class RiskPass:
    """What one snapshot found."""

    at: datetime
    session_date: date
    kind: str
    report: RiskReport
    limits: list[LimitUsage]
    daily_loss: DailyLoss | None


class RiskMonitor:
    """Snapshots of one account's book and the alerts they raise."""

    def __init__(
        self,
        broker: Broker,
        hedges: HedgeStore,
        reference: ReferenceData,
        store: RiskStore,
        alerts: AlertService,
        settings: Callable[[], RiskSettings],
        clock: Clock,
        calendar: TradingCalendar,
    ) -> None:
        self._broker = broker
        self._hedges = hedges
        self._reference = reference
        self.store = store
        self._alerts = alerts
        self._settings = settings
        self._clock = clock
        self._calendar = calendar

    async def run(self, minutes: Callable[[], int]) -> None:
        """Intraday snapshots on the session grid while the market is open, until cancelled."""
        after = self._clock.now() - timedelta(microseconds=1)  # starting on a slot takes it
        while True:
            await self._clock.sleep_until(next_slot(self._calendar, after, minutes()))
            started = self._clock.now()
            await self.tick()
            ended = self._clock.now()
            # The next slot after the pass (never twice in one slot) and after a rest of
            # PASS_REST_FACTOR × the pass: on an accelerated clock a pass lasts minutes of
            # simulated time, and back-to-back passes would starve the jobs.
            after = ended + (ended - started) * PASS_REST_FACTOR

    async def tick(self) -> RiskPass | None:
        """An intraday snapshot if the market is open now; a failure is logged, never raised."""
        if not self._calendar.is_open_at(self._clock.now()):
            return None
        try:
            return await self.take(INTRADAY)
        except Exception:
            log.exception("risk_snapshot_failed")
            return None

    async def take(self, kind: str = INTRADAY) -> RiskPass:
        """Value the book, store a snapshot of ``kind`` ("intraday" or "eod"), raise alerts."""
        risk = self._settings()  # read now: a config edit applies to the next pass
        now = self._clock.now()
        session_date = now.astimezone(NEW_YORK).date()
        report = await current_risk(self._broker, self._hedges, self._reference, risk, self._clock)
        limits = limit_usage(
            report.positions,
            report.greeks,
            report.nav,
            risk,
            partial(sector_of, self._reference),
        )
        loss = daily_loss(
            report.nav,
            await self.store.last_eod_before(session_date),
            risk.alerts.daily_loss_limit_pct,
        )
        await self.store.add_snapshot(
            SnapshotRow(
                at=now,
                session_date=session_date,
                kind=kind,
                nav=report.nav,
                greeks=greeks_json(report.greeks),
                limits=[u.as_json() for u in limits],
            )
        )
        unresolved = await self._alerts.store.alerts()
        await self._limit_alerts(unresolved, limits, risk.alerts.approach_pct_of_limit)
        await self._daily_loss_alert(unresolved, loss, session_date)
        worst = max(limits, key=lambda u: u.usage_pct, default=None)
        log.info(
            "risk_snapshot",
            kind=kind,
            nav=str(report.nav),
            beta_delta_dollars=str(report.greeks.total.beta_delta_dollars),
            worst_limit=worst.key if worst else None,
            worst_usage_pct=str(worst.usage_pct) if worst else None,
            daily_loss_pct=str(loss.loss_pct) if loss else None,
        )
        return RiskPass(now, session_date, kind, report, limits, loss)

    async def _limit_alerts(
        self, unresolved: list[AlertView], limits: list[LimitUsage], approach_pct: Decimal
    ) -> None:
        open_alerts = {a.key: a for a in unresolved if a.key.startswith(LIMIT_KEY_PREFIX)}
        seen: set[str] = set()
        for usage in limits:
            if not usage.alerted:
                continue
            key = LIMIT_KEY_PREFIX + usage.key
            if usage.breach is not None:
                level, what = AlertLevel.CRITICAL, "exceeded"
            elif usage.usage_pct >= approach_pct:
                level, what = AlertLevel.WARNING, "approached"
            else:
                continue
            # A raised level keeps the first title; the details carry the latest figures.
            title = (
                f"Risk limit {what}: {usage.label} {usage.value} is {usage.usage_pct} % of "
                f"its limit {usage.limit}"
            )
            seen.add(key)
            details: dict[str, Any] = {
                **usage.as_json(),
                "approach_pct_of_limit": str(approach_pct),
            }
            await self._alerts.raise_alert(key, level, title, details)
        for key, alert in open_alerts.items():
            if key not in seen:  # back under the approach level (or the limit is gone)
                await self._alerts.resolve(alert.id)
                log.info("risk_limit_cleared", alert_id=alert.id, alert_key=key)

    async def _daily_loss_alert(
        self, unresolved: list[AlertView], loss: DailyLoss | None, session_date: date
    ) -> None:
        for alert in unresolved:
            # One alert per session: yesterday's (even acknowledged) must not swallow today's.
            if alert.key == DAILY_LOSS_KEY and alert.details.get("session_date") != str(
                session_date
            ):
                await self._alerts.resolve(alert.id)
        if loss is None or not loss.breached:
            return
        log.critical("daily_loss_limit_breached", **loss.as_json())
        await self._alerts.raise_alert(
            DAILY_LOSS_KEY,
            AlertLevel.EMERGENCY,
            f"Daily loss {loss.loss_pct} % of NAV is beyond the {loss.limit_pct} % limit: "
            "only risk-reducing orders until `alchemiser trading resume`",
            {**loss.as_json(), "session_date": session_date.isoformat()},
        )
