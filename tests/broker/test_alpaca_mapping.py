"""Pure parts of the Alpaca adapter: error classification, request and response mapping, retry.

Response samples are shaped after Alpaca's documented bodies (strings for
money in the trading API, numbers in the data API) and parsed with alpaca-py's
own models, as the adapter receives them.
"""

from __future__ import annotations

import asyncio
import time as walltime
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from email.utils import format_datetime
from http.client import RemoteDisconnected
from pathlib import Path
from typing import Any

import pytest
import requests
import structlog
import urllib3
from alpaca.data.models.snapshots import OptionsSnapshot, Snapshot
from alpaca.trading.models import OptionContract as AlpacaContract
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import Position as AlpacaPosition
from alpaca.trading.models import TradeAccount

from alchemiser.broker.alpaca import (
    AlpacaBroker,
    AlpacaConfigError,
    BrokerAuthError,
    BrokerRequestError,
    HttpFailure,
    RateLimited,
    TemporaryFailure,
    account_from_alpaca,
    activity_from_json,
    classify_http_failure,
    classify_transport_error,
    contract_from_alpaca,
    http_failure,
    option_snapshot_from_alpaca,
    order_from_alpaca,
    order_request_problems,
    order_status_from_alpaca,
    position_from_alpaca,
    round_limit_price,
    stock_quote_from_alpaca,
    to_alpaca_order_request,
)
from alchemiser.broker.base import (
    BrokerUnavailable,
    DuplicateClientOrderId,
    NotFound,
    OrderRejected,
)
from alchemiser.broker.retry import RetryPolicy, SlidingWindowLimiter, retry_after_seconds
from alchemiser.clock import NEW_YORK
from alchemiser.domain.options import OptionRight
from alchemiser.domain.trading import (
    ActivityType,
    AssetClass,
    OrderClass,
    OrderLeg,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionIntent,
    Side,
)
from alchemiser.settings import load_settings

SPY_PUT = "SPY260220P00580000"
SPY_PUT_LOW = "SPY260220P00570000"
AAPL_CALL = "AAPL260220C00250000"


# -- error classification -----------------------------------------------------------------------


def failure(status: int, message: str = "x", code: int | None = None, **kw: Any) -> HttpFailure:
    return HttpFailure(status, code, message, kw.get("retry_after"))


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, "insufficient buying power"),
        (403, "options trading is not approved"),
        (422, "invalid limit_price"),
    ],
)
def test_403_and_422_on_an_order_are_final_rejections(status: int, message: str) -> None:
    error = classify_http_failure(
        failure(status, message), action="submit", client_order_id="cid-1"
    )
    assert type(error) is OrderRejected
    assert error.client_order_id == "cid-1" and message in error.reason
    assert f"HTTP {status}" in error.reason
    assert not isinstance(error, BrokerUnavailable)


def test_a_duplicate_client_order_id_is_its_own_rejection() -> None:
    for f in (
        failure(422, "client_order_id must be unique", 40010001),
        failure(422, "Client_Order_ID must be unique"),
    ):
        error = classify_http_failure(f, action="submit", client_order_id="cid-2")
        assert isinstance(error, DuplicateClientOrderId) and error.client_order_id == "cid-2"


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 408])
@pytest.mark.parametrize("action", ["read", "submit", "cancel"])
def test_429_and_5xx_are_temporary(status: int, action: Any) -> None:
    error = classify_http_failure(failure(status, retry_after=2.5), action=action)
    assert isinstance(error, TemporaryFailure) and isinstance(error, BrokerUnavailable)
    assert error.retry_after == 2.5
    # A 429 was refused before anything happened; a 5xx may follow a processed request.
    assert error.maybe_processed is (status != 429)
    assert isinstance(error, RateLimited) is (status == 429)


