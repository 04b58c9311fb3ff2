"""The order store: intents (what a strategy wants done) and broker orders (each attempt).

An **intent** is one row per thing we want done, keyed by a deterministic
``intent_key`` the caller chooses (``hedge-open:default:2026-11-23:QQQ``); the
key embeds the account and is unique across the table, so creating an intent
twice (a retry, a queue redelivery, two racing workers) yields the same row
(INSERT ... ON CONFLICT DO NOTHING on both databases).

A **broker order** row is written *before* its order is sent, with a
deterministic ``client_order_id`` (:func:`client_order_id_for`): after a crash
the executor asks the broker by that id instead of sending again.

Fills are recorded from the broker's cumulative figures (filled quantity and
average price of an order): :meth:`OrderStore.record_fill` compares them with
what is stored, under a row lock, and books only the difference, so the same
observation seen twice (a poll and a restart) is booked once. The caller's
fill handler runs in the same transaction, so a fill and its effects (hedge
positions, premium ledger) commit together or not at all.

Money conventions:

- ``cost`` is signed cash: + paid, − received, option multiplier (100) applied,
  exact to the cent (computed from the broker's cumulative figures, so a
  repeating average price never leaks rounding into the ledger).
- an intent's ``avg_fill_price`` and a fill event's ``price`` are per unit in
  the direction's terms: what was paid for a debit, what was received for a
  credit (normally positive), rounded to $0.0001.
- a broker order's ``limit_price`` and ``filled_avg_price`` are as the broker
  sees them: per unit, and for a multi-leg order the signed net (positive
  debit, negative credit), as ``OrderRequest.limit_price``. A multi-leg
  *credit* order books received cash whatever sign the broker gives its fill
  price (it can only fill at a net credit).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.clock import Clock
from alchemiser.domain.trading import Order, OrderLeg, OrderStatus, PositionIntent, Side
from alchemiser.store.audit import (
    clip_correlation_id,
    current_correlation_id,
    in_transaction,
    to_json_safe,
)
from alchemiser.store.engine import dialect_insert
from alchemiser.store.models import BrokerOrder, OrderIntent
from alchemiser.store.types import clip_text

__all__ = [
    "CLIENT_ORDER_ID_MAX",
    "OPTION_MULTIPLIER",
    "BrokerOrderRecord",
    "BrokerOrderStatus",
    "FillEvent",
    "FillHandler",
    "InFlightIntent",
    "IntentConflict",
    "IntentRecord",
    "IntentStatus",
    "NewIntent",
    "OrderStore",
    "OrderStoreError",
    "client_order_id_for",
]

log = structlog.stdlib.get_logger("alchemiser.store.orders")

OPTION_MULTIPLIER = 100
INTENT_KEY_MAX = 255
# Ours, not the broker's (Alpaca takes 128): short enough for any broker and a log line.
CLIENT_ORDER_ID_MAX = 48
LAST_ERROR_MAX = 2000
CENT = Decimal("0.01")
PRICE_QUANTUM = Decimal("0.0001")
ZERO = Decimal(0)


class OrderStoreError(Exception):
    """A misuse of the order store or data it cannot book."""


class IntentConflict(OrderStoreError):
    """The intent key is taken by another account or by a different plan."""


class IntentStatus(StrEnum):
    PENDING = "pending"  # created, nothing written to the broker yet
    WORKING = "working"  # orders being placed and chased
    FILLED = "filled"  # the whole target quantity filled
    PARTIAL = "partial"  # steps exhausted (or stopped) with some fill
    UNFILLED = "unfilled"  # steps exhausted, nothing filled
    REJECTED = "rejected"  # the broker refused the order
    FAILED = "failed"  # refused before sending: no valid quote, pre-trade check...
    UNKNOWN = "unknown"  # an outcome could not be resolved: needs reconciliation

    @property
    def is_final(self) -> bool:
        return self not in (IntentStatus.PENDING, IntentStatus.WORKING, IntentStatus.UNKNOWN)


IN_FLIGHT = (IntentStatus.PENDING, IntentStatus.WORKING, IntentStatus.UNKNOWN)


class BrokerOrderStatus(StrEnum):
    WRITTEN = "written"  # our row exists; the order may not have reached the broker
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # a submit whose outcome could not be resolved

    @property
    def is_final(self) -> bool:
        return self in (
            BrokerOrderStatus.FILLED,
            BrokerOrderStatus.CANCELED,
            BrokerOrderStatus.EXPIRED,
            BrokerOrderStatus.REJECTED,
        )

    @classmethod
    def of(cls, status: OrderStatus) -> BrokerOrderStatus:
        """Our status for a broker order status (new and accepted are both "accepted")."""
        if status in (OrderStatus.NEW, OrderStatus.ACCEPTED):
            return cls.ACCEPTED
        return cls(status.value)


def client_order_id_for(intent_key: str, step: int) -> str:
    """``{intent_key}#{step}``; if longer than 48 characters, a prefix of the key, ``~``,
    16 hex digits of the key's SHA-256 and ``#{step}`` (stable and unique per key)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    plain = f"{intent_key}#{step}"
    if len(plain) <= CLIENT_ORDER_ID_MAX:
        return plain
    digest = hashlib.sha256(intent_key.encode()).hexdigest()[:16]
    suffix = f"~{digest}#{step}"
    return intent_key[: CLIENT_ORDER_ID_MAX - len(suffix)] + suffix


