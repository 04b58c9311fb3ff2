"""The Broker protocol on Alpaca (paper or live) through alpaca-py.

alpaca-py's clients (``TradingClient``, ``OptionHistoricalDataClient``,
``StockHistoricalDataClient``) make blocking ``requests`` calls with no
timeout and retry 429/504 on their own with a fixed sleep. Here:

- every HTTP request runs in a small thread pool of our own, awaited with a
  deadline, on a ``requests`` session that carries (connect, read) timeouts
  (alpaca-py has no hook for either: we swap the client's ``_session`` for a
  session subclass that sets the timeout, and set its retry count to zero so
  the only retry is ours — ``_harden`` checks those attributes exist);
- every HTTP request first takes a grant from a sliding-window rate limiter
  (under Alpaca's 200 requests a minute), and paginated listings are paged
  here one request at a time, so a retry repeats one page, not the listing;
- failures become our error types by what the operator should do:
  403 and 422 on an order are final (``OrderRejected``; a duplicate client
  order id is ``DuplicateClientOrderId``), 404 is ``NotFound``, 401/403
  elsewhere is ``BrokerAuthError``, and 429, 5xx, timeouts and connection
  errors are temporary (``BrokerUnavailable``) and retried with backoff and
  jitter, honouring ``X-RateLimit-Reset``;
- a submit whose outcome is unknown (timeout, 5xx, connection lost after
  sending) is resolved by ``get_order_by_client_id`` before anything else is
  sent. Only when the broker says it has no order with that client order id
  is the same request (same client order id) sent again; Alpaca refuses a
  second order with one id, and that refusal, after an attempt of ours that
  may have landed, is resolved by the lookup too. If the retries run out
  while the outcome is still unknown, ``OrderOutcomeUnknown`` says so.

Pure mapping functions (alpaca-py models or raw JSON → our domain types, our
``OrderRequest`` → alpaca-py requests, HTTP failures → our errors) sit at the
top of the module, apart from the adapter class, and are unit-tested alone.

The key and the secret never reach a log line or an exception message: every
message built from a response or an exception passes through a redactor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import requests
import structlog
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.models.snapshots import OptionsSnapshot, Snapshot
from alpaca.data.requests import OptionChainRequest, OptionSnapshotRequest, StockSnapshotRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass as AlpacaAssetClass
from alpaca.trading.enums import AssetStatus, ContractType, OrderSide, QueryOrderStatus
from alpaca.trading.enums import OrderClass as AlpacaOrderClass
from alpaca.trading.enums import PositionIntent as AlpacaPositionIntent
from alpaca.trading.enums import PositionSide as AlpacaPositionSide
from alpaca.trading.enums import TimeInForce as AlpacaTimeInForce
from alpaca.trading.models import OptionContract as AlpacaContract
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import Position as AlpacaPosition
from alpaca.trading.models import TradeAccount
from alpaca.trading.requests import (
    GetOptionContractsRequest,
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    OptionLegRequest,
)
from pydantic import SecretStr, ValidationError

from alchemiser.broker.base import (
    BrokerError,
    BrokerUnavailable,
    DuplicateClientOrderId,
    NotFound,
    OrderOutcomeUnknown,
    OrderRejected,
)
from alchemiser.broker.retry import RetryPolicy, SlidingWindowLimiter, retry_after_seconds
from alchemiser.clock import NEW_YORK, Clock, RealClock
from alchemiser.domain.options import OccSymbolError, OptionContract, OptionRight, parse_occ
from alchemiser.domain.ticks import option_tick
from alchemiser.domain.trading import (
    Account,
    Activity,
    ActivityType,
    AssetClass,
    ContractInfo,
    Greeks,
    OptionSnapshot,
    Order,
    OrderClass,
    OrderLeg,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    PositionIntent,
    Side,
    StockQuote,
    TimeInForce,
)
from alchemiser.logs import register_secret

if TYPE_CHECKING:
    from alchemiser.settings import Settings

__all__ = [
    "AlpacaBroker",
    "AlpacaConfigError",
    "BrokerAuthError",
    "BrokerProtocolError",
    "BrokerRequestError",
    "HttpFailure",
    "RateLimited",
    "TemporaryFailure",
    "account_from_alpaca",
    "activity_from_json",
    "classify_http_failure",
    "classify_transport_error",
    "contract_from_alpaca",
    "http_failure",
    "option_snapshot_from_alpaca",
    "order_from_alpaca",
    "order_request_problems",
    "order_status_from_alpaca",
    "position_from_alpaca",
    "round_limit_price",
    "stock_quote_from_alpaca",
    "to_alpaca_order_request",
]

log = structlog.stdlib.get_logger("alchemiser.broker.alpaca")

T = TypeVar("T")

ZERO = Decimal(0)
CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
CLIENT_ORDER_ID_MAX = 128  # Alpaca's limit
MAX_LEGS = 4
OPTION_MULTIPLIER = 100
# Page sizes: Alpaca's maxima are 10000 contracts, 1000 snapshots, 100 activities, 500 orders.
CONTRACTS_PAGE_LIMIT = 1000
SNAPSHOTS_PAGE_LIMIT = 1000
SYMBOLS_PER_REQUEST = 100
ACTIVITIES_PAGE_SIZE = 100
ORDERS_PAGE_LIMIT = 500
MAX_PAGES = 500  # a listing longer than this is a server bug, not a market
# How long an account's options level is trusted before a spread re-reads it.
OPTIONS_LEVEL_TTL_SECONDS = 300.0
SPREADS_LEVEL = 3
# Alpaca's error for a second order with the same client order id.
DUPLICATE_CODE = 40010001
DUPLICATE_TEXT = "client_order_id must be unique"

Action = Literal["read", "submit", "cancel"]
_MICROSECOND = timedelta(microseconds=1)


# -- errors ---------------------------------------------------------------------------


class AlpacaConfigError(BrokerError, ValueError):
    """The settings cannot make an Alpaca broker (no credentials, a bad endpoint)."""


class BrokerAuthError(BrokerError):
    """The keys were refused (401/403 outside an order): fix the credentials, do not retry."""


class BrokerRequestError(BrokerError):
    """The broker refused a request as malformed (a 4xx other than 401/403/404/429)."""


class BrokerProtocolError(BrokerError):
    """A response we cannot read (alpaca-py's models or our mapping rejected it)."""


class TemporaryFailure(BrokerUnavailable):
    """A temporary failure; ``maybe_processed`` says whether the request may have taken effect."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, maybe_processed: bool = True
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.maybe_processed = maybe_processed


class RateLimited(TemporaryFailure):
    """429: the request was refused unprocessed; come back after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after, maybe_processed=False)


# -- pure functions: HTTP failures → our errors ------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpFailure:
    """An HTTP error response as the classifier needs it."""

    status: int
    code: int | None = None
    message: str = ""
    retry_after: float | None = None

    def describe(self) -> str:
        code = f", code {self.code}" if self.code is not None else ""
        return f"{self.message or 'no message'} (HTTP {self.status}{code})"

    @property
    def is_duplicate_client_order_id(self) -> bool:
        return self.code == DUPLICATE_CODE or DUPLICATE_TEXT in self.message.lower()