def test_other_statuses() -> None:
    assert isinstance(classify_http_failure(failure(404)), NotFound)
    assert isinstance(classify_http_failure(failure(404), action="submit"), NotFound)
    assert isinstance(classify_http_failure(failure(401)), BrokerAuthError)
    assert isinstance(classify_http_failure(failure(403, "forbidden.")), BrokerAuthError)
    assert isinstance(classify_http_failure(failure(401), action="submit"), BrokerAuthError)
    assert isinstance(classify_http_failure(failure(400)), BrokerRequestError)
    assert isinstance(classify_http_failure(failure(422)), BrokerRequestError)
    assert type(classify_http_failure(failure(422), action="cancel")) is OrderRejected
    assert type(classify_http_failure(failure(400), action="submit")) is OrderRejected


def _connection_error(cause: BaseException) -> requests.ConnectionError:
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/v2/orders", cause))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "maybe_processed"),
    [
        (requests.exceptions.ConnectTimeout("connect timed out"), False),
        (_connection_error(urllib3.exceptions.NewConnectionError(None, "refused")), False),  # type: ignore[arg-type]
        (requests.exceptions.ReadTimeout("read timed out"), True),
        (
            requests.ConnectionError(
                urllib3.exceptions.ProtocolError("aborted", RemoteDisconnected())
            ),
            True,
        ),
        (requests.exceptions.ChunkedEncodingError("truncated"), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
    ],
)
def test_timeouts_and_connection_errors_are_temporary(
    exc: BaseException, maybe_processed: bool
) -> None:
    error = classify_transport_error(exc, "detail")
    assert isinstance(error, BrokerUnavailable)
    assert error.maybe_processed is maybe_processed
    assert "detail" in str(error)


def test_http_failure_reads_alpacas_error_body_and_headers() -> None:
    now = 1_767_700_000.0
    f = http_failure(
        429,
        '{"code": 42910000, "message": "rate limit exceeded"}',
        {"x-ratelimit-reset": str(int(now) + 3)},
        now,
    )
    assert (f.status, f.code, f.message, f.retry_after) == (
        429,
        42910000,
        "rate limit exceeded",
        3.0,
    )
    plain = http_failure(502, "<html>Bad Gateway</html>", {}, now)
    assert plain.code is None and "Bad Gateway" in plain.message and plain.retry_after is None
    assert "HTTP 502" in plain.describe()


def test_retry_after_headers() -> None:
    now = 1_767_700_000.0
    assert retry_after_seconds({"Retry-After": "7"}, now) == 7
    http_date = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert retry_after_seconds({"Retry-After": http_date}, now) == pytest.approx(30, abs=1)
    assert retry_after_seconds({"X-RateLimit-Reset": str(int(now) + 12)}, now) == 12
    both = {"Retry-After": "5", "X-RateLimit-Reset": str(int(now) + 9)}
    assert retry_after_seconds(both, now) == 9
    assert retry_after_seconds({"X-RateLimit-Reset": str(int(now) - 5)}, now) == 0
    assert retry_after_seconds({"Retry-After": "soon"}, now) is None
    assert retry_after_seconds({}, now) is None


# -- retry policy and rate limiter --------------------------------------------------------------


def test_backoff_has_full_jitter_a_cap_and_honours_the_server() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, max_rate_limit_wait=30.0)
    for attempt in range(1, 12):
        for _ in range(50):
            wait = policy.backoff(attempt)
            assert 0 <= wait <= min(4.0, 0.5 * 2 ** (attempt - 1))
    assert all(10.0 <= policy.backoff(1, retry_after=10.0) <= 10.5 for _ in range(50))
    assert all(30.0 <= policy.backoff(1, retry_after=500.0) <= 30.5 for _ in range(50))
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


async def test_retrying_stops_after_the_attempts_and_reraises() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
    calls = 0
    with pytest.raises(TemporaryFailure):
        async for attempt in policy.retrying(BrokerUnavailable):
            with attempt:
                calls += 1
                raise TemporaryFailure("boom")
    assert calls == 3
    calls = 0
    with pytest.raises(OrderRejected):
        async for attempt in policy.retrying(BrokerUnavailable):
            with attempt:
                calls += 1
                raise OrderRejected("final")
    assert calls == 1


