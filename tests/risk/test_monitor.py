"""The risk monitor on the simulated broker: snapshots, limit alerts, the daily-loss EMERGENCY
and the intraday loop on a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.alerts.model import AlertLevel
from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.daemon import Services
from alchemiser.domain.options import OptionRight, parse_occ
from alchemiser.domain.trading import OrderRequest, OrderStatus, PositionIntent, Side
from alchemiser.risk.monitor import DAILY_LOSS_KEY, RiskMonitor, next_slot
from alchemiser.settings.risk import RiskSettings
from alchemiser.store.reconcile_state import TradingMode, TradingStateStore
from alchemiser.store.risk import EOD, RiskStore, SnapshotRow
from alchemiser.trading_calendar import nyse_calendar
from tests.helpers import make_services, wait_for

D = Decimal
MONDAY = date(2026, 1, 5)
FRIDAY_BEFORE = date(2026, 1, 2)


def _monitor(services: Services, risk: dict[str, RiskSettings]) -> RiskMonitor:
    return RiskMonitor(
        services.broker,
        services.hedging.store,
        services.hedging.reference,
        RiskStore(services.sessions, "default"),
        services.alerts,
        lambda: risk["now"],
        services.clock,
        services.calendar,
    )


async def _previous_close(store: RiskStore, nav: Decimal) -> None:
    await store.add_snapshot(
        SnapshotRow(
            at=datetime.combine(FRIDAY_BEFORE, time(16, 10), NEW_YORK),
            session_date=FRIDAY_BEFORE,
            kind=EOD,
            nav=nav,
            greeks={},
            limits=[],
        )
    )


async def test_daily_loss_past_the_limit_is_an_emergency_that_reduces_trading(
    engine: AsyncEngine,
) -> None:
    clock = ManualClock(datetime.combine(MONDAY, time(11, 0), NEW_YORK))
    services = await make_services(engine, clock)
    monitor = _monitor(services, {"now": RiskSettings()})  # daily_loss_limit_pct = 5
    state = TradingStateStore(services.sessions, clock, "default")
    nav = (await services.broker.get_account()).equity

    first = await monitor.take()
    assert first.daily_loss is None  # no stored close before today: nothing to compare

    # Just inside: down 4.99 % from the last close.
    await _previous_close(monitor.store, (nav / D("0.9501")).quantize(D("0.01")))
    inside = await monitor.take()
    assert inside.daily_loss is not None and inside.daily_loss.loss_pct == D("4.99")
    assert not inside.daily_loss.breached
    assert await services.alerts.store.alerts() == []
    assert (await state.trading_state()).state is TradingMode.ACTIVE

    # Just outside: down 5.01 % (the eod snapshot of that session is replaced).
    await _previous_close(monitor.store, (nav / D("0.9499")).quantize(D("0.01")))
    outside = await monitor.take()
    assert outside.daily_loss is not None and outside.daily_loss.breached
    [alert] = await services.alerts.store.alerts()
    assert alert.key == DAILY_LOSS_KEY and alert.level is AlertLevel.EMERGENCY
    assert alert.details["nav"] == str(nav) and alert.details["limit_pct"] == "5"
    assert alert.details["loss_pct"] == "5.01"
    assert alert.details["previous_session"] == FRIDAY_BEFORE.isoformat()
    assert (await state.trading_state()).state is TradingMode.REDUCING

    # Three snapshots stored, the limits with them.
    snaps = await monitor.store.snapshots(MONDAY, MONDAY)
    assert [s.kind for s in snaps] == ["intraday"] * 3 and snaps[-1].nav == nav
    assert {lim["key"] for lim in snaps[-1].limits} >= {"net_delta", "income_positions"}
    assert D(snaps[-1].greeks["book"]["delta_dollars"]) > 0


async def _sell_covered_call(services: Services) -> str:
    """Write one KO call against the default book's KO shares (an income position)."""
    broker = services.broker
    spot = (await broker.get_stock_quotes(["KO"]))["KO"].last
    today = services.clock.now().astimezone(NEW_YORK).date()
    chain = await broker.get_option_chain("KO", today + timedelta(days=20), today + timedelta(60))
    call = min(
        (s for s in chain if s.contract.right is OptionRight.CALL and s.bid > 0),
        key=lambda s: abs(s.contract.strike - spot * D("1.05")),
    )
    order = await broker.submit_order(
        OrderRequest(
            client_order_id="test-covered-call",
            qty=D(1),
            limit_price=call.bid,
            symbol=call.symbol,
            side=Side.SELL,
            position_intent=PositionIntent.SELL_TO_OPEN,
        )
    )
    assert order.status is OrderStatus.FILLED
    assert parse_occ(call.symbol).root == "KO"
    return call.symbol


