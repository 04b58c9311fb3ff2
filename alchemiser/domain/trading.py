"""What a broker and a market say: accounts, positions, orders, fills, activities, quotes.

Shaped after Alpaca's REST objects (what alpaca-py returns) so the Alpaca
adapter maps field for field, but typed our way: money and quantities are
Decimal, times are aware UTC datetimes, enums are ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from alchemiser.domain.options import OptionContract


class AssetClass(StrEnum):
    EQUITY = "us_equity"
    OPTION = "us_option"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    DAY = "day"


class OrderClass(StrEnum):
    SIMPLE = "simple"
    MLEG = "mleg"  # a multi-leg option order (spreads), filled as one unit


class PositionIntent(StrEnum):
    BUY_TO_OPEN = "buy_to_open"
    BUY_TO_CLOSE = "buy_to_close"
    SELL_TO_OPEN = "sell_to_open"
    SELL_TO_CLOSE = "sell_to_close"


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


class ActivityType(StrEnum):
    FILL = "FILL"  # a (partial) fill of an order
    OPTRD = "OPTRD"  # option trade
    OPASN = "OPASN"  # option assignment (short option)
    OPEXC = "OPEXC"  # option exercise (long option)
    OPEXP = "OPEXP"  # option expired worthless
    FEE = "FEE"


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    cash: Decimal
    equity: Decimal  # net liquidation value (NAV)
    buying_power: Decimal
    options_buying_power: Decimal
    long_market_value: Decimal
    short_market_value: Decimal
    options_approved_level: int  # 0-3 as Alpaca: 3 allows spreads
    maintenance_margin: Decimal = Decimal(0)
    trading_blocked: bool = False


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str  # ticker, or OCC symbol for options
    asset_class: AssetClass
    qty: Decimal  # signed: negative is short
    avg_entry_price: Decimal
    current_price: Decimal
    market_value: Decimal  # signed, qty × price × multiplier
    cost_basis: Decimal  # signed
    multiplier: int = 1  # 100 for standard options

    @property
    def is_option(self) -> bool:
        return self.asset_class is AssetClass.OPTION


@dataclass(frozen=True, slots=True)
class OrderLeg:
    symbol: str
    side: Side
    ratio_qty: int = 1
    position_intent: PositionIntent | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What we ask the broker to do. ``client_order_id`` is deterministic per intent."""

    client_order_id: str
    qty: Decimal
    type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Decimal | None = None  # for mleg: net price, positive debit / negative credit
    symbol: str | None = None  # single leg
    side: Side | None = None  # single leg
    position_intent: PositionIntent | None = None
    legs: tuple[OrderLeg, ...] = ()  # multi-leg

    @property
    def order_class(self) -> OrderClass:
        return OrderClass.MLEG if self.legs else OrderClass.SIMPLE


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    client_order_id: str
    status: OrderStatus
    order_class: OrderClass
    type: OrderType
    qty: Decimal
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    limit_price: Decimal | None
    submitted_at: datetime
    updated_at: datetime
    symbol: str | None = None
    side: Side | None = None
    legs: tuple[OrderLeg, ...] = ()
    reject_reason: str | None = None

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty


@dataclass(frozen=True, slots=True)
class Activity:
    """An account activity (Alpaca's /v2/account/activities), for reconciliation."""

    id: str
    activity_type: ActivityType
    occurred_at: datetime
    symbol: str
    qty: Decimal  # signed as Alpaca: what changed in the position
    price: Decimal | None = None
    side: Side | None = None
    order_id: str | None = None
    net_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class StockQuote:
    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    timestamp: datetime
    bid_size: int = 0
    ask_size: int = 0

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class Greeks:
    delta: float
    gamma: float
    theta: float  # per calendar day
    vega: float  # per vol point
    rho: float  # per rate point


@dataclass(frozen=True, slots=True)
class OptionSnapshot:
    """A quote of one option with its greeks and IV (Alpaca's option snapshot)."""

    contract: OptionContract
    bid: Decimal
    ask: Decimal
    bid_size: int
    ask_size: int
    timestamp: datetime
    implied_volatility: float | None = None
    greeks: Greeks | None = None
    last: Decimal | None = None
    open_interest: int | None = None
    volume: int | None = None
    underlying_price: Decimal | None = None

    @property
    def symbol(self) -> str:
        return self.contract.occ_symbol

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class ContractInfo:
    """A listed option contract (Alpaca's /v2/options/contracts item)."""

    contract: OptionContract
    underlying: str
    tradable: bool = True
    multiplier: int = 100
    open_interest: int | None = None
    close_price: Decimal | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def symbol(self) -> str:
        return self.contract.occ_symbol

    @property
    def expiry(self) -> date:
        return self.contract.expiry