async def test_the_limiter_never_grants_more_than_its_rate_in_a_window() -> None:
    limiter = SlidingWindowLimiter(5, 0.25)
    grants: list[float] = []

    async def take() -> None:
        await limiter.acquire()
        grants.append(walltime.monotonic())

    started = walltime.monotonic()
    await asyncio.gather(*(take() for _ in range(12)))
    assert walltime.monotonic() - started >= 0.5  # 5 + 5 + 2
    grants.sort()
    for i, t in enumerate(grants):
        assert sum(1 for u in grants[i:] if u < t + 0.25 - 0.01) <= 5
    limiter.pause(0.2)
    t0 = walltime.monotonic()
    await limiter.acquire()
    assert walltime.monotonic() - t0 >= 0.19


# -- our requests → alpaca-py requests ---------------------------------------------------------


def test_a_limit_option_order_maps_field_for_field() -> None:
    request = OrderRequest(
        client_order_id="hedge-2026-01-06-spy-1",
        qty=Decimal(3),
        limit_price=Decimal("4.35"),
        symbol=SPY_PUT,
        side=Side.BUY,
        position_intent=PositionIntent.BUY_TO_OPEN,
    )
    assert to_alpaca_order_request(request).to_request_fields() == {
        "symbol": SPY_PUT,
        "qty": 3.0,
        "side": "buy",
        "type": "limit",
        "time_in_force": "day",
        "extended_hours": False,
        "client_order_id": "hedge-2026-01-06-spy-1",
        "position_intent": "buy_to_open",
        "limit_price": 4.35,
    }


def test_a_market_stock_order_maps() -> None:
    request = OrderRequest(
        client_order_id="c", qty=Decimal(10), type=OrderType.MARKET, symbol="AAPL", side=Side.SELL
    )
    fields = to_alpaca_order_request(request).to_request_fields()
    assert fields == {
        "symbol": "AAPL",
        "qty": 10.0,
        "side": "sell",
        "type": "market",
        "time_in_force": "day",
        "extended_hours": False,
        "client_order_id": "c",
    }


def test_a_spread_maps_to_an_mleg_order() -> None:
    request = OrderRequest(
        client_order_id="spread-1",
        qty=Decimal(2),
        limit_price=Decimal("-0.45"),
        legs=(
            OrderLeg(SPY_PUT, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),
            OrderLeg(SPY_PUT_LOW, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),
        ),
    )
    fields = to_alpaca_order_request(request).to_request_fields()
    assert fields["order_class"] == "mleg" and fields["limit_price"] == -0.45
    assert "symbol" not in fields and "side" not in fields
    assert fields["legs"] == [
        {"symbol": SPY_PUT, "ratio_qty": 1.0, "side": "buy", "position_intent": "buy_to_open"},
        {
            "symbol": SPY_PUT_LOW,
            "ratio_qty": 1.0,
            "side": "sell",
            "position_intent": "sell_to_open",
        },
    ]


def order(**kw: Any) -> OrderRequest:
    base: dict[str, Any] = {
        "client_order_id": "c",
        "qty": Decimal(1),
        "limit_price": Decimal("1.00"),
        "symbol": SPY_PUT,
        "side": Side.BUY,
    }
    base.update(kw)
    return OrderRequest(**base)


@pytest.mark.parametrize(
    ("request_", "rule"),
    [
        (order(qty=Decimal("1.5")), "fractional_contracts"),
        (order(qty=Decimal(0)), "qty"),
        (order(limit_price=Decimal("1.005")), "price_increment"),
        (order(symbol=AAPL_CALL, limit_price=Decimal("3.02")), "price_increment"),
        (order(symbol="AAPL", limit_price=Decimal("150.005")), "price_increment"),
        (order(client_order_id="x" * 129), "client_order_id"),
        (order(type=OrderType.MARKET), "limit_price"),
        (order(limit_price=None), "limit_price"),
        (
            order(
                symbol=None,
                side=None,
                limit_price=Decimal("0.005"),
                legs=(OrderLeg(SPY_PUT, Side.BUY), OrderLeg(SPY_PUT_LOW, Side.SELL)),
            ),
            "price_increment",
        ),
        (order(symbol=None, side=None, legs=(OrderLeg(SPY_PUT, Side.BUY),)), "mleg"),
        (
            order(
                symbol=None,
                side=None,
                legs=(OrderLeg(SPY_PUT, Side.BUY), OrderLeg("AAPL", Side.SELL)),
            ),
            "mleg",
        ),
    ],
)
def test_orders_alpaca_would_refuse_are_refused_before_sending(
    request_: OrderRequest, rule: str
) -> None:
    problem = order_request_problems(request_)
    assert problem is not None and problem.startswith(rule), problem