async def test_limit_alerts_warn_near_a_limit_go_critical_over_it_and_clear(
    engine: AsyncEngine,
) -> None:
    clock = ManualClock(datetime.combine(MONDAY, time(11, 0), NEW_YORK))
    services = await make_services(engine, clock)
    await _sell_covered_call(services)
    risk = {"now": RiskSettings(max_income_positions=2)}  # 1 of 2: 50 %, under the 80 %
    monitor = _monitor(services, risk)
    key = "risk_limit:income_positions"

    calm = await monitor.take()
    count = next(u for u in calm.limits if u.key == "income_positions")
    assert count.value == 1 and count.usage_pct == D(50)
    assert [a.key for a in await services.alerts.store.alerts()] == []

    risk["now"] = RiskSettings(max_income_positions=1)  # read live: at the limit, 100 %
    await monitor.take()
    [warning] = await services.alerts.store.alerts()
    assert warning.key == key and warning.level is AlertLevel.WARNING
    assert warning.details["usage_pct"] == "100.00" and warning.details["over"] is False

    risk["now"] = RiskSettings(max_income_positions=0)  # over it
    await monitor.take()
    [critical] = await services.alerts.store.alerts()
    assert critical.id == warning.id and critical.level is AlertLevel.CRITICAL
    assert critical.details["over"] is True and critical.details["limit"] == "0"

    risk["now"] = RiskSettings(max_income_positions=10)  # well under: the alert is resolved
    await monitor.take()
    assert await services.alerts.store.alerts() == []
    [resolved] = await services.alerts.store.alerts(include_resolved=True)
    assert resolved.id == warning.id and resolved.resolved_at is not None
    # The equity book's concentrated sectors are over their limit but raise nothing.
    assert any(u.breach and not u.alerted for u in calm.limits)
    state = TradingStateStore(services.sessions, clock, "default")
    assert (await state.trading_state()).state is TradingMode.ACTIVE


def test_snapshot_slots_follow_the_session_grid() -> None:
    cal = nyse_calendar()

    def at(d: date, hh: int, mm: int) -> datetime:
        return datetime.combine(d, time(hh, mm), NEW_YORK)

    assert next_slot(cal, at(MONDAY, 8, 0), 5) == at(MONDAY, 9, 30)
    assert next_slot(cal, at(MONDAY, 9, 30), 5) == at(MONDAY, 9, 35)
    assert next_slot(cal, at(MONDAY, 10, 2), 5) == at(MONDAY, 10, 5)
    assert next_slot(cal, at(MONDAY, 15, 55), 5) == at(date(2026, 1, 6), 9, 30)
    # Early close (13:00) the day after Thanksgiving; then a weekend.
    assert next_slot(cal, at(date(2026, 11, 27), 12, 50), 10) == at(date(2026, 11, 30), 9, 30)
    assert next_slot(cal, at(date(2026, 11, 27), 12, 45), 10) == at(date(2026, 11, 27), 12, 50)


async def test_the_loop_snapshots_on_the_clock_only_while_the_market_is_open(
    engine: AsyncEngine,
) -> None:
    friday = date(2026, 1, 9)
    clock = ManualClock(datetime.combine(friday, time(15, 0), NEW_YORK))
    services = await make_services(engine, clock)
    monitor = _monitor(services, {"now": RiskSettings()})
    interval = {"minutes": 30}
    loop = asyncio.create_task(monitor.run(lambda: interval["minutes"]))
    try:
        until = datetime.combine(date(2026, 1, 12), time(10, 10), NEW_YORK)
        while True:
            await wait_for(lambda: clock.pending_sleepers > 0 or loop.done(), what="the loop")
            assert not loop.done(), loop
            nxt = clock.next_deadline()
            assert nxt is not None
            if nxt > until:
                break
            await clock.advance_to(nxt)
            if clock.now() > datetime.combine(friday, time(16), NEW_YORK):
                interval["minutes"] = 15  # read live at the next step
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    taken = [s.at.astimezone(NEW_YORK) for s in await monitor.store.snapshots(friday, until.date())]
    want = [(friday, 15, 0), (friday, 15, 30)] + [
        (date(2026, 1, 12), h, m) for h, m in ((9, 30), (9, 45), (10, 0))
    ]
    assert taken == [datetime.combine(d, time(h, m), NEW_YORK) for d, h, m in want]
