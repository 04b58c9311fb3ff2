"""An unexplained reconciliation mismatch raises an EMERGENCY alert; a clean one raises none."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.alerts.model import AlertLevel
from alchemiser.broker.reconcile import Discrepancy, ReconcileReport
from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.store.alerts import AlertStore
from alchemiser.store.reconcile_state import TradingStateStore
from alchemiser.wiring import raise_reconciliation_alert
from tests.helpers import make_services


async def test_a_halting_mismatch_raises_an_emergency_alert(engine: AsyncEngine) -> None:
    clock = ManualClock(datetime(2026, 1, 7, 16, 15, tzinfo=NEW_YORK))
    services = await make_services(engine, clock)
    clean = ReconcileReport("default", clock.now(), accept=False)
    await raise_reconciliation_alert(services.alerts, clean)
    store = AlertStore(services.sessions, clock, "default")
    assert await store.alerts() == []

    state = TradingStateStore(services.sessions, clock, "default")
    await state.halt("contracts differ")
    bad = ReconcileReport(
        "default",
        clock.now(),
        accept=False,
        mismatches=[
            Discrepancy("quantity", "QQQ put: ours 2, broker 1", ours=Decimal(2), broker=Decimal(1))
        ],
        state=await state.trading_state(),
    )
    assert bad.halted  # the report reads the halt from the trading state
    await raise_reconciliation_alert(services.alerts, bad)
    await services.alerts.drain()
    [alert] = await store.alerts()
    assert alert.level == AlertLevel.EMERGENCY and alert.key == "reconciliation_failed"
    assert "quantity" in str(alert.details)
