"""The simulated broker: matching, partial fills, day expiry, rejections, spreads,
margin, expiry settlement, early assignment, fees and persistence across restarts.

Quotes come from the real synthetic market (seeded): expected prices are read
from the market at the instant the broker should have used them.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.broker.base import DuplicateClientOrderId, NotFound, OrderRejected
from alchemiser.broker.sim import SimAccountMissing, SimBroker, SimBrokerConfig
from alchemiser.broker.sim_scenario import (
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.domain.options import OptionContract, OptionRight
from alchemiser.domain.ticks import option_tick
from alchemiser.domain.trading import (
    ActivityType,
    AssetClass,
    OptionSnapshot,
    OrderLeg,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionIntent,
    Side,
)
from alchemiser.sim.market import SimMarket
from alchemiser.store.engine import create_engine, session_factory
from alchemiser.store.sim_state import SimBrokerStore, SimPositionRecord
from alchemiser.trading_calendar import nyse_calendar

D = Decimal
MARKET_START = date(2026, 1, 2)
DAY = date(2026, 1, 6)  # a Tuesday
EXPIRY = date(2026, 1, 16)  # the January monthly
EARLY_CLOSE = date(2026, 11, 27)  # the day after Thanksgiving: 13:00 close
ACCOUNT = "test"


def ny(d: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm, ss), NEW_YORK)


def cid() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="module")
def market() -> SimMarket:
    return SimMarket(seed=11, start=MARKET_START)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ny(DAY, 10, 30))


@pytest.fixture
def store(engine: AsyncEngine) -> SimBrokerStore:
    return SimBrokerStore(session_factory(engine))


@pytest.fixture
def make_broker(
    market: SimMarket, clock: ManualClock, store: SimBrokerStore
) -> Callable[..., SimBroker]:
    def make(**config: object) -> SimBroker:
        return SimBroker(market, clock, store, SimBrokerConfig(account_id=ACCOUNT, **config))  # type: ignore[arg-type]

    return make


async def seed(
    broker: SimBroker,
    store: SimBrokerStore,
    clock: ManualClock,
    cash: Decimal = Decimal(200_000),
    shares: dict[str, Decimal] | None = None,
    options: dict[str, tuple[Decimal, Decimal]] | None = None,
) -> None:
    """Open the test account with cash, shares at today's marks and option positions."""
    if not options:
        assert await broker.seed_book(cash, shares or {})
        return
    positions = [
        SimPositionRecord(symbol, AssetClass.OPTION, qty, price, 100)
        for symbol, (qty, price) in options.items()
    ]
    for symbol, qty in (shares or {}).items():
        positions.append(SimPositionRecord(symbol, AssetClass.EQUITY, qty, D(100), 1))
    assert await store.create_account(ACCOUNT, cash, positions, clock.now())


def pick(
    market: SimMarket,
    at: datetime,
    underlying: str,
    right: OptionRight,
    strike_near: Decimal,
    expiry: date | None = None,
    days: tuple[int, int] = (20, 60),
    ok: Callable[[OptionSnapshot], bool] = lambda s: s.bid > 0,
) -> OptionSnapshot:
    """The quoted contract nearest ``strike_near`` (on ``expiry``, or ``days`` out)."""
    today = at.astimezone(NEW_YORK).date()
    lo = expiry or today + timedelta(days=days[0])
    hi = expiry or today + timedelta(days=days[1])
    chain = [
        s
        for s in market.chain(underlying, at, lo, hi)
        if s.contract.right is right and ok(s) and (expiry is None or s.contract.expiry == expiry)
    ]
    assert chain, f"no {underlying} {right} quotes {lo}..{hi}"
    first = min(s.contract.expiry for s in chain)
    same = [s for s in chain if s.contract.expiry == first]
    return min(same, key=lambda s: abs(s.contract.strike - strike_near))


def spot(market: SimMarket, symbol: str, at: datetime) -> Decimal:
    return market.stock_quote(symbol, at).last


def tick_up(market: SimMarket, underlying: str, price: Decimal) -> Decimal:
    tick = option_tick(underlying, price, penny_pilot=market.instrument(underlying).penny_pilot)
    return (price / tick).to_integral_value(rounding=ROUND_CEILING) * tick


def tick_down(market: SimMarket, underlying: str, price: Decimal) -> Decimal:
    tick = option_tick(underlying, price, penny_pilot=market.instrument(underlying).penny_pilot)
    return (price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def buy(symbol: str, qty: int | Decimal, limit: Decimal | None, **kw: object) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid(),
        qty=D(qty),
        **{  # type: ignore[arg-type]
            "limit_price": limit,
            "type": OrderType.LIMIT if limit is not None else OrderType.MARKET,
            "symbol": symbol,
            "side": Side.BUY,
            **kw,
        },
    )


def sell(symbol: str, qty: int | Decimal, limit: Decimal | None, **kw: object) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid(),
        qty=D(qty),
        **{  # type: ignore[arg-type]
            "limit_price": limit,
            "type": OrderType.LIMIT if limit is not None else OrderType.MARKET,
            "symbol": symbol,
            "side": Side.SELL,
            **kw,
        },
    )


