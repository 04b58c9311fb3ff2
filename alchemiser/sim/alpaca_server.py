"""An Alpaca-compatible HTTP server over the simulated broker and market.

``alchemiser sim serve`` runs it so the daemon (``broker.kind = "alpaca"``)
and the Alpaca adapter's tests talk real HTTP, through the real alpaca-py
client, to a broker we control. It serves the trading paths (``/v2/account``,
``/v2/positions…``, ``/v2/orders…`` with ``/v2/orders:by_client_order_id``,
``/v2/options/contracts…``, ``/v2/account/activities…``, ``/v2/clock``) and the
market-data paths (``/v1beta1/options/snapshots…``,
``/v1beta1/options/quotes/latest``, ``/v2/stocks/snapshots``,
``/v2/stocks/trades/latest``, ``/v2/stocks/quotes/latest``) on one address,
with bodies alpaca-py's models accept (``alpaca_json``).

It checks what Alpaca checks: the ``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY``
headers (missing: 401, wrong: 403), whole contracts, price increments, day
orders only, the options level (multi-leg needs 3), unique client order ids
(422 ``client_order_id must be unique``), buying power (403), 200 requests a
minute (429 with ``X-RateLimit-*`` headers). Order rules are the simulated
broker's (``broker.sim_rules``); its rejection's rule name picks the status.

Faults (``FaultConfig``) are injected after authentication, per request:
added latency; a 429 with rate-limit headers or a 5xx before anything is
done; a hang past the client's timeout, after which the request is still
carried out (the worst case for a client: its order lands after it gave
up); and "accepted but the response was lost" (the request is carried out,
then the connection is closed without a response).

It listens on a loopback address only: it accepts whatever credentials it
was given and is a test double, not a service.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import math
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from aiohttp import web

from alchemiser.broker.base import DuplicateClientOrderId, NotFound, OrderRejected
from alchemiser.broker.sim import SimBroker
from alchemiser.clock import NEW_YORK, Clock, RealClock
from alchemiser.domain.options import OccSymbolError, OptionRight, parse_occ
from alchemiser.domain.trading import (
    Activity,
    ActivityType,
    ContractInfo,
    OptionSnapshot,
    OrderLeg,
    OrderRequest,
    OrderType,
    PositionIntent,
    Side,
    TimeInForce,
)
from alchemiser.sim.alpaca_json import (
    account_json,
    activity_json,
    clock_json,
    contract_json,
    error_json,
    latest_trade_json,
    option_quote_json,
    option_snapshot_json,
    order_json,
    position_json,
    quote_json,
    stock_snapshot_json,
)
from alchemiser.sim.market import SimMarket
from alchemiser.sim_time import next_open_at_or_after
from alchemiser.trading_calendar import TradingCalendar

__all__ = ["AlpacaSimServer", "FaultConfig", "ServerStats"]

log = structlog.stdlib.get_logger("alchemiser.sim.alpaca_server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Alpaca's error codes for the statuses we send.
CODE_UNAUTHORIZED = 40110000
CODE_FORBIDDEN = 40310000
CODE_NOT_FOUND = 40410000
CODE_UNPROCESSABLE = 42210000
CODE_RATE_LIMITED = 42910000
CODE_SERVER = 50010000
CODE_DUPLICATE = 40010001
BAD_REQUEST = 40010000
# Rules of the simulated broker that Alpaca answers with 403 (account, not order shape).
FORBIDDEN_RULES = frozenset({"buying_power", "options_level", "uncovered_call"})
CLIENT_ORDER_ID_MAX = 128
MAX_SYMBOLS = 100
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """What goes wrong, per request (probabilities 0-1; latency in milliseconds)."""

    rate_limited_p: float = 0.0  # 429 with X-RateLimit-* headers, nothing done
    server_error_p: float = 0.0  # 500/502/503/504, nothing done
    latency_ms: float = 0.0  # added to every request
    hang_p: float = 0.0  # wait ``hang_seconds`` (past the client's timeout), then do it
    hang_seconds: float = 15.0
    lose_response_p: float = 0.0  # do it, then drop the connection without a response
    # Seconds until X-RateLimit-Reset on an injected 429 (the header is a whole Unix second).
    rate_limit_reset_seconds: float = 1.0
    seed: int | None = None
    # Requests the faults apply to, as "METHOD /path-prefix" (e.g. "POST /v2/orders"); empty: all.
    only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("rate_limited_p", "server_error_p", "hang_p", "lose_response_p"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a probability within 0-1, got {value!r}")
        if self.rate_limited_p + self.server_error_p > 1.0:
            raise ValueError("rate_limited_p + server_error_p must not exceed 1")
        for name in ("latency_ms", "hang_seconds", "rate_limit_reset_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for rule in self.only:
            method, _, path = rule.partition(" ")
            if not method.isupper() or not path.startswith("/"):
                raise ValueError(f"only: {rule!r} is not 'METHOD /path-prefix'")

    def applies_to(self, method: str, path: str) -> bool:
        if not self.only:
            return True
        for rule in self.only:
            rule_method, _, prefix = rule.partition(" ")
            if method == rule_method and path.startswith(prefix):
                return True
        return False

    @property
    def active(self) -> bool:
        return any(
            (
                self.rate_limited_p,
                self.server_error_p,
                self.latency_ms,
                self.hang_p,
                self.lose_response_p,
            )
        )


_NO_FAULTS = FaultConfig()


@dataclass(slots=True)
class ServerStats:
    """What the server saw and did, for tests and the shutdown log line."""

    requests: int = 0
    unauthorized: int = 0
    rate_limited: int = 0  # real (over the limit)
    injected_429: int = 0
    injected_5xx: int = 0
    hangs: int = 0
    lost_responses: int = 0
    orders_accepted: int = 0
    orders_rejected: int = 0


class _ApiError(Exception):
    """An error response: status, Alpaca code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _unprocessable(message: str) -> _ApiError:
    return _ApiError(422, CODE_UNPROCESSABLE, message)


