"""The simulated broker's book in the database: account, positions, orders, fills, activities.

Every query of the sim broker lives here. Reads are short transactions of
their own; a fill, an expiry or an assignment is written through
:meth:`SimBrokerStore.transaction`, so its position, cash, order, fill and
activity rows commit together or not at all.

Quantities and prices are Decimal (``Money`` columns keep them exact on both
databases); times are aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.domain.trading import (
    Activity,
    ActivityType,
    AssetClass,
    Order,
    OrderClass,
    OrderLeg,
    OrderStatus,
    OrderType,
    PositionIntent,
    Side,
    TimeInForce,
)
from alchemiser.store.models import SimAccount, SimActivity, SimFill, SimOrder, SimPosition

__all__ = [
    "SimAccountState",
    "SimBrokerStore",
    "SimFillRecord",
    "SimOrderRecord",
    "SimPositionRecord",
    "SimStateTx",
]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class SimAccountState:
    account_id: str
    cash: Decimal
    realized_pnl: Decimal
    processed_until: datetime
    seeded_from: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SimPositionRecord:
    symbol: str
    asset_class: AssetClass
    qty: Decimal  # signed
    avg_entry_price: Decimal
    multiplier: int = 1


@dataclass(frozen=True, slots=True)
class SimOrderRecord:
    """An accepted order as stored; ``to_order`` gives the protocol's view of it."""

    id: str
    account_id: str
    client_order_id: str
    status: OrderStatus
    order_class: OrderClass
    type: OrderType
    time_in_force: TimeInForce
    qty: Decimal
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    limit_price: Decimal | None
    symbol: str | None
    side: Side | None
    position_intent: PositionIntent | None
    legs: tuple[OrderLeg, ...]
    submitted_at: datetime
    updated_at: datetime
    expires_at: datetime
    last_matched_at: datetime | None = None

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    def to_order(self) -> Order:
        return Order(
            id=self.id,
            client_order_id=self.client_order_id,
            status=self.status,
            order_class=self.order_class,
            type=self.type,
            qty=self.qty,
            filled_qty=self.filled_qty,
            filled_avg_price=self.filled_avg_price,
            limit_price=self.limit_price,
            submitted_at=self.submitted_at,
            updated_at=self.updated_at,
            symbol=self.symbol,
            side=self.side,
            legs=self.legs,
        )


@dataclass(frozen=True, slots=True)
class SimFillRecord:
    order_id: str
    symbol: str
    side: Side
    qty: Decimal  # unsigned
    price: Decimal
    fee: Decimal
    realized_pnl: Decimal
    at: datetime


def _order_from_row(row: SimOrder) -> SimOrderRecord:
    return SimOrderRecord(
        id=row.id,
        account_id=row.account_id,
        client_order_id=row.client_order_id,
        status=OrderStatus(row.status),
        order_class=OrderClass(row.order_class),
        type=OrderType(row.type),
        time_in_force=TimeInForce(row.time_in_force),
        qty=row.qty,
        filled_qty=row.filled_qty,
        filled_avg_price=row.filled_avg_price,
        limit_price=row.limit_price,
        symbol=row.symbol,
        side=Side(row.side) if row.side else None,
        position_intent=PositionIntent(row.position_intent) if row.position_intent else None,
        legs=tuple(_leg_from_json(leg) for leg in row.legs),
        submitted_at=row.submitted_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        last_matched_at=row.last_matched_at,
    )


def _leg_to_json(leg: OrderLeg) -> dict[str, Any]:
    return {
        "symbol": leg.symbol,
        "side": leg.side.value,
        "ratio_qty": leg.ratio_qty,
        "position_intent": leg.position_intent.value if leg.position_intent else None,
    }


def _leg_from_json(data: dict[str, Any]) -> OrderLeg:
    intent = data.get("position_intent")
    return OrderLeg(
        symbol=str(data["symbol"]),
        side=Side(data["side"]),
        ratio_qty=int(data.get("ratio_qty", 1)),
        position_intent=PositionIntent(intent) if intent else None,
    )


def _order_values(record: SimOrderRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "account_id": record.account_id,
        "client_order_id": record.client_order_id,
        "status": record.status.value,
        "order_class": record.order_class.value,
        "type": record.type.value,
        "time_in_force": record.time_in_force.value,
        "qty": record.qty,
        "filled_qty": record.filled_qty,
        "filled_avg_price": record.filled_avg_price,
        "limit_price": record.limit_price,
        "symbol": record.symbol,
        "side": record.side.value if record.side else None,
        "position_intent": record.position_intent.value if record.position_intent else None,
        "legs": [_leg_to_json(leg) for leg in record.legs],
        "submitted_at": record.submitted_at,
        "updated_at": record.updated_at,
        "expires_at": record.expires_at,
        "last_matched_at": record.last_matched_at,
    }