def http_failure(
    status: int, body: str, headers: Mapping[str, str], now_epoch: float
) -> HttpFailure:
    """Read Alpaca's error body (``{"code": ..., "message": ...}``) and rate-limit headers."""
    code: int | None = None
    message = body.strip()
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        data = None
    if isinstance(data, dict):
        raw_code = data.get("code")
        if isinstance(raw_code, int):
            code = raw_code
        elif isinstance(raw_code, str) and raw_code.isdigit():
            code = int(raw_code)
        if isinstance(data.get("message"), str):
            message = data["message"]
    if len(message) > 300:
        message = message[:300] + "…"
    return HttpFailure(status, code, message, retry_after_seconds(headers, now_epoch))


def classify_http_failure(
    failure: HttpFailure, *, action: Action = "read", client_order_id: str | None = None
) -> BrokerError:
    """The error an HTTP failure means, by what the caller should do next.

    - 429, 408 and 5xx: temporary (retry with backoff; a 429 was not processed);
    - 404: ``NotFound``;
    - on an order submit: a duplicate client order id is ``DuplicateClientOrderId``,
      401 ``BrokerAuthError`` (the order was never considered), any other 4xx
      (403 buying power / options level, 422 invalid order) ``OrderRejected``;
    - on a cancel: 422 (not cancelable) is ``OrderRejected``;
    - elsewhere: 401/403 ``BrokerAuthError``, other 4xx ``BrokerRequestError``.
    """
    status = failure.status
    text = failure.describe()
    if status <= 0:
        return TemporaryFailure(f"broker error without a status: {text}")
    if status == 429:
        return RateLimited(f"rate limited: {text}", retry_after=failure.retry_after)
    if status >= 500 or status == 408:
        return TemporaryFailure(f"broker error: {text}", retry_after=failure.retry_after)
    if status == 404:
        return NotFound(text)
    if action == "submit":
        if status == 401:
            return BrokerAuthError(f"credentials refused: {text}")
        if failure.is_duplicate_client_order_id:
            return DuplicateClientOrderId(text, client_order_id)
        return OrderRejected(text, client_order_id)
    if action == "cancel" and status == 422:
        return OrderRejected(text, client_order_id)
    if status in (401, 403):
        return BrokerAuthError(f"credentials refused: {text}")
    return BrokerRequestError(text)


def _caused_by(exc: BaseException, types: tuple[type[BaseException], ...], depth: int = 6) -> bool:
    """Whether ``exc`` or something it wraps (args, ``reason``, cause, context) is one of ``types``."""
    seen: set[int] = set()
    todo: list[tuple[BaseException, int]] = [(exc, 0)]
    while todo:
        item, level = todo.pop()
        if id(item) in seen or level > depth:
            continue
        seen.add(id(item))
        if isinstance(item, types):
            return True
        nested = [a for a in item.args if isinstance(a, BaseException)]
        reason = getattr(item, "reason", None)
        if isinstance(reason, BaseException):
            nested.append(reason)
        for link in (item.__cause__, item.__context__):
            if link is not None:
                nested.append(link)
        todo.extend((n, level + 1) for n in nested)
    return False


def classify_transport_error(exc: BaseException, detail: str = "") -> TemporaryFailure:
    """A timeout or a connection failure: always temporary.

    It was not processed only when no connection was made (connect timeout,
    refused); a read timeout or a dropped connection may follow a request the
    broker acted on.
    """
    import urllib3.exceptions

    suffix = f": {detail}" if detail else ""
    if isinstance(exc, requests.exceptions.ConnectTimeout) or _caused_by(
        exc, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)
    ):
        return TemporaryFailure(f"could not connect{suffix}", maybe_processed=False)
    if isinstance(exc, requests.exceptions.ReadTimeout | TimeoutError):
        return TemporaryFailure(f"timed out waiting for the response{suffix}")
    return TemporaryFailure(f"connection failed ({type(exc).__name__}){suffix}")


# -- pure functions: our requests → alpaca-py requests --------------------------------------


def _option_contract(symbol: str | None) -> OptionContract | None:
    """The option an OCC symbol names, or None for a ticker."""
    if not symbol or len(symbol) <= 6:
        return None
    try:
        return parse_occ(symbol)
    except OccSymbolError:
        return None


def _stock_tick(price: Decimal) -> Decimal:
    """Reg NMS 612: whole cents at $1 and above, $0.0001 below."""
    return CENT if price >= 1 else SUB_PENNY


def _is_integral(value: Decimal) -> bool:
    return value == value.to_integral_value()


def order_request_problems(request: OrderRequest) -> str | None:
    """Why Alpaca would refuse this order, when we can tell without asking; None if it may pass.

    The answer starts with the rule's name, as the simulated broker's do.
    Price increments are checked against the finest grid the underlying could
    have (a penny class's): a price off that grid is wrong for every class,
    whereas a price on it may still be refused by a non-penny class.
    """
    cid = request.client_order_id
    if not cid or len(cid) > CLIENT_ORDER_ID_MAX:
        return f"client_order_id: must be 1-{CLIENT_ORDER_ID_MAX} characters, got {len(cid or '')}"
    qty = request.qty
    if not isinstance(qty, Decimal) or not qty.is_finite() or qty <= 0:
        return f"qty: quantity must be a positive number, got {qty}"
    if request.time_in_force is not TimeInForce.DAY:
        return f"time_in_force: only day orders are sent, got {request.time_in_force}"
    price = request.limit_price
    if request.type is OrderType.MARKET:
        if price is not None:
            return "limit_price: a market order takes no limit price"
    else:
        if price is None:
            return "limit_price: a limit order needs a limit price"
        if not price.is_finite():
            return f"limit_price: must be finite, got {price}"
        if not request.legs and price <= 0:
            return f"limit_price: must be positive, got {price}"
    if request.legs:
        if request.symbol is not None or request.side is not None:
            return "mleg: a multi-leg order carries symbols and sides in its legs only"
        if not 2 <= len(request.legs) <= MAX_LEGS:
            return f"mleg: a multi-leg order has 2-{MAX_LEGS} legs, got {len(request.legs)}"
        if not _is_integral(qty):
            return f"fractional_contracts: options trade in whole contracts, got qty {qty}"
        if any(_option_contract(leg.symbol) is None for leg in request.legs):
            return "mleg: every leg of a multi-leg order must be an option (OCC symbol)"
        if len({leg.symbol for leg in request.legs}) != len(request.legs):
            return "mleg: a contract appears in more than one leg"
        if any(leg.ratio_qty < 1 for leg in request.legs):
            return "mleg: leg ratios must be positive whole numbers"
        if price is not None and price % CENT != 0:
            return f"price_increment: net limit price {price} of a multi-leg order is not a multiple of $0.01"
        return None
    if request.symbol is None or request.side is None:
        return "order: a single-leg order needs a symbol and a side"
    contract = _option_contract(request.symbol)
    if contract is not None:
        if not _is_integral(qty):
            return f"fractional_contracts: options trade in whole contracts, got qty {qty}"
        if price is not None:
            tick = option_tick(contract.root, price, penny_pilot=True)
            if price % tick != 0:
                return (
                    f"price_increment: limit price {price} of {request.symbol} is not a "
                    f"multiple of the ${tick} increment"
                )
    elif price is not None and price % _stock_tick(price) != 0:
        return f"price_increment: limit price {price} of {request.symbol} is not a multiple of ${_stock_tick(price)}"
    return None