def _bad_request(message: str) -> _ApiError:
    return _ApiError(400, BAD_REQUEST, message)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return _json(error_json(code, message), status, headers)


def check_loopback(host: str) -> None:
    """Refuse anything but a loopback address: the server accepts known test credentials."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"the simulated Alpaca server listens on loopback addresses only (127.0.0.1, ::1), "
            f"not {host!r}"
        )


# -- request parsing ---------------------------------------------------------------------


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise _unprocessable(f"{name} must be a number")
    try:
        number = Decimal(value) if isinstance(value, int | Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise _unprocessable(f"invalid {name}: {value!r}") from None
    if not number.is_finite():
        raise _unprocessable(f"invalid {name}: {value!r}")
    return number


def _enum(cls: Any, value: Any, name: str) -> Any:
    try:
        return cls(str(value).lower())
    except ValueError:
        raise _unprocessable(f"invalid {name}: {value!r}") from None


def parse_order(body: Any) -> OrderRequest:
    """An Alpaca order request body as our ``OrderRequest``; what Alpaca refuses outright raises."""
    if not isinstance(body, dict):
        raise _unprocessable("the request body must be a JSON object")
    if body.get("notional") not in (None, ""):
        raise _unprocessable("notional orders are not supported")
    if body.get("qty") in (None, ""):
        raise _unprocessable("qty is required")
    qty = _decimal(body["qty"], "qty")
    tif = str(body.get("time_in_force") or "")
    if tif != TimeInForce.DAY.value:
        raise _unprocessable(f"invalid time_in_force {tif!r}: only day orders are accepted")
    kind = str(body.get("type") or body.get("order_type") or "")
    if kind not in (OrderType.MARKET.value, OrderType.LIMIT.value):
        raise _unprocessable(f"invalid order type {kind!r}: market and limit orders only")
    order_type = OrderType(kind)
    if body.get("extended_hours"):
        raise _unprocessable("extended hours orders are not supported")
    order_class = str(body.get("order_class") or "simple")
    if order_class not in ("simple", "mleg"):
        raise _unprocessable(f"order_class {order_class!r} is not supported")
    cid = body.get("client_order_id")
    cid = str(uuid.uuid4()) if cid in (None, "") else str(cid)
    if len(cid) > CLIENT_ORDER_ID_MAX:
        raise _unprocessable(
            f"client_order_id must be no more than {CLIENT_ORDER_ID_MAX} characters"
        )
    limit_price = (
        None
        if body.get("limit_price") in (None, "")
        else _decimal(body["limit_price"], "limit_price")
    )
    if order_type is OrderType.LIMIT and limit_price is None:
        raise _unprocessable("limit_price is required for limit orders")
    if order_type is OrderType.MARKET and limit_price is not None:
        raise _unprocessable("limit_price is not allowed for market orders")
    if order_class == "mleg":
        raw_legs = body.get("legs")
        if not isinstance(raw_legs, list):
            raise _unprocessable("legs are required for an mleg order")
        if body.get("symbol") or body.get("side"):
            raise _unprocessable("an mleg order carries symbol and side in its legs only")
        return OrderRequest(
            client_order_id=cid,
            qty=qty,
            type=order_type,
            limit_price=limit_price,
            legs=tuple(_parse_leg(leg) for leg in raw_legs),
        )
    symbol = body.get("symbol")
    if not symbol:
        raise _unprocessable("symbol is required")
    intent = (
        _enum(PositionIntent, body["position_intent"], "position_intent")
        if body.get("position_intent")
        else None
    )
    side = _side(body.get("side"), intent)
    return OrderRequest(
        client_order_id=cid,
        qty=qty,
        type=order_type,
        limit_price=limit_price,
        symbol=str(symbol).upper(),
        side=side,
        position_intent=intent,
    )


def _side(value: Any, intent: PositionIntent | None) -> Side:
    if value:
        side: Side = _enum(Side, value, "side")
        return side
    if intent is not None:
        return Side.BUY if intent.value.startswith("buy") else Side.SELL
    raise _unprocessable("side is required")


def _parse_leg(raw: Any) -> OrderLeg:
    if not isinstance(raw, dict) or not raw.get("symbol"):
        raise _unprocessable("each leg needs a symbol")
    ratio = _decimal(raw.get("ratio_qty", 1), "ratio_qty")
    if ratio != ratio.to_integral_value() or ratio < 1:
        raise _unprocessable(f"ratio_qty must be a positive whole number, got {ratio}")
    intent = (
        _enum(PositionIntent, raw["position_intent"], "position_intent")
        if raw.get("position_intent")
        else None
    )
    return OrderLeg(
        symbol=str(raw["symbol"]).upper(),
        side=_side(raw.get("side"), intent),
        ratio_qty=int(ratio),
        position_intent=intent,
    )


def _rejection_status(exc: OrderRejected) -> tuple[int, int, str]:
    """Alpaca's answer to a refused order: 403 for the account's limits, 422 for the order."""
    if isinstance(exc, DuplicateClientOrderId):
        return 422, CODE_DUPLICATE, "client_order_id must be unique"
    rule = exc.reason.split(":", 1)[0].strip()
    if rule in FORBIDDEN_RULES:
        return 403, CODE_FORBIDDEN, exc.reason
    return 422, CODE_UNPROCESSABLE, exc.reason


def _encode_token(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_request(f"invalid page_token {token!r}") from None


def _page(keys: Sequence[str], token: str | None, limit: int) -> tuple[list[str], str | None]:
    """Keys (sorted) after the token's, at most ``limit``; the token of the next page or None."""
    ordered = sorted(keys)
    start = 0
    if token:
        last = _decode_token(token)
        start = next((n for n, k in enumerate(ordered) if k > last), len(ordered))
    chunk = ordered[start : start + limit]
    more = start + limit < len(ordered)
    return chunk, (_encode_token(chunk[-1]) if more and chunk else None)