def _activity_from_row(row: SimActivity) -> Activity:
    at = row.occurred_at
    # Alpaca's activity id shape: a sortable timestamp, "::", a unique suffix.
    activity_id = f"{at:%Y%m%d%H%M%S}{at.microsecond // 1000:03d}::{row.id:012d}"
    return Activity(
        id=activity_id,
        activity_type=ActivityType(row.activity_type),
        occurred_at=at,
        symbol=row.symbol,
        qty=row.qty,
        price=row.price,
        side=Side(row.side) if row.side else None,
        order_id=row.order_id,
        net_amount=row.net_amount,
    )


def _position_from_row(row: SimPosition) -> SimPositionRecord:
    return SimPositionRecord(
        symbol=row.symbol,
        asset_class=AssetClass(row.asset_class),
        qty=row.qty,
        avg_entry_price=row.avg_entry_price,
        multiplier=row.multiplier,
    )


class SimStateTx:
    """Writes of one atomic step (a fill, an expiry, an assignment) in one transaction."""

    def __init__(self, session: AsyncSession, account_id: str) -> None:
        self.session = session
        self.account_id = account_id

    async def positions(self) -> dict[str, SimPositionRecord]:
        rows = await self.session.scalars(
            select(SimPosition).where(SimPosition.account_id == self.account_id)
        )
        return {row.symbol: _position_from_row(row) for row in rows}

    async def cash(self) -> Decimal:
        account = await self._account()
        return account.cash

    async def set_position(self, position: SimPositionRecord, now: datetime) -> None:
        """Write a position's new quantity and entry price; a flat position is deleted."""
        row = await self.session.scalar(
            select(SimPosition).where(
                SimPosition.account_id == self.account_id, SimPosition.symbol == position.symbol
            )
        )
        if position.qty == 0:
            if row is not None:
                await self.session.delete(row)
            return
        if row is None:
            self.session.add(
                SimPosition(
                    account_id=self.account_id,
                    symbol=position.symbol,
                    asset_class=position.asset_class.value,
                    qty=position.qty,
                    avg_entry_price=position.avg_entry_price,
                    multiplier=position.multiplier,
                    updated_at=now,
                )
            )
        else:
            row.qty = position.qty
            row.avg_entry_price = position.avg_entry_price
            row.updated_at = now
        await self.session.flush()

    async def add_cash(self, amount: Decimal, realized_pnl: Decimal, now: datetime) -> None:
        account = await self._account()
        account.cash = account.cash + amount
        account.realized_pnl = account.realized_pnl + realized_pnl
        account.updated_at = now

    async def save_order(self, record: SimOrderRecord) -> None:
        values = _order_values(record)
        values.pop("id")
        await self.session.execute(
            update(SimOrder).where(SimOrder.id == record.id).values(**values)
        )

    async def add_fill(self, fill: SimFillRecord) -> None:
        self.session.add(
            SimFill(
                account_id=self.account_id,
                order_id=fill.order_id,
                symbol=fill.symbol,
                side=fill.side.value,
                qty=fill.qty,
                price=fill.price,
                fee=fill.fee,
                realized_pnl=fill.realized_pnl,
                at=fill.at,
            )
        )

    async def add_activity(
        self,
        activity_type: ActivityType,
        at: datetime,
        symbol: str,
        qty: Decimal,
        *,
        price: Decimal | None = None,
        side: Side | None = None,
        order_id: str | None = None,
        net_amount: Decimal | None = None,
    ) -> None:
        self.session.add(
            SimActivity(
                account_id=self.account_id,
                activity_type=activity_type.value,
                occurred_at=at,
                symbol=symbol,
                qty=qty,
                price=price,
                side=side.value if side else None,
                order_id=order_id,
                net_amount=net_amount,
            )
        )

    async def set_processed_until(self, at: datetime) -> None:
        account = await self._account()
        account.processed_until = at
        account.updated_at = at

    async def _account(self) -> SimAccount:
        account = await self.session.get(SimAccount, self.account_id)
        if account is None:
            raise LookupError(f"no simulated account {self.account_id!r} in the database")
        return account


