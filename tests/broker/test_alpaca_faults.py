"""The Alpaca adapter under injected faults, against the local Alpaca server over HTTP.

The proof of idempotency: with 429s, 5xx, hangs past the client's timeout and
lost responses injected, N orders with distinct client order ids give exactly
one broker order each, and every submit returns (or resolves to) that order.
Also: alpaca-py's own retry is off (one HTTP request per attempt of ours),
timeouts hold, the rate limiter keeps under the server's limit, and the key
and secret appear in no log line and no exception message.
"""

from __future__ import annotations

import asyncio
import logging
import time as walltime
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, time
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.broker.alpaca import AlpacaBroker, BrokerAuthError
from alchemiser.broker.base import BrokerError, BrokerUnavailable, OrderOutcomeUnknown
from alchemiser.broker.retry import RetryPolicy, SlidingWindowLimiter
from alchemiser.broker.sim import SimBroker, SimBrokerConfig
from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.domain.trading import Order, OrderRequest, Side
from alchemiser.sim.alpaca_server import AlpacaSimServer, FaultConfig
from alchemiser.sim.market import SimMarket
from alchemiser.store.engine import session_factory
from alchemiser.store.sim_state import SimBrokerStore

KEY = "PKFAULTKEY7Q2W9E"
SECRET = "fault-secret-Zx81-never-printed"
TRADING_DAY = date(2026, 1, 6)


@pytest.fixture(scope="module")
def market() -> SimMarket:
    return SimMarket(seed=7, start=date(2026, 1, 2))


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the broker store is not what is under test here


@pytest.fixture
async def sim(engine: AsyncEngine, market: SimMarket) -> SimBroker:
    clock = ManualClock(datetime.combine(TRADING_DAY, time(10, 30), NEW_YORK))
    broker = SimBroker(
        market,
        clock,
        SimBrokerStore(session_factory(engine)),
        SimBrokerConfig(account_id="faults", options_level=3),
    )
    await broker.seed_book(Decimal(200_000), {"AAPL": Decimal(100)})
    return broker


@pytest.fixture
async def server(sim: SimBroker, market: SimMarket) -> AsyncIterator[AlpacaSimServer]:
    clock = sim._clock
    async with AlpacaSimServer(sim, market, clock, key=KEY, secret=SECRET) as srv:
        yield srv


def adapter(server: AlpacaSimServer, **kwargs: Any) -> AlpacaBroker:
    options: dict[str, Any] = {
        "key": KEY,
        "secret": SECRET,
        "trading_url": server.url,
        "data_url": server.url,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        "limiter": SlidingWindowLimiter(10_000, 60.0),
        "retry": RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05),
    }
    options.update(kwargs)
    return AlpacaBroker(**options)


async def test_exactly_one_broker_order_per_intent_under_faults(
    server: AlpacaSimServer, sim: SimBroker
) -> None:
    n_orders = 30
    hang_seconds = 0.8
    broker = adapter(
        server,
        read_timeout=0.3,
        retry=RetryPolicy(max_attempts=12, base_delay=0.02, max_delay=0.3, max_elapsed=40.0),
    )
    try:
        quote = (await broker.get_stock_quotes(["AAPL"]))["AAPL"]
        limit = (quote.bid * Decimal("0.7")).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
        server.faults = FaultConfig(
            rate_limited_p=0.1,
            server_error_p=0.1,
            lose_response_p=0.2,
            hang_p=0.08,
            hang_seconds=hang_seconds,
            latency_ms=2,
            rate_limit_reset_seconds=0.0,
            seed=20260106,
        )
        cids = [f"intent-{n:03d}-{uuid.uuid4().hex[:8]}" for n in range(n_orders)]
        gate = asyncio.Semaphore(5)

        async def place(cid: str) -> Order | str:
            request = OrderRequest(
                client_order_id=cid, qty=Decimal(1), limit_price=limit, symbol="AAPL", side=Side.BUY
            )
            async with gate:
                try:
                    return await broker.submit_order(request)
                except OrderOutcomeUnknown as exc:
                    return exc.client_order_id  # resolved below, once the faults stop

        started = walltime.monotonic()
        results = await asyncio.gather(*(place(cid) for cid in cids))
        elapsed = walltime.monotonic() - started

        # Let every hung request land (each is carried out after the client gave up).
        await asyncio.sleep(hang_seconds + 0.5)
        server.faults = FaultConfig()
        returned: dict[str, Order] = {}
        for cid, result in zip(cids, results, strict=True):
            if isinstance(result, Order):
                returned[cid] = result
            else:
                resolved = await broker.get_order_by_client_id(result)
                assert resolved is not None, f"{cid}: outcome unknown and not at the broker"
                returned[cid] = resolved
    finally:
        await broker.aclose()

    stats = server.stats
    assert stats.injected_429 and stats.injected_5xx and stats.lost_responses and stats.hangs, stats
    assert elapsed < 60, f"{n_orders} orders took {elapsed:.1f}s"

    # The broker's own book: exactly one order per client order id, the one each call returned.
    stored = await sim.list_open_orders()
    mine = [o for o in stored if o.client_order_id in set(cids)]
    assert len(mine) == n_orders == len({o.client_order_id for o in mine})
    by_cid = {o.client_order_id: o for o in mine}
    for cid in cids:
        assert returned[cid].client_order_id == cid
        assert returned[cid].id == by_cid[cid].id
    assert stats.orders_accepted == n_orders


async def _passive_buy(broker: AlpacaBroker, cid: str) -> OrderRequest:
    quote = (await broker.get_stock_quotes(["AAPL"]))["AAPL"]
    limit = (quote.bid * Decimal("0.7")).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
    return OrderRequest(
        client_order_id=cid, qty=Decimal(1), limit_price=limit, symbol="AAPL", side=Side.BUY
    )