def legs_to_json(legs: Sequence[OrderLeg]) -> list[dict[str, Any]]:
    return [
        {
            "symbol": leg.symbol,
            "side": leg.side.value,
            "ratio_qty": leg.ratio_qty,
            "position_intent": None if leg.position_intent is None else leg.position_intent.value,
        }
        for leg in legs
    ]


def legs_from_json(data: Sequence[Mapping[str, Any]]) -> tuple[OrderLeg, ...]:
    return tuple(
        OrderLeg(
            symbol=str(d["symbol"]),
            side=Side(d["side"]),
            ratio_qty=int(d["ratio_qty"]),
            position_intent=(
                None if d.get("position_intent") is None else PositionIntent(d["position_intent"])
            ),
        )
        for d in data
    )


@dataclass(frozen=True)
class NewIntent:
    """What to create: the plan's identity and shape."""

    intent_key: str
    strategy: str
    purpose: str
    legs: tuple[OrderLeg, ...]
    target_qty: int
    direction: str  # debit | credit
    related_ids: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IntentRecord:
    id: int
    account: str
    intent_key: str
    strategy: str
    purpose: str
    related_ids: dict[str, Any]
    legs: tuple[OrderLeg, ...]
    target_qty: int
    direction: str
    filled_qty: int
    avg_fill_price: Decimal | None
    cost: Decimal
    reference_mid: Decimal | None
    status: IntentStatus
    last_error: str | None
    correlation_id: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def remaining_qty(self) -> int:
        return max(self.target_qty - self.filled_qty, 0)

    @property
    def is_multi_leg(self) -> bool:
        return len(self.legs) > 1

    @classmethod
    def from_row(cls, row: OrderIntent) -> IntentRecord:
        return cls(
            id=row.id,
            account=row.account,
            intent_key=row.intent_key,
            strategy=row.strategy,
            purpose=row.purpose,
            related_ids=dict(row.related_ids or {}),
            legs=legs_from_json(row.legs),
            target_qty=row.target_qty,
            direction=row.direction,
            filled_qty=row.filled_qty,
            avg_fill_price=row.avg_fill_price,
            cost=row.cost,
            reference_mid=row.reference_mid,
            status=IntentStatus(row.status),
            last_error=row.last_error,
            correlation_id=row.correlation_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            finished_at=row.finished_at,
        )


