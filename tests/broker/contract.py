"""The broker contract: what every ``Broker`` must do, whatever is behind it.

``BrokerContract`` holds tests written against the protocol alone. A test
module subclasses it (``class TestSimBroker(BrokerContract)``) and provides
two fixtures:

- ``broker``: the ``Broker`` under test, on an account with some buying power,
  options level ≥ 2 and at least one stock position;
- ``harness``: a ``BrokerHarness`` — the little the tests need from the world
  around the broker: a clock reading, a way to let market time pass, a way to
  be inside market hours, and which instruments to trade.

The harness asks only what an Alpaca paper account over HTTP can also do
(wait, read the time, skip when the market is closed): marketable prices are
taken from the broker's own quotes, never forced.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Protocol

import pytest

from alchemiser.broker.base import (
    Broker,
    DuplicateClientOrderId,
    NotFound,
    OrderRejected,
)
from alchemiser.domain.options import OptionContract, OptionRight
from alchemiser.domain.trading import (
    Activity,
    ActivityType,
    ContractInfo,
    Order,
    OrderClass,
    OrderLeg,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionIntent,
    Side,
)

CENT = Decimal("0.01")
FINAL = (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)


class BrokerHarness(Protocol):
    """What the contract tests may ask of the world around a broker."""

    stock_symbol: str  # a liquid stock, traded one share at a time
    option_underlying: str  # an underlying with listed options quoted in $0.01 (SPY, QQQ, IWM)

    def now(self) -> datetime:
        """The broker's current time (aware)."""
        ...

    async def wait(self, seconds: float) -> None:
        """Let ``seconds`` of market time pass (sim: advance the clock; live: sleep)."""
        ...

    async def ensure_market_open(self) -> None:
        """Be inside regular trading hours, or skip the calling test."""
        ...


def cid(tag: str) -> str:
    """A fresh client order id."""
    return f"contract-{tag}-{uuid.uuid4().hex[:12]}"


def up(price: Decimal) -> Decimal:
    return price.quantize(CENT, rounding=ROUND_CEILING)


def down(price: Decimal) -> Decimal:
    return price.quantize(CENT, rounding=ROUND_FLOOR)


async def settle(
    broker: Broker, harness: BrokerHarness, order_id: str, *, rounds: int = 20
) -> Order:
    """Wait until the order reaches a final status (or give up and return it as it is)."""
    order = await broker.get_order(order_id)
    for _ in range(rounds):
        if order.status in FINAL:
            break
        await harness.wait(60)
        order = await broker.get_order(order_id)
    return order


async def near_dated_contracts(
    broker: Broker, harness: BrokerHarness, right: OptionRight = OptionRight.PUT
) -> list[ContractInfo]:
    today = harness.now().date()
    contracts = await broker.get_option_contracts(
        harness.option_underlying, today + timedelta(days=20), today + timedelta(days=60), right
    )
    assert contracts, f"no {harness.option_underlying} {right} contracts 20-60 days out"
    return contracts