def round_limit_price(
    price: Decimal,
    *,
    symbol: str | None,
    side: Side | None,
    penny_pilot: Iterable[str] = (),
    multi_leg: bool = False,
) -> Decimal:
    """``price`` on the legal increment, rounded to our advantage (never a worse price).

    Buys and multi-leg net prices (a debit is positive, a credit negative:
    lower is better for us either way) round down, sells round up. Options of
    SPY, QQQ and IWM trade in $0.01; other underlyings in $0.01/$0.05 below/from
    $3 if in the penny program (``penny_pilot``), else $0.05/$0.10 — always a
    legal price, as the coarser grid lies on the finer one.
    """
    if multi_leg:
        return price.quantize(CENT, rounding=ROUND_FLOOR)
    contract = _option_contract(symbol)
    if contract is not None:
        penny = contract.root in set(penny_pilot)
        tick = option_tick(contract.root, price, penny_pilot=penny)
    else:
        tick = _stock_tick(price)
    down = side is not Side.SELL
    units = (price / tick).to_integral_value(rounding=ROUND_FLOOR if down else ROUND_CEILING)
    rounded = units * tick
    if contract is not None and rounded >= 3 > price:
        # Rounding up across $3 lands on the coarser grid above it: re-check.
        tick = option_tick(contract.root, rounded, penny_pilot=contract.root in set(penny_pilot))
        rounded = (rounded / tick).to_integral_value(rounding=ROUND_CEILING) * tick
    return rounded.quantize(tick)


def to_alpaca_order_request(request: OrderRequest) -> LimitOrderRequest | MarketOrderRequest:
    """Our order as alpaca-py's request, field for field (time in force day, whole contracts)."""
    fields: dict[str, Any] = {
        "qty": float(request.qty),
        "time_in_force": AlpacaTimeInForce.DAY,
        "client_order_id": request.client_order_id,
        "extended_hours": False,
    }
    if request.legs:
        fields["order_class"] = AlpacaOrderClass.MLEG
        fields["legs"] = [
            OptionLegRequest(
                symbol=leg.symbol,
                ratio_qty=float(leg.ratio_qty),
                side=OrderSide(leg.side.value),
                position_intent=(
                    AlpacaPositionIntent(leg.position_intent.value) if leg.position_intent else None
                ),
            )
            for leg in request.legs
        ]
    else:
        assert request.side is not None
        fields["symbol"] = request.symbol
        fields["side"] = OrderSide(request.side.value)
        if request.position_intent is not None:
            fields["position_intent"] = AlpacaPositionIntent(request.position_intent.value)
    if request.type is OrderType.MARKET:
        return MarketOrderRequest(**fields)
    assert request.limit_price is not None
    # alpaca-py's model takes a float; the Decimal is already on the legal tick (cents), which
    # a float round-trips exactly to the JSON Alpaca receives.
    return LimitOrderRequest(limit_price=float(request.limit_price), **fields)


# -- pure functions: alpaca-py models / raw JSON → our domain -----------------------------------


def _dec(value: Any) -> Decimal:
    """A Decimal from Alpaca's strings and numbers (floats by their shortest repr, so 1.23 stays 1.23)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and value.strip():
        return Decimal(value.strip())
    raise ValueError(f"not a number: {value!r}")


def _dec_or(value: Any, default: Decimal = ZERO) -> Decimal:
    return default if value is None or value == "" else _dec(value)


def _aware(dt: datetime) -> datetime:
    """Alpaca's times carry an offset; a naive one is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


_STATUS = {
    "new": OrderStatus.NEW,
    "pending_new": OrderStatus.NEW,
    "accepted": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "pending_review": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,  # this id is done; its replacement has another
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    # Still working (they may fill): open.
    "pending_cancel": OrderStatus.NEW,
    "pending_replace": OrderStatus.NEW,
    "done_for_day": OrderStatus.NEW,
    "stopped": OrderStatus.NEW,
    "suspended": OrderStatus.NEW,
    "calculated": OrderStatus.NEW,
}


def order_status_from_alpaca(status: Any, filled_qty: Decimal = ZERO) -> OrderStatus:
    """Alpaca's order status as ours; an open order with fills is partially filled."""
    name = _enum_value(status)
    try:
        ours = _STATUS[name]
    except KeyError:
        raise ValueError(f"unknown Alpaca order status {name!r}") from None
    if ours in (OrderStatus.NEW, OrderStatus.ACCEPTED) and filled_qty > 0:
        return OrderStatus.PARTIALLY_FILLED
    return ours


def _order_type(value: Any) -> OrderType:
    # We send market and limit only; a stop or trailing stop placed by hand trades
    # at market once triggered, a stop limit at its limit.
    name = _enum_value(value)
    return OrderType.LIMIT if name in ("limit", "stop_limit") else OrderType.MARKET


def order_from_alpaca(order: AlpacaOrder) -> Order:
    """alpaca-py's ``Order`` as ours; a multi-leg order's legs come from its nested leg orders."""
    filled = _dec_or(order.filled_qty)
    mleg = _enum_value(order.order_class) == AlpacaOrderClass.MLEG.value
    legs: tuple[OrderLeg, ...] = ()
    if mleg:
        legs = tuple(
            OrderLeg(
                symbol=str(leg.symbol),
                side=Side(_enum_value(leg.side)),
                ratio_qty=int(_dec_or(leg.ratio_qty, Decimal(1))),
                position_intent=(
                    PositionIntent(_enum_value(leg.position_intent))
                    if leg.position_intent
                    else None
                ),
            )
            for leg in order.legs or []
        )
    avg = _dec_or(order.filled_avg_price) if order.filled_avg_price not in (None, "") else None
    return Order(
        id=str(order.id),
        client_order_id=order.client_order_id,
        status=order_status_from_alpaca(order.status, filled),
        order_class=OrderClass.MLEG if mleg else OrderClass.SIMPLE,
        type=_order_type(order.type or order.order_type),
        qty=_dec_or(order.qty),
        filled_qty=filled,
        filled_avg_price=avg if filled > 0 else None,
        limit_price=None if order.limit_price in (None, "") else _dec(order.limit_price),
        submitted_at=_aware(order.submitted_at or order.created_at),
        updated_at=_aware(order.updated_at or order.submitted_at or order.created_at),
        symbol=None if mleg else order.symbol,
        side=None if mleg or order.side is None else Side(_enum_value(order.side)),
        legs=legs,
    )