# -- fills ------------------------------------------------------------------------------


async def test_buys_fill_at_the_ask_and_sells_at_the_bid(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker()
    await seed(broker, store, clock)
    now = clock.now()
    q = market.stock_quote("AAPL", now)
    bought = await broker.submit_order(buy("AAPL", 3, q.ask + D("0.50")))
    assert bought.status is OrderStatus.FILLED and bought.filled_avg_price == q.ask
    sold = await broker.submit_order(sell("AAPL", 3, q.bid - D("0.50")))
    assert sold.status is OrderStatus.FILLED and sold.filled_avg_price == q.bid

    put = pick(market, now, "SPY", OptionRight.PUT, spot(market, "SPY", now) * D("0.97"))
    opened = await broker.submit_order(
        buy(put.symbol, 1, put.ask + D("0.05"), position_intent=PositionIntent.BUY_TO_OPEN)
    )
    assert opened.status is OrderStatus.FILLED and opened.filled_avg_price == put.ask
    closed = await broker.submit_order(
        sell(put.symbol, 1, put.bid - D("0.05"), position_intent=PositionIntent.SELL_TO_CLOSE)
    )
    assert closed.filled_avg_price == put.bid

    account = await broker.get_account()
    expected_cash = D(200_000) - 3 * q.ask + 3 * q.bid - put.ask * 100 + put.bid * 100
    assert account.cash == expected_cash
    assert await broker.get_positions() == []
    fills = await store.get_fills(ACCOUNT)
    assert [f.price for f in fills] == [q.ask, q.bid, put.ask, put.bid]
    assert fills[-1].realized_pnl == (put.bid - put.ask) * 100
    activities = await broker.get_activities(now, [ActivityType.FILL])
    assert [a.qty for a in activities] == [D(3), D(-3), D(1), D(-1)]
    assert [a.net_amount for a in activities] == [
        -3 * q.ask,
        3 * q.bid,
        -put.ask * 100,
        put.bid * 100,
    ]


async def test_a_resting_limit_fills_at_the_first_pass_where_the_quote_crosses_it(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker()
    await seed(broker, store, clock)
    submitted = clock.now()
    close = nyse_calendar().session_close(DAY)
    opens = nyse_calendar().session_open(DAY)
    grid = [opens + timedelta(minutes=k) for k in range(390)]
    later = [t for t in grid if t > submitted]
    # A limit the ask reaches some time this afternoon, but not now.
    limit = min(market.stock_quote("MSFT", t).ask for t in later if t >= ny(DAY, 13))
    assert market.stock_quote("MSFT", submitted).ask > limit
    order = await broker.submit_order(buy("MSFT", 1, limit))
    assert order.status is OrderStatus.NEW and order.filled_qty == 0

    await clock.advance_to(close + timedelta(minutes=1))
    expected = next(t for t in later if market.stock_quote("MSFT", t).ask <= limit)
    done = await broker.get_order(order.id)
    assert done.status is OrderStatus.FILLED
    assert done.updated_at == expected
    assert done.filled_avg_price == market.stock_quote("MSFT", expected).ask <= limit


async def test_an_order_larger_than_the_quote_fills_in_parts_one_pass_at_a_time(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker(match_interval_seconds=60)
    await seed(broker, store, clock)
    now = clock.now()
    put = pick(
        market,
        now,
        "SPY",
        OptionRight.PUT,
        spot(market, "SPY", now) * D("0.93"),
        ok=lambda s: s.bid >= D("0.20") and 2 <= s.ask_size <= 30,
    )
    qty = put.ask_size * 2 + 1
    limit = tick_up(market, "SPY", put.ask * 2)
    order = await broker.submit_order(buy(put.symbol, qty, limit))
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.filled_qty == put.ask_size and order.filled_avg_price == put.ask

    await clock.advance(30)  # within the interval: no second look yet
    assert (await broker.get_order(order.id)).filled_qty == put.ask_size

    for _ in range(20):
        await clock.advance(30)
        current = await broker.get_order(order.id)
        if current.status is OrderStatus.FILLED:
            break
    fills = await store.get_fills(ACCOUNT, order.id)
    assert sum(f.qty for f in fills) == qty
    assert len(fills) >= 3
    remaining = D(qty)
    for fill in fills:
        quote = market.option_quotes([put.symbol], fill.at)[put.symbol]
        assert fill.price == quote.ask <= limit
        assert fill.qty == min(remaining, quote.ask_size)
        remaining -= fill.qty
    assert all(b.at - a.at >= timedelta(seconds=60) for a, b in itertools.pairwise(fills))
    final = await broker.get_order(order.id)
    assert final.status is OrderStatus.FILLED and final.filled_qty == qty
    weighted = sum((f.price * f.qty for f in fills), D(0)) / qty
    assert final.filled_avg_price == weighted
    position = {p.symbol: p for p in await broker.get_positions()}[put.symbol]
    assert position.qty == qty and position.avg_entry_price == weighted
    activities = await broker.get_activities(now, [ActivityType.FILL])
    assert [a.qty for a in activities] == [f.qty for f in fills]


# -- time in force -------------------------------------------------------------------


async def test_day_orders_expire_at_the_close(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker()
    await seed(broker, store, clock)
    q = market.stock_quote("AAPL", clock.now())
    order = await broker.submit_order(buy("AAPL", 1, (q.bid * D("0.8")).quantize(D("0.01"))))
    close = nyse_calendar().session_close(DAY)
    await clock.advance_to(close - timedelta(seconds=1))
    assert (await broker.get_order(order.id)).status is OrderStatus.NEW
    await clock.advance_to(close)
    expired = await broker.get_order(order.id)
    assert expired.status is OrderStatus.EXPIRED and expired.updated_at == close
    assert await broker.list_open_orders() == []

    # After the close a day order is for the next session, and expires at its close.
    await clock.advance_to(ny(DAY, 17))
    late = await broker.submit_order(buy("AAPL", 1, (q.bid * D("0.8")).quantize(D("0.01"))))
    assert late.status is OrderStatus.ACCEPTED
    next_day = nyse_calendar().next_session(DAY)
    await clock.advance_to(ny(next_day, 15, 59))
    assert (await broker.get_order(late.id)).status.is_open
    await clock.advance_to(ny(next_day, 16))
    assert (await broker.get_order(late.id)).status is OrderStatus.EXPIRED


async def test_day_orders_expire_at_an_early_close(
    market: SimMarket, store: SimBrokerStore
) -> None:
    calendar = nyse_calendar()
    assert calendar.is_early_close(EARLY_CLOSE)
    clock = ManualClock(ny(EARLY_CLOSE, 10))
    broker = SimBroker(market, clock, store, SimBrokerConfig(account_id=ACCOUNT))
    await broker.seed_book(D(100_000))
    q = market.stock_quote("AAPL", clock.now())
    order = await broker.submit_order(buy("AAPL", 1, (q.bid * D("0.8")).quantize(D("0.01"))))
    await clock.advance_to(ny(EARLY_CLOSE, 12, 59))
    assert (await broker.get_order(order.id)).status.is_open
    await clock.advance_to(ny(EARLY_CLOSE, 13))
    expired = await broker.get_order(order.id)
    assert expired.status is OrderStatus.EXPIRED
    assert expired.updated_at == calendar.session_close(EARLY_CLOSE)


async def test_nothing_fills_outside_market_hours(market: SimMarket, store: SimBrokerStore) -> None:
    clock = ManualClock(ny(DAY, 8))
    broker = SimBroker(market, clock, store, SimBrokerConfig(account_id=ACCOUNT))
    await broker.seed_book(D(100_000))
    assert not await broker.is_market_open()
    q = market.stock_quote("AAPL", clock.now())
    order = await broker.submit_order(buy("AAPL", 2, q.ask + D(5)))
    assert order.status is OrderStatus.ACCEPTED and order.filled_qty == 0
    await clock.advance_to(ny(DAY, 9, 29, 59))
    assert (await broker.get_order(order.id)).filled_qty == 0
    await clock.advance_to(ny(DAY, 9, 45))
    filled = await broker.get_order(order.id)
    opens = nyse_calendar().session_open(DAY)
    assert filled.status is OrderStatus.FILLED and filled.updated_at == opens
    assert filled.filled_avg_price == market.stock_quote("AAPL", opens).ask


async def test_an_expiring_option_cannot_be_ordered_after_its_last_close(
    market: SimMarket, store: SimBrokerStore
) -> None:
    clock = ManualClock(ny(EXPIRY, 15))
    broker = SimBroker(market, clock, store, SimBrokerConfig(account_id=ACCOUNT))
    await broker.seed_book(D(100_000))
    put = pick(
        market, clock.now(), "SPY", OptionRight.PUT, spot(market, "SPY", clock.now()), expiry=EXPIRY
    )
    assert (await broker.submit_order(buy(put.symbol, 1, D("0.01")))).status.is_open
    await clock.advance_to(ny(EXPIRY, 16, 30))
    with pytest.raises(OrderRejected, match=r"unknown_symbol.*not listed"):
        await broker.submit_order(buy(put.symbol, 1, D("0.01")))


async def test_a_market_order_fills_at_the_touch(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker()
    await seed(broker, store, clock, shares={"AAPL": D(10)})
    q = market.stock_quote("AAPL", clock.now())
    order = await broker.submit_order(sell("AAPL", 4, None))
    assert order.type is OrderType.MARKET
    assert order.status is OrderStatus.FILLED and order.filled_avg_price == q.bid
    closing = await broker.close_position("AAPL")
    assert closing.status is OrderStatus.FILLED and closing.filled_qty == 6
    assert await broker.get_positions() == []
    with pytest.raises(NotFound):
        await broker.close_position("AAPL")


async def test_cancel_is_idempotent_and_final_orders_cannot_be_canceled(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker()
    await seed(broker, store, clock)
    q = market.stock_quote("AAPL", clock.now())
    resting = await broker.submit_order(buy("AAPL", 1, (q.bid * D("0.8")).quantize(D("0.01"))))
    await broker.cancel_order(resting.id)
    await broker.cancel_order(resting.id)
    assert (await broker.get_order(resting.id)).status is OrderStatus.CANCELED
    filled = await broker.submit_order(buy("AAPL", 1, q.ask))
    with pytest.raises(OrderRejected, match="order_not_cancelable"):
        await broker.cancel_order(filled.id)


# -- rejections -------------------------------------------------------------------------


async def test_every_rejection_names_its_rule(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker(options_level=3)
    await seed(broker, store, clock, cash=D(20_000), shares={"AAPL": D(50)})
    now = clock.now()
    spy = spot(market, "SPY", now)
    aapl = spot(market, "AAPL", now)
    spy_put = pick(market, now, "SPY", OptionRight.PUT, spy * D("0.97"))
    spy_far_put = pick(market, now, "SPY", OptionRight.PUT, spy * D("0.90"))
    aapl_put = pick(
        market, now, "AAPL", OptionRight.PUT, aapl, ok=lambda s: s.bid > 3 and s.ask < 20
    )
    ko_put = pick(
        market,
        now,
        "KO",
        OptionRight.PUT,
        spot(market, "KO", now),
        ok=lambda s: D("0.10") < s.ask < D("2.5"),
    )
    aapl_call = pick(market, now, "AAPL", OptionRight.CALL, aapl * D("1.05"))
    unlisted = OptionContract("SPY", EXPIRY, OptionRight.PUT, D("123.456")).occ_symbol
    aapl_q = market.stock_quote("AAPL", now)

    def spread(**kw: object) -> OrderRequest:
        legs = kw.pop("legs", None) or (
            OrderLeg(spy_put.symbol, Side.BUY),
            OrderLeg(spy_far_put.symbol, Side.SELL),
        )
        fields: dict[str, object] = {"limit_price": D("1.00"), "legs": legs, **kw}
        return OrderRequest(client_order_id=cid(), qty=D(1), **fields)  # type: ignore[arg-type]

    cases: list[tuple[str, OrderRequest, str]] = [
        ("fractional contracts", buy(spy_put.symbol, D("1.5"), D("1.00")), "fractional_contracts"),
        ("zero quantity", buy("AAPL", 0, aapl_q.ask), "qty"),
        ("negative quantity", buy("AAPL", -1, aapl_q.ask), "qty"),
        (
            "AAPL option in cents above $3",
            buy(aapl_put.symbol, 1, aapl_put.ask + D("0.01")),
            r"\$0\.05",
        ),
        ("non-penny KO below $3 in cents", buy(ko_put.symbol, 1, D("0.11")), r"\$0\.05"),
        ("non-penny KO above $3 in nickels", buy(ko_put.symbol, 1, D("3.05")), r"\$0\.10"),
        ("SPY in sub-pennies", buy(spy_put.symbol, 1, D("1.005")), r"price_increment.*\$0\.01"),
        ("stock in sub-pennies", buy("AAPL", 1, aapl_q.ask + D("0.001")), "price_increment"),
        ("unknown stock", buy("NOPE", 1, D("10.00")), "unknown_symbol"),
        ("unlisted option", buy(unlisted, 1, D("1.00")), "unknown_symbol"),
        ("limit order without price", buy("AAPL", 1, None, type=OrderType.LIMIT), "limit_price"),
        (
            "market order with a price",
            buy("AAPL", 1, D("10.00"), type=OrderType.MARKET),
            "limit_price",
        ),
        ("beyond buying power", buy("AAPL", 500, aapl_q.ask), "buying_power"),
        ("naked call", sell(aapl_call.symbol, 1, aapl_call.bid), "uncovered_call"),
        (
            "sell to close without a position",
            sell(spy_put.symbol, 1, spy_put.bid, position_intent=PositionIntent.SELL_TO_CLOSE),
            "position_intent",
        ),
        (
            "intent against side",
            buy(spy_put.symbol, 1, spy_put.ask, position_intent=PositionIntent.SELL_TO_OPEN),
            "position_intent",
        ),
        (
            "cash-secured put beyond buying power",
            sell(spy_put.symbol, 1, spy_put.bid),
            "buying_power",
        ),
        ("one-leg mleg", spread(legs=(OrderLeg(spy_put.symbol, Side.BUY),)), "mleg"),
        (
            "mleg with a stock leg",
            spread(legs=(OrderLeg(spy_put.symbol, Side.BUY), OrderLeg("SPY", Side.SELL))),
            "mleg",
        ),
        (
            "mleg with a repeated contract",
            spread(legs=(OrderLeg(spy_put.symbol, Side.BUY), OrderLeg(spy_put.symbol, Side.SELL))),
            "mleg",
        ),
        (
            "mleg ratios not in lowest terms",
            spread(
                legs=(
                    OrderLeg(spy_put.symbol, Side.BUY, 2),
                    OrderLeg(spy_far_put.symbol, Side.SELL, 2),
                )
            ),
            "mleg",
        ),
        (
            "mleg across underlyings",
            spread(legs=(OrderLeg(spy_put.symbol, Side.BUY), OrderLeg(aapl_put.symbol, Side.SELL))),
            "mleg",
        ),
        ("mleg net price in sub-pennies", spread(limit_price=D("0.005")), "price_increment"),
    ]
    for label, request, rule in cases:
        with pytest.raises(OrderRejected, match=rule) as err:
            await broker.submit_order(request)
        assert not isinstance(err.value, DuplicateClientOrderId), label
        assert err.value.client_order_id == request.client_order_id, label
        assert await broker.get_order_by_client_id(request.client_order_id) is None, label
    assert await broker.list_open_orders() == []

    # On the tick, the same instruments are accepted.
    ok = await broker.submit_order(buy(aapl_put.symbol, 1, tick_down(market, "AAPL", aapl_put.bid)))
    assert ok.status.is_open


async def test_duplicate_client_order_ids_are_rejected(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker()
    await seed(broker, store, clock)
    q = market.stock_quote("AAPL", clock.now())
    request = buy("AAPL", 1, q.ask)
    first = await broker.submit_order(request)
    assert first.status is OrderStatus.FILLED
    with pytest.raises(DuplicateClientOrderId, match="duplicate_client_order_id"):
        await broker.submit_order(request)
    # A different order under the same id is a duplicate too: the id is the intent.
    with pytest.raises(DuplicateClientOrderId):
        await broker.submit_order(
            OrderRequest(
                request.client_order_id, D(5), limit_price=q.bid, symbol="MSFT", side=Side.SELL
            )
        )
    assert len(await store.get_fills(ACCOUNT)) == 1


async def test_shares_cover_one_call_per_hundred_including_open_orders(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker(options_level=1)
    await seed(broker, store, clock, shares={"AAPL": D(100)})
    now = clock.now()
    call = pick(market, now, "AAPL", OptionRight.CALL, spot(market, "AAPL", now) * D("1.1"))
    resting = tick_up(market, "AAPL", call.ask * 2)  # far above the market: it rests
    first = await broker.submit_order(sell(call.symbol, 1, resting))
    assert first.status.is_open
    with pytest.raises(OrderRejected, match="uncovered_call"):
        await broker.submit_order(sell(call.symbol, 1, resting))
    q = market.stock_quote("AAPL", now)
    with pytest.raises(OrderRejected, match="uncovered_call"):
        await broker.submit_order(sell("AAPL", 50, q.bid))
    await broker.cancel_order(first.id)
    assert (await broker.submit_order(sell("AAPL", 50, q.bid))).status is OrderStatus.FILLED


# -- options levels and spreads ---------------------------------------------------------


async def test_a_spread_fills_as_one_unit_at_its_natural_net_price(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker(options_level=3)
    await seed(broker, store, clock, cash=D(50_000))
    now = clock.now()
    s = spot(market, "SPY", now)
    long_put = pick(market, now, "SPY", OptionRight.PUT, s * D("0.98"))
    expiry = long_put.contract.expiry
    short_put = pick(market, now, "SPY", OptionRight.PUT, s * D("0.94"), expiry=expiry)
    natural = long_put.ask - short_put.bid
    legs = (
        OrderLeg(long_put.symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),
        OrderLeg(short_put.symbol, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),
    )
    resting = await broker.submit_order(
        OrderRequest(cid(), D(1), limit_price=natural - D("0.50"), legs=legs)
    )
    assert resting.status is OrderStatus.NEW and resting.filled_qty == 0
    await broker.cancel_order(resting.id)

    order = await broker.submit_order(
        OrderRequest(cid(), D(1), limit_price=natural + D("0.01"), legs=legs)
    )
    assert order.status is OrderStatus.FILLED
    assert order.filled_avg_price == natural
    positions = {p.symbol: p.qty for p in await broker.get_positions()}
    assert positions == {long_put.symbol: D(1), short_put.symbol: D(-1)}
    account = await broker.get_account()
    assert account.cash == D(50_000) - natural * 100
    fills = await broker.get_activities(now, [ActivityType.FILL])
    assert {(a.symbol, a.qty, a.price) for a in fills} == {
        (long_put.symbol, D(1), long_put.ask),
        (short_put.symbol, D(-1), short_put.bid),
    }
    assert {a.order_id for a in fills} == {order.id}


async def test_a_credit_spread_needs_only_its_max_loss(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker(options_level=3)
    await seed(broker, store, clock, cash=D(2_000))
    now = clock.now()
    s = spot(market, "SPY", now)
    short_put = pick(market, now, "SPY", OptionRight.PUT, s * D("0.97"))
    expiry = short_put.contract.expiry
    long_put = pick(
        market, now, "SPY", OptionRight.PUT, short_put.contract.strike - 5, expiry=expiry
    )
    width = short_put.contract.strike - long_put.contract.strike
    assert 0 < width <= 10
    with pytest.raises(OrderRejected, match="buying_power"):
        await broker.submit_order(sell(short_put.symbol, 1, short_put.bid))
    natural = long_put.ask - short_put.bid  # negative: a credit
    order = await broker.submit_order(
        OrderRequest(
            cid(),
            D(1),
            limit_price=natural + D("0.01"),
            legs=(OrderLeg(short_put.symbol, Side.SELL), OrderLeg(long_put.symbol, Side.BUY)),
        )
    )
    assert order.status is OrderStatus.FILLED and order.filled_avg_price == natural < 0
    account = await broker.get_account()
    assert account.cash == D(2_000) - natural * 100


@pytest.mark.parametrize("level", [0, 1, 2])
async def test_spreads_need_options_level_3(
    level: int,
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker(options_level=level)
    await seed(broker, store, clock, shares={"AAPL": D(100)})
    now = clock.now()
    s = spot(market, "SPY", now)
    long_put = pick(market, now, "SPY", OptionRight.PUT, s * D("0.98"))
    short_put = pick(
        market, now, "SPY", OptionRight.PUT, s * D("0.94"), expiry=long_put.contract.expiry
    )
    with pytest.raises(OrderRejected, match=f"options_level.*level 3.*level {level}"):
        await broker.submit_order(
            OrderRequest(
                cid(),
                D(1),
                limit_price=D("1.00"),
                legs=(OrderLeg(long_put.symbol, Side.BUY), OrderLeg(short_put.symbol, Side.SELL)),
            )
        )
    account = await broker.get_account()
    assert account.options_approved_level == level
    buying_a_put = buy(long_put.symbol, 1, long_put.ask)
    call = pick(market, now, "AAPL", OptionRight.CALL, spot(market, "AAPL", now) * D("1.1"))
    covered_call = sell(call.symbol, 1, tick_down(market, "AAPL", call.bid))
    if level >= 2:
        assert (await broker.submit_order(buying_a_put)).status is OrderStatus.FILLED
    else:
        with pytest.raises(OrderRejected, match=r"options_level.*level 2"):
            await broker.submit_order(buying_a_put)
    if level >= 1:
        assert (await broker.submit_order(covered_call)).qty == 1
    else:
        with pytest.raises(OrderRejected, match=r"options_level.*level 1"):
            await broker.submit_order(covered_call)


# -- margin -----------------------------------------------------------------------------


async def test_the_default_scenario_is_a_2x_book_and_buying_power_follows_reg_t(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    scenario = load_scenario()
    broker = make_broker()
    assert await broker.seed(scenario)
    assert not await broker.seed(scenario)  # first start only
    account = await broker.get_account()
    assert account.equity == scenario.account.nav
    assert account.cash < 0
    gross = account.long_market_value / account.equity
    assert D("1.90") < gross <= D("1.95")
    excess = account.equity - account.long_market_value / 2
    assert account.buying_power == 2 * excess
    assert account.options_buying_power == excess
    assert account.options_approved_level == 3
    assert account.maintenance_margin == account.long_market_value / 4

    q = market.stock_quote("KO", clock.now())
    within = (account.buying_power * D("0.9") / q.ask).to_integral_value(rounding=ROUND_FLOOR)
    assert (await broker.submit_order(buy("KO", within, q.ask))).status is OrderStatus.FILLED
    left = (await broker.get_account()).buying_power
    beyond = (left / q.ask).to_integral_value(rounding=ROUND_CEILING) + 1
    with pytest.raises(OrderRejected, match="buying_power"):
        await broker.submit_order(buy("KO", beyond, q.ask))


async def test_an_exactly_2x_book_cannot_buy_more_but_can_sell(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker()
    price = spot(market, "MSFT", clock.now())
    shares = (D(300_000) / price).to_integral_value(rounding=ROUND_FLOOR)
    await seed(broker, store, clock, cash=D(150_000) - shares * price, shares={"MSFT": shares})
    account = await broker.get_account()
    assert account.equity == D(150_000)
    assert account.buying_power < price
    q = market.stock_quote("MSFT", clock.now())
    with pytest.raises(OrderRejected, match="buying_power"):
        await broker.submit_order(buy("MSFT", 1, q.ask))
    assert (await broker.submit_order(sell("MSFT", 10, q.bid))).status is OrderStatus.FILLED


async def test_open_orders_reserve_buying_power(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker()
    await seed(broker, store, clock, cash=D(10_000))
    q = market.stock_quote("KO", clock.now())
    limit = (q.bid * D("0.9")).quantize(D("0.01"))
    qty = (D(15_000) / limit).to_integral_value(rounding=ROUND_FLOOR)
    await broker.submit_order(buy("KO", qty, limit))  # rests, reserving ~$7,500 of excess
    account = await broker.get_account()
    assert account.buying_power < D(5_100)
    with pytest.raises(OrderRejected, match="reserved by open orders"):
        await broker.submit_order(buy("KO", qty, limit))


# -- expiry and assignment --------------------------------------------------------------


@pytest.mark.parametrize(
    ("right", "qty", "moneyness", "kind", "shares_per_contract"),
    [
        (OptionRight.PUT, 1, D("1.08"), ActivityType.OPEXC, -100),  # long put → short shares
        (OptionRight.PUT, -1, D("1.08"), ActivityType.OPASN, 100),  # short put → long shares
        (OptionRight.CALL, 1, D("0.92"), ActivityType.OPEXC, 100),  # long call → long shares
        (OptionRight.CALL, -1, D("0.92"), ActivityType.OPASN, -100),  # covered call called away
        (OptionRight.PUT, 1, D("0.92"), ActivityType.OPEXP, 0),  # OTM: expires worthless
        (OptionRight.PUT, -2, D("0.92"), ActivityType.OPEXP, 0),
    ],
)
async def test_options_settle_at_the_close_of_expiry_day(
    right: OptionRight,
    qty: int,
    moneyness: Decimal,
    kind: ActivityType,
    shares_per_contract: int,
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker(early_assignment_probability=0.0)
    now = clock.now()
    snap = pick(market, now, "SPY", right, spot(market, "SPY", now) * moneyness, expiry=EXPIRY)
    contract = snap.contract
    covered = {"SPY": D(100)} if right is OptionRight.CALL and qty < 0 else {}
    cash = D(100_000)
    await seed(
        broker, store, clock, cash=cash, shares=covered, options={snap.symbol: (D(qty), D("2.00"))}
    )

    close = nyse_calendar().session_close(EXPIRY)
    await clock.advance_to(close - timedelta(minutes=1))
    assert snap.symbol in {p.symbol for p in await broker.get_positions()}
    await clock.advance_to(close + timedelta(minutes=5))

    settle_px = market.close_price("SPY", EXPIRY)
    intrinsic = (settle_px - contract.strike) * (1 if right is OptionRight.CALL else -1)
    assert (intrinsic >= D("0.01")) == (kind is not ActivityType.OPEXP), "precondition"

    positions = {p.symbol: p for p in await broker.get_positions()}
    assert snap.symbol not in positions
    shares = shares_per_contract * abs(qty)
    expected_stock = covered.get("SPY", D(0)) + shares
    assert (positions["SPY"].qty if "SPY" in positions else D(0)) == expected_stock
    activities = await broker.get_activities(now)
    settled = [a for a in activities if a.activity_type is kind]
    option_leg = [a for a in settled if a.symbol == snap.symbol]
    assert len(option_leg) == 1 and option_leg[0].qty == -qty
    assert option_leg[0].occurred_at == close
    account = await broker.get_account()
    if kind is ActivityType.OPEXP:
        assert len(settled) == 1
        assert account.cash == cash
    else:
        stock_leg = [a for a in settled if a.symbol == "SPY"]
        assert len(stock_leg) == 1
        assert stock_leg[0].qty == shares and stock_leg[0].price == contract.strike
        assert stock_leg[0].net_amount == -shares * contract.strike
        assert account.cash == cash - shares * contract.strike
        if expected_stock:
            assert positions["SPY"].avg_entry_price == contract.strike


async def test_deep_itm_short_options_are_assigned_early_with_the_configured_probability(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    now = clock.now()
    aapl = spot(market, "AAPL", now)
    deep = pick(market, now, "AAPL", OptionRight.PUT, aapl * D("1.4"), days=(30, 70))
    otm = pick(market, now, "AAPL", OptionRight.PUT, aapl * D("0.8"), expiry=deep.contract.expiry)
    broker = make_broker(early_assignment_probability=1.0)
    await seed(
        broker,
        store,
        clock,
        options={deep.symbol: (D(-1), D("50.00")), otm.symbol: (D(-1), D("1.00"))},
    )
    close = nyse_calendar().session_close(DAY)
    await clock.advance_to(close + timedelta(minutes=1))
    positions = {p.symbol: p.qty for p in await broker.get_positions()}
    assert deep.symbol not in positions
    assert positions[otm.symbol] == -1  # out of the money: never assigned early
    assert positions["AAPL"] == 100
    assigned = await broker.get_activities(now, [ActivityType.OPASN])
    assert {(a.symbol, a.qty) for a in assigned} == {(deep.symbol, D(1)), ("AAPL", D(100))}
    assert all(a.occurred_at == close for a in assigned)


async def test_no_early_assignment_at_probability_zero(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    now = clock.now()
    deep = pick(market, now, "AAPL", OptionRight.PUT, spot(market, "AAPL", now) * D("1.4"))
    broker = make_broker(early_assignment_probability=0.0)
    await seed(broker, store, clock, options={deep.symbol: (D(-1), D("50.00"))})
    await clock.advance_to(ny(DAY + timedelta(days=3), 10))
    assert {p.symbol: p.qty for p in await broker.get_positions()} == {deep.symbol: D(-1)}


# -- fees -------------------------------------------------------------------------------


async def test_fees_are_charged_per_contract(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker(fee_per_contract=D("0.65"))
    await seed(broker, store, clock)
    now = clock.now()
    put = pick(
        market,
        now,
        "SPY",
        OptionRight.PUT,
        spot(market, "SPY", now) * D("0.95"),
        ok=lambda s: s.bid > 0 and s.ask_size >= 2,
    )
    q = market.stock_quote("AAPL", now)
    await broker.submit_order(buy(put.symbol, 2, put.ask))
    await broker.submit_order(buy("AAPL", 1, q.ask))
    account = await broker.get_account()
    assert account.cash == D(200_000) - 2 * put.ask * 100 - D("1.30") - q.ask
    fees = await broker.get_activities(now, [ActivityType.FEE])
    assert [(a.symbol, a.net_amount) for a in fees] == [(put.symbol, D("-1.30"))]
    fills = await store.get_fills(ACCOUNT)
    assert [f.fee for f in fills] == [D("1.30"), D(0)]


# -- persistence --------------------------------------------------------------------------


async def test_a_restarted_broker_continues_the_same_book(
    db_url: str, market: SimMarket, clock: ManualClock
) -> None:
    config = SimBrokerConfig(account_id=ACCOUNT)
    engine = create_engine(db_url)
    try:
        first = SimBroker(market, clock, SimBrokerStore(session_factory(engine)), config)
        await first.seed_book(D(100_000), {"AAPL": D(20)})
        q = market.stock_quote("MSFT", clock.now())
        await first.submit_order(buy("MSFT", 3, q.ask))
        resting_request = buy("MSFT", 1, (q.bid * D("0.8")).quantize(D("0.01")))
        resting = await first.submit_order(resting_request)
        account_before = await first.get_account()
        positions_before = await first.get_positions()
    finally:
        await engine.dispose()

    await clock.advance(120)
    engine = create_engine(db_url)
    try:
        second = SimBroker(market, clock, SimBrokerStore(session_factory(engine)), config)
        assert await second.is_seeded()
        assert not await second.seed_book(D(1))  # the stored book wins
        account = await second.get_account()
        assert account.cash == account_before.cash
        book = [(p.symbol, p.qty, p.avg_entry_price) for p in await second.get_positions()]
        assert book == [(p.symbol, p.qty, p.avg_entry_price) for p in positions_before]
        assert [o.id for o in await second.list_open_orders()] == [resting.id]
        with pytest.raises(DuplicateClientOrderId):
            await second.submit_order(resting_request)
        close = nyse_calendar().session_close(DAY)
        await clock.advance_to(close)
        assert (await second.get_order(resting.id)).status is OrderStatus.EXPIRED
        fills = await second.get_activities(ny(DAY, 0), [ActivityType.FILL])
        assert [(a.symbol, a.qty) for a in fills] == [("MSFT", D(3))]
    finally:
        await engine.dispose()


async def test_the_broker_refuses_to_work_on_an_account_that_does_not_exist(
    make_broker: Callable[..., SimBroker],
) -> None:
    broker = make_broker()
    assert not await broker.is_seeded()
    with pytest.raises(SimAccountMissing, match="seed"):
        await broker.get_account()


async def test_sync_is_public_and_idempotent(
    make_broker: Callable[..., SimBroker],
    store: SimBrokerStore,
    clock: ManualClock,
    market: SimMarket,
) -> None:
    broker = make_broker()
    await seed(broker, store, clock)
    q = market.stock_quote("AAPL", clock.now())
    order = await broker.submit_order(buy("AAPL", 1, (q.bid * D("0.8")).quantize(D("0.01"))))
    await clock.advance_to(ny(DAY, 16, 30))
    await broker.sync()
    await broker.sync()
    stored = await store.get_order(ACCOUNT, order.id)
    assert stored is not None and stored.status is OrderStatus.EXPIRED
    state = await store.get_account(ACCOUNT)
    assert state is not None and state.processed_until == clock.now()


# -- scenarios ----------------------------------------------------------------------------


def test_the_shipped_scenario_loads() -> None:
    scenario = load_scenario()
    assert scenario.account.nav == D(150_000)
    assert scenario.account.options_level == 3
    assert scenario.book.gross_exposure == D("1.95")
    assert {"AAPL", "MSFT", "NVDA"} <= set(scenario.book.weights)
    config = scenario.broker_config("acct")
    assert config.account_id == "acct" and config.options_level == 3
    cash, shares = scenario.opening_book({s: D(100) for s in scenario.book.weights})
    invested = sum(shares.values(), D(0)) * 100
    assert cash == D(150_000) - invested
    assert D(150_000) * D("1.94") < invested <= D(150_000) * D("1.95")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[book]\ngross_exposure = 2.5\n[book.weights]\nAAPL = 1\n", "book.gross_exposure.*Reg-T"),
        ("[book.weights]\nAAPL = -1\n", "book.weights.*positive"),
        ("[account]\nnav = 0\n", "account.nav"),
        ("[account]\noptions_level = 4\n", "account.options_level"),
        ("[broker]\nfee_per_contract = -1\n", "broker.fee_per_contract"),
        ("[broker]\nfees = 1\n", "broker.fees: unknown field"),
        ("name = 'x'\n[book]\ngross_exposure = 1\n", "book.weights: .*at least one stock"),
        ("[account\n", "not valid TOML"),
    ],
)
def test_scenario_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message) as err:
        load_scenario(path)
    assert str(path) in str(err.value)


def test_a_missing_scenario_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "nope.toml")


async def test_a_scenario_with_symbols_outside_the_market_is_refused(
    make_broker: Callable[..., SimBroker],
) -> None:
    scenario = parse_scenario({"book": {"weights": {"AAPL": 1, "TSLA": 1}}}, "test.toml")
    with pytest.raises(ScenarioError, match="TSLA"):
        await make_broker().seed(scenario)