class BrokerContract:
    """Tests every Broker implementation must pass (subclass and provide the fixtures)."""

    # -- account and positions -------------------------------------------------

    async def test_implements_the_protocol(self, broker: Broker) -> None:
        assert isinstance(broker, Broker)

    async def test_account_is_self_consistent(self, broker: Broker) -> None:
        account = await broker.get_account()
        assert account.account_id
        assert account.equity > 0
        assert account.buying_power >= 0 and account.options_buying_power >= 0
        assert account.long_market_value >= 0 >= account.short_market_value
        assert 0 <= account.options_approved_level <= 3
        assert account.maintenance_margin >= 0

    async def test_positions_are_valued_at_their_current_price(self, broker: Broker) -> None:
        positions = await broker.get_positions()
        assert positions, "the contract account holds at least one position"
        for p in positions:
            assert p.qty != 0
            expected = p.qty * p.current_price * p.multiplier
            assert abs(p.market_value - expected) <= abs(expected) * Decimal("0.001") + 1
            assert (p.cost_basis > 0) == (p.qty > 0)

    async def test_is_market_open_answers(self, broker: Broker) -> None:
        assert isinstance(await broker.is_market_open(), bool)

    # -- market data -------------------------------------------------------------

    async def test_stock_quotes_omit_unknown_symbols(
        self, broker: Broker, harness: BrokerHarness
    ) -> None:
        quotes = await broker.get_stock_quotes([harness.stock_symbol, "ZZZZQX"])
        assert set(quotes) == {harness.stock_symbol}
        q = quotes[harness.stock_symbol]
        assert 0 < q.bid <= q.ask

    async def test_option_contracts_chain_and_quotes(
        self, broker: Broker, harness: BrokerHarness
    ) -> None:
        today = harness.now().date()
        lo, hi = today + timedelta(days=20), today + timedelta(days=60)
        contracts = await near_dated_contracts(broker, harness)
        for info in contracts:
            assert info.underlying == harness.option_underlying
            assert lo <= info.expiry <= hi
            assert info.contract.right is OptionRight.PUT
        chain = await broker.get_option_chain(harness.option_underlying, lo, hi)
        assert chain and all(lo <= s.contract.expiry <= hi for s in chain)
        symbols = [c.symbol for c in contracts[:5]]
        unlisted = OptionContract(
            harness.option_underlying, date(2099, 1, 16), OptionRight.PUT, Decimal(1)
        ).occ_symbol
        quotes = await broker.get_option_quotes([*symbols, unlisted])
        assert unlisted not in quotes
        assert set(quotes) <= set(symbols) and quotes
        for snap in quotes.values():
            assert 0 <= snap.bid <= snap.ask

    # -- order life cycle --------------------------------------------------------------

    async def test_a_passive_order_rests_until_canceled(
        self, broker: Broker, harness: BrokerHarness
    ) -> None:
        quote = (await broker.get_stock_quotes([harness.stock_symbol]))[harness.stock_symbol]
        request = OrderRequest(
            client_order_id=cid("rest"),
            qty=Decimal(1),
            limit_price=down(quote.bid * Decimal("0.7")),
            symbol=harness.stock_symbol,
            side=Side.BUY,
        )
        order = await broker.submit_order(request)
        assert order.status.is_open
        assert order.client_order_id == request.client_order_id
        assert order.order_class is OrderClass.SIMPLE and order.type is OrderType.LIMIT
        assert order.qty == 1 and order.filled_qty == 0 and order.limit_price == request.limit_price
        assert order.id in {o.id for o in await broker.list_open_orders()}
        assert (await broker.get_order(order.id)).client_order_id == request.client_order_id
        by_client = await broker.get_order_by_client_id(request.client_order_id)
        assert by_client is not None and by_client.id == order.id

        await broker.cancel_order(order.id)
        canceled = await settle(broker, harness, order.id)
        assert canceled.status is OrderStatus.CANCELED
        assert order.id not in {o.id for o in await broker.list_open_orders()}

    async def test_duplicate_client_order_id_is_rejected(
        self, broker: Broker, harness: BrokerHarness
    ) -> None:
        quote = (await broker.get_stock_quotes([harness.stock_symbol]))[harness.stock_symbol]
        request = OrderRequest(
            client_order_id=cid("dup"),
            qty=Decimal(1),
            limit_price=down(quote.bid * Decimal("0.7")),
            symbol=harness.stock_symbol,
            side=Side.BUY,
        )
        first = await broker.submit_order(request)
        with pytest.raises(DuplicateClientOrderId) as err:
            await broker.submit_order(request)
        assert isinstance(err.value, OrderRejected)
        assert err.value.client_order_id == request.client_order_id
        await broker.cancel_order(first.id)

    async def test_unknown_orders(self, broker: Broker) -> None:
        missing = str(uuid.uuid4())
        with pytest.raises(NotFound):
            await broker.get_order(missing)
        with pytest.raises(NotFound):
            await broker.cancel_order(missing)
        assert await broker.get_order_by_client_id(cid("never-sent")) is None

    async def test_a_marketable_buy_fills_and_a_close_sells_it_back(
        self, broker: Broker, harness: BrokerHarness
    ) -> None:
        await harness.ensure_market_open()
        symbol = harness.stock_symbol
        since = harness.now() - timedelta(seconds=1)
        held = {p.symbol: p.qty for p in await broker.get_positions()}.get(symbol, Decimal(0))
        quote = (await broker.get_stock_quotes([symbol]))[symbol]
        limit = up(quote.ask * Decimal("1.01"))
        order = await broker.submit_order(
            OrderRequest(
                client_order_id=cid("buy"),
                qty=Decimal(1),
                limit_price=limit,
                symbol=symbol,
                side=Side.BUY,
            )
        )
        filled = await settle(broker, harness, order.id)
        assert filled.status is OrderStatus.FILLED
        assert filled.filled_qty == 1
        assert filled.filled_avg_price is not None and filled.filled_avg_price <= limit
        positions = {p.symbol: p.qty for p in await broker.get_positions()}
        assert positions.get(symbol) == held + 1

        fills = await broker.get_activities(since, [ActivityType.FILL])
        mine = [a for a in fills if a.order_id == order.id]
        assert mine and sum(a.qty for a in mine) == 1
        assert all(a.side is Side.BUY and a.symbol == symbol for a in mine)

        close = await broker.close_position(symbol, Decimal(1))
        closed = await settle(broker, harness, close.id)
        assert closed.status is OrderStatus.FILLED and closed.side is Side.SELL
        positions = {p.symbol: p.qty for p in await broker.get_positions()}
        assert positions.get(symbol, Decimal(0)) == held
        sold = [a for a in await broker.get_activities(since) if a.order_id == close.id]
        assert sold and sum(a.qty for a in sold) == -1

    async def test_activities_filter_by_type(self, broker: Broker, harness: BrokerHarness) -> None:
        since = harness.now() - timedelta(days=30)
        everything: list[Activity] = await broker.get_activities(since)
        only_fills = await broker.get_activities(since, [ActivityType.FILL])
        assert all(a.activity_type is ActivityType.FILL for a in only_fills)
        assert {a.id for a in only_fills} <= {a.id for a in everything}
        assert all(a.occurred_at >= since for a in everything)

    # -- rejections ----------------------------------------------------------------------

    async def test_rejections(self, broker: Broker, harness: BrokerHarness) -> None:
        contracts = await near_dated_contracts(broker, harness)
        option = contracts[len(contracts) // 2].symbol
        quote = (await broker.get_stock_quotes([harness.stock_symbol]))[harness.stock_symbol]
        bad = {
            "fractional contracts": OrderRequest(
                client_order_id=cid("frac"),
                qty=Decimal("1.5"),
                limit_price=Decimal("1.00"),
                symbol=option,
                side=Side.BUY,
                position_intent=PositionIntent.BUY_TO_OPEN,
            ),
            "off-increment price": OrderRequest(
                client_order_id=cid("tick"),
                qty=Decimal(1),
                limit_price=Decimal("1.005"),
                symbol=option,
                side=Side.BUY,
                position_intent=PositionIntent.BUY_TO_OPEN,
            ),
            "unknown symbol": OrderRequest(
                client_order_id=cid("unknown"),
                qty=Decimal(1),
                limit_price=Decimal("10.00"),
                symbol="ZZZZQX",
                side=Side.BUY,
            ),
            "zero quantity": OrderRequest(
                client_order_id=cid("zero"),
                qty=Decimal(0),
                limit_price=down(quote.bid),
                symbol=harness.stock_symbol,
                side=Side.BUY,
            ),
        }
        for what, request in bad.items():
            with pytest.raises(OrderRejected) as err:
                await broker.submit_order(request)
            assert err.value.reason, what
            assert not isinstance(err.value, DuplicateClientOrderId), what
            assert await broker.get_order_by_client_id(request.client_order_id) is None, what

    async def test_an_order_beyond_buying_power_is_rejected(
        self, broker: Broker, harness: BrokerHarness
    ) -> None:
        account = await broker.get_account()
        quote = (await broker.get_stock_quotes([harness.stock_symbol]))[harness.stock_symbol]
        limit = up(quote.ask)
        qty = (account.buying_power / limit).to_integral_value(rounding=ROUND_FLOOR) * 2 + 10
        with pytest.raises(OrderRejected) as err:
            await broker.submit_order(
                OrderRequest(
                    client_order_id=cid("bp"),
                    qty=qty,
                    limit_price=limit,
                    symbol=harness.stock_symbol,
                    side=Side.BUY,
                )
            )
        assert "buying power" in err.value.reason

    # -- multi-leg -------------------------------------------------------------------------

    async def test_a_spread_order_rests_as_one_multi_leg_order(
        self, broker: Broker, harness: BrokerHarness
    ) -> None:
        account = await broker.get_account()
        if account.options_approved_level < 3:
            pytest.skip("spreads need options level 3")
        contracts = await near_dated_contracts(broker, harness)
        expiry = contracts[0].expiry
        strikes = sorted(
            (c for c in contracts if c.expiry == expiry), key=lambda c: c.contract.strike
        )
        assert len(strikes) >= 2
        middle = len(strikes) // 2
        long_leg, short_leg = strikes[middle], strikes[middle - 1]
        request = OrderRequest(
            client_order_id=cid("spread"),
            qty=Decimal(1),
            limit_price=Decimal("0.01"),  # a debit far below the natural price: it rests
            legs=(
                OrderLeg(long_leg.symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),
                OrderLeg(short_leg.symbol, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),
            ),
        )
        order = await broker.submit_order(request)
        assert order.order_class is OrderClass.MLEG
        assert order.status.is_open and order.filled_qty == 0
        assert {leg.symbol for leg in order.legs} == {long_leg.symbol, short_leg.symbol}
        await broker.cancel_order(order.id)
        assert (await settle(broker, harness, order.id)).status is OrderStatus.CANCELED