def _signed(value: Decimal, negative: bool) -> Decimal:
    return -abs(value) if negative else abs(value)


def position_from_alpaca(position: AlpacaPosition) -> Position:
    """alpaca-py's ``Position`` as ours: quantity, value and cost signed by the side."""
    option = _enum_value(position.asset_class) == AlpacaAssetClass.US_OPTION.value
    mult = OPTION_MULTIPLIER if option else 1
    short = _enum_value(position.side) == AlpacaPositionSide.SHORT.value
    qty = _signed(_dec(position.qty), short)
    if position.current_price not in (None, ""):
        price = _dec(position.current_price)
    elif position.market_value not in (None, "") and qty:
        price = abs(_dec(position.market_value) / (qty * mult))
    else:
        price = _dec(position.avg_entry_price)
    market_value = (
        _signed(_dec(position.market_value), short)
        if position.market_value not in (None, "")
        else qty * price * mult
    )
    return Position(
        symbol=position.symbol,
        asset_class=AssetClass.OPTION if option else AssetClass.EQUITY,
        qty=qty,
        avg_entry_price=_dec(position.avg_entry_price),
        current_price=price,
        market_value=market_value,
        cost_basis=_signed(_dec(position.cost_basis), short),
        multiplier=mult,
    )


def account_from_alpaca(account: TradeAccount) -> Account:
    """alpaca-py's ``TradeAccount`` as ours.

    The options level is the effective one: the lower of what Alpaca approved
    and what the account's configuration allows (``options_trading_level``).
    """
    levels = [
        level
        for level in (account.options_approved_level, account.options_trading_level)
        if level is not None
    ]
    return Account(
        account_id=account.account_number or str(account.id),
        cash=_dec_or(account.cash),
        equity=_dec_or(account.equity),
        buying_power=_dec_or(account.buying_power),
        options_buying_power=_dec_or(account.options_buying_power),
        long_market_value=abs(_dec_or(account.long_market_value)),
        short_market_value=-abs(_dec_or(account.short_market_value)),
        options_approved_level=min(levels) if levels else 0,
        maintenance_margin=_dec_or(account.maintenance_margin),
        trading_blocked=bool(
            account.trading_blocked or account.account_blocked or account.trade_suspended_by_user
        ),
    )


def contract_from_alpaca(contract: AlpacaContract) -> ContractInfo:
    """A ``/v2/options/contracts`` item as ours (the OCC symbol is the identity)."""
    try:
        occ = parse_occ(contract.symbol)
    except OccSymbolError:
        occ = OptionContract(
            root=contract.root_symbol,
            expiry=contract.expiration_date,
            right=OptionRight.CALL
            if _enum_value(contract.type) == ContractType.CALL.value
            else OptionRight.PUT,
            strike=_dec(contract.strike_price),
        )
    extra = {"id": str(contract.id), "style": _enum_value(contract.style)}
    return ContractInfo(
        contract=occ,
        underlying=contract.underlying_symbol,
        tradable=bool(contract.tradable),
        multiplier=int(_dec_or(contract.size, Decimal(OPTION_MULTIPLIER))),
        open_interest=None
        if contract.open_interest in (None, "")
        else int(_dec(contract.open_interest)),
        close_price=None if contract.close_price in (None, "") else _dec(contract.close_price),
        extra=extra,
    )


def _daily_volume(data: Any) -> int | None:
    bar = data.get("dailyBar") if isinstance(data, dict) else None
    volume = bar.get("v") if isinstance(bar, dict) else None
    return int(volume) if isinstance(volume, int | float) else None


def option_snapshot_from_alpaca(
    snapshot: OptionsSnapshot, volume: int | None = None
) -> OptionSnapshot | None:
    """An option snapshot as ours; None without a quote or with a symbol that is not OCC."""
    contract = _option_contract(snapshot.symbol)
    quote = snapshot.latest_quote
    if contract is None or quote is None:
        return None
    greeks = snapshot.greeks
    trade = snapshot.latest_trade
    return OptionSnapshot(
        contract=contract,
        bid=_dec(quote.bid_price),
        ask=_dec(quote.ask_price),
        bid_size=int(quote.bid_size),
        ask_size=int(quote.ask_size),
        timestamp=_aware(quote.timestamp),
        implied_volatility=snapshot.implied_volatility,
        greeks=(
            Greeks(
                delta=greeks.delta,
                gamma=greeks.gamma,
                theta=greeks.theta,
                vega=greeks.vega,
                rho=greeks.rho,
            )
            if greeks is not None
            else None
        ),
        last=_dec(trade.price) if trade is not None else None,
        volume=volume,
    )


def stock_quote_from_alpaca(snapshot: Snapshot) -> StockQuote | None:
    """A stock snapshot's latest quote and trade as ours; None without a quote."""
    quote = snapshot.latest_quote
    if quote is None:
        return None
    bid, ask = _dec(quote.bid_price), _dec(quote.ask_price)
    trade = snapshot.latest_trade
    return StockQuote(
        symbol=snapshot.symbol,
        bid=bid,
        ask=ask,
        last=_dec(trade.price) if trade is not None else (bid + ask) / 2,
        timestamp=_aware(quote.timestamp),
        bid_size=int(quote.bid_size),
        ask_size=int(quote.ask_size),
    )


def _time_of(raw: Mapping[str, Any]) -> datetime:
    for key in ("transaction_time", "created_at"):
        value = raw.get(key)
        if isinstance(value, str) and value:
            return _aware(datetime.fromisoformat(value))
    day = raw.get("date")
    if isinstance(day, str) and day:
        # A date alone: option events settle after the close; say 16:00 New York.
        return datetime.combine(date.fromisoformat(day[:10]), time(16), NEW_YORK).astimezone(UTC)
    raise ValueError(f"activity {raw.get('id')!r} has no time")


def activity_from_json(raw: Mapping[str, Any]) -> Activity | None:
    """One item of ``/v2/account/activities`` (raw JSON) as ours; None for types we do not track.

    A fill's unsigned ``qty`` gets the sign of its side and a net amount of
    −qty × price × multiplier (Alpaca's fills carry none). Non-trade option
    activities (OPASN, OPEXC, OPEXP, OPTRD) keep Alpaca's signed ``qty``.
    """
    try:
        kind = ActivityType(str(raw.get("activity_type")))
    except ValueError:
        return None
    activity_id = str(raw["id"])
    symbol = str(raw.get("symbol") or "")
    order_id = raw.get("order_id")
    order_id = str(order_id) if order_id else None
    if kind is ActivityType.FILL:
        side = Side.BUY if str(raw["side"]).lower() == "buy" else Side.SELL  # sell_short too
        qty = abs(_dec(raw["qty"]))
        signed = qty if side is Side.BUY else -qty
        price = _dec(raw["price"])
        mult = OPTION_MULTIPLIER if _option_contract(symbol) else 1
        return Activity(
            id=activity_id,
            activity_type=kind,
            occurred_at=_time_of(raw),
            symbol=symbol,
            qty=signed,
            price=price,
            side=side,
            order_id=order_id,
            net_amount=-signed * price * mult,
        )
    side_text = str(raw.get("side") or "").lower()
    return Activity(
        id=activity_id,
        activity_type=kind,
        occurred_at=_time_of(raw),
        symbol=symbol,
        qty=_dec_or(raw.get("qty")),
        price=None if raw.get("price") in (None, "") else _dec(raw["price"]),
        side=Side(side_text) if side_text in ("buy", "sell") else None,
        order_id=order_id,
        net_amount=None if raw.get("net_amount") in (None, "") else _dec(raw["net_amount"]),
    )