def test_legal_orders_pass_the_local_checks() -> None:
    assert order_request_problems(order()) is None
    assert order_request_problems(order(symbol=AAPL_CALL, limit_price=Decimal("3.05"))) is None
    assert order_request_problems(order(symbol="AAPL", limit_price=Decimal("0.1234"))) is None
    assert order_request_problems(order(type=OrderType.MARKET, limit_price=None)) is None
    spread = order(
        symbol=None,
        side=None,
        limit_price=Decimal("-0.37"),
        legs=(OrderLeg(SPY_PUT, Side.BUY), OrderLeg(SPY_PUT_LOW, Side.SELL)),
    )
    assert order_request_problems(spread) is None


@pytest.mark.parametrize(
    ("price", "symbol", "side", "penny", "expected"),
    [
        ("1.237", SPY_PUT, Side.BUY, (), "1.23"),
        ("1.231", SPY_PUT, Side.SELL, (), "1.24"),
        ("7.777", SPY_PUT, Side.BUY, (), "7.77"),  # SPY: a penny at every price
        ("2.97", AAPL_CALL, Side.BUY, (), "2.95"),  # standard: $0.05 below $3
        ("3.17", AAPL_CALL, Side.BUY, (), "3.10"),  # standard: $0.10 from $3
        ("2.97", AAPL_CALL, Side.BUY, ("AAPL",), "2.97"),  # penny program: $0.01 below $3
        ("3.17", AAPL_CALL, Side.SELL, ("AAPL",), "3.20"),  # penny program: $0.05 from $3
        ("2.96", AAPL_CALL, Side.SELL, (), "3.00"),
        ("150.005", "AAPL", Side.BUY, (), "150.00"),
        ("0.12345", "AAPL", Side.SELL, (), "0.1235"),
    ],
)
def test_limit_prices_round_to_the_legal_increment_in_our_favour(
    price: str, symbol: str, side: Side, penny: tuple[str, ...], expected: str
) -> None:
    rounded = round_limit_price(Decimal(price), symbol=symbol, side=side, penny_pilot=penny)
    assert rounded == Decimal(expected) and str(rounded) == expected
    assert order_request_problems(order(symbol=symbol, limit_price=rounded)) is None


def test_multi_leg_net_prices_round_down_to_a_cent() -> None:
    assert round_limit_price(Decimal("0.129"), symbol=None, side=None, multi_leg=True) == Decimal(
        "0.12"
    )
    assert round_limit_price(Decimal("-0.505"), symbol=None, side=None, multi_leg=True) == Decimal(
        "-0.51"
    )


# -- alpaca-py models → ours ----------------------------------------------------------------------


ORDER_JSON: dict[str, Any] = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "hedge-1",
    "created_at": "2026-01-06T15:30:01.123456Z",
    "updated_at": "2026-01-06T15:31:00.5Z",
    "submitted_at": "2026-01-06T15:30:01.2Z",
    "filled_at": None,
    "expired_at": None,
    "canceled_at": None,
    "failed_at": None,
    "replaced_at": None,
    "replaced_by": None,
    "replaces": None,
    "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
    "symbol": SPY_PUT,
    "asset_class": "us_option",
    "notional": None,
    "qty": "3",
    "filled_qty": "1",
    "filled_avg_price": "4.3",
    "order_class": "simple",
    "order_type": "limit",
    "type": "limit",
    "side": "buy",
    "time_in_force": "day",
    "limit_price": "4.35",
    "stop_price": None,
    "status": "partially_filled",
    "extended_hours": False,
    "legs": None,
    "trail_percent": None,
    "trail_price": None,
    "hwm": None,
    "position_intent": "buy_to_open",
}