async def test_a_lost_response_is_resolved_by_client_order_id(
    server: AlpacaSimServer, sim: SimBroker
) -> None:
    broker = adapter(server)
    try:
        request = await _passive_buy(broker, "lost-response-1")
        server.faults = FaultConfig(lose_response_p=1.0, only=("POST /v2/orders",))
        order = await broker.submit_order(request)
    finally:
        await broker.aclose()
    stored = await sim.get_order_by_client_id("lost-response-1")
    assert stored is not None and order.id == stored.id
    # Sent once, looked up once: never sent again.
    assert server.stats.lost_responses == 1 and server.stats.orders_accepted == 1
    assert server.stats.orders_rejected == 0


async def test_a_submit_that_lands_after_the_timeout_is_found_not_duplicated(
    server: AlpacaSimServer, sim: SimBroker
) -> None:
    """Every POST hangs past the client's timeout and is then carried out: the first one
    lands while the client is resending; the resends are refused as duplicates; the
    look-up between attempts finds the order."""
    broker = adapter(
        server,
        read_timeout=0.2,
        retry=RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.02),
    )
    try:
        request = await _passive_buy(broker, "late-landing-1")
        server.faults = FaultConfig(hang_p=1.0, hang_seconds=0.5, only=("POST /v2/orders",))
        order = await broker.submit_order(request)
    finally:
        await broker.aclose()
    await asyncio.sleep(0.7)  # the last hung resend is refused as a duplicate
    stored = await sim.get_order_by_client_id("late-landing-1")
    assert stored is not None and order.id == stored.id
    open_orders = [o for o in await sim.list_open_orders() if o.client_order_id == "late-landing-1"]
    assert len(open_orders) == 1
    assert server.stats.orders_accepted == 1 and server.stats.orders_rejected >= 1


@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(rate_limited_p=1.0, rate_limit_reset_seconds=0.0),
        FaultConfig(server_error_p=1.0),
    ],
    ids=["429", "5xx"],
)
async def test_alpaca_py_does_not_retry_on_its_own(
    server: AlpacaSimServer, faults: FaultConfig
) -> None:
    broker = adapter(server, retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02))
    server.faults = faults
    before = server.stats.requests
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.get_account()
    finally:
        await broker.aclose()
    # alpaca-py would send up to 4 requests per call (3 retries on 429/504): ours sends 2.
    assert server.stats.requests - before == 2


async def test_a_hung_request_times_out(server: AlpacaSimServer) -> None:
    broker = adapter(server, read_timeout=0.2, retry=RetryPolicy(max_attempts=1))
    server.faults = FaultConfig(hang_p=1.0, hang_seconds=1.0)
    started = walltime.monotonic()
    try:
        with pytest.raises(BrokerUnavailable, match="timed out"):
            await broker.is_market_open()
    finally:
        await broker.aclose()
    assert walltime.monotonic() - started < 0.9
    await asyncio.sleep(1.1)  # let the hung handler finish before the server stops


async def test_the_limiter_keeps_under_the_servers_rate_limit(
    sim: SimBroker, market: SimMarket
) -> None:
    async with AlpacaSimServer(
        sim,
        market,
        sim._clock,
        key=KEY,
        secret=SECRET,
        rate_limit_per_minute=20,
        rate_limit_window_seconds=1.0,
    ) as server:
        # Headroom, as in production (180 of Alpaca's 200): a grant is taken before the
        # request travels, so arrival times at the server jitter a little.
        limited = adapter(server, limiter=SlidingWindowLimiter(16, 1.0))
        started = walltime.monotonic()
        try:
            answers = await asyncio.gather(*(limited.is_market_open() for _ in range(34)))
        finally:
            await limited.aclose()
        assert len(answers) == 34
        assert server.stats.rate_limited == 0
        assert walltime.monotonic() - started >= 2.0  # 34 requests at 16 a second

        # Without our limiter the server refuses some; the retries wait for its reset.
        unlimited = adapter(server, retry=RetryPolicy(max_attempts=6, base_delay=0.01))
        try:
            answers = await asyncio.gather(*(unlimited.is_market_open() for _ in range(26)))
        finally:
            await unlimited.aclose()
        assert len(answers) == 26
        assert server.stats.rate_limited > 0


async def test_key_and_secret_appear_in_no_log_line_and_no_error(
    server: AlpacaSimServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    with structlog.testing.capture_logs() as events:
        broker = adapter(server, read_timeout=0.2)
        server.faults = FaultConfig(
            rate_limited_p=0.3,
            server_error_p=0.3,
            lose_response_p=0.3,
            hang_p=0.1,
            hang_seconds=0.4,
            rate_limit_reset_seconds=0.0,
            seed=3,
        )
        try:
            for _ in range(6):
                try:
                    await broker.get_account()
                except BrokerError as exc:
                    messages.append(str(exc))
        finally:
            await broker.aclose()
        server.faults = FaultConfig()
        wrong = adapter(server, secret=SECRET[::-1])
        try:
            with pytest.raises(BrokerAuthError) as err:
                await wrong.get_account()
            messages.append(str(err.value))
        finally:
            await wrong.aclose()
        await asyncio.sleep(0.5)  # hung handlers finish
    lines = [repr(e) for e in events] + [r.getMessage() for r in caplog.records] + messages
    assert any("alpaca_request_failed" in line for line in lines)
    for line in lines:
        for secret in (KEY, SECRET, SECRET[::-1]):
            assert secret not in line, line