# -- transport ---------------------------------------------------------------------------------


class _TimeoutSession(requests.Session):
    """A ``requests`` session whose every request has (connect, read) timeouts.

    alpaca-py calls ``session.request(...)`` without a timeout (so a dead peer
    blocks forever); this is the one place a default can be put in.
    """

    def __init__(self, timeout: tuple[float, float], pool_size: int) -> None:
        super().__init__()
        self.timeout = timeout
        # No urllib3 retries either: ours are the only ones.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=pool_size, max_retries=0
        )
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


def _harden(client: Any, session: _TimeoutSession) -> None:
    """Give an alpaca-py client our session and switch its own retry off.

    ``RESTClient.__init__`` only takes ``retry_attempts`` > 0 (0 means "use the
    default of 3") and ``TradingClient`` does not pass them through at all, so
    the attributes are set after construction. Checked, so an alpaca-py
    release that renames them fails loudly here instead of retrying silently.
    """
    for attr in ("_session", "_retry", "_retry_wait", "_retry_codes"):
        if not hasattr(client, attr):
            raise RuntimeError(
                f"alpaca-py's {type(client).__name__} has no {attr}: its retry/session "
                "handling changed; review alchemiser.broker.alpaca._harden"
            )
    client._session.close()
    client._session = session
    client._retry = 0  # RESTClient._request: one attempt, no RetryException
    client._retry_wait = 0
    client._retry_codes = []