def test_an_order_maps() -> None:
    mapped = order_from_alpaca(AlpacaOrder(**ORDER_JSON))
    assert mapped.id == ORDER_JSON["id"] and mapped.client_order_id == "hedge-1"
    assert mapped.status is OrderStatus.PARTIALLY_FILLED
    assert mapped.order_class is OrderClass.SIMPLE and mapped.type is OrderType.LIMIT
    assert (mapped.qty, mapped.filled_qty) == (Decimal(3), Decimal(1))
    assert mapped.filled_avg_price == Decimal("4.3") and mapped.limit_price == Decimal("4.35")
    assert mapped.symbol == SPY_PUT and mapped.side is Side.BUY and mapped.legs == ()
    assert mapped.submitted_at == datetime(2026, 1, 6, 15, 30, 1, 200000, tzinfo=UTC)
    assert mapped.submitted_at.tzinfo is not None and mapped.remaining_qty == 2


def test_a_multi_leg_order_maps_its_legs() -> None:
    leg = dict(ORDER_JSON, order_class="mleg", type="", order_type="", limit_price=None)
    body = dict(
        ORDER_JSON,
        id="11111111-8549-4bfd-b9c3-01e75843f47d",
        symbol="",
        side="",
        asset_class="",
        asset_id="",
        order_class="mleg",
        status="new",
        filled_qty="0",
        filled_avg_price=None,
        limit_price="-0.45",
        legs=[
            dict(leg, symbol=SPY_PUT, side="buy", ratio_qty="1", position_intent="buy_to_open"),
            dict(
                leg, symbol=SPY_PUT_LOW, side="sell", ratio_qty="2", position_intent="sell_to_open"
            ),
        ],
    )
    mapped = order_from_alpaca(AlpacaOrder(**body))
    assert mapped.order_class is OrderClass.MLEG and mapped.symbol is None and mapped.side is None
    assert mapped.limit_price == Decimal("-0.45") and mapped.status is OrderStatus.NEW
    assert mapped.legs == (
        OrderLeg(SPY_PUT, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),
        OrderLeg(SPY_PUT_LOW, Side.SELL, 2, PositionIntent.SELL_TO_OPEN),
    )


@pytest.mark.parametrize(
    ("alpaca", "filled", "ours"),
    [
        ("new", "0", OrderStatus.NEW),
        ("accepted", "0", OrderStatus.ACCEPTED),
        ("pending_new", "0", OrderStatus.NEW),
        ("partially_filled", "1", OrderStatus.PARTIALLY_FILLED),
        ("pending_cancel", "1", OrderStatus.PARTIALLY_FILLED),
        ("done_for_day", "0", OrderStatus.NEW),
        ("filled", "3", OrderStatus.FILLED),
        ("canceled", "0", OrderStatus.CANCELED),
        ("replaced", "0", OrderStatus.CANCELED),
        ("expired", "1", OrderStatus.EXPIRED),
        ("rejected", "0", OrderStatus.REJECTED),
    ],
)
def test_order_statuses(alpaca: str, filled: str, ours: OrderStatus) -> None:
    assert order_status_from_alpaca(alpaca, Decimal(filled)) is ours
    with pytest.raises(ValueError):
        order_status_from_alpaca("teleported")


POSITION_BASE: dict[str, Any] = {
    "asset_id": "904837e3-3b76-47ec-b432-046db621571b",
    "exchange": "NASDAQ",
    "asset_marginable": True,
    "unrealized_pl": "0",
    "unrealized_plpc": "0",
    "lastday_price": "100",
    "change_today": "0",
}


