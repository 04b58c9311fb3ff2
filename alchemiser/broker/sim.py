"""The simulated broker: an Alpaca-like account over the synthetic market, kept in the database.

``SimBroker`` implements the :class:`~alchemiser.broker.base.Broker` protocol.
Its book (cash, positions, orders, fills, activities) and the instant up to
which it has processed the market live in the database (``store.sim_state``),
so a restarted daemon continues where it stopped.

Time comes from the Clock and the market is processed lazily: every public
call first runs :meth:`SimBroker.sync`, which replays everything due between
the last processed instant and now, in order:

- **matching passes** while the market is open, on a grid of
  ``match_interval_seconds`` from each session's open. A pass fills each
  eligible open order at most once, up to the size quoted at that instant
  (the rest waits for a later pass: partial fills). An order is also matched
  once when it is accepted during market hours, like an incoming order
  meeting the book; after a match it waits at least one interval.
  A buy fills at the ask when ask ≤ limit, a sell at the bid when
  bid ≥ limit, a market order at the ask/bid; a multi-leg order fills all legs
  at once when its natural net price (Σ buy asks − Σ sell bids, per unit)
  is ≤ its net limit (positive debit, negative credit). Bad quotes (crossed,
  non-positive ask, zero size) never fill anything.
- **at each session close** (early closes included): open day orders expire;
  short options that are deep in the money with little time value left may
  be assigned early (``early_assignment_probability`` per session, a
  deterministic draw per account, session and contract); options expiring
  that day settle at the underlying's closing price — in the money by
  ≥ $0.01 exercised (long) or assigned (short) into shares at the strike,
  otherwise expired worthless.

Every fill, exercise, assignment and expiry writes its position, cash, order
and activity changes in one transaction. Activities follow Alpaca: FILL,
OPEXC, OPASN, OPEXP (and FEE when fees are set), ``qty`` signed as the change
of the position. An exercise or assignment records two activities of its type:
the option leaving (net amount 0) and the shares delivered at the strike
(net amount the cash paid or received).

Acceptance applies the rules of :mod:`alchemiser.broker.sim_rules` (what
Alpaca would reject) and raises ``OrderRejected`` whose reason starts with the
rule's name (``price_increment: ...``, ``buying_power: ...``). Buying power is
checked pro forma: the account as if the order filled at its limit (a market
order at the touch), paper gains not counted, less the excess that open
orders already reserve.
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import structlog

from alchemiser.broker.base import (
    DuplicateClientOrderId,
    NotFound,
    OrderRejected,
)
from alchemiser.broker.sim_rules import (
    MLEG_TICK,
    OPTION_MULTIPLIER,
    Holding,
    LegChange,
    MarginSummary,
    OptionsLevel,
    RuleViolation,
    apply_trade,
    check_buying_power,
    check_options_level,
    check_price_increment,
    contract_fee,
    early_assignment_candidate,
    expires_in_the_money,
    margin_summary,
    stock_tick,
)
from alchemiser.clock import Clock, to_new_york
from alchemiser.domain.options import OccSymbolError, OptionContract, OptionRight, parse_occ
from alchemiser.domain.ticks import option_tick
from alchemiser.domain.trading import (
    Account,
    Activity,
    ActivityType,
    AssetClass,
    ContractInfo,
    OptionSnapshot,
    Order,
    OrderClass,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    PositionIntent,
    Side,
    StockQuote,
    TimeInForce,
)
from alchemiser.store.sim_state import (
    SimBrokerStore,
    SimFillRecord,
    SimOrderRecord,
    SimPositionRecord,
    SimStateTx,
    with_status,
)
from alchemiser.trading_calendar import TradingCalendar, nyse_calendar

if TYPE_CHECKING:
    from alchemiser.broker.sim_scenario import SimScenario
    from alchemiser.sim.market import SimMarket

__all__ = ["SimAccountMissing", "SimBroker", "SimBrokerConfig"]

log = structlog.stdlib.get_logger("alchemiser.broker.sim")

ZERO = Decimal(0)
CENT = Decimal("0.01")
CLIENT_ORDER_ID_MAX = 128
MAX_LEGS = 4
# Namespace of order ids: uuid5(account id + client order id) is unique per
# account (client ids are) and the same on every replay of a backtest.
_ORDER_NAMESPACE = uuid.UUID("6f1d3c1e-5b7a-4f0e-9a57-2f1c8f0b6d11")


class SimAccountMissing(RuntimeError):
    """The simulated account has not been created: seed it from a scenario first."""


@dataclass(frozen=True, slots=True)
class SimBrokerConfig:
    """How the simulated broker behaves (the scenario file supplies these)."""

    account_id: str = "sim"
    # Alpaca's options approval level: 1 covered calls/CSPs, 2 + long options, 3 + spreads.
    options_level: int = 3
    fee_per_contract: Decimal = Decimal(0)
    # Chance per session that a deep-ITM short option with little time value is assigned early.
    early_assignment_probability: float = 0.05
    # "Little time value": the option's model value minus its intrinsic value, per share.
    early_assignment_max_time_value: Decimal = Decimal("0.05")
    # Seconds of simulated time between matching passes (and between fills of one order).
    match_interval_seconds: float = 60.0
    # Mixed into the early-assignment draws; change it to get another (deterministic) history.
    random_seed: int = 0

    def __post_init__(self) -> None:
        if not self.account_id or len(self.account_id) > 64:
            raise ValueError(f"account_id must be 1-64 characters, got {self.account_id!r}")
        if self.options_level not in (0, 1, 2, 3):
            raise ValueError(f"options_level must be 0-3, got {self.options_level}")
        if not isinstance(self.fee_per_contract, Decimal) or self.fee_per_contract < 0:
            raise ValueError(
                f"fee_per_contract must be a Decimal >= 0, got {self.fee_per_contract!r}"
            )
        if not 0.0 <= self.early_assignment_probability <= 1.0:
            raise ValueError(
                "early_assignment_probability must be within 0-1, got "
                f"{self.early_assignment_probability}"
            )
        if self.early_assignment_max_time_value < 0:
            raise ValueError("early_assignment_max_time_value must be >= 0")
        if not (
            math.isfinite(self.match_interval_seconds) and 1 <= self.match_interval_seconds <= 3600
        ):
            raise ValueError(
                f"match_interval_seconds must be within 1-3600, got {self.match_interval_seconds}"
            )


@dataclass(frozen=True, slots=True)
class _Leg:
    """One instrument an order trades: ``ratio`` units of it per unit of the order."""

    symbol: str
    contract: OptionContract | None
    side: Side
    ratio: int = 1
    intent: PositionIntent | None = None

    @property
    def multiplier(self) -> int:
        return OPTION_MULTIPLIER if self.contract is not None else 1

    @property
    def sign(self) -> int:
        return 1 if self.side is Side.BUY else -1


@dataclass(slots=True)
class _Touch:
    """Top of book of one instrument at one instant; sizes shrink as a pass consumes them."""

    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal


@dataclass(frozen=True, slots=True)
class _Execution:
    units: Decimal
    net_price: Decimal  # per unit of the order (per share / per option, before multiplier)
    legs: tuple[tuple[_Leg, Decimal, Decimal], ...]  # leg, signed delta, price


@dataclass(slots=True)
class _Book:
    """Cash and signed quantities, for pro-forma margin."""

    cash: Decimal
    qty: dict[str, Decimal] = field(default_factory=dict)

    def copy(self) -> _Book:
        return _Book(self.cash, dict(self.qty))


def _contract_of(symbol: str) -> OptionContract | None:
    """The option contract an OCC symbol names, or None for a stock ticker."""
    if len(symbol) <= 6:
        return None  # tickers are short; OCC symbols carry 15 more characters
    try:
        return parse_occ(symbol)
    except OccSymbolError:
        return None


def _to_decimal(value: float | Decimal) -> Decimal | None:
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if not math.isfinite(value):
        return None
    return Decimal(repr(value))


def _order_id(account_id: str, client_order_id: str) -> str:
    return str(uuid.uuid5(_ORDER_NAMESPACE, f"{account_id}\x00{client_order_id}"))


class SimBroker:
    """The Broker protocol over the synthetic market, persisted in the database."""

    def __init__(
        self,
        market: SimMarket,
        clock: Clock,
        store: SimBrokerStore,
        config: SimBrokerConfig | None = None,
        calendar: TradingCalendar | None = None,
    ) -> None:
        self._market = market
        self._clock = clock
        self._store = store
        self.config = config or SimBrokerConfig()
        self._calendar: TradingCalendar = (
            calendar or getattr(market, "calendar", None) or nyse_calendar()
        )
        self._id = self.config.account_id
        self._interval = timedelta(seconds=self.config.match_interval_seconds)
        # One step at a time: matching, settlement and acceptance must not interleave.
        self._lock = asyncio.Lock()
        self._warned_clock_behind = False
        self._margin_call_day: date | None = None

    @property
    def account_id(self) -> str:
        return self._id

    # -- creating the account --------------------------------------------------

    async def is_seeded(self) -> bool:
        return await self._store.get_account(self._id) is not None

    async def seed(self, scenario: SimScenario) -> bool:
        """Open the account from a scenario unless it exists already (first start only).

        Returns True if the account was created now, False if the database
        already held it (the scenario is then ignored: the book continues).
        """
        from alchemiser.broker.sim_scenario import ScenarioError

        if await self.is_seeded():
            return False
        unknown = sorted(set(scenario.book.weights) - set(self._market.symbols))
        if unknown:
            raise ScenarioError(
                scenario.source,
                [
                    f"book.weights: {', '.join(unknown)} not in the simulated market's universe "
                    f"({', '.join(self._market.symbols)})"
                ],
            )
        now = self._clock.now()
        prices = {s: self._stock_mark(s, now) for s in scenario.book.weights}
        cash, shares = scenario.opening_book(prices)
        return await self.seed_book(cash, shares, label=scenario.name, prices=prices)

    async def seed_book(
        self,
        cash: Decimal,
        shares: Mapping[str, Decimal] | None = None,
        *,
        label: str | None = None,
        prices: Mapping[str, Decimal] | None = None,
    ) -> bool:
        """Open the account with ``cash`` and stock positions entered at today's marks."""
        now = self._clock.now()
        positions = []
        for symbol, qty in sorted((shares or {}).items()):
            if qty == 0:
                continue
            if symbol not in self._market.symbols:
                raise ValueError(f"cannot seed {symbol}: not in the simulated market")
            price = (prices or {}).get(symbol) or self._stock_mark(symbol, now)
            positions.append(SimPositionRecord(symbol, AssetClass.EQUITY, qty, price, 1))
        created = await self._store.create_account(self._id, cash, positions, now, label)
        if created:
            log.info(
                "sim_account_seeded",
                account_id=self._id,
                cash=str(cash),
                positions=len(positions),
                scenario=label,
            )
        return created

    # -- the Broker protocol ---------------------------------------------------

    async def get_account(self) -> Account:
        async with self._lock:
            await self._sync()
            return await self._account_view()

    async def get_positions(self) -> list[Position]:
        async with self._lock:
            await self._sync()
            now = self._clock.now()
            records = await self._store.get_positions(self._id)
            marks = self._marks({p.symbol for p in records}, now)
            return [self._position_view(p, marks[p.symbol]) for p in records]

    async def get_option_contracts(
        self,
        underlying: str,
        expiry_from: date,
        expiry_to: date,
        right: OptionRight | None = None,
        strike_from: Decimal | None = None,
        strike_to: Decimal | None = None,
    ) -> list[ContractInfo]:
        async with self._lock:
            await self._sync()
            return list(
                self._market.contracts(
                    underlying,
                    self._today(),
                    expiry_from,
                    expiry_to,
                    right=right,
                    strike_from=strike_from,
                    strike_to=strike_to,
                )
            )

    async def get_option_chain(
        self, underlying: str, expiry_from: date | None = None, expiry_to: date | None = None
    ) -> list[OptionSnapshot]:
        async with self._lock:
            await self._sync()
            return list(
                self._market.chain(
                    underlying, self._clock.now(), expiry_from=expiry_from, expiry_to=expiry_to
                )
            )

    async def get_option_quotes(self, symbols: Sequence[str]) -> dict[str, OptionSnapshot]:
        async with self._lock:
            await self._sync()
            return dict(self._market.option_quotes(list(symbols), self._clock.now()))

    async def get_stock_quotes(self, symbols: Sequence[str]) -> dict[str, StockQuote]:
        async with self._lock:
            await self._sync()
            now = self._clock.now()
            known = set(self._market.symbols)
            return {s: self._market.stock_quote(s, now) for s in symbols if s in known}

    async def submit_order(self, request: OrderRequest) -> Order:
        async with self._lock:
            await self._sync()
            try:
                record = await self._accept(request)
            except OrderRejected as exc:
                log.warning(
                    "sim_order_rejected",
                    client_order_id=request.client_order_id,
                    reason=exc.reason,
                    duplicate=isinstance(exc, DuplicateClientOrderId),
                )
                raise
            log.info(
                "sim_order_accepted",
                order_id=record.id,
                client_order_id=record.client_order_id,
                symbol=record.symbol,
                legs=[leg.symbol for leg in record.legs],
                qty=str(record.qty),
                limit_price=None if record.limit_price is None else str(record.limit_price),
            )
            now = self._clock.now()
            if self._calendar.is_open_at(now):
                # An incoming order meets the book at once, as at an exchange.
                await self._match_pass([record], now, first_look=True)
                record = await self._store.get_order(self._id, record.id) or record
            return record.to_order()

    async def get_order(self, order_id: str) -> Order:
        async with self._lock:
            await self._sync()
            record = await self._store.get_order(self._id, order_id)
            if record is None:
                raise NotFound(f"no order with id {order_id!r}")
            return record.to_order()

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        async with self._lock:
            await self._sync()
            record = await self._store.get_order_by_client_id(self._id, client_order_id)
            return None if record is None else record.to_order()

    async def list_open_orders(self) -> list[Order]:
        async with self._lock:
            await self._sync()
            return [r.to_order() for r in await self._store.open_orders(self._id)]

    async def cancel_order(self, order_id: str) -> None:
        async with self._lock:
            await self._sync()
            record = await self._store.get_order(self._id, order_id)
            if record is None:
                raise NotFound(f"no order with id {order_id!r}")
            if record.status is OrderStatus.CANCELED:
                return  # cancelling twice is harmless
            if not record.status.is_open:
                raise OrderRejected(
                    f"order_not_cancelable: order {order_id} is {record.status.value} "
                    "and can no longer be canceled",
                    record.client_order_id,
                )
            now = self._clock.now()
            await self._store.close_orders(self._id, [order_id], OrderStatus.CANCELED, now)
            log.info(
                "sim_order_canceled",
                order_id=order_id,
                client_order_id=record.client_order_id,
                filled_qty=str(record.filled_qty),
            )

    async def close_position(self, symbol: str, qty: Decimal | None = None) -> Order:
        async with self._lock:
            await self._sync()
            positions = {p.symbol: p for p in await self._store.get_positions(self._id)}
        position = positions.get(symbol)
        if position is None:
            raise NotFound(f"no open position in {symbol!r}")
        amount = abs(position.qty) if qty is None else qty
        if amount <= 0 or amount > abs(position.qty):
            raise OrderRejected(
                f"close_position: qty {amount} must be > 0 and at most the position's "
                f"{abs(position.qty)}"
            )
        is_option = position.asset_class is AssetClass.OPTION
        long = position.qty > 0
        request = OrderRequest(
            client_order_id=f"close-{uuid.uuid4().hex}",
            qty=amount,
            type=OrderType.MARKET,
            symbol=symbol,
            side=Side.SELL if long else Side.BUY,
            position_intent=(
                (PositionIntent.SELL_TO_CLOSE if long else PositionIntent.BUY_TO_CLOSE)
                if is_option
                else None
            ),
        )
        return await self.submit_order(request)

    async def get_activities(
        self, since: datetime, types: Sequence[ActivityType] | None = None
    ) -> list[Activity]:
        async with self._lock:
            await self._sync()
            return await self._store.get_activities(self._id, since, types)

    async def is_market_open(self) -> bool:
        async with self._lock:
            await self._sync()
            return self._calendar.is_open_at(self._clock.now())

    # -- driving time ------------------------------------------------------------

    async def sync(self) -> None:
        """Process everything due up to now: fills, day-order expiry, assignments, expiries."""
        async with self._lock:
            await self._sync()

    async def _sync(self) -> None:
        now = self._clock.now()
        account = await self._store.get_account(self._id)
        if account is None:
            raise SimAccountMissing(
                f"simulated account {self._id!r} does not exist: seed it from a scenario first"
            )
        cursor = account.processed_until
        if now <= cursor:
            if now < cursor and not self._warned_clock_behind:
                # A restarted daemon whose clock starts before the stored state.
                self._warned_clock_behind = True
                log.warning(
                    "sim_clock_behind",
                    now=now.isoformat(),
                    processed_until=cursor.isoformat(),
                )
            return
        orders = await self._store.open_orders(self._id)
        while cursor < now:
            session = self._session_ending_after(cursor)
            close = self._calendar.session_close(session)
            end = min(close, now)
            if orders:
                orders = await self._match_until(orders, session, cursor, end)
            if close <= now:
                orders = await self._close_session(session, close, orders)
                cursor = close
            else:
                cursor = now
        await self._store.set_processed_until(self._id, now)

    def _session_ending_after(self, instant: datetime) -> date:
        """The first session whose close is after ``instant``."""
        day = to_new_york(instant).date()
        if self._calendar.is_session(day) and self._calendar.session_close(day) > instant:
            return day
        return self._calendar.next_session(day)

    def _today(self) -> date:
        return to_new_york(self._clock.now()).date()

    # -- matching ------------------------------------------------------------------

    async def _match_until(
        self, orders: list[SimOrderRecord], session: date, after: datetime, end: datetime
    ) -> list[SimOrderRecord]:
        """Run the matching passes of ``session`` in (after, end]."""
        opens = self._calendar.session_open(session)
        close = self._calendar.session_close(session)
        t = self._grid_at_or_after(opens, max(after, opens), strictly_after=after >= opens)
        while orders and t <= end and t < close:
            eligible_from = min(self._eligible_from(o) for o in orders)
            if t < eligible_from:
                t = self._grid_at_or_after(opens, eligible_from, strictly_after=False)
                continue
            orders = await self._match_pass(orders, t)
            t += self._interval
        return orders

    def _grid_at_or_after(self, opens: datetime, at: datetime, *, strictly_after: bool) -> datetime:
        steps = (at - opens) / self._interval
        k = math.floor(steps) + 1 if strictly_after else math.ceil(steps)
        return opens + self._interval * max(k, 0)

    def _eligible_from(self, order: SimOrderRecord) -> datetime:
        if order.last_matched_at is None:
            return order.submitted_at
        return order.last_matched_at + self._interval

    async def _match_pass(
        self, orders: list[SimOrderRecord], at: datetime, *, first_look: bool = False
    ) -> list[SimOrderRecord]:
        """One look at the market for each eligible order; returns the orders still open."""
        eligible = [
            o
            for o in orders
            if o.submitted_at <= at and (first_look or self._eligible_from(o) <= at)
        ]
        if not eligible:
            return orders
        symbols = {leg.symbol for o in eligible for leg in self._legs_of(o)}
        touches = self._touches(symbols, at)
        still_open: list[SimOrderRecord] = []
        matched = {o.id for o in eligible}
        for order in orders:
            if order.id not in matched:
                still_open.append(order)
                continue
            execution = self._execution(order, touches)
            if execution is None:
                still_open.append(order)
                continue
            updated = await self._apply_fill(order, execution, at)
            if updated.status.is_open:
                still_open.append(updated)
        return still_open

    def _execution(self, order: SimOrderRecord, touches: dict[str, _Touch]) -> _Execution | None:
        legs = self._legs_of(order)
        books = [touches.get(leg.symbol) for leg in legs]
        if any(b is None for b in books):
            return None
        prices: list[Decimal] = []
        units = order.remaining_qty
        for leg, book in zip(legs, books, strict=True):
            assert book is not None
            if leg.side is Side.BUY:
                price, size = book.ask, book.ask_size
            else:
                price, size = book.bid, book.bid_size
            if price <= 0:
                return None
            prices.append(price)
            units = min(units, (size / leg.ratio).to_integral_value(rounding=ROUND_FLOOR))
        if units <= 0:
            return None
        net = sum((leg.sign * leg.ratio * p for leg, p in zip(legs, prices, strict=True)), ZERO)
        if order.type is OrderType.LIMIT:
            assert order.limit_price is not None
            if order.order_class is OrderClass.MLEG:
                crosses = net <= order.limit_price
            elif legs[0].side is Side.BUY:
                crosses = prices[0] <= order.limit_price
            else:
                crosses = prices[0] >= order.limit_price
            if not crosses:
                return None
        for leg, book in zip(legs, books, strict=True):
            assert book is not None
            # Displayed size taken by this order is gone for the rest of the pass.
            if leg.side is Side.BUY:
                book.ask_size -= units * leg.ratio
            else:
                book.bid_size -= units * leg.ratio
        return _Execution(
            units=units,
            net_price=net if order.order_class is OrderClass.MLEG else prices[0],
            legs=tuple(
                (leg, leg.sign * leg.ratio * units, p) for leg, p in zip(legs, prices, strict=True)
            ),
        )

    async def _apply_fill(
        self, order: SimOrderRecord, execution: _Execution, at: datetime
    ) -> SimOrderRecord:
        """Book one execution: positions, cash, fills, activities and the order, atomically."""
        filled = order.filled_qty + execution.units
        previous = order.filled_avg_price or ZERO
        avg = (previous * order.filled_qty + execution.net_price * execution.units) / filled
        updated = replace(
            order,
            filled_qty=filled,
            filled_avg_price=avg,
            status=OrderStatus.FILLED if filled >= order.qty else OrderStatus.PARTIALLY_FILLED,
            updated_at=at,
            last_matched_at=at,
        )
        fees = ZERO
        async with self._store.transaction(self._id) as tx:
            positions = await tx.positions()
            cash = ZERO
            realized = ZERO
            for leg, delta, price in execution.legs:
                pnl = await self._trade(tx, positions, leg.symbol, delta, price, at)
                gross = -delta * price * leg.multiplier
                fee = contract_fee(self.config.fee_per_contract, delta) if leg.contract else ZERO
                cash += gross - fee
                realized += pnl
                fees += fee
                await tx.add_fill(
                    SimFillRecord(order.id, leg.symbol, leg.side, abs(delta), price, fee, pnl, at)
                )
                await tx.add_activity(
                    ActivityType.FILL,
                    at,
                    leg.symbol,
                    delta,
                    price=price,
                    side=leg.side,
                    order_id=order.id,
                    net_amount=gross,
                )
                if fee:
                    await tx.add_activity(
                        ActivityType.FEE, at, leg.symbol, ZERO, order_id=order.id, net_amount=-fee
                    )
            await tx.add_cash(cash, realized, at)
            await tx.save_order(updated)
            await tx.set_processed_until(max(at, order.submitted_at))
        log.info(
            "sim_order_filled",
            order_id=order.id,
            client_order_id=order.client_order_id,
            qty=str(execution.units),
            price=str(execution.net_price),
            filled_qty=str(filled),
            remaining=str(updated.remaining_qty),
            status=updated.status.value,
            fees=str(fees),
            at=at.isoformat(),
        )
        return updated

    async def _trade(
        self,
        tx: SimStateTx,
        positions: dict[str, SimPositionRecord],
        symbol: str,
        delta: Decimal,
        price: Decimal,
        at: datetime,
    ) -> Decimal:
        """Change one position by ``delta`` at ``price``; returns the realised P&L."""
        contract = _contract_of(symbol)
        multiplier = OPTION_MULTIPLIER if contract else 1
        current = positions.get(symbol)
        qty = current.qty if current else ZERO
        avg = current.avg_entry_price if current else ZERO
        result = apply_trade(qty, avg, delta, price, multiplier)
        record = SimPositionRecord(
            symbol=symbol,
            asset_class=AssetClass.OPTION if contract else AssetClass.EQUITY,
            qty=result.qty,
            avg_entry_price=result.avg_entry_price,
            multiplier=multiplier,
        )
        await tx.set_position(record, at)
        if result.qty == 0:
            positions.pop(symbol, None)
        else:
            positions[symbol] = record
        return result.realized_pnl

    # -- the close: expiries and assignments ---------------------------------------

    async def _close_session(
        self, session: date, close: datetime, orders: list[SimOrderRecord]
    ) -> list[SimOrderRecord]:
        """Everything that happens at a session's close, in one transaction."""
        expiring = [o for o in orders if o.expires_at <= close]
        events: list[tuple[str, dict[str, Any]]] = []
        async with self._store.transaction(self._id) as tx:
            for order in expiring:
                await tx.save_order(with_status(order, OrderStatus.EXPIRED, close))
                events.append(
                    (
                        "sim_order_expired",
                        {
                            "order_id": order.id,
                            "client_order_id": order.client_order_id,
                            "filled_qty": str(order.filled_qty),
                        },
                    )
                )
            positions = await tx.positions()
            options = [
                (p, c)
                for p in positions.values()
                if p.asset_class is AssetClass.OPTION and (c := _contract_of(p.symbol))
            ]
            for position, contract in options:
                early = contract.expiry > session and position.qty < 0
                if early and self._assigned_early(session, close, position, contract):
                    events.append(
                        await self._settle(tx, positions, position, contract, session, close)
                    )
            for position, contract in options:
                if contract.expiry <= session and position.symbol in positions:
                    events.append(
                        await self._settle(tx, positions, position, contract, session, close)
                    )
            await tx.set_processed_until(close)
        for event, fields in events:
            log.info(event, session=session.isoformat(), **fields)
        gone = {o.id for o in expiring}
        return [o for o in orders if o.id not in gone]

    def _assigned_early(
        self, session: date, close: datetime, position: SimPositionRecord, contract: OptionContract
    ) -> bool:
        p = self.config.early_assignment_probability
        if p <= 0:
            return False
        spot = self._market.close_price(contract.root, session)
        value = _to_decimal(self._market.option_model_value(position.symbol, close))
        if value is None or not early_assignment_candidate(
            contract.right,
            contract.strike,
            spot,
            value,
            self.config.early_assignment_max_time_value,
        ):
            return False
        # A draw of its own per (account, session, contract): the same on every replay.
        seed = f"{self.config.random_seed}|{self._id}|{session.isoformat()}|{position.symbol}"
        return random.Random(seed).random() < p

    async def _settle(
        self,
        tx: SimStateTx,
        positions: dict[str, SimPositionRecord],
        position: SimPositionRecord,
        contract: OptionContract,
        session: date,
        at: datetime,
    ) -> tuple[str, dict[str, Any]]:
        """Exercise, assign or expire an option position whole; returns the log event."""
        qty = position.qty
        close_px = self._market.close_price(contract.root, session)
        expiring = contract.expiry <= session
        if expiring and not expires_in_the_money(contract.right, contract.strike, close_px):
            kind = ActivityType.OPEXP
        else:
            kind = ActivityType.OPEXC if qty > 0 else ActivityType.OPASN
        # The option leaves the book at no price: its premium is the realised P&L.
        realized = await self._trade(tx, positions, position.symbol, -qty, ZERO, at)
        await tx.add_activity(kind, at, position.symbol, -qty, price=ZERO, net_amount=ZERO)
        cash = ZERO
        fields: dict[str, Any] = {
            "symbol": position.symbol,
            "qty": str(qty),
            "underlying_close": str(close_px),
        }
        if kind is not ActivityType.OPEXP:
            shares = qty * OPTION_MULTIPLIER * (1 if contract.right is OptionRight.CALL else -1)
            cash = -shares * contract.strike
            realized += await self._trade(tx, positions, contract.root, shares, contract.strike, at)
            await tx.add_activity(
                kind,
                at,
                contract.root,
                shares,
                price=contract.strike,
                side=Side.BUY if shares > 0 else Side.SELL,
                net_amount=cash,
            )
            fields.update(shares=str(shares), strike=str(contract.strike), early=not expiring)
        await tx.add_cash(cash, realized, at)
        event = {
            ActivityType.OPEXP: "sim_option_expired",
            ActivityType.OPEXC: "sim_option_exercised",
            ActivityType.OPASN: "sim_option_assigned",
        }[kind]
        return event, fields

    # -- acceptance ----------------------------------------------------------------

    async def _accept(self, request: OrderRequest) -> SimOrderRecord:
        """Check an order against every rule and store it; raise OrderRejected otherwise."""
        cid = request.client_order_id
        try:
            self._check_shape(request)
            legs = self._request_legs(request)
            self._check_prices(request, legs)
        except RuleViolation as exc:
            raise OrderRejected(str(exc), cid) from None
        if await self._store.get_order_by_client_id(self._id, cid) is not None:
            raise DuplicateClientOrderId(
                f"duplicate_client_order_id: an order with client_order_id {cid!r} exists "
                "already; look it up instead of sending it again",
                cid,
            )
        now = self._clock.now()
        record = SimOrderRecord(
            id=_order_id(self._id, cid),
            account_id=self._id,
            client_order_id=cid,
            status=OrderStatus.ACCEPTED if not self._calendar.is_open_at(now) else OrderStatus.NEW,
            order_class=request.order_class,
            type=request.type,
            time_in_force=request.time_in_force,
            qty=request.qty,
            filled_qty=ZERO,
            filled_avg_price=None,
            limit_price=request.limit_price,
            symbol=request.symbol if not request.legs else None,
            side=request.side if not request.legs else None,
            position_intent=request.position_intent,
            legs=request.legs,
            submitted_at=now,
            updated_at=now,
            expires_at=self._day_order_expiry(now),
            # Accepted in market hours, it meets the book at once (see submit_order);
            # that look counts as a pass, so its next one is an interval later.
            last_matched_at=now if self._calendar.is_open_at(now) else None,
        )
        try:
            await self._check_account(record, legs, now)
        except RuleViolation as exc:
            raise OrderRejected(str(exc), cid) from None
        if not await self._store.insert_order(record):
            raise DuplicateClientOrderId(
                f"duplicate_client_order_id: an order with client_order_id {cid!r} exists already",
                cid,
            )
        return record

    def _check_shape(self, request: OrderRequest) -> None:
        cid = request.client_order_id
        if not cid or len(cid) > CLIENT_ORDER_ID_MAX:
            raise RuleViolation(
                "client_order_id", f"must be 1-{CLIENT_ORDER_ID_MAX} characters, got {len(cid)}"
            )
        qty = request.qty
        if not isinstance(qty, Decimal) or not qty.is_finite() or qty <= 0:
            raise RuleViolation("qty", f"quantity must be a positive number, got {qty}")
        if request.time_in_force is not TimeInForce.DAY:
            raise RuleViolation(
                "time_in_force", f"only day orders are supported, got {request.time_in_force}"
            )
        if request.type is OrderType.MARKET:
            if request.limit_price is not None:
                raise RuleViolation("limit_price", "a market order takes no limit price")
        else:
            price = request.limit_price
            if price is None:
                raise RuleViolation("limit_price", "a limit order needs a limit price")
            if not price.is_finite():
                raise RuleViolation("limit_price", f"limit price must be finite, got {price}")
            if not request.legs and price <= 0:
                raise RuleViolation("limit_price", f"limit price must be positive, got {price}")

    def _request_legs(self, request: OrderRequest) -> list[_Leg]:
        # The session the order will trade in: after the close, the next one.
        today = self._session_ending_after(self._clock.now())
        if not request.legs:
            if request.symbol is None or request.side is None:
                raise RuleViolation("order", "a single-leg order needs a symbol and a side")
            leg = self._known_leg(request.symbol, request.side, 1, request.position_intent, today)
            if leg.contract is not None and request.qty != request.qty.to_integral_value():
                raise RuleViolation(
                    "fractional_contracts",
                    f"options trade in whole contracts, got qty {request.qty}",
                )
            return [leg]
        if request.symbol is not None or request.side is not None:
            raise RuleViolation(
                "mleg", "a multi-leg order carries symbols and sides in its legs only"
            )
        if not 2 <= len(request.legs) <= MAX_LEGS:
            raise RuleViolation(
                "mleg", f"a multi-leg order has 2-{MAX_LEGS} legs, got {len(request.legs)}"
            )
        if request.qty != request.qty.to_integral_value():
            raise RuleViolation(
                "fractional_contracts", f"options trade in whole contracts, got qty {request.qty}"
            )
        legs = [
            self._known_leg(leg.symbol, leg.side, leg.ratio_qty, leg.position_intent, today)
            for leg in request.legs
        ]
        if any(leg.contract is None for leg in legs):
            raise RuleViolation("mleg", "every leg of a multi-leg order must be an option")
        if len({leg.symbol for leg in legs}) != len(legs):
            raise RuleViolation("mleg", "a contract appears in more than one leg")
        roots = {leg.contract.root for leg in legs if leg.contract}
        if len(roots) != 1:
            raise RuleViolation(
                "mleg", f"all legs must share one underlying, got {', '.join(sorted(roots))}"
            )
        ratios = [leg.ratio for leg in legs]
        if any(r < 1 for r in ratios) or math.gcd(*ratios) != 1:
            raise RuleViolation(
                "mleg", f"leg ratios must be positive and in lowest terms, got {ratios}"
            )
        return legs

    def _known_leg(
        self,
        symbol: str,
        side: Side,
        ratio: int,
        intent: PositionIntent | None,
        today: date,
    ) -> _Leg:
        contract = _contract_of(symbol)
        if contract is None:
            if symbol not in self._market.symbols:
                raise RuleViolation("unknown_symbol", f"{symbol!r} is not a tradable asset")
            if intent is not None:
                raise RuleViolation(
                    "position_intent", f"position intent applies to options only ({symbol})"
                )
        elif contract.expiry < today or not self._market.is_listed(symbol, today):
            raise RuleViolation(
                "unknown_symbol",
                f"option {symbol} is not listed for the {today.isoformat()} session",
            )
        if intent is not None and intent.value.startswith("buy") != (side is Side.BUY):
            raise RuleViolation(
                "position_intent", f"intent {intent.value} contradicts side {side.value}"
            )
        return _Leg(symbol, contract, side, ratio, intent)

    def _check_prices(self, request: OrderRequest, legs: list[_Leg]) -> None:
        price = request.limit_price
        if price is None:
            return
        if request.legs:
            check_price_increment(price, MLEG_TICK, "a multi-leg order (net price)")
            return
        leg = legs[0]
        if leg.contract is None:
            check_price_increment(price, stock_tick(price), leg.symbol)
            return
        tick = option_tick(
            leg.contract.root, price, penny_pilot=self._penny_pilot(leg.contract.root)
        )
        check_price_increment(price, tick, leg.symbol)

    def _penny_pilot(self, underlying: str) -> bool:
        try:
            instrument = self._market.instrument(underlying)
        except (KeyError, ValueError):
            return False
        return bool(getattr(instrument, "penny_pilot", False))

    async def _check_account(self, record: SimOrderRecord, legs: list[_Leg], now: datetime) -> None:
        """Options level, position intents, covered calls and buying power (pro forma)."""
        state = await self._store.get_account(self._id)
        assert state is not None
        positions = {p.symbol: p.qty for p in await self._store.get_positions(self._id)}
        open_orders = await self._store.open_orders(self._id)
        option_legs = [leg for leg in legs if leg.contract is not None]
        if option_legs:
            changes = [
                LegChange(
                    leg.symbol, positions.get(leg.symbol, ZERO), leg.sign * leg.ratio * record.qty
                )
                for leg in option_legs
            ]
            check_options_level(
                self.config.options_level, changes, multi_leg=record.order_class is OrderClass.MLEG
            )
        for leg in legs:
            self._check_intent(leg, positions.get(leg.symbol, ZERO), leg.ratio * record.qty)

        symbols = set(positions)
        for order in [*open_orders, record]:
            symbols.update(leg.symbol for leg in self._legs_of(order))
        marks = self._marks(symbols, now)
        touches = self._touches({leg.symbol for leg in legs}, now)
        spreads = self.config.options_level >= OptionsLevel.SPREADS
        book = _Book(state.cash, dict(positions))
        before = self._margin(book, marks, spreads)
        reserved = ZERO
        for order in open_orders:
            pending = self._margin(self._with_order(book, order, marks, touches), marks, spreads)
            reserved += max(before.excess - pending.excess, ZERO)
        after = self._margin(self._with_order(book, record, marks, touches), marks, spreads)
        # Coverage counts open orders too: two calls cannot be covered by the same shares.
        pending_book = book
        for order in open_orders:
            pending_book = self._with_order(pending_book, order, marks, touches)
        pending_all = self._margin(pending_book, marks, spreads)
        after_all = self._margin(
            self._with_order(pending_book, record, marks, touches), marks, spreads
        )
        if (
            after.uncovered_calls > before.uncovered_calls
            or after_all.uncovered_calls > pending_all.uncovered_calls
        ):
            raise RuleViolation(
                "uncovered_call",
                f"the order leaves {after_all.uncovered_calls} short call contract(s) uncovered: "
                "each needs 100 shares of the underlying or, at options level 3, a long call "
                "of the same underlying expiring no earlier (naked calls are not allowed)",
            )
        check_buying_power(before, after, reserved)

    @staticmethod
    def _check_intent(leg: _Leg, position: Decimal, qty: Decimal) -> None:
        intent = leg.intent
        if intent is PositionIntent.SELL_TO_CLOSE and position < qty:
            raise RuleViolation(
                "position_intent",
                f"sell_to_close {qty} {leg.symbol}: the long position is only {max(position, ZERO)}",
            )
        if intent is PositionIntent.BUY_TO_CLOSE and -position < qty:
            raise RuleViolation(
                "position_intent",
                f"buy_to_close {qty} {leg.symbol}: the short position is only {max(-position, ZERO)}",
            )

    def _with_order(
        self,
        book: _Book,
        order: SimOrderRecord,
        marks: Mapping[str, Decimal],
        touches: Mapping[str, _Touch],
    ) -> _Book:
        """``book`` as if the rest of ``order`` filled at its limit (market: at the touch)."""
        result = book.copy()
        units = order.remaining_qty
        legs = self._legs_of(order)
        net = ZERO
        value = ZERO  # what the new quantities are worth at the marks
        for leg in legs:
            delta = leg.sign * leg.ratio * units
            result.qty[leg.symbol] = result.qty.get(leg.symbol, ZERO) + delta
            value += delta * marks.get(leg.symbol, ZERO) * leg.multiplier
            touch = touches.get(leg.symbol)
            if touch is not None:
                price = touch.ask if leg.side is Side.BUY else touch.bid
            else:
                price = marks.get(leg.symbol, ZERO)
            net += leg.sign * leg.ratio * price
        if order.type is OrderType.LIMIT and order.limit_price is not None:
            # A multi-leg limit is a signed net price already; a single leg's is not.
            net = order.limit_price if order.legs else legs[0].sign * order.limit_price
        cost = net * units * legs[0].multiplier
        # A paper gain (buying below the mark, selling above it) is not equity until
        # it fills: count only losses, as a broker checking at the order price does.
        result.cash -= cost + max(value - cost, ZERO)
        return result

    def _margin(
        self, book: _Book, marks: Mapping[str, Decimal], spreads_allowed: bool
    ) -> MarginSummary:
        holdings = [
            Holding(symbol, qty, marks.get(symbol, ZERO), _contract_of(symbol))
            for symbol, qty in book.qty.items()
            if qty != 0
        ]
        return margin_summary(book.cash, holdings, spreads_allowed=spreads_allowed)

    def _day_order_expiry(self, now: datetime) -> datetime:
        """A day order lives until the close of today's session, or the next one after hours."""
        return self._calendar.session_close(self._session_ending_after(now))

    def _legs_of(self, order: SimOrderRecord) -> list[_Leg]:
        if order.legs:
            return [
                _Leg(leg.symbol, _contract_of(leg.symbol), leg.side, leg.ratio_qty)
                for leg in order.legs
            ]
        assert order.symbol is not None and order.side is not None
        return [_Leg(order.symbol, _contract_of(order.symbol), order.side, 1)]

    # -- market data -----------------------------------------------------------------

    def _touches(self, symbols: set[str], at: datetime) -> dict[str, _Touch]:
        """Usable top-of-book quotes at ``at``; bad or missing quotes are left out."""
        result: dict[str, _Touch] = {}
        options = sorted(s for s in symbols if _contract_of(s) is not None)
        stocks = sorted(s for s in symbols if _contract_of(s) is None)
        known = set(self._market.symbols)
        for symbol in stocks:
            if symbol not in known:
                continue
            q = self._market.stock_quote(symbol, at)
            touch = _touch(q.bid, q.ask, q.bid_size, q.ask_size)
            if touch is not None:
                result[symbol] = touch
        if options:
            for symbol, snap in self._market.option_quotes(options, at).items():
                touch = _touch(snap.bid, snap.ask, snap.bid_size, snap.ask_size)
                if touch is not None:
                    result[symbol] = touch
        return result

    def _stock_mark(self, symbol: str, at: datetime) -> Decimal:
        q = self._market.stock_quote(symbol, at)
        if q.last > 0:
            return q.last
        return ((q.bid + q.ask) / 2).quantize(CENT)

    def _marks(self, symbols: set[str], at: datetime) -> dict[str, Decimal]:
        """A price per share / per option for valuation: last trade, mid, or model value."""
        marks: dict[str, Decimal] = {}
        known = set(self._market.symbols)
        options = sorted(s for s in symbols if _contract_of(s) is not None)
        for symbol in symbols - set(options):
            marks[symbol] = self._stock_mark(symbol, at) if symbol in known else ZERO
        quotes = self._market.option_quotes(options, at) if options else {}
        for symbol in options:
            snap = quotes.get(symbol)
            if snap is not None and snap.ask > 0 and snap.bid <= snap.ask:
                marks[symbol] = (snap.bid + snap.ask) / 2
                continue
            value = None
            try:
                value = _to_decimal(self._market.option_model_value(symbol, at))
            except (KeyError, ValueError):
                value = None
            marks[symbol] = ZERO if value is None else max(value, ZERO).quantize(CENT)
        return marks

    # -- views -----------------------------------------------------------------------

    async def _account_view(self) -> Account:
        now = self._clock.now()
        state = await self._store.get_account(self._id)
        assert state is not None
        records = await self._store.get_positions(self._id)
        open_orders = await self._store.open_orders(self._id)
        symbols = {p.symbol for p in records}
        for order in open_orders:
            symbols.update(leg.symbol for leg in self._legs_of(order))
        marks = self._marks(symbols, now)
        spreads = self.config.options_level >= OptionsLevel.SPREADS
        book = _Book(state.cash, {p.symbol: p.qty for p in records})
        summary = self._margin(book, marks, spreads)
        reserved = ZERO
        for order in open_orders:
            pending = self._margin(self._with_order(book, order, marks, {}), marks, spreads)
            reserved += max(summary.excess - pending.excess, ZERO)
        if summary.equity < summary.maintenance_requirement and self._margin_call_day != (
            day := to_new_york(now).date()
        ):
            self._margin_call_day = day  # once a day is enough to be noticed
            log.warning(
                "sim_margin_call",
                equity=str(summary.equity),
                maintenance_requirement=str(summary.maintenance_requirement),
            )
        return Account(
            account_id=self._id,
            cash=state.cash,
            equity=summary.equity,
            buying_power=summary.buying_power(reserved),
            options_buying_power=summary.options_buying_power(reserved),
            long_market_value=summary.long_market_value,
            short_market_value=summary.short_market_value,
            options_approved_level=self.config.options_level,
            maintenance_margin=summary.maintenance_requirement,
        )

    @staticmethod
    def _position_view(record: SimPositionRecord, mark: Decimal) -> Position:
        mult = record.multiplier
        return Position(
            symbol=record.symbol,
            asset_class=record.asset_class,
            qty=record.qty,
            avg_entry_price=record.avg_entry_price,
            current_price=mark,
            market_value=record.qty * mark * mult,
            cost_basis=record.qty * record.avg_entry_price * mult,
            multiplier=mult,
        )


def _touch(bid: Decimal, ask: Decimal, bid_size: int, ask_size: int) -> _Touch | None:
    """A quote we can trade on, or None (crossed, non-positive ask, non-finite)."""
    try:
        if not (bid.is_finite() and ask.is_finite()) or ask <= 0 or bid < 0 or bid > ask:
            return None
    except (AttributeError, InvalidOperation):
        return None
    return _Touch(bid, ask, Decimal(max(bid_size, 0)), Decimal(max(ask_size, 0)))