@dataclass(frozen=True)
class BrokerOrderRecord:
    id: int
    intent_id: int
    step: int
    client_order_id: str
    broker_order_id: str | None
    qty: int
    limit_price: Decimal
    quote_mid: Decimal | None
    at_max_slippage: bool
    status: BrokerOrderStatus
    filled_qty: int
    filled_avg_price: Decimal | None
    cost: Decimal
    written_at: datetime
    submitted_at: datetime | None
    updated_at: datetime
    reject_reason: str | None

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    @classmethod
    def from_row(cls, row: BrokerOrder) -> BrokerOrderRecord:
        return cls(
            id=row.id,
            intent_id=row.intent_id,
            step=row.step,
            client_order_id=row.client_order_id,
            broker_order_id=row.broker_order_id,
            qty=row.qty,
            limit_price=row.limit_price,
            quote_mid=row.quote_mid,
            at_max_slippage=bool(row.at_max_slippage),
            status=BrokerOrderStatus(row.status),
            filled_qty=row.filled_qty,
            filled_avg_price=row.filled_avg_price,
            cost=row.cost,
            written_at=row.written_at,
            submitted_at=row.submitted_at,
            updated_at=row.updated_at,
            reject_reason=row.reject_reason,
        )


@dataclass(frozen=True)
class InFlightIntent:
    """An intent that is not final, with its broker orders that are not final either."""

    intent: IntentRecord
    open_orders: list[BrokerOrderRecord]


@dataclass(frozen=True)
class FillEvent:
    """Newly booked fills of one broker order (the difference to what was booked before)."""

    intent: IntentRecord  # as updated by this fill
    client_order_id: str
    step: int
    delta_qty: int  # contracts (units of the ratio) filled since the last booking
    price: Decimal  # per unit, direction's terms (paid for a debit, received for a credit)
    cost: Decimal  # signed cash of this delta: + paid, − received, multiplier applied
    at: datetime  # the broker's last update of the order


# Runs inside the fill's transaction; raising rolls the fill back with it.
FillHandler = Callable[[AsyncSession, FillEvent], Awaitable[None]]


def signed_unit_price(legs: Sequence[OrderLeg], direction: str, broker_price: Decimal) -> Decimal:
    """The broker's per-unit price as signed cash per unit (+ paid, − received)."""
    if len(legs) > 1:
        # A multi-leg price is a signed net (credit < 0). A credit order (negative
        # limit) can only fill at a net credit, so whichever sign a broker reports
        # for it, the cash is received: this holds under either convention.
        return -abs(broker_price) if direction == "credit" else broker_price
    return broker_price if legs[0].side is Side.BUY else -broker_price


def direction_price(direction: str, cash: Decimal, qty: int) -> Decimal | None:
    """Signed cash of ``qty`` units as a per-unit price in the direction's terms."""
    if qty <= 0:
        return None
    per_unit = cash / (qty * OPTION_MULTIPLIER)
    if direction == "credit":
        per_unit = -per_unit
    return per_unit.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


def _whole(value: Decimal, what: str) -> int:
    if not value.is_finite() or value != value.to_integral_value() or value < 0:
        raise OrderStoreError(f"{what} must be a whole number of contracts >= 0, got {value}")
    return int(value)


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    return clip_text(text, LAST_ERROR_MAX)