def test_positions_map_signed() -> None:
    stock = AlpacaPosition(
        **POSITION_BASE,
        symbol="AAPL",
        asset_class="us_equity",
        avg_entry_price="180.5",
        qty="100",
        side="long",
        market_value="19000",
        cost_basis="18050",
        current_price="190",
    )
    mapped = position_from_alpaca(stock)
    assert (mapped.qty, mapped.market_value, mapped.cost_basis) == (100, 19000, Decimal("18050"))
    assert mapped.asset_class is AssetClass.EQUITY and mapped.multiplier == 1

    short_put = AlpacaPosition(
        **dict(POSITION_BASE, exchange=""),
        symbol=SPY_PUT,
        asset_class="us_option",
        avg_entry_price="4",
        qty="-2",
        side="short",
        market_value="-700",
        cost_basis="-800",
        current_price="3.5",
    )
    mapped = position_from_alpaca(short_put)
    assert mapped.is_option and mapped.multiplier == 100
    assert (mapped.qty, mapped.market_value, mapped.cost_basis) == (-2, -700, -800)
    assert mapped.market_value == mapped.qty * mapped.current_price * mapped.multiplier


def test_the_account_maps_with_the_effective_options_level() -> None:
    account = TradeAccount(
        id="8f8f6a5f-3b76-47ec-b432-046db621571b",
        account_number="PA3KTSZZ9DVH",
        status="ACTIVE",
        currency="USD",
        buying_power="12000.5",
        cash="5000",
        equity="150000",
        long_market_value="300000",
        short_market_value="-1000",
        maintenance_margin="75000",
        options_buying_power="6000.25",
        options_approved_level=3,
        options_trading_level=2,
        trading_blocked=False,
        account_blocked=False,
        trade_suspended_by_user=True,
    )
    mapped = account_from_alpaca(account)
    assert mapped.account_id == "PA3KTSZZ9DVH"
    assert mapped.options_approved_level == 2  # configured below what was approved
    assert (mapped.buying_power, mapped.options_buying_power) == (
        Decimal("12000.5"),
        Decimal("6000.25"),
    )
    assert mapped.short_market_value == -1000 and mapped.long_market_value == 300000
    assert mapped.trading_blocked


def test_an_option_contract_maps() -> None:
    contract = AlpacaContract(
        id="6e58f870-fe73-4583-81e4-b9a37892c36f",
        symbol=SPY_PUT,
        name="SPY Feb 20 2026 580 Put",
        status="active",
        tradable=True,
        expiration_date="2026-02-20",
        root_symbol="SPY",
        underlying_symbol="SPY",
        underlying_asset_id="b28f4066-5c6d-479b-a2af-85dc1a8f16fb",
        type="put",
        style="american",
        strike_price="580",
        size="100",
        open_interest="2311",
        open_interest_date="2026-01-05",
        close_price="6.12",
        close_price_date="2026-01-05",
    )
    info = contract_from_alpaca(contract)
    assert info.symbol == SPY_PUT and info.underlying == "SPY" and info.expiry == date(2026, 2, 20)
    assert info.contract.right is OptionRight.PUT and info.contract.strike == Decimal(580)
    assert (info.multiplier, info.open_interest, info.close_price) == (100, 2311, Decimal("6.12"))


def test_an_option_snapshot_maps_exactly() -> None:
    raw = {
        "latestQuote": {
            "ap": 4.4,
            "as": 12,
            "ax": "C",
            "bp": 4.3,
            "bs": 30,
            "bx": "N",
            "c": "A",
            "t": "2026-01-06T15:29:59.123456789Z",
        },
        "latestTrade": {"c": "I", "p": 4.35, "s": 2, "t": "2026-01-06T15:20:00Z", "x": "C"},
        "impliedVolatility": 0.2134,
        "greeks": {"delta": -0.31, "gamma": 0.012, "rho": -0.2, "theta": -0.09, "vega": 0.61},
    }
    snap = option_snapshot_from_alpaca(OptionsSnapshot(SPY_PUT, raw))
    assert snap is not None
    assert (snap.bid, snap.ask, snap.last) == (Decimal("4.3"), Decimal("4.4"), Decimal("4.35"))
    assert (snap.bid_size, snap.ask_size) == (30, 12)
    assert snap.implied_volatility == pytest.approx(0.2134)
    assert snap.greeks is not None and snap.greeks.delta == pytest.approx(-0.31)
    assert snap.timestamp.tzinfo is not None
    assert option_snapshot_from_alpaca(OptionsSnapshot(SPY_PUT, {"impliedVolatility": 0.2})) is None