class _Query:
    """Typed access to query parameters with Alpaca-like errors."""

    def __init__(self, request: web.Request) -> None:
        self._q = request.query

    def text(self, name: str) -> str | None:
        value = self._q.get(name)
        return value.strip() if value and value.strip() else None

    def symbols(self, name: str = "symbols", *, required: bool = True) -> list[str]:
        raw = self.text(name)
        if raw is None:
            if required:
                raise _bad_request(f"missing {name}")
            return []
        out = list(dict.fromkeys(s.strip().upper() for s in raw.split(",") if s.strip()))
        if len(out) > MAX_SYMBOLS and name == "symbols":
            raise _bad_request(f"at most {MAX_SYMBOLS} symbols per request, got {len(out)}")
        return out

    def integer(self, name: str, default: int, maximum: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _bad_request(f"invalid {name}: {raw!r}") from None
        if not 1 <= value <= maximum:
            raise _bad_request(f"{name} must be within 1-{maximum}, got {value}")
        return value

    def day(self, name: str) -> date | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            raise _bad_request(f"invalid {name}: {raw!r}") from None

    def instant(self, name: str) -> datetime | None:
        """A timestamp, or a date (its midnight in New York)."""
        raw = self.text(name)
        if raw is None:
            return None
        try:
            if len(raw) == 10:
                return datetime.combine(date.fromisoformat(raw), time(0), NEW_YORK)
            parsed = datetime.fromisoformat(raw.replace(" ", "+"))
        except ValueError:
            raise _bad_request(f"invalid {name}: {raw!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def decimal(self, name: str) -> Decimal | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise _bad_request(f"invalid {name}: {raw!r}") from None
        if not value.is_finite():
            raise _bad_request(f"invalid {name}: {raw!r}")
        return value

    def right(self) -> OptionRight | None:
        raw = self.text("type")
        if raw is None:
            return None
        if raw.lower() not in ("call", "put"):
            raise _bad_request(f"invalid type {raw!r}: call or put")
        return OptionRight.CALL if raw.lower() == "call" else OptionRight.PUT


class _RateWindow:
    """Alpaca's limit as the server enforces it: ``limit`` requests in any ``window`` seconds."""

    def __init__(self, limit: int | None, window: float, wall: Clock) -> None:
        self.limit = limit
        self.window = window
        self._wall = wall
        self._times: deque[float] = deque()

    def admit(self) -> tuple[bool, dict[str, str]]:
        now = self._wall.monotonic()
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        limit = self.limit
        if limit is None:
            return True, {}
        allowed = len(self._times) < limit
        if allowed:
            self._times.append(now)
        reset_in = (self._times[0] + self.window - now) if self._times else 0.0
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(limit - len(self._times), 0)),
            "X-RateLimit-Reset": str(math.ceil(self._wall.now().timestamp() + reset_in)),
        }
        return allowed, headers


