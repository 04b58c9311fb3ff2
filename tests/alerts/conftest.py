from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.alerts.notifiers import Notifier
from alchemiser.alerts.service import AlertService
from alchemiser.clock import ManualClock
from alchemiser.settings.risk import Alerts
from alchemiser.store.alerts import AlertStore
from alchemiser.store.engine import session_factory
from alchemiser.store.reconcile_state import TradingStateStore

START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
ACCOUNT = "acct-alerts"
SETTINGS = Alerts(
    escalate_info_after_minutes=30,
    escalate_warning_after_minutes=10,
    escalate_critical_after_minutes=5,
)


class Harness:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = session_factory(engine)
        self.clock = ManualClock(START)
        self.store = AlertStore(self.sessions, self.clock, ACCOUNT)
        self.trading = TradingStateStore(self.sessions, self.clock, ACCOUNT)
        self.settings = SETTINGS
        self.services: list[AlertService] = []

    def service(self, notifiers: list[Notifier] | None = None, **kw: float) -> AlertService:
        svc = AlertService(
            self.store, notifiers or [], self.clock, lambda: self.settings, self.trading, **kw
        )
        self.services.append(svc)
        return svc


@pytest.fixture
async def h(engine: AsyncEngine) -> AsyncIterator[Harness]:
    harness = Harness(engine)
    yield harness
    for svc in harness.services:
        await svc.aclose()
