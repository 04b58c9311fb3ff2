"""The broker contract suite on the simulated broker, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, time
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.broker.sim import SimBroker, SimBrokerConfig
from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.sim.market import SimMarket
from alchemiser.store.engine import session_factory
from alchemiser.store.sim_state import SimBrokerStore
from alchemiser.trading_calendar import nyse_calendar
from tests.broker.contract import BrokerContract

MARKET_START = date(2026, 1, 2)
TRADING_DAY = date(2026, 1, 6)


class SimHarness:
    """The contract harness over a manual clock: waiting is advancing simulated time."""

    stock_symbol = "AAPL"
    option_underlying = "SPY"

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def now(self) -> datetime:
        return self.clock.now()

    async def wait(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    async def ensure_market_open(self) -> None:
        if not nyse_calendar().is_open_at(self.clock.now()):
            pytest.skip("the simulated clock is outside market hours")


@pytest.fixture(scope="module")
def market() -> SimMarket:
    # Quotes are a pure function of (seed, instant): one market serves every test.
    return SimMarket(seed=7, start=MARKET_START)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.combine(TRADING_DAY, time(10, 30), NEW_YORK))


@pytest.fixture
async def broker(
    engine: AsyncEngine, market: SimMarket, clock: ManualClock
) -> AsyncIterator[SimBroker]:
    store = SimBrokerStore(session_factory(engine))
    sim = SimBroker(market, clock, store, SimBrokerConfig(account_id="contract", options_level=3))
    await sim.seed_book(Decimal(100_000), {"AAPL": Decimal(100), "MSFT": Decimal(50)})
    yield sim


@pytest.fixture
def harness(clock: ManualClock) -> SimHarness:
    return SimHarness(clock)


class TestSimBrokerContract(BrokerContract):
    """Every contract test, on the simulated broker."""