def _base_url(url: str | None) -> str | None:
    """A base URL for alpaca-py's ``url_override`` (it appends ``/v2`` itself)."""
    if url is None:
        return None
    text = url.strip().rstrip("/")
    for suffix in ("/v2", "/v1beta1"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AlpacaConfigError(
            "the Alpaca endpoint must be an http(s) URL such as https://paper-api.alpaca.markets "
            "or http://127.0.0.1:5005"
        )
    return text


def _secret_fragments(*values: str | None) -> list[str]:
    """What must never be printed: the key, the secret, and any credentials or path in an endpoint."""
    out: list[str] = []
    for value in values:
        if not value:
            continue
        if "://" not in value:
            out.append(value)
            continue
        # A URL's host and port are not secret (and name the server in errors); its
        # credentials, path and query may be.
        parts = urlsplit(value)
        if "@" in parts.netloc:
            out.append(parts.netloc.rsplit("@", 1)[0])
        if parts.path not in ("", "/"):
            out.append(parts.path)
        if parts.query:
            out.append(parts.query)
    # Longest first, so a fragment inside a longer one does not leave a tail behind.
    return sorted({f for f in out if len(f) >= 4}, key=len, reverse=True)


def _reveal(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@dataclass
class _SubmitState:
    maybe_sent: bool = False
    attempts: int = 0
    causes: list[str] = field(default_factory=list)


# -- the adapter --------------------------------------------------------------------------------


class AlpacaBroker:
    """The ``Broker`` protocol over Alpaca's REST API (one event loop per instance).

    ``trading_url`` and ``data_url`` override Alpaca's hosts (the local
    ``alchemiser sim serve`` serves both on one address); without them
    ``paper`` picks the paper or the live trading host.
    """

    def __init__(
        self,
        *,
        key: str | SecretStr,
        secret: str | SecretStr,
        trading_url: str | None = None,
        data_url: str | None = None,
        paper: bool = True,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        limiter: SlidingWindowLimiter | None = None,
        retry: RetryPolicy | None = None,
        penny_pilot: Iterable[str] = (),
        option_feed: str | None = None,
        stock_feed: str | None = None,
        max_workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        key_text, secret_text = _reveal(key).strip(), _reveal(secret).strip()
        if not key_text or not secret_text:
            raise AlpacaConfigError("an Alpaca key and secret are required")
        if not (connect_timeout > 0 and read_timeout > 0):
            raise ValueError("timeouts must be positive")
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        trading = _base_url(trading_url)
        data = _base_url(data_url)
        self.paper = paper
        self._redactions = _secret_fragments(key_text, secret_text, trading, data)
        for fragment in self._redactions:
            register_secret(fragment)  # masked in every log line too, not only in ours
        self._limiter = limiter or SlidingWindowLimiter()
        self._retry = retry or RetryPolicy()
        self._penny_pilot = frozenset(s.upper() for s in penny_pilot)
        self._option_feed = option_feed
        self._stock_feed = stock_feed
        # Wall time for X-RateLimit-Reset (a Unix time): the real clock, whatever the daemon runs on.
        self._wall: Clock = clock or RealClock()
        self._timeouts = (float(connect_timeout), float(read_timeout))
        # The thread is the backstop for a peer trickling bytes under the read timeout.
        self._deadline = connect_timeout + read_timeout + 2.0
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="alpaca-http"
        )
        self._slots = asyncio.Semaphore(max_workers)
        self._options_level: int | None = None
        self._options_level_at = -math.inf
        self._closed = False
        self._trading = TradingClient(key_text, secret_text, paper=paper, url_override=trading)
        self._options = OptionHistoricalDataClient(key_text, secret_text, url_override=data)
        self._stocks = StockHistoricalDataClient(key_text, secret_text, url_override=data)
        for client in (self._trading, self._options, self._stocks):
            _harden(client, _TimeoutSession(self._timeouts, max_workers))
        log.info(
            "alpaca_broker_created",
            paper=paper,
            custom_endpoint=trading is not None,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            rate_limit=f"{self._limiter.max_requests}/{self._limiter.period:g}s",
            max_attempts=self._retry.max_attempts,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> AlpacaBroker:
        """The adapter the daemon uses for ``broker.kind = "alpaca"``.

        Paper unless ``mode = "live"``; ``ALPACA__ENDPOINT`` (one URL) overrides
        both the trading and the data host. No credentials: refused, live or not.
        """
        broker = settings.broker
        live = settings.mode == "live"
        if broker.key is None or broker.secret is None:
            raise AlpacaConfigError(
                "broker.kind = 'alpaca' needs credentials: set ALPACA__KEY and ALPACA__SECRET"
                + (" (mode = 'live' refuses to start without them)" if live else "")
            )
        endpoint = broker.endpoint.get_secret_value().strip() if broker.endpoint else None
        if live:
            log.warning(
                "live_trading_enabled",
                account=broker.account,
                endpoint="custom" if endpoint else "alpaca-live",
                note="REAL MONEY: orders go to the live Alpaca account",
            )
        read = broker.request_timeout_seconds
        options: dict[str, Any] = {
            "key": broker.key,
            "secret": broker.secret,
            "trading_url": endpoint or None,
            "data_url": endpoint or None,
            "paper": not live,
            "connect_timeout": min(3.05, read),
            "read_timeout": read,
        }
        options.update(overrides)
        return cls(**options)

    async def aclose(self) -> None:
        """Stop the worker threads (a request still running finishes on its own) and the sessions."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        for client in (self._trading, self._options, self._stocks):
            client._session.close()

    def legal_limit_price(
        self, price: Decimal, *, symbol: str | None, side: Side | None, multi_leg: bool = False
    ) -> Decimal:
        """``price`` rounded, in our favour, to the increment Alpaca accepts for ``symbol``
        (see ``round_limit_price``; the penny-program names are the constructor's)."""
        return round_limit_price(
            price, symbol=symbol, side=side, penny_pilot=self._penny_pilot, multi_leg=multi_leg
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        for fragment in self._redactions:
            text = text.replace(fragment, "***")
        return text

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        """Run one blocking request on our pool, within the rate limit and a deadline.

        A slot is freed only when its thread is, so a request that outlived its
        deadline still counts against the pool.
        """
        if self._closed:
            raise BrokerError("the Alpaca broker is closed")
        loop = asyncio.get_running_loop()
        await self._slots.acquire()
        try:
            # The rate grant is taken with a thread in hand, so the request leaves at
            # once: a grant followed by a wait for a thread would bunch arrivals.
            await self._limiter.acquire()
            future = self._executor.submit(fn)
        except BaseException:
            self._slots.release()
            raise

        def release(_: concurrent.futures.Future[T]) -> None:
            # A closed loop raises RuntimeError: then nobody is waiting for the slot.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._slots.release)

        future.add_done_callback(release)
        return await asyncio.wait_for(asyncio.wrap_future(future), self._deadline)

    async def _request(
        self,
        op: str,
        fn: Callable[[], Any],
        parse: Callable[[Any], Any] | None = None,
        *,
        action: Action = "read",
        client_order_id: str | None = None,
    ) -> Any:
        """One HTTP request (no retry): a rate-limit grant, the call, the error mapping, parsing."""
        try:
            raw = await self._in_thread(fn)
        except APIError as exc:
            response = exc.response
            headers: Mapping[str, str] = response.headers if response is not None else {}
            failure = http_failure(
                exc.status_code or 0, self._redact(str(exc)), headers, self._wall.now().timestamp()
            )
            error = classify_http_failure(failure, action=action, client_order_id=client_order_id)
            if isinstance(error, RateLimited) and error.retry_after:
                self._limiter.pause(error.retry_after)
            # A 404 is the expected answer of a look-up that finds nothing.
            emit = (
                log.warning
                if isinstance(error, BrokerUnavailable)
                else log.debug
                if isinstance(error, NotFound)
                else log.info
            )
            emit(
                "alpaca_request_failed",
                op=op,
                status=failure.status,
                code=failure.code,
                error=type(error).__name__,
                message=failure.message,
            )
            raise error from None
        except (requests.RequestException, OSError) as exc:
            # OSError covers the deadline (TimeoutError) and socket errors that escape requests.
            error = classify_transport_error(exc, self._redact(str(exc))[:300])
            log.warning(
                "alpaca_request_failed",
                op=op,
                error=type(exc).__name__,
                maybe_processed=error.maybe_processed,
                message=str(error),
            )
            raise error from None
        except ValidationError as exc:
            raise BrokerProtocolError(
                f"{op}: unexpected response ({exc.error_count()} validation error(s): "
                f"{self._redact(str(exc.errors()[:2]))[:300]})"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # alpaca-py reading a body it did not expect (after the checks above).
            raise BrokerProtocolError(
                f"{op}: unexpected response: {self._redact(str(exc))[:300]}"
            ) from None
        if parse is None:
            return raw
        try:
            return parse(raw)
        except (ValueError, KeyError, TypeError, ArithmeticError, AttributeError) as exc:
            raise BrokerProtocolError(
                f"{op}: unexpected response: {self._redact(str(exc))[:300]}"
            ) from None

    @staticmethod
    async def _log_retry(op: str, state: Any) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "alpaca_retry_scheduled",
            op=op,
            attempt=state.attempt_number,
            wait_seconds=round(state.upcoming_sleep, 3),
            error=type(exc).__name__ if exc else None,
            retry_after=getattr(exc, "retry_after", None),
        )

    def _retrying(self, op: str) -> Any:
        return self._retry.retrying(
            BrokerUnavailable, before_sleep=functools.partial(self._log_retry, op)
        )

    async def _call(
        self, op: str, fn: Callable[[], Any], parse: Callable[[Any], Any] | None = None
    ) -> Any:
        """An idempotent request, retried on temporary failures."""
        result: Any = None
        async for attempt in self._retrying(op):
            with attempt:
                result = await self._request(op, fn, parse)
        return result

    # -- account and positions ---------------------------------------------------------------

    async def get_account(self) -> Account:
        account: Account = await self._call(
            "get_account", self._trading.get_account, account_from_alpaca
        )
        self._options_level = account.options_approved_level
        self._options_level_at = self._wall.monotonic()
        return account

    async def get_positions(self) -> list[Position]:
        positions: list[Position] = await self._call(
            "get_positions",
            self._trading.get_all_positions,
            lambda rows: [position_from_alpaca(p) for p in rows],
        )
        return positions

    # -- market data ---------------------------------------------------------------------------

    async def get_option_contracts(
        self,
        underlying: str,
        expiry_from: date,
        expiry_to: date,
        right: OptionRight | None = None,
        strike_from: Decimal | None = None,
        strike_to: Decimal | None = None,
    ) -> list[ContractInfo]:
        """Listed contracts with explicit expiry bounds (Alpaca's default is "until next weekend")."""
        out: list[ContractInfo] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            request = GetOptionContractsRequest(
                underlying_symbols=[underlying],
                status=AssetStatus.ACTIVE,
                expiration_date_gte=expiry_from,
                expiration_date_lte=expiry_to,
                type=None
                if right is None
                else (ContractType.CALL if right is OptionRight.CALL else ContractType.PUT),
                strike_price_gte=None if strike_from is None else str(strike_from),
                strike_price_lte=None if strike_to is None else str(strike_to),
                limit=CONTRACTS_PAGE_LIMIT,
                page_token=token,
            )
            page = await self._call(
                "get_option_contracts",
                functools.partial(self._trading.get_option_contracts, request),
            )
            out.extend(contract_from_alpaca(c) for c in page.option_contracts or [])
            next_token = page.next_page_token
            if not next_token or next_token == token:
                return out
            token = next_token
        raise BrokerProtocolError(f"get_option_contracts: more than {MAX_PAGES} pages")

    def _snapshot_page(
        self, path: str, params: dict[str, Any]
    ) -> tuple[dict[str, tuple[OptionsSnapshot, int | None]], str | None]:
        """One page of option snapshots, parsed in the worker thread (CPU off the event loop).

        alpaca-py's model drops the daily bar, so the day's volume is read from the raw JSON.
        """
        body = self._options.get(path, params)
        if not isinstance(body, dict):
            raise ValueError(f"expected an object, got {type(body).__name__}")
        raw = body.get("snapshots") or {}
        snapshots = {
            sym: (OptionsSnapshot(sym, data), _daily_volume(data))
            for sym, data in raw.items()
            if data
        }
        token = body.get("next_page_token")
        return snapshots, token if isinstance(token, str) and token else None

    async def _paged_snapshots(
        self, op: str, path: str, params: dict[str, Any]
    ) -> dict[str, tuple[OptionsSnapshot, int | None]]:
        out: dict[str, tuple[OptionsSnapshot, int | None]] = {}
        token: str | None = None
        for _ in range(MAX_PAGES):
            page_params = {**params, "limit": SNAPSHOTS_PAGE_LIMIT}
            if token:
                page_params["page_token"] = token
            snapshots, next_token = await self._call(
                op, functools.partial(self._snapshot_page, path, page_params)
            )
            out.update(snapshots)
            if not next_token or next_token == token:
                return out
            token = next_token
        raise BrokerProtocolError(f"{op}: more than {MAX_PAGES} pages")

    async def get_option_chain(
        self, underlying: str, expiry_from: date | None = None, expiry_to: date | None = None
    ) -> list[OptionSnapshot]:
        params = OptionChainRequest(
            underlying_symbol=underlying,
            feed=self._option_feed,
            expiration_date_gte=expiry_from,
            expiration_date_lte=expiry_to,
        ).to_request_fields()
        params.pop("underlying_symbol", None)
        raw = await self._paged_snapshots(
            "get_option_chain", f"/options/snapshots/{underlying}", params
        )
        chain = [
            s for s in (option_snapshot_from_alpaca(snap, vol) for snap, vol in raw.values()) if s
        ]
        chain.sort(key=lambda s: (s.contract.expiry, s.contract.strike, s.contract.right.value))
        if len(chain) < len(raw):
            log.info(
                "alpaca_chain_snapshots_skipped",
                underlying=underlying,
                skipped=len(raw) - len(chain),
                reason="no quote or not an OCC symbol",
            )
        return await self._with_open_interest(underlying, chain)

    async def _with_open_interest(
        self, underlying: str, chain: list[OptionSnapshot]
    ) -> list[OptionSnapshot]:
        """Alpaca's snapshots carry no open interest; the contracts listing does: merge it."""
        if not chain:
            return chain
        contracts = await self.get_option_contracts(
            underlying, chain[0].contract.expiry, max(s.contract.expiry for s in chain)
        )
        interest = {c.symbol: c.open_interest for c in contracts if c.open_interest is not None}
        return [
            dataclasses.replace(s, open_interest=interest[s.symbol])
            if s.open_interest is None and s.symbol in interest
            else s
            for s in chain
        ]

    async def get_option_quotes(self, symbols: Sequence[str]) -> dict[str, OptionSnapshot]:
        """Snapshots of the given OCC symbols; unknown, unlisted or malformed ones are left out."""
        wanted = list(dict.fromkeys(s for s in symbols if _option_contract(s) is not None))
        out: dict[str, OptionSnapshot] = {}
        for chunk in _chunks(wanted, SYMBOLS_PER_REQUEST):
            params = OptionSnapshotRequest(
                symbol_or_symbols=chunk, feed=self._option_feed
            ).to_request_fields()
            raw = await self._paged_snapshots("get_option_quotes", "/options/snapshots", params)
            for symbol, (snapshot, volume) in raw.items():
                mapped = option_snapshot_from_alpaca(snapshot, volume)
                if mapped is not None:
                    out[symbol] = mapped
        return out

    async def get_stock_quotes(self, symbols: Sequence[str]) -> dict[str, StockQuote]:
        wanted = list(dict.fromkeys(symbols))
        out: dict[str, StockQuote] = {}
        for chunk in _chunks(wanted, SYMBOLS_PER_REQUEST):
            request = StockSnapshotRequest(symbol_or_symbols=chunk, feed=self._stock_feed)
            snapshots = await self._call(
                "get_stock_quotes", functools.partial(self._stocks.get_stock_snapshot, request)
            )
            for symbol, snapshot in snapshots.items():
                quote = stock_quote_from_alpaca(snapshot)
                if quote is not None and symbol in chunk:
                    out[symbol] = quote
        return out

    # -- orders ------------------------------------------------------------------------------

    async def _require_spreads(self, client_order_id: str) -> None:
        """Multi-leg orders need options level 3: refuse here rather than spend a round trip."""
        if (
            self._options_level is None
            or self._wall.monotonic() - self._options_level_at > OPTIONS_LEVEL_TTL_SECONDS
        ):
            await self.get_account()
        level = self._options_level or 0
        if level < SPREADS_LEVEL:
            log.warning(
                "alpaca_order_rejected",
                client_order_id=client_order_id,
                reason="options_level",
                where="local",
                level=level,
            )
            raise OrderRejected(
                f"options_level: multi-leg (spread) orders need options level {SPREADS_LEVEL}; "
                f"the account is approved for level {level}",
                client_order_id,
            )

    async def _lookup_once(self, client_order_id: str) -> Order | None:
        """One look-up by client order id (no retry): the order, or None if the broker has none."""
        try:
            order: Order = await self._request(
                "get_order_by_client_id",
                functools.partial(self._trading.get_order_by_client_id, client_order_id),
                order_from_alpaca,
            )
        except NotFound:
            return None
        return order

    async def submit_order(self, request: OrderRequest) -> Order:
        cid = request.client_order_id
        problem = order_request_problems(request)
        if problem is not None:
            log.warning("alpaca_order_rejected", client_order_id=cid, reason=problem, where="local")
            raise OrderRejected(problem, cid)
        if request.legs:
            await self._require_spreads(cid)
        alpaca_request = to_alpaca_order_request(request)
        state = _SubmitState()
        order: Order | None = None
        try:
            async for attempt in self._retrying("submit_order"):
                with attempt:
                    order = await self._submit_attempt(alpaca_request, cid, state)
        except BrokerUnavailable as exc:
            if state.maybe_sent:
                log.error(
                    "alpaca_order_outcome_unknown",
                    client_order_id=cid,
                    attempts=state.attempts,
                    causes=state.causes[-3:],
                )
                raise OrderOutcomeUnknown(cid, str(exc)) from None
            raise
        except OrderRejected as exc:
            log.warning(
                "alpaca_order_rejected",
                client_order_id=cid,
                reason=exc.reason,
                where="broker",
                duplicate=isinstance(exc, DuplicateClientOrderId),
            )
            raise
        assert order is not None
        log.info(
            "alpaca_order_submitted",
            client_order_id=cid,
            order_id=order.id,
            status=order.status.value,
            attempts=state.attempts,
        )
        return order

    async def _submit_attempt(
        self, request: LimitOrderRequest | MarketOrderRequest, cid: str, state: _SubmitState
    ) -> Order:
        """One attempt: if an earlier one may have landed, ask for it first; else (re)send."""
        state.attempts += 1
        if state.maybe_sent:
            found = await self._lookup_once(cid)
            if found is not None:
                log.info("alpaca_order_resolved", client_order_id=cid, order_id=found.id)
                return found
        try:
            order: Order = await self._request(
                "submit_order",
                functools.partial(self._trading.submit_order, request),
                order_from_alpaca,
                action="submit",
                client_order_id=cid,
            )
        except TemporaryFailure as exc:
            state.causes.append(str(exc))
            state.maybe_sent = state.maybe_sent or exc.maybe_processed
            raise
        except BrokerProtocolError as exc:
            # A 2xx we cannot read: the order exists. The look-up parses the same
            # body, so say so rather than loop.
            raise OrderOutcomeUnknown(cid, str(exc)) from None
        except OrderRejected:
            if not state.maybe_sent:
                raise
            # An earlier attempt of ours may have landed since the look-up (a hung
            # request, processed late): a duplicate id or a buying-power refusal
            # then means "it is there". Only the look-up can tell.
            found = await self._lookup_once(cid)
            if found is not None:
                log.info("alpaca_order_resolved", client_order_id=cid, order_id=found.id)
                return found
            raise
        return order

    async def get_order(self, order_id: str) -> Order:
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise NotFound(f"no order with id {order_id!r}") from None
        order: Order = await self._call(
            "get_order",
            functools.partial(
                self._trading.get_order_by_id, order_id, GetOrderByIdRequest(nested=True)
            ),
            order_from_alpaca,
        )
        return order

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        try:
            order: Order = await self._call(
                "get_order_by_client_id",
                functools.partial(self._trading.get_order_by_client_id, client_order_id),
                order_from_alpaca,
            )
        except NotFound:
            return None
        return order

    async def list_open_orders(self) -> list[Order]:
        """Open orders, oldest first, paged by submission time (Alpaca returns at most 500)."""
        seen: dict[str, Order] = {}
        after: datetime | None = None
        for _ in range(MAX_PAGES):
            request = GetOrdersRequest(
                status=QueryOrderStatus.OPEN,
                limit=ORDERS_PAGE_LIMIT,
                nested=True,
                direction=Sort.ASC,
                after=after,
            )
            page: list[Order] = await self._call(
                "list_open_orders",
                functools.partial(self._trading.get_orders, request),
                lambda rows: [order_from_alpaca(o) for o in rows],
            )
            fresh = [o for o in page if o.id not in seen]
            seen.update((o.id, o) for o in fresh)
            if len(page) < ORDERS_PAGE_LIMIT or not fresh:
                break
            # ``after`` is exclusive: step back a microsecond so equal times are not skipped.
            after = max(o.submitted_at for o in page) - _MICROSECOND
        return sorted(seen.values(), key=lambda o: o.submitted_at)

    async def cancel_order(self, order_id: str) -> None:
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise NotFound(f"no order with id {order_id!r}") from None
        try:
            async for attempt in self._retrying("cancel_order"):
                with attempt:
                    await self._request(
                        "cancel_order",
                        functools.partial(self._trading.cancel_order_by_id, order_id),
                        action="cancel",
                    )
        except OrderRejected:
            # Not cancelable: fine if it is canceled already (an earlier attempt whose
            # response was lost, or someone else); a fill or an expiry is the caller's news.
            if (await self.get_order(order_id)).status is not OrderStatus.CANCELED:
                raise
        log.info("alpaca_order_cancel_requested", order_id=order_id)

    async def close_position(self, symbol: str, qty: Decimal | None = None) -> Order:
        """Close all or ``qty`` of a position with a market order of our own.

        Not Alpaca's ``DELETE /v2/positions``: that creates an order under a
        client order id we do not know, so a lost response could not be
        resolved and a retry would close twice. Ours goes through
        ``submit_order`` with a fresh client order id.
        """
        position: Position = await self._call(
            "get_position",
            functools.partial(self._trading.get_open_position, symbol),
            position_from_alpaca,
        )
        amount = abs(position.qty) if qty is None else qty
        if amount <= 0 or amount > abs(position.qty):
            raise OrderRejected(
                f"close_position: qty {amount} must be > 0 and at most the position's "
                f"{abs(position.qty)}"
            )
        long = position.qty > 0
        request = OrderRequest(
            client_order_id=f"close-{uuid.uuid4().hex}",
            qty=amount,
            type=OrderType.MARKET,
            symbol=symbol,
            side=Side.SELL if long else Side.BUY,
            position_intent=(
                (PositionIntent.SELL_TO_CLOSE if long else PositionIntent.BUY_TO_CLOSE)
                if position.is_option
                else None
            ),
        )
        return await self.submit_order(request)

    # -- activities and the clock ----------------------------------------------------------------

    async def get_activities(
        self, since: datetime, types: Sequence[ActivityType] | None = None
    ) -> list[Activity]:
        """Account activities since ``since``, oldest first, paged (raw JSON: alpaca-py has no
        method for them and its activity models reject real responses)."""
        wanted = tuple(dict.fromkeys(types)) if types else tuple(ActivityType)
        if not wanted:
            return []
        params: dict[str, Any] = {
            "activity_types": ",".join(t.value for t in wanted),
            "after": _aware(since).isoformat(),
            "direction": "asc",
            "page_size": ACTIVITIES_PAGE_SIZE,
        }
        out: list[Activity] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            page_params = {**params, **({"page_token": token} if token else {})}
            rows = await self._call(
                "get_activities",
                functools.partial(self._trading.get, "/account/activities", page_params),
                _activity_rows,
            )
            out.extend(a for a in map(activity_from_json, rows) if a and a.activity_type in wanted)
            if len(rows) < ACTIVITIES_PAGE_SIZE:
                return out
            next_token = str(rows[-1].get("id") or "")
            if not next_token or next_token == token:
                return out
            token = next_token
        raise BrokerProtocolError(f"get_activities: more than {MAX_PAGES} pages")

    async def is_market_open(self) -> bool:
        is_open: bool = await self._call(
            "get_clock", self._trading.get_clock, lambda clock: bool(clock.is_open)
        )
        return is_open


def _activity_rows(body: Any) -> list[Mapping[str, Any]]:
    if not isinstance(body, list) or not all(isinstance(row, dict) for row in body):
        raise ValueError("account activities: expected a list of objects")
    return body
