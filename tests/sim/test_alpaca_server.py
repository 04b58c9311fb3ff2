"""The Alpaca-compatible server over raw HTTP: the checks Alpaca makes, paging, faults, shapes.

Requests go over a real socket on 127.0.0.1 (aiohttp's client); bodies are
parsed with alpaca-py's own models to prove the client accepts them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import aiohttp
import pytest
from alpaca.data.models.snapshots import OptionsSnapshot, Snapshot
from alpaca.trading.models import Clock, OptionContractsResponse, Order, Position, TradeAccount
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.broker.sim import SimBroker, SimBrokerConfig
from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.sim.alpaca_server import AlpacaSimServer, FaultConfig
from alchemiser.sim.market import SimMarket
from alchemiser.store.engine import session_factory
from alchemiser.store.sim_state import SimBrokerStore

KEY = "PKSERVERTESTKEY1"
SECRET = "server-test-secret"
AUTH = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
TRADING_DAY = date(2026, 1, 6)

ServerFactory = Callable[..., Awaitable[AlpacaSimServer]]


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(scope="module")
def alpaca_market() -> SimMarket:
    return SimMarket(seed=7, start=date(2026, 1, 2))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.combine(TRADING_DAY, time(10, 30), NEW_YORK))


@pytest.fixture
async def make_server(
    engine: AsyncEngine, alpaca_market: SimMarket, clock: ManualClock
) -> AsyncIterator[ServerFactory]:
    servers: list[AlpacaSimServer] = []

    async def make(level: int = 3, cash: int = 100_000, **kwargs: Any) -> AlpacaSimServer:
        account = f"srv{len(servers)}"
        sim = SimBroker(
            alpaca_market,
            clock,
            SimBrokerStore(session_factory(engine)),
            SimBrokerConfig(account_id=account, options_level=level),
        )
        await sim.seed_book(Decimal(cash), {"AAPL": Decimal(100)})
        server = AlpacaSimServer(sim, alpaca_market, clock, key=KEY, secret=SECRET, **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    server: AlpacaSimServer,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any, dict[str, str]]:
    async with http.request(
        method, server.url + path, headers=AUTH if headers is None else headers, **kwargs
    ) as response:
        text = await response.text()
        body = await response.json(content_type=None) if text else None
        return response.status, body, dict(response.headers)


async def spy_put(http: aiohttp.ClientSession, server: AlpacaSimServer) -> dict[str, Any]:
    lo = TRADING_DAY + timedelta(days=20)
    status, body, _ = await call(
        http,
        server,
        "GET",
        "/v2/options/contracts",
        params={
            "underlying_symbols": "SPY",
            "type": "put",
            "expiration_date_gte": lo.isoformat(),
            "expiration_date_lte": (lo + timedelta(days=40)).isoformat(),
            "limit": "10000",
        },
    )
    assert status == 200
    contracts = body["option_contracts"]
    return contracts[len(contracts) // 2]  # type: ignore[no-any-return]


def order_body(**fields: Any) -> dict[str, Any]:
    body = {
        "symbol": "AAPL",
        "qty": "1",
        "side": "buy",
        "type": "limit",
        "time_in_force": "day",
        "limit_price": "100.00",
        "client_order_id": f"t-{uuid.uuid4().hex[:12]}",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v2/account", "/v2/stocks/snapshots?symbols=AAPL"])
async def test_missing_headers_are_401_and_wrong_ones_403(
    make_server: ServerFactory, http: aiohttp.ClientSession, path: str
) -> None:
    server = await make_server()
    status, body, _ = await call(http, server, "GET", path, headers={})
    assert status == 401 and body["code"] == 40110000
    status, body, _ = await call(http, server, "GET", path, headers={"APCA-API-KEY-ID": KEY})
    assert status == 401
    wrong = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": "not-it"}
    status, body, _ = await call(http, server, "GET", path, headers=wrong)
    assert status == 403 and body == {"message": "forbidden."}
    assert server.stats.unauthorized == 3


def test_the_server_listens_on_loopback_only(alpaca_market: SimMarket) -> None:
    from alchemiser.sim.alpaca_server import check_loopback

    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_loopback(host)
    for host in ("0.0.0.0", "10.0.0.5", "example.com", ""):
        with pytest.raises(ValueError, match="loopback"):
            check_loopback(host)


# -- order checks ---------------------------------------------------------------------------------


async def test_the_order_checks_alpaca_makes(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server()
    option = (await spy_put(http, server))["symbol"]
    refused = {
        "off-increment stock price": order_body(limit_price="100.005"),
        "off-increment option price": order_body(
            symbol=option, limit_price="1.005", position_intent="buy_to_open"
        ),
        "fractional contracts": order_body(
            symbol=option, qty="1.5", limit_price="1.00", position_intent="buy_to_open"
        ),
        "good-till-canceled": order_body(time_in_force="gtc"),
        "immediate-or-cancel": order_body(time_in_force="ioc"),
        "stop order": order_body(type="stop"),
        "unknown symbol": order_body(symbol="ZZZZQX"),
        "client order id over 128": order_body(client_order_id="x" * 129),
        "limit without price": order_body(limit_price=None),
        "notional": order_body(qty=None, notional="500"),
    }
    for what, body in refused.items():
        status, answer, _ = await call(http, server, "POST", "/v2/orders", json=body)
        assert status == 422, (what, status, answer)
        assert answer["message"], what
        cid = body.get("client_order_id")
        if cid and len(cid) <= 128:
            status, _, _ = await call(
                http,
                server,
                "GET",
                "/v2/orders:by_client_order_id",
                params={"client_order_id": cid},
            )
            assert status == 404, what


async def test_a_duplicate_client_order_id_is_422(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server()
    body = order_body()
    status, first, _ = await call(http, server, "POST", "/v2/orders", json=body)
    assert status == 200
    Order(**first)  # alpaca-py accepts the body
    status, second, _ = await call(http, server, "POST", "/v2/orders", json=body)
    assert status == 422
    assert second == {"code": 40010001, "message": "client_order_id must be unique"}


async def test_account_limits_are_403(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server(level=2)
    put = await spy_put(http, server)
    same_expiry = put["expiration_date"]
    strike = Decimal(put["strike_price"])
    status, body, _ = await call(
        http,
        server,
        "GET",
        "/v2/options/contracts",
        params={
            "underlying_symbols": "SPY",
            "type": "put",
            "expiration_date": same_expiry,
            "strike_price_lte": str(strike - 1),
            "limit": "10000",
        },
    )
    lower = body["option_contracts"][-1]["symbol"]
    spread = {
        "qty": "1",
        "type": "limit",
        "time_in_force": "day",
        "order_class": "mleg",
        "limit_price": "0.50",
        "client_order_id": "spread-level-2",
        "legs": [
            {
                "symbol": put["symbol"],
                "ratio_qty": "1",
                "side": "buy",
                "position_intent": "buy_to_open",
            },
            {"symbol": lower, "ratio_qty": "1", "side": "sell", "position_intent": "sell_to_open"},
        ],
    }
    status, answer, _ = await call(http, server, "POST", "/v2/orders", json=spread)
    assert status == 403 and answer["code"] == 40310000
    assert "level 3" in answer["message"]

    status, answer, _ = await call(
        http, server, "POST", "/v2/orders", json=order_body(qty="100000", limit_price="150.00")
    )
    assert status == 403 and "buying power" in answer["message"]


# -- paging ------------------------------------------------------------------------------------------


async def _all_pages(
    http: aiohttp.ClientSession,
    server: AlpacaSimServer,
    path: str,
    params: dict[str, str],
    key: str,
) -> tuple[list[str], int]:
    symbols: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        query = {**params, **({"page_token": token} if token else {})}
        status, body, _ = await call(http, server, "GET", path, params=query)
        assert status == 200, body
        items = body[key]
        symbols += [c["symbol"] for c in items] if isinstance(items, list) else list(items)
        pages += 1
        token = body["next_page_token"]
        if token is None:
            return symbols, pages


async def test_contracts_and_chain_snapshots_page_with_page_token(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server()
    bounds = {
        "expiration_date_gte": (TRADING_DAY + timedelta(days=20)).isoformat(),
        "expiration_date_lte": (TRADING_DAY + timedelta(days=50)).isoformat(),
    }
    contracts = {**bounds, "underlying_symbols": "SPY"}
    whole, _ = await _all_pages(
        http, server, "/v2/options/contracts", {**contracts, "limit": "10000"}, "option_contracts"
    )
    paged, pages = await _all_pages(
        http, server, "/v2/options/contracts", {**contracts, "limit": "37"}, "option_contracts"
    )
    assert pages > 3 and len(whole) > 37 * 3
    assert paged == sorted(whole) and len(set(paged)) == len(paged)

    chain_path = "/v1beta1/options/snapshots/SPY"
    whole, _ = await _all_pages(http, server, chain_path, {**bounds, "limit": "1000"}, "snapshots")
    paged, pages = await _all_pages(
        http, server, chain_path, {**bounds, "limit": "100"}, "snapshots"
    )
    assert pages > 1 and sorted(paged) == sorted(whole) and len(set(paged)) == len(paged)

    status, _, _ = await call(
        http, server, "GET", chain_path, params={**bounds, "page_token": "!!not-a-token!!"}
    )
    assert status == 400


async def test_contracts_default_to_the_coming_weekend_as_alpaca(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server()
    status, body, _ = await call(
        http,
        server,
        "GET",
        "/v2/options/contracts",
        params={"underlying_symbols": "SPY", "limit": "10000"},
    )
    assert status == 200
    expiries = {date.fromisoformat(c["expiration_date"]) for c in body["option_contracts"]}
    assert expiries and max(expiries) <= TRADING_DAY + timedelta(days=5)  # Tue → Sun
    parsed = TypeAdapter(OptionContractsResponse).validate_python(body)
    assert parsed.option_contracts


async def test_activities_page_by_the_last_id(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server()
    status, body, _ = await call(
        http, server, "GET", "/v2/stocks/snapshots", params={"symbols": "AAPL"}
    )
    ask = Decimal(str(body["AAPL"]["latestQuote"]["ap"]))
    for n in range(3):
        price = (ask * Decimal("1.01")).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
        status, _, _ = await call(
            http, server, "POST", "/v2/orders", json=order_body(limit_price=str(price))
        )
        assert status == 200, n
    params = {"activity_types": "FILL", "direction": "asc", "page_size": "1"}
    ids: list[str] = []
    token: str | None = None
    for _ in range(10):
        query = {**params, **({"page_token": token} if token else {})}
        status, rows, _ = await call(http, server, "GET", "/v2/account/activities", params=query)
        assert status == 200
        if not rows:
            break
        assert rows[0]["activity_type"] == "FILL" and rows[0]["side"] == "buy"
        ids.append(rows[0]["id"])
        token = rows[0]["id"]
    assert len(ids) == 3 == len(set(ids)) and ids == sorted(ids)


# -- shapes alpaca-py accepts -----------------------------------------------------------------------------


async def test_bodies_parse_with_alpaca_py_models(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server()
    _, account, _ = await call(http, server, "GET", "/v2/account")
    parsed = TradeAccount(**account)
    assert parsed.options_approved_level == 3 and Decimal(parsed.equity or "0") > 0
    _, positions, _ = await call(http, server, "GET", "/v2/positions")
    assert [Position(**p).symbol for p in positions] == ["AAPL"]
    _, clock, _ = await call(http, server, "GET", "/v2/clock")
    assert Clock(**clock).is_open
    _, snaps, _ = await call(
        http, server, "GET", "/v2/stocks/snapshots", params={"symbols": "AAPL,ZZZZQX"}
    )
    assert set(snaps) == {"AAPL"}
    assert Snapshot("AAPL", snaps["AAPL"]).latest_quote is not None
    put = await spy_put(http, server)
    _, chain, _ = await call(
        http, server, "GET", "/v1beta1/options/snapshots", params={"symbols": put["symbol"]}
    )
    snap = OptionsSnapshot(put["symbol"], chain["snapshots"][put["symbol"]])
    assert snap.greeks is not None and snap.implied_volatility and snap.latest_quote is not None
    _, quotes, _ = await call(
        http, server, "GET", "/v1beta1/options/quotes/latest", params={"symbols": put["symbol"]}
    )
    assert set(quotes["quotes"]) == {put["symbol"]}

    lo = TRADING_DAY + timedelta(days=20)
    status, body, _ = await call(
        http,
        server,
        "GET",
        "/v2/options/contracts",
        params={
            "underlying_symbols": "SPY",
            "type": "put",
            "expiration_date_gte": lo.isoformat(),
            "expiration_date_lte": (lo + timedelta(days=30)).isoformat(),
            "limit": "10000",
        },
    )
    puts = sorted(
        (c for c in body["option_contracts"] if c["expiration_date"] == put["expiration_date"]),
        key=lambda c: Decimal(c["strike_price"]),
    )
    long_leg, short_leg = puts[len(puts) // 2], puts[len(puts) // 2 - 1]
    spread = {
        "qty": "1",
        "type": "limit",
        "time_in_force": "day",
        "order_class": "mleg",
        "limit_price": "0.01",
        "legs": [
            {"symbol": long_leg["symbol"], "ratio_qty": "1", "position_intent": "buy_to_open"},
            {"symbol": short_leg["symbol"], "ratio_qty": "1", "position_intent": "sell_to_open"},
        ],
    }
    status, order, _ = await call(http, server, "POST", "/v2/orders", json=spread)
    assert status == 200, order
    mleg = Order(**order)
    assert mleg.order_class == "mleg" and mleg.symbol is None and len(mleg.legs or []) == 2
    assert {leg.side for leg in mleg.legs or []} == {"buy", "sell"}
    status, _, _ = await call(http, server, "DELETE", f"/v2/orders/{order['id']}")
    assert status == 204
    _, canceled, _ = await call(http, server, "GET", f"/v2/orders/{order['id']}")
    assert Order(**canceled).status == "canceled"


# -- faults ------------------------------------------------------------------------------------------


async def test_injected_429_carries_rate_limit_headers_and_5xx_is_a_server_error(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server(faults=FaultConfig(rate_limited_p=1.0))
    status, body, headers = await call(http, server, "GET", "/v2/account")
    assert status == 429 and body["code"] == 42910000
    assert headers["X-RateLimit-Remaining"] == "0" and int(headers["X-RateLimit-Reset"]) > 0
    server.faults = FaultConfig(server_error_p=1.0)
    status, _, _ = await call(http, server, "GET", "/v2/account")
    assert 500 <= status <= 504
    server.faults = FaultConfig()
    status, _, headers = await call(http, server, "GET", "/v2/account")
    assert status == 200 and headers["X-RateLimit-Limit"] == "200"


async def test_a_lost_response_still_places_the_order(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server(faults=FaultConfig(lose_response_p=1.0, only=("POST /v2/orders",)))
    body = order_body(limit_price=str(Decimal("90.00").quantize(Decimal("0.01"), ROUND_FLOOR)))
    with pytest.raises(aiohttp.ClientError):
        await call(http, server, "POST", "/v2/orders", json=body)
    status, order, _ = await call(
        http,
        server,
        "GET",
        "/v2/orders:by_client_order_id",
        params={"client_order_id": body["client_order_id"]},
    )
    assert status == 200 and order["client_order_id"] == body["client_order_id"]
    assert server.stats.lost_responses == 1


def test_fault_config_is_validated() -> None:
    with pytest.raises(ValueError, match="probability"):
        FaultConfig(rate_limited_p=1.5)
    with pytest.raises(ValueError, match="exceed"):
        FaultConfig(rate_limited_p=0.6, server_error_p=0.6)
    with pytest.raises(ValueError, match="METHOD"):
        FaultConfig(only=("orders",))


def test_serve_refuses_a_non_loopback_host_and_bad_faults() -> None:
    from click.testing import CliRunner

    from alchemiser.cli.sim_cmd import sim_group

    result = CliRunner().invoke(sim_group, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "loopback" in result.output
    result = CliRunner().invoke(sim_group, ["serve", "--fault-429", "0.7", "--fault-5xx", "0.7"])
    assert result.exit_code == 2 and "exceed" in result.output
    result = CliRunner().invoke(sim_group, ["serve", "--hang-p", "2"])
    assert result.exit_code == 2