class OrderStore:
    """Intents and broker orders of one account."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, account: str
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.account = account

    # -- intents ---------------------------------------------------------------

    async def create_intent(
        self, new: NewIntent, *, correlation_id: str | None = None
    ) -> tuple[IntentRecord, bool]:
        """The intent with ``new.intent_key``: created now (True) or as it exists (False)."""
        key = new.intent_key
        if not key or len(key) > INTENT_KEY_MAX:
            raise ValueError(f"intent_key must be 1..{INTENT_KEY_MAX} characters, got {key!r}")
        if new.target_qty < 1:
            raise ValueError(f"target_qty must be >= 1, got {new.target_qty}")
        if new.direction not in ("debit", "credit"):
            raise ValueError(f"direction must be 'debit' or 'credit', got {new.direction!r}")
        if not new.legs:
            raise ValueError("an intent needs at least one leg")
        now = self._clock.now()
        values = {
            "account": self.account,
            "intent_key": key,
            "strategy": new.strategy,
            "purpose": new.purpose,
            "related_ids": to_json_safe(dict(new.related_ids)),
            "legs": legs_to_json(new.legs),
            "target_qty": new.target_qty,
            "direction": new.direction,
            "filled_qty": 0,
            "avg_fill_price": None,
            "cost": ZERO,
            "reference_mid": None,
            "status": IntentStatus.PENDING.value,
            "last_error": None,
            "correlation_id": clip_correlation_id(correlation_id or current_correlation_id()),
            "created_at": now,
            "updated_at": now,
            "finished_at": None,
        }
        async with self._sessions() as s, s.begin():
            stmt = (
                dialect_insert(s)(OrderIntent)
                .values(**values)
                .on_conflict_do_nothing(index_elements=[OrderIntent.intent_key])
                .returning(OrderIntent.id)
            )
            new_id = (await s.execute(stmt)).scalar_one_or_none()
            # On a conflict PostgreSQL waited for the other inserter to commit, so
            # this read (a fresh snapshot in READ COMMITTED) sees its row.
            row = (
                await s.execute(select(OrderIntent).where(OrderIntent.intent_key == key))
            ).scalar_one()
            record = IntentRecord.from_row(row)
        if record.account != self.account:
            raise IntentConflict(
                f"intent key {key!r} belongs to account {record.account!r}, not {self.account!r}"
            )
        if new_id is None:
            _check_same_plan(record, new)
        return record, new_id is not None

    async def get_intent(self, intent_key: str) -> IntentRecord | None:
        async with self._sessions() as s, s.begin():
            row = (
                await s.execute(
                    select(OrderIntent).where(
                        OrderIntent.intent_key == intent_key, OrderIntent.account == self.account
                    )
                )
            ).scalar_one_or_none()
            return None if row is None else IntentRecord.from_row(row)

    async def get_intent_by_id(self, intent_id: int) -> IntentRecord:
        async with self._sessions() as s, s.begin():
            row = await s.get(OrderIntent, intent_id)
            if row is None or row.account != self.account:
                raise OrderStoreError(f"no intent with id {intent_id} in account {self.account!r}")
            return IntentRecord.from_row(row)

    async def set_intent_status(
        self, intent_id: int, status: IntentStatus, *, error: str | None = None
    ) -> IntentRecord:
        """Move an intent to ``status``; a final one stamps ``finished_at`` and sets
        ``last_error`` to ``error`` (None clears it). A final intent never changes again."""
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            row = await _locked_intent(s, intent_id)
            if IntentStatus(row.status).is_final:
                return IntentRecord.from_row(row)
            row.status = status.value
            # A final status records its own reason (or none); an earlier, resolved one goes.
            if error is not None or status.is_final:
                row.last_error = _clip(error)
            row.updated_at = now
            if status.is_final:
                row.finished_at = now
            await s.flush()
            return IntentRecord.from_row(row)

    async def in_flight(self) -> list[InFlightIntent]:
        """Intents pending, working or unknown, oldest first, with their non-final orders."""
        async with self._sessions() as s, s.begin():
            intents = (
                (
                    await s.execute(
                        select(OrderIntent)
                        .where(
                            OrderIntent.account == self.account,
                            OrderIntent.status.in_([st.value for st in IN_FLIGHT]),
                        )
                        .order_by(OrderIntent.id)
                    )
                )
                .scalars()
                .all()
            )
            if not intents:
                return []
            final = [st.value for st in BrokerOrderStatus if st.is_final]
            orders = (
                (
                    await s.execute(
                        select(BrokerOrder)
                        .where(
                            BrokerOrder.intent_id.in_([i.id for i in intents]),
                            BrokerOrder.status.not_in(final),
                        )
                        .order_by(BrokerOrder.intent_id, BrokerOrder.step)
                    )
                )
                .scalars()
                .all()
            )
            by_intent: dict[int, list[BrokerOrderRecord]] = {}
            for o in orders:
                by_intent.setdefault(o.intent_id, []).append(BrokerOrderRecord.from_row(o))
            return [
                InFlightIntent(IntentRecord.from_row(i), by_intent.get(i.id, [])) for i in intents
            ]

    # -- broker orders ---------------------------------------------------------

    async def orders_of(self, intent_id: int) -> list[BrokerOrderRecord]:
        """The intent's broker orders by step."""
        async with self._sessions() as s, s.begin():
            rows = (
                (
                    await s.execute(
                        select(BrokerOrder)
                        .where(BrokerOrder.intent_id == intent_id)
                        .order_by(BrokerOrder.step)
                    )
                )
                .scalars()
                .all()
            )
            return [BrokerOrderRecord.from_row(r) for r in rows]

    async def get_order(self, client_order_id: str) -> BrokerOrderRecord | None:
        async with self._sessions() as s, s.begin():
            row = await _order_row(s, client_order_id)
            return None if row is None else BrokerOrderRecord.from_row(row)

    async def write_broker_order(
        self,
        intent_id: int,
        step: int,
        *,
        qty: int,
        limit_price: Decimal,
        quote_mid: Decimal | None = None,
        at_max_slippage: bool = False,
    ) -> tuple[BrokerOrderRecord, bool]:
        """Write the row of step ``step`` *before* sending it; the intent becomes working.

        Idempotent: if the step's row exists already (a racing worker), it is
        returned unchanged with False, and the caller must act on that row.
        The intent's ``reference_mid`` is set from the first row's ``quote_mid``.
        """
        if qty < 1:
            raise ValueError(f"qty must be >= 1, got {qty}")
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            intent = await _locked_intent(s, intent_id)
            if intent.account != self.account:
                raise OrderStoreError(f"intent {intent_id} is not in account {self.account!r}")
            if IntentStatus(intent.status).is_final:
                raise OrderStoreError(
                    f"intent {intent.intent_key!r} is {intent.status}: no more orders"
                )
            cid = client_order_id_for(intent.intent_key, step)
            stmt = (
                dialect_insert(s)(BrokerOrder)
                .values(
                    intent_id=intent_id,
                    step=step,
                    client_order_id=cid,
                    broker_order_id=None,
                    qty=qty,
                    limit_price=limit_price,
                    quote_mid=quote_mid,
                    at_max_slippage=at_max_slippage,
                    status=BrokerOrderStatus.WRITTEN.value,
                    filled_qty=0,
                    filled_avg_price=None,
                    cost=ZERO,
                    written_at=now,
                    submitted_at=None,
                    updated_at=now,
                    reject_reason=None,
                )
                .on_conflict_do_nothing(index_elements=[BrokerOrder.client_order_id])
                .returning(BrokerOrder.id)
            )
            created = (await s.execute(stmt)).scalar_one_or_none() is not None
            intent.status = IntentStatus.WORKING.value
            if intent.reference_mid is None and quote_mid is not None:
                intent.reference_mid = quote_mid
            intent.updated_at = now
            row = await _order_row(s, cid)
            assert row is not None
            await s.flush()
            return BrokerOrderRecord.from_row(row), created

    async def rewrite_unsent(
        self,
        client_order_id: str,
        *,
        qty: int,
        limit_price: Decimal,
        quote_mid: Decimal | None,
        at_max_slippage: bool,
    ) -> BrokerOrderRecord:
        """New quantity and price for a row the broker has confirmed it never received."""
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            row = await _locked_order(s, client_order_id)
            status = BrokerOrderStatus(row.status)
            if status not in (BrokerOrderStatus.WRITTEN, BrokerOrderStatus.UNKNOWN) or (
                row.broker_order_id is not None
            ):
                raise OrderStoreError(
                    f"order {client_order_id} reached the broker ({status}): it cannot be rewritten"
                )
            row.qty = qty
            row.limit_price = limit_price
            row.quote_mid = quote_mid
            row.at_max_slippage = at_max_slippage
            row.status = BrokerOrderStatus.WRITTEN.value
            row.written_at = now
            row.updated_at = now
            await s.flush()
            return BrokerOrderRecord.from_row(row)

    async def mark_order(
        self,
        client_order_id: str,
        status: BrokerOrderStatus,
        *,
        reject_reason: str | None = None,
    ) -> BrokerOrderRecord:
        """Set a row's status without a broker order (rejected at submit, or unresolved)."""
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            row = await _locked_order(s, client_order_id)
            if not BrokerOrderStatus(row.status).is_final:
                row.status = status.value
                if reject_reason is not None:
                    row.reject_reason = _clip(reject_reason)
                row.updated_at = now
                await s.flush()
            return BrokerOrderRecord.from_row(row)

    async def apply_broker_order(
        self, client_order_id: str, order: Order, on_fill: FillHandler | None = None
    ) -> tuple[BrokerOrderRecord, FillEvent | None]:
        """Take the broker's view of an order: ids, status and any fills not yet booked.

        One transaction: the status change, the fill booking and ``on_fill``
        commit together. The broker's quantity and limit replace ours. A final status is never replaced by an open one (a
        stale read cannot reopen an order) and fills never go backwards.
        """
        if order.client_order_id != client_order_id:
            raise OrderStoreError(
                f"broker order {order.id} has client id {order.client_order_id!r}, "
                f"not {client_order_id!r}"
            )
        async with self._sessions() as s, s.begin():
            probe = await _order_row(s, client_order_id)
            if probe is None:
                raise OrderStoreError(f"no broker order with client id {client_order_id!r}")
            await _locked_intent(s, probe.intent_id)
            row = await _locked_order(s, client_order_id)
            # What the broker holds is the truth (a racing worker may have rewritten our row).
            row.qty = _whole(order.qty, f"quantity of {client_order_id}")
            if order.limit_price is not None:
                row.limit_price = order.limit_price
            await s.flush()
            event = await self._record_fill(
                s,
                client_order_id,
                filled_qty=order.filled_qty,
                filled_avg_price=order.filled_avg_price,
                at=order.updated_at,
                on_fill=on_fill,
            )
            row = await _locked_order(s, client_order_id)
            current = BrokerOrderStatus(row.status)
            seen = BrokerOrderStatus.of(order.status)
            if not current.is_final:
                row.status = seen.value
            row.broker_order_id = row.broker_order_id or order.id
            if row.submitted_at is None:
                row.submitted_at = order.submitted_at
            if order.reject_reason:
                row.reject_reason = _clip(order.reject_reason)
            row.updated_at = self._clock.now()
            await s.flush()
            return BrokerOrderRecord.from_row(row), event

    async def record_fill(
        self,
        client_order_id: str,
        *,
        filled_qty: Decimal,
        filled_avg_price: Decimal | None,
        at: datetime,
        on_fill: FillHandler | None = None,
        session: AsyncSession | None = None,
    ) -> FillEvent | None:
        """Book the fills of an order from the broker's cumulative figures, exactly once.

        The difference to the stored figures is added to the broker order and
        its intent, then ``on_fill`` runs with the same session inside the
        same transaction (raising rolls everything back). Returns None when
        there is nothing new. With ``session`` it joins the caller's transaction.
        """
        async with in_transaction(self._sessions, session) as s:
            return await self._record_fill(
                s,
                client_order_id,
                filled_qty=filled_qty,
                filled_avg_price=filled_avg_price,
                at=at,
                on_fill=on_fill,
            )

    async def _record_fill(
        self,
        s: AsyncSession,
        client_order_id: str,
        *,
        filled_qty: Decimal,
        filled_avg_price: Decimal | None,
        at: datetime,
        on_fill: FillHandler | None,
    ) -> FillEvent | None:
        probe = await _order_row(s, client_order_id)
        if probe is None:
            raise OrderStoreError(f"no broker order with client id {client_order_id!r}")
        # Lock order everywhere: the intent, then its order; concurrent bookings serialise.
        intent = await _locked_intent(s, probe.intent_id)
        row = await _locked_order(s, client_order_id)
        qty = _whole(filled_qty, f"filled quantity of {client_order_id}")
        if qty <= row.filled_qty:
            return None  # seen already (or a stale read): fills never go backwards
        if filled_avg_price is None or not filled_avg_price.is_finite():
            raise OrderStoreError(
                f"order {client_order_id} reports {qty} filled without an average price"
            )
        legs = legs_from_json(intent.legs)
        total_cash = (
            signed_unit_price(legs, intent.direction, filled_avg_price) * qty * OPTION_MULTIPLIER
        ).quantize(CENT, rounding=ROUND_HALF_EVEN)
        delta_qty = qty - row.filled_qty
        delta_cost = total_cash - row.cost
        row.filled_qty = qty
        row.filled_avg_price = filled_avg_price
        row.cost = total_cash
        if not BrokerOrderStatus(row.status).is_final:
            row.status = (
                BrokerOrderStatus.FILLED if qty >= row.qty else BrokerOrderStatus.PARTIALLY_FILLED
            ).value
        now = self._clock.now()
        row.updated_at = now
        intent.filled_qty += delta_qty
        intent.cost = intent.cost + delta_cost
        intent.avg_fill_price = direction_price(intent.direction, intent.cost, intent.filled_qty)
        intent.updated_at = now
        if row.filled_qty > row.qty or intent.filled_qty > intent.target_qty:
            # The broker's word is the truth and is booked; a person must look.
            log.critical(
                "order_overfilled",
                intent_key=intent.intent_key,
                client_order_id=client_order_id,
                order_qty=row.qty,
                order_filled=row.filled_qty,
                target_qty=intent.target_qty,
                intent_filled=intent.filled_qty,
            )
        await s.flush()
        price = direction_price(intent.direction, delta_cost, delta_qty)
        assert price is not None
        event = FillEvent(
            intent=IntentRecord.from_row(intent),
            client_order_id=client_order_id,
            step=row.step,
            delta_qty=delta_qty,
            price=price,
            cost=delta_cost,
            at=at,
        )
        if on_fill is not None:
            await on_fill(s, event)
        return event