class AlpacaSimServer:
    """The HTTP facade over one ``SimBroker`` account and its ``SimMarket``."""

    def __init__(
        self,
        broker: SimBroker,
        market: SimMarket,
        clock: Clock,
        *,
        key: str,
        secret: str,
        faults: FaultConfig | None = None,
        calendar: TradingCalendar | None = None,
        rate_limit_per_minute: int | None = 200,
        rate_limit_window_seconds: float = 60.0,
        wall_clock: Clock | None = None,
    ) -> None:
        if not key or not secret:
            raise ValueError("the server needs a key and a secret to check requests against")
        self._broker = broker
        self._market = market
        self._clock = clock
        self._calendar = calendar or market.calendar
        self._key = key.encode()
        self._secret = secret.encode()
        self._wall: Clock = wall_clock or RealClock()
        self._faults = faults or FaultConfig()
        self._rng = random.Random(self._faults.seed)
        self._rate = _RateWindow(rate_limit_per_minute, rate_limit_window_seconds, self._wall)
        self._started_at = clock.now()
        self._trade_ids = 0
        self.stats = ServerStats()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self.app = self._build_app()

    # -- life cycle ------------------------------------------------------------------

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        self._faults = value
        self._rng = random.Random(value.seed)

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the server is not running")
        return self._url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0: an ephemeral port); returns the base URL."""
        check_loopback(host)
        # Handlers run to the end even when the client has gone (a hung or lost
        # request still takes effect, as it would at a real broker).
        runner = web.AppRunner(self.app, handler_cancellation=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
        self._url = f"http://{shown}:{bound[1]}"
        log.info(
            "sim_alpaca_server_started",
            url=self._url,
            account=self._broker.account_id,
            faults=_fault_fields(self._faults),
            rate_limit_per_minute=self._rate.limit,
        )
        return self._url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("sim_alpaca_server_stopped", **_stats_fields(self.stats))

    async def __aenter__(self) -> AlpacaSimServer:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the edge: auth, rate limit, faults, errors ----------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._edge])
        get, post, delete = app.router.add_get, app.router.add_post, app.router.add_delete
        get("/v2/account", self._account)
        get("/v2/positions", self._positions)
        get("/v2/positions/{symbol}", self._position)
        delete("/v2/positions/{symbol}", self._close_position)
        post("/v2/orders", self._submit)
        get("/v2/orders", self._orders)
        get("/v2/orders:by_client_order_id", self._order_by_client_id)
        get("/v2/orders/{order_id}", self._order)
        delete("/v2/orders/{order_id}", self._cancel)
        get("/v2/options/contracts", self._contracts)
        get("/v2/options/contracts/{symbol_or_id}", self._contract)
        get("/v2/account/activities", self._activities)
        get("/v2/account/activities/{activity_type}", self._activities)
        get("/v2/clock", self._clock_view)
        get("/v1beta1/options/snapshots/{underlying}", self._chain)
        get("/v1beta1/options/snapshots", self._option_snapshots)
        get("/v1beta1/options/quotes/latest", self._option_quotes)
        get("/v2/stocks/snapshots", self._stock_snapshots)
        get("/v2/stocks/trades/latest", self._stock_trades)
        get("/v2/stocks/quotes/latest", self._stock_quotes)
        return app

    def _authorized(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("APCA-API-KEY-ID")
        secret = request.headers.get("APCA-API-SECRET-KEY")
        if not key or not secret:
            self.stats.unauthorized += 1
            return _error(401, CODE_UNAUTHORIZED, "request is not authorized")
        # Both compared whatever the first says: no timing hint of which one is wrong.
        key_ok = hmac.compare_digest(key.encode(), self._key)
        secret_ok = hmac.compare_digest(secret.encode(), self._secret)
        if not (key_ok and secret_ok):
            self.stats.unauthorized += 1
            return _json({"message": "forbidden."}, 403)
        return None

    @web.middleware
    async def _edge(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.stats.requests += 1
        refused = self._authorized(request)
        if refused is not None:
            return refused
        allowed, limit_headers = self._rate.admit()
        if not allowed:
            self.stats.rate_limited += 1
            return _error(429, CODE_RATE_LIMITED, "too many requests", limit_headers)
        faults, rng = self._faults, self._rng
        if not faults.applies_to(request.method, request.path):
            faults = _NO_FAULTS
        if faults.latency_ms:
            await self._wall.sleep(faults.latency_ms / 1000)
        draw = rng.random()
        if draw < faults.rate_limited_p:
            self.stats.injected_429 += 1
            reset = math.ceil(self._wall.now().timestamp() + faults.rate_limit_reset_seconds)
            headers = {
                "X-RateLimit-Limit": str(self._rate.limit or 200),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            }
            return _error(429, CODE_RATE_LIMITED, "too many requests", headers)
        if draw < faults.rate_limited_p + faults.server_error_p:
            self.stats.injected_5xx += 1
            status = rng.choice((500, 502, 503, 504))
            return _error(status, CODE_SERVER, "internal server error (injected)")
        hang = faults.hang_p > 0 and rng.random() < faults.hang_p
        lose = faults.lose_response_p > 0 and rng.random() < faults.lose_response_p
        if hang:
            self.stats.hangs += 1
            if request.can_read_body:
                await request.read()  # the request arrived whole; the client may leave now
            await self._wall.sleep(faults.hang_seconds)
        response = await self._handle(request, handler)
        for name, value in limit_headers.items():
            response.headers[name] = value
        if lose and request.transport is not None:
            self.stats.lost_responses += 1
            log.debug("sim_alpaca_response_dropped", method=request.method, path=request.path)
            request.transport.close()
        return response

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            # Let simulated time catch up (fills, expiries) before answering.
            await self._broker.sync()
            return await handler(request)
        except _ApiError as exc:
            return _error(exc.status, exc.code, exc.message)
        except OrderRejected as exc:
            status, code, message = _rejection_status(exc)
            return _error(status, code, message)
        except NotFound as exc:
            return _error(404, CODE_NOT_FOUND, str(exc))
        except web.HTTPException as exc:
            return _error(exc.status, exc.status * 100000, exc.reason)
        except Exception:
            log.exception("sim_alpaca_handler_failed", method=request.method, path=request.path)
            return _error(500, CODE_SERVER, "internal server error")

    # -- account, positions, clock --------------------------------------------------------

    async def _account(self, request: web.Request) -> web.Response:
        account = await self._broker.get_account()
        return _json(account_json(account, created_at=self._started_at))

    async def _positions(self, request: web.Request) -> web.Response:
        return _json([position_json(p) for p in await self._broker.get_positions()])

    async def _position(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        for position in await self._broker.get_positions():
            if position.symbol == symbol:
                return _json(position_json(position))
        raise _ApiError(404, CODE_NOT_FOUND, "position does not exist")

    async def _close_position(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        q = _Query(request)
        qty = q.decimal("qty")
        percentage = q.decimal("percentage")
        if percentage is not None:
            held = {p.symbol: p.qty for p in await self._broker.get_positions()}.get(symbol)
            if held is None:
                raise _ApiError(404, CODE_NOT_FOUND, "position does not exist")
            qty = (abs(held) * percentage / 100).to_integral_value()
        try:
            order = await self._broker.close_position(symbol, qty)
        except NotFound:
            raise _ApiError(404, CODE_NOT_FOUND, "position does not exist") from None
        return _json(order_json(order))

    async def _clock_view(self, request: web.Request) -> web.Response:
        now = self._clock.now()
        is_open = self._calendar.is_open_at(now)
        next_open = next_open_at_or_after(self._calendar, now)
        if is_open:
            next_close = self._calendar.session_close(now.astimezone(NEW_YORK).date())
        else:
            next_close = self._calendar.session_close(next_open.astimezone(NEW_YORK).date())
        return _json(clock_json(now, is_open=is_open, next_open=next_open, next_close=next_close))

    # -- orders ----------------------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text(), parse_float=Decimal)
        except ValueError:
            raise _bad_request("the request body is not valid JSON") from None
        try:
            order_request = parse_order(body)
            order = await self._broker.submit_order(order_request)
        except (_ApiError, OrderRejected):
            self.stats.orders_rejected += 1
            raise
        self.stats.orders_accepted += 1
        return _json(order_json(order))

    async def _orders(self, request: web.Request) -> web.Response:
        q = _Query(request)
        status = (q.text("status") or "open").lower()
        if status not in ("open", "closed", "all"):
            raise _unprocessable(f"invalid status {status!r}")
        if status != "open":
            raise _unprocessable(
                "the simulated server lists open orders only; look closed ones up by id "
                "or client order id"
            )
        limit = q.integer("limit", 50, 500)
        after, until = q.instant("after"), q.instant("until")
        symbols = set(q.symbols("symbols", required=False))
        orders = await self._broker.list_open_orders()
        if after is not None:
            orders = [o for o in orders if o.submitted_at > after]
        if until is not None:
            orders = [o for o in orders if o.submitted_at < until]
        if symbols:
            orders = [
                o
                for o in orders
                if o.symbol in symbols or any(leg.symbol in symbols for leg in o.legs)
            ]
        descending = (q.text("direction") or "desc").lower() == "desc"
        orders.sort(key=lambda o: (o.submitted_at, o.id), reverse=descending)
        return _json([order_json(o) for o in orders[:limit]])

    async def _order(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        try:
            order = await self._broker.get_order(order_id)
        except NotFound:
            raise _ApiError(404, CODE_NOT_FOUND, "order not found") from None
        return _json(order_json(order))

    async def _order_by_client_id(self, request: web.Request) -> web.Response:
        cid = _Query(request).text("client_order_id")
        if cid is None:
            raise _unprocessable("client_order_id is required")
        order = await self._broker.get_order_by_client_id(cid)
        if order is None:
            raise _ApiError(404, CODE_NOT_FOUND, "order not found")
        return _json(order_json(order))

    async def _cancel(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        try:
            await self._broker.cancel_order(order_id)
        except NotFound:
            raise _ApiError(404, CODE_NOT_FOUND, "order not found") from None
        except OrderRejected as exc:
            raise _unprocessable(exc.reason) from None
        return web.Response(status=204)

    # -- option contracts ------------------------------------------------------------------

    def _today(self) -> date:
        return self._clock.now().astimezone(NEW_YORK).date()

    async def _contracts(self, request: web.Request) -> web.Response:
        q = _Query(request)
        status = (q.text("status") or "active").lower()
        underlyings = q.symbols("underlying_symbols", required=False) or list(self._market.symbols)
        today = self._today()
        exact = q.day("expiration_date")
        if exact is not None:
            lo, hi = exact, exact
        else:
            lo = q.day("expiration_date_gte") or today
            # Alpaca's default: up to the coming weekend. Callers must give bounds.
            hi = q.day("expiration_date_lte") or today + timedelta(
                days=(6 - today.weekday()) % 7 or 7
            )
        right = q.right()
        strike_from, strike_to = q.decimal("strike_price_gte"), q.decimal("strike_price_lte")
        root = q.text("root_symbol")
        limit = q.integer("limit", 100, 10_000)
        found: dict[str, ContractInfo] = {}
        if status == "active" and lo <= hi:
            for underlying in underlyings:
                if underlying not in self._market.symbols:
                    continue
                for info in await self._broker.get_option_contracts(
                    underlying, lo, hi, right, strike_from, strike_to
                ):
                    if root is None or info.contract.root == root.upper():
                        found[info.symbol] = info
        keys, token = _page(list(found), q.text("page_token"), limit)
        return _json(
            {
                "option_contracts": [contract_json(found[k], on=today) for k in keys],
                "next_page_token": token,
            }
        )

    async def _contract(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol_or_id"].upper()
        try:
            contract = parse_occ(symbol)
        except OccSymbolError:
            raise _ApiError(404, CODE_NOT_FOUND, "option contract not found") from None
        if contract.root in self._market.symbols and contract.expiry >= self._today():
            for info in await self._broker.get_option_contracts(
                contract.root,
                contract.expiry,
                contract.expiry,
                contract.right,
                contract.strike,
                contract.strike,
            ):
                if info.symbol == symbol:
                    return _json(contract_json(info, on=self._today()))
        raise _ApiError(404, CODE_NOT_FOUND, "option contract not found")

    # -- option market data ------------------------------------------------------------------

    async def _chain(self, request: web.Request) -> web.Response:
        underlying = request.match_info["underlying"].upper()
        q = _Query(request)
        limit = q.integer("limit", 100, 1000)
        snaps: dict[str, OptionSnapshot] = {}
        if underlying in self._market.symbols:
            exact = q.day("expiration_date")
            lo = exact or q.day("expiration_date_gte")
            hi = exact or q.day("expiration_date_lte")
            right = q.right()
            strike_from, strike_to = q.decimal("strike_price_gte"), q.decimal("strike_price_lte")
            root = q.text("root_symbol")
            for snap in await self._broker.get_option_chain(underlying, lo, hi):
                c = snap.contract
                if right is not None and c.right is not right:
                    continue
                if strike_from is not None and c.strike < strike_from:
                    continue
                if strike_to is not None and c.strike > strike_to:
                    continue
                if root is not None and c.root != root.upper():
                    continue
                snaps[snap.symbol] = snap
        keys, token = _page(list(snaps), q.text("page_token"), limit)
        return _json(
            {
                "snapshots": {k: option_snapshot_json(snaps[k]) for k in keys},
                "next_page_token": token,
            }
        )

    async def _option_snapshots(self, request: web.Request) -> web.Response:
        q = _Query(request)
        limit = q.integer("limit", 100, 1000)
        snaps = await self._broker.get_option_quotes(q.symbols())
        keys, token = _page(list(snaps), q.text("page_token"), limit)
        return _json(
            {
                "snapshots": {k: option_snapshot_json(snaps[k]) for k in keys},
                "next_page_token": token,
            }
        )

    async def _option_quotes(self, request: web.Request) -> web.Response:
        snaps = await self._broker.get_option_quotes(_Query(request).symbols())
        return _json({"quotes": {k: option_quote_json(v) for k, v in sorted(snaps.items())}})

    # -- stock market data --------------------------------------------------------------------

    def _trade_id(self) -> int:
        self._trade_ids += 1
        return self._trade_ids

    async def _stock_snapshots(self, request: web.Request) -> web.Response:
        quotes = await self._broker.get_stock_quotes(_Query(request).symbols())
        # Unknown symbols are left out, as Alpaca does.
        return _json({s: stock_snapshot_json(q, self._trade_id()) for s, q in quotes.items()})

    async def _stock_trades(self, request: web.Request) -> web.Response:
        quotes = await self._broker.get_stock_quotes(_Query(request).symbols())
        return _json(
            {"trades": {s: latest_trade_json(q, self._trade_id()) for s, q in quotes.items()}}
        )

    async def _stock_quotes(self, request: web.Request) -> web.Response:
        quotes = await self._broker.get_stock_quotes(_Query(request).symbols())
        body = {
            s: {**quote_json(q.bid, q.ask, q.bid_size, q.ask_size, q.timestamp, "V"), "z": "C"}
            for s, q in quotes.items()
        }
        return _json({"quotes": body})

    # -- activities ----------------------------------------------------------------------------

    async def _activities(self, request: web.Request) -> web.Response:
        q = _Query(request)
        names = (
            [request.match_info["activity_type"]] if "activity_type" in request.match_info else []
        )
        names += [n for n in (q.text("activity_types") or "").split(",") if n.strip()]
        known = {t.value for t in ActivityType}
        types = [ActivityType(n.strip().upper()) for n in names if n.strip().upper() in known]
        if names and not types:
            return _json([])  # only types the simulated broker never produces
        on_day = q.day("date")
        after = q.instant("after")
        until = q.instant("until")
        if on_day is not None:
            after = datetime.combine(on_day, time(0), NEW_YORK)
            until = after + timedelta(days=1)
        rows: list[Activity] = await self._broker.get_activities(after or EPOCH, types or None)
        if until is not None:
            rows = [a for a in rows if a.occurred_at < until]
        if (q.text("direction") or "desc").lower() == "desc":
            rows.reverse()
        size = q.integer("page_size", 100, 100)
        token = q.text("page_token")
        start = 0
        if token:
            ids = [a.id for a in rows]
            if token not in ids:
                raise _bad_request(f"invalid page_token {token!r}")
            start = ids.index(token) + 1
        page = rows[start : start + size]
        account = self._broker.account_id
        return _json([activity_json(a, account_id=account) for a in page])


def _fault_fields(faults: FaultConfig) -> dict[str, Any]:
    fields = {k: v for k, v in asdict(faults).items() if v}
    fields.pop("seed", None)
    if not faults.hang_p:
        fields.pop("hang_seconds", None)
    if not faults.rate_limited_p:
        fields.pop("rate_limit_reset_seconds", None)
    return fields or {"none": True}


def _stats_fields(stats: ServerStats) -> dict[str, int]:
    return dict(asdict(stats))