class SimBrokerStore:
    """Repository of simulated accounts (several may share a database, keyed by account id)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @asynccontextmanager
    async def transaction(self, account_id: str) -> AsyncIterator[SimStateTx]:
        async with self._sessions.begin() as session:
            yield SimStateTx(session, account_id)

    # -- account -------------------------------------------------------------

    async def get_account(self, account_id: str) -> SimAccountState | None:
        async with self._sessions() as session:
            row = await session.get(SimAccount, account_id)
            if row is None:
                return None
            return SimAccountState(
                account_id=row.account_id,
                cash=row.cash,
                realized_pnl=row.realized_pnl,
                processed_until=row.processed_until,
                seeded_from=row.seeded_from,
                created_at=row.created_at,
            )

    async def create_account(
        self,
        account_id: str,
        cash: Decimal,
        positions: Iterable[SimPositionRecord],
        now: datetime,
        seeded_from: str | None = None,
    ) -> bool:
        """Create the account with its opening book; False if it exists already."""
        try:
            async with self._sessions.begin() as session:
                session.add(
                    SimAccount(
                        account_id=account_id,
                        cash=cash,
                        realized_pnl=ZERO,
                        processed_until=now,
                        seeded_from=seeded_from,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await session.flush()
                for p in positions:
                    session.add(
                        SimPosition(
                            account_id=account_id,
                            symbol=p.symbol,
                            asset_class=p.asset_class.value,
                            qty=p.qty,
                            avg_entry_price=p.avg_entry_price,
                            multiplier=p.multiplier,
                            updated_at=now,
                        )
                    )
        except IntegrityError:
            return False
        return True

    async def set_processed_until(self, account_id: str, at: datetime) -> None:
        async with self.transaction(account_id) as tx:
            await tx.set_processed_until(at)

    # -- positions -----------------------------------------------------------

    async def get_positions(self, account_id: str) -> list[SimPositionRecord]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SimPosition)
                .where(SimPosition.account_id == account_id)
                .order_by(SimPosition.symbol)
            )
            return [_position_from_row(row) for row in rows]

    # -- orders --------------------------------------------------------------

    async def insert_order(self, record: SimOrderRecord) -> bool:
        """Store a newly accepted order; False if its client order id is taken."""
        try:
            async with self._sessions.begin() as session:
                session.add(SimOrder(**_order_values(record)))
        except IntegrityError:
            return False
        return True

    async def get_order(self, account_id: str, order_id: str) -> SimOrderRecord | None:
        async with self._sessions() as session:
            row = await session.get(SimOrder, order_id)
            if row is None or row.account_id != account_id:
                return None
            return _order_from_row(row)

    async def get_order_by_client_id(
        self, account_id: str, client_order_id: str
    ) -> SimOrderRecord | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(SimOrder).where(
                    SimOrder.account_id == account_id,
                    SimOrder.client_order_id == client_order_id,
                )
            )
            return None if row is None else _order_from_row(row)

    async def open_orders(self, account_id: str) -> list[SimOrderRecord]:
        """Open orders, oldest first: the order in which they meet the market."""
        open_statuses = [s.value for s in OrderStatus if s.is_open]
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SimOrder)
                .where(SimOrder.account_id == account_id, SimOrder.status.in_(open_statuses))
                .order_by(SimOrder.submitted_at, SimOrder.id)
            )
            return [_order_from_row(row) for row in rows]

    async def close_orders(
        self, account_id: str, order_ids: Sequence[str], status: OrderStatus, at: datetime
    ) -> None:
        """Move open orders to a final status (canceled, expired) in one transaction."""
        if not order_ids:
            return
        open_statuses = [s.value for s in OrderStatus if s.is_open]
        async with self._sessions.begin() as session:
            await session.execute(
                update(SimOrder)
                .where(
                    SimOrder.account_id == account_id,
                    SimOrder.id.in_(list(order_ids)),
                    SimOrder.status.in_(open_statuses),
                )
                .values(status=status.value, updated_at=at)
            )

    # -- fills and activities ------------------------------------------------

    async def get_fills(self, account_id: str, order_id: str | None = None) -> list[SimFillRecord]:
        query = select(SimFill).where(SimFill.account_id == account_id)
        if order_id is not None:
            query = query.where(SimFill.order_id == order_id)
        async with self._sessions() as session:
            rows = await session.scalars(query.order_by(SimFill.at, SimFill.id))
            return [
                SimFillRecord(
                    order_id=row.order_id,
                    symbol=row.symbol,
                    side=Side(row.side),
                    qty=row.qty,
                    price=row.price,
                    fee=row.fee,
                    realized_pnl=row.realized_pnl,
                    at=row.at,
                )
                for row in rows
            ]

    async def get_activities(
        self, account_id: str, since: datetime, types: Sequence[ActivityType] | None = None
    ) -> list[Activity]:
        query = select(SimActivity).where(
            SimActivity.account_id == account_id, SimActivity.occurred_at >= since
        )
        if types is not None:
            query = query.where(SimActivity.activity_type.in_([t.value for t in types]))
        async with self._sessions() as session:
            rows = await session.scalars(query.order_by(SimActivity.occurred_at, SimActivity.id))
            return [_activity_from_row(row) for row in rows]

    # -- maintenance ---------------------------------------------------------

    async def delete_account(self, account_id: str) -> None:
        """Remove a simulated account and its whole history (start the scenario over)."""
        async with self._sessions.begin() as session:
            for model in (SimActivity, SimFill, SimOrder, SimPosition):
                await session.execute(delete(model).where(model.account_id == account_id))
            await session.execute(delete(SimAccount).where(SimAccount.account_id == account_id))


def with_status(record: SimOrderRecord, status: OrderStatus, at: datetime) -> SimOrderRecord:
    """A copy of the order in a new status."""
    return replace(record, status=status, updated_at=at)