def test_a_stock_snapshot_maps() -> None:
    raw = {
        "latestTrade": {
            "t": "2026-01-06T15:29:59Z",
            "x": "V",
            "p": 190.12,
            "s": 100,
            "c": ["@"],
            "i": 7,
            "z": "C",
        },
        "latestQuote": {
            "t": "2026-01-06T15:29:59.5Z",
            "ax": "V",
            "ap": 190.15,
            "as": 2,
            "bx": "V",
            "bp": 190.1,
            "bs": 3,
            "c": ["R"],
            "z": "C",
        },
    }
    quote = stock_quote_from_alpaca(Snapshot("AAPL", raw))
    assert quote is not None
    assert (quote.bid, quote.ask, quote.last) == (
        Decimal("190.1"),
        Decimal("190.15"),
        Decimal("190.12"),
    )


def test_activities_map_from_raw_json() -> None:
    fill = activity_from_json(
        {
            "id": "20260106153000123::8efc7b9a-8b2b-4000-9955-d36e7db0df74",
            "account_id": "8f8f6a5f-3b76-47ec-b432-046db621571b",
            "activity_type": "FILL",
            "transaction_time": "2026-01-06T15:30:00.123Z",
            "type": "fill",
            "price": "4.35",
            "qty": "2",
            "side": "sell_short",
            "symbol": SPY_PUT,
            "leaves_qty": "0",
            "order_id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
            "cum_qty": "2",
            "order_status": "filled",
        }
    )
    assert fill is not None and fill.activity_type is ActivityType.FILL
    assert (fill.qty, fill.side, fill.price) == (Decimal(-2), Side.SELL, Decimal("4.35"))
    assert fill.net_amount == Decimal("870.00")  # 2 contracts × 4.35 × 100 received
    assert fill.order_id == "61e69015-8549-4bfd-b9c3-01e75843f47d"

    expiry = activity_from_json(
        {
            "id": "20260220000000000::1a2b",
            "activity_type": "OPEXP",
            "date": "2026-02-20",
            "net_amount": "0",
            "description": "Option Expiry",
            "symbol": SPY_PUT,
            "qty": "-2",
            "status": "executed",
        }
    )
    assert expiry is not None and expiry.activity_type is ActivityType.OPEXP
    assert expiry.qty == -2 and expiry.net_amount == 0 and expiry.price is None
    assert expiry.occurred_at == datetime.combine(date(2026, 2, 20), time(16), NEW_YORK)

    assigned = activity_from_json(
        {
            "id": "20260220210000000::3c4d",
            "activity_type": "OPASN",
            "created_at": "2026-02-20T21:00:00Z",
            "date": "2026-02-20",
            "net_amount": "-58000",
            "symbol": "SPY",
            "qty": "100",
            "price": "580",
        }
    )
    assert assigned is not None and assigned.occurred_at == datetime(2026, 2, 20, 21, tzinfo=UTC)
    assert (assigned.qty, assigned.price, assigned.net_amount) == (100, 580, -58000)
    assert activity_from_json({"id": "x", "activity_type": "DIV", "date": "2026-01-02"}) is None


# -- construction, settings, hardening ------------------------------------------------------------


def test_alpaca_py_clients_get_our_session_and_no_retry_of_their_own() -> None:
    broker = AlpacaBroker(
        key="PKTEST",
        secret="SECRETTEST",
        trading_url="http://127.0.0.1:9/v2/",
        connect_timeout=1.5,
        read_timeout=7,
    )
    try:
        for client in (broker._trading, broker._options, broker._stocks):
            assert client._retry == 0 and client._retry_codes == []
            assert client._session.timeout == (1.5, 7.0)
            assert client._session.get_adapter("http://x").max_retries.total == 0
        assert broker._trading._base_url == "http://127.0.0.1:9"
    finally:
        asyncio.run(broker.aclose())
    with pytest.raises(AlpacaConfigError):
        AlpacaBroker(key="k", secret="s", trading_url="ftp://127.0.0.1")
    with pytest.raises(AlpacaConfigError):
        AlpacaBroker(key="", secret="s")


