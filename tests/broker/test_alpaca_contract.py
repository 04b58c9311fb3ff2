"""The broker contract suite on the Alpaca adapter, over HTTP, against the local Alpaca server.

The real alpaca-py client talks to ``AlpacaSimServer`` on an ephemeral
127.0.0.1 port; the server runs the simulated broker on a manual clock that
the harness advances, on SQLite and PostgreSQL. Nothing is faked but the
far side of the network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, time
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.broker.alpaca import AlpacaBroker
from alchemiser.broker.retry import RetryPolicy, SlidingWindowLimiter
from alchemiser.broker.sim import SimBroker, SimBrokerConfig
from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.sim.alpaca_server import AlpacaSimServer
from alchemiser.sim.market import SimMarket
from alchemiser.store.engine import session_factory
from alchemiser.store.sim_state import SimBrokerStore
from alchemiser.trading_calendar import nyse_calendar
from tests.broker.contract import BrokerContract

MARKET_START = date(2026, 1, 2)
TRADING_DAY = date(2026, 1, 6)
KEY = "PKCONTRACTKEY0001"
SECRET = "contract-secret-value-0001"


class AlpacaHarness:
    """Waiting is advancing the server's simulated clock; "now" is the server's time."""

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
    return SimMarket(seed=7, start=MARKET_START)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.combine(TRADING_DAY, time(10, 30), NEW_YORK))


@pytest.fixture
async def server(
    engine: AsyncEngine, market: SimMarket, clock: ManualClock
) -> AsyncIterator[AlpacaSimServer]:
    store = SimBrokerStore(session_factory(engine))
    sim = SimBroker(market, clock, store, SimBrokerConfig(account_id="contract", options_level=3))
    await sim.seed_book(Decimal(100_000), {"AAPL": Decimal(100), "MSFT": Decimal(50)})
    async with AlpacaSimServer(sim, market, clock, key=KEY, secret=SECRET) as srv:
        yield srv


@pytest.fixture
async def broker(server: AlpacaSimServer) -> AsyncIterator[AlpacaBroker]:
    adapter = AlpacaBroker(
        key=KEY,
        secret=SECRET,
        trading_url=server.url,
        data_url=server.url,
        paper=True,
        connect_timeout=2.0,
        read_timeout=10.0,
        limiter=SlidingWindowLimiter(190, 60.0),
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05),
    )
    yield adapter
    await adapter.aclose()


@pytest.fixture
def harness(clock: ManualClock) -> AlpacaHarness:
    return AlpacaHarness(clock)


class TestAlpacaBrokerContract(BrokerContract):
    """Every contract test, on the Alpaca adapter over HTTP."""

    async def test_no_request_was_refused_for_rate(
        self, broker: AlpacaBroker, server: AlpacaSimServer
    ) -> None:
        await broker.get_account()
        await broker.get_positions()
        assert server.stats.requests >= 2
        assert server.stats.rate_limited == 0 and server.stats.unauthorized == 0


async def test_spreads_need_options_level_3_and_are_refused_before_sending(
    engine: AsyncEngine, market: SimMarket, clock: ManualClock
) -> None:
    from datetime import timedelta

    from alchemiser.broker.base import OrderRejected
    from alchemiser.domain.options import OptionRight
    from alchemiser.domain.trading import OrderLeg, OrderRequest, PositionIntent, Side

    store = SimBrokerStore(session_factory(engine))
    sim = SimBroker(market, clock, store, SimBrokerConfig(account_id="level2", options_level=2))
    await sim.seed_book(Decimal(100_000), {"AAPL": Decimal(100)})
    async with AlpacaSimServer(sim, market, clock, key=KEY, secret=SECRET) as server:
        adapter = AlpacaBroker(key=KEY, secret=SECRET, trading_url=server.url, data_url=server.url)
        try:
            today = clock.now().date()
            puts = await adapter.get_option_contracts(
                "SPY", today + timedelta(days=20), today + timedelta(days=40), OptionRight.PUT
            )
            expiry = puts[0].expiry
            same = sorted((c for c in puts if c.expiry == expiry), key=lambda c: c.contract.strike)
            request = OrderRequest(
                client_order_id="spread-at-level-2",
                qty=Decimal(1),
                limit_price=Decimal("0.50"),
                legs=(
                    OrderLeg(same[5].symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),
                    OrderLeg(same[4].symbol, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),
                ),
            )
            with pytest.raises(OrderRejected, match="options_level"):
                await adapter.submit_order(request)
        finally:
            await adapter.aclose()
        assert server.stats.orders_accepted == server.stats.orders_rejected == 0