def _check_same_plan(record: IntentRecord, new: NewIntent) -> None:
    """A key reused for a different plan is a bug in the caller: refuse, send nothing."""
    differences = [
        f"{name}: stored {stored!r}, given {given!r}"
        for name, stored, given in (
            ("strategy", record.strategy, new.strategy),
            ("purpose", record.purpose, new.purpose),
            ("legs", legs_to_json(record.legs), legs_to_json(new.legs)),
            ("target_qty", record.target_qty, new.target_qty),
            ("direction", record.direction, new.direction),
        )
        if stored != given
    ]
    if differences:
        raise IntentConflict(
            f"intent key {record.intent_key!r} exists for a different plan ("
            + "; ".join(differences)
            + ")"
        )


async def _locked_intent(s: AsyncSession, intent_id: int) -> OrderIntent:
    stmt = select(OrderIntent).where(OrderIntent.id == intent_id)
    if s.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    stmt = stmt.execution_options(populate_existing=True)
    row = (await s.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise OrderStoreError(f"no intent with id {intent_id}")
    return row


async def _order_row(s: AsyncSession, client_order_id: str) -> BrokerOrder | None:
    return (
        await s.execute(select(BrokerOrder).where(BrokerOrder.client_order_id == client_order_id))
    ).scalar_one_or_none()


async def _locked_order(s: AsyncSession, client_order_id: str) -> BrokerOrder:
    stmt = select(BrokerOrder).where(BrokerOrder.client_order_id == client_order_id)
    if s.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    # populate_existing: a row read earlier in this session is refreshed, not reused stale.
    stmt = stmt.execution_options(populate_existing=True)
    row = (await s.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise OrderStoreError(f"no broker order with client id {client_order_id!r}")
    return row