def test_secrets_are_redacted_from_messages() -> None:
    broker = AlpacaBroker(
        key="PKREDACTME",
        secret="s3cr3t-value",
        trading_url="http://user:pw1234@127.0.0.1:9/tok-abcdef",
    )
    try:
        text = "PKREDACTME s3cr3t-value http://user:pw1234@127.0.0.1:9/tok-abcdef/v2/orders"
        cleaned = broker._redact(text)
        for secret in ("PKREDACTME", "s3cr3t-value", "pw1234", "tok-abcdef"):
            assert secret not in cleaned
    finally:
        asyncio.run(broker.aclose())


def _settings(tmp_path: Path, env: dict[str, str]) -> Any:
    config = tmp_path / "alchemiser.toml"
    config.write_text('mode = "live"\n[broker]\nkind = "alpaca"\n')
    return load_settings(config, env=env).settings


def test_live_mode_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    with pytest.raises(AlpacaConfigError, match="ALPACA__KEY"):
        AlpacaBroker.from_settings(_settings(tmp_path, {}))


def test_live_mode_logs_a_prominent_line_and_trades_live(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, {"ALPACA__KEY": "PKLIVEKEY", "ALPACA__SECRET": "live-secret-xyz"}
    )
    with structlog.testing.capture_logs() as events:
        broker = AlpacaBroker.from_settings(settings)
    try:
        live = [e for e in events if e["event"] == "live_trading_enabled"]
        assert live and live[0]["log_level"] == "warning"
        assert not broker.paper
        assert "paper" not in str(broker._trading._base_url)
        assert all("live-secret-xyz" not in repr(e) and "PKLIVEKEY" not in repr(e) for e in events)
    finally:
        asyncio.run(broker.aclose())


def test_paper_is_the_default_and_the_endpoint_overrides_both_hosts(tmp_path: Path) -> None:
    config = tmp_path / "alchemiser.toml"
    config.write_text('[broker]\nkind = "alpaca"\nrequest_timeout_seconds = 4\n')
    settings = load_settings(
        config,
        env={
            "ALPACA__KEY": "PKPAPER",
            "ALPACA__SECRET": "paper-secret",
            "ALPACA__ENDPOINT": "http://127.0.0.1:5005",
        },
    ).settings
    broker = AlpacaBroker.from_settings(settings)
    try:
        assert broker.paper
        assert broker._trading._base_url == broker._options._base_url == "http://127.0.0.1:5005"
        assert broker._trading._session.timeout == (3.05, 4.0)
    finally:
        asyncio.run(broker.aclose())


def test_a_date_only_activity_is_placed_after_the_close() -> None:
    # Options settle after the close: an activity dated D sorts after D's trading.
    raw = {"id": "1", "activity_type": "OPEXC", "date": "2026-03-20", "qty": "1", "symbol": SPY_PUT}
    mapped = activity_from_json(raw)
    assert mapped is not None
    assert mapped.occurred_at - datetime(2026, 3, 20, tzinfo=UTC) >= timedelta(hours=19)


def test_the_adapter_rounds_with_its_penny_program_list() -> None:
    broker = AlpacaBroker(key="PKTEST", secret="SECRETTEST", penny_pilot=["aapl"])
    try:
        assert broker.legal_limit_price(
            Decimal("2.978"), symbol=AAPL_CALL, side=Side.BUY
        ) == Decimal("2.97")
        msft = "MSFT260220C00450000"
        assert broker.legal_limit_price(Decimal("2.978"), symbol=msft, side=Side.BUY) == Decimal(
            "2.95"
        )
    finally:
        asyncio.run(broker.aclose())
