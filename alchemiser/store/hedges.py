"""Hedge positions, the premium spend ledger, evaluations, the kill switch and cycles.

Money is summed in Python (Decimal), never with SQL SUM: on SQLite money is
stored as exact text (see store/types.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.clock import NEW_YORK, Clock
from alchemiser.store.audit import to_json_safe
from alchemiser.store.engine import dialect_insert
from alchemiser.store.models import (
    HedgeControl,
    HedgeCycle,
    HedgeEvaluation,
    HedgePosition,
    HedgeSpend,
    IvHistory,
)

ACTIVE = "ACTIVE"
CLOSED = "CLOSED"
ROLLED = "ROLLED"
EXPIRED = "EXPIRED"
EXERCISED = "EXERCISED"
HOLDING = "HOLDING"
PENDING_ROLL = "PENDING_ROLL"


@dataclass(frozen=True)
class HedgeView:
    id: str
    underlying: str
    template: str
    long_symbol: str
    long_strike: Decimal
    short_symbol: str | None
    short_strike: Decimal | None
    expiry: date
    contracts: int
    entry_price: Decimal
    premium_paid: Decimal
    entry_at: datetime
    state: str
    roll_state: str
    plan_id: str | None
    open_intent_key: str
    close_intent_key: str | None
    rolled_from: str | None
    rolled_to: str | None
    closed_at: datetime | None
    proceeds: Decimal | None
    realized_pnl: Decimal | None

    @property
    def is_spread(self) -> bool:
        return self.short_symbol is not None

    def as_json(self) -> dict[str, Any]:
        return dict(to_json_safe(self.__dict__))


def _view(row: HedgePosition) -> HedgeView:
    return HedgeView(
        id=row.id,
        underlying=row.underlying,
        template=row.template,
        long_symbol=row.long_symbol,
        long_strike=row.long_strike,
        short_symbol=row.short_symbol,
        short_strike=row.short_strike,
        expiry=row.expiry,
        contracts=row.contracts,
        entry_price=row.entry_price,
        premium_paid=row.premium_paid,
        entry_at=row.entry_at,
        state=row.state,
        roll_state=row.roll_state,
        plan_id=row.plan_id,
        open_intent_key=row.open_intent_key,
        close_intent_key=row.close_intent_key,
        rolled_from=row.rolled_from,
        rolled_to=row.rolled_to,
        closed_at=row.closed_at,
        proceeds=row.proceeds,
        realized_pnl=row.realized_pnl,
    )


@dataclass(frozen=True)
class NewHedge:
    """What the executor knows when the first contracts of a hedge fill."""

    id: str
    underlying: str
    template: str
    long_symbol: str
    long_strike: Decimal
    short_symbol: str | None
    short_strike: Decimal | None
    expiry: date
    open_intent_key: str
    plan_id: str | None = None
    rolled_from: str | None = None


@dataclass(frozen=True)
class KillSwitch:
    enabled: bool
    reason: str
    changed_by: str
    changed_at: datetime | None


def month_key(at: datetime) -> tuple[str, int]:
    """The New York calendar month and year a spend belongs to."""
    local = at.astimezone(NEW_YORK)
    return f"{local.year:04d}-{local.month:02d}", local.year


class HedgeStore:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, account: str
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.account = account

    # -- positions ---------------------------------------------------------------

    async def active(self) -> list[HedgeView]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(HedgePosition)
                .where(HedgePosition.account == self.account, HedgePosition.state == ACTIVE)
                .order_by(HedgePosition.entry_at)
            )
            return [_view(r) for r in rows]

    async def get(self, hedge_id: str) -> HedgeView | None:
        async with self._sessions() as s:
            row = await s.get(HedgePosition, hedge_id)
            return _view(row) if row is not None and row.account == self.account else None

    async def history(self, limit: int = 50) -> list[HedgeView]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(HedgePosition)
                .where(HedgePosition.account == self.account)
                .order_by(HedgePosition.entry_at.desc())
                .limit(limit)
            )
            return [_view(r) for r in rows]

    async def add_opening_fill(
        self, session: AsyncSession, hedge: NewHedge, contracts: int, price: Decimal, cost: Decimal
    ) -> HedgeView:
        """Book contracts bought to open a hedge (created on its first fill), in the fill's transaction."""
        now = self._clock.now()
        row = await session.get(HedgePosition, hedge.id, with_for_update=True)
        if row is None:
            row = HedgePosition(
                id=hedge.id,
                account=self.account,
                underlying=hedge.underlying,
                template=hedge.template,
                long_symbol=hedge.long_symbol,
                long_strike=hedge.long_strike,
                short_symbol=hedge.short_symbol,
                short_strike=hedge.short_strike,
                expiry=hedge.expiry,
                contracts=0,
                entry_price=Decimal(0),
                premium_paid=Decimal(0),
                entry_at=now,
                state=ACTIVE,
                roll_state=HOLDING,
                plan_id=hedge.plan_id,
                open_intent_key=hedge.open_intent_key,
                rolled_from=hedge.rolled_from,
                updated_at=now,
            )
            session.add(row)
        total = row.contracts + contracts
        row.premium_paid = row.premium_paid + cost
        row.entry_price = (row.premium_paid / (total * 100)).quantize(Decimal("0.0001"))
        row.contracts = total
        row.updated_at = now
        await session.flush()
        return _view(row)

    async def attach_short_leg(
        self,
        session: AsyncSession,
        hedge_id: str,
        short_symbol: str,
        short_strike: Decimal,
        credit: Decimal,
    ) -> HedgeView:
        """A legged spread's short leg filled: the hedge becomes a spread, its net cost falls."""
        row = await session.get(HedgePosition, hedge_id, with_for_update=True)
        if row is None:
            raise LookupError(f"no hedge {hedge_id}")
        row.short_symbol = short_symbol
        row.short_strike = short_strike
        row.premium_paid = row.premium_paid - credit
        if row.contracts > 0:
            row.entry_price = (row.premium_paid / (row.contracts * 100)).quantize(Decimal("0.0001"))
        row.updated_at = self._clock.now()
        await session.flush()
        return _view(row)

    async def add_closing_fill(
        self, session: AsyncSession, hedge_id: str, contracts: int, proceeds: Decimal
    ) -> HedgeView:
        """Book contracts sold to close (proceeds: cash received); a hedge closed whole is CLOSED."""
        now = self._clock.now()
        row = await session.get(HedgePosition, hedge_id, with_for_update=True)
        if row is None:
            raise LookupError(f"no hedge {hedge_id}")
        row.proceeds = (row.proceeds or Decimal(0)) + proceeds
        row.contracts = row.contracts - contracts
        if row.contracts <= 0:
            row.contracts = 0
            row.state = ROLLED if row.roll_state == PENDING_ROLL else CLOSED
            row.closed_at = now
            row.realized_pnl = row.proceeds - row.premium_paid
        row.updated_at = now
        await session.flush()
        return _view(row)

    async def set_roll_state(
        self, hedge_id: str, roll_state: str, close_intent_key: str | None = None
    ) -> None:
        async with self._sessions.begin() as s:
            row = await s.get(HedgePosition, hedge_id, with_for_update=True)
            if row is None:
                raise LookupError(f"no hedge {hedge_id}")
            row.roll_state = roll_state
            if close_intent_key is not None:
                row.close_intent_key = close_intent_key
            row.updated_at = self._clock.now()

    async def link_roll(self, old_id: str, new_id: str) -> None:
        async with self._sessions.begin() as s:
            row = await s.get(HedgePosition, old_id, with_for_update=True)
            if row is not None:
                row.rolled_to = new_id
                row.updated_at = self._clock.now()

    async def settle(
        self, hedge_id: str, state: str, proceeds: Decimal, session: AsyncSession | None = None
    ) -> HedgeView:
        """End a hedge at expiry (EXPIRED worthless, or EXERCISED with its cash value)."""

        async def work(s: AsyncSession) -> HedgeView:
            row = await s.get(HedgePosition, hedge_id, with_for_update=True)
            if row is None:
                raise LookupError(f"no hedge {hedge_id}")
            now = self._clock.now()
            row.state = state
            row.roll_state = HOLDING if row.roll_state == PENDING_ROLL else row.roll_state
            row.proceeds = (row.proceeds or Decimal(0)) + proceeds
            row.realized_pnl = row.proceeds - row.premium_paid
            row.closed_at = now
            row.updated_at = now
            await s.flush()
            return _view(row)

        if session is not None:
            return await work(session)
        async with self._sessions.begin() as s:
            return await work(s)

    # -- the spend ledger --------------------------------------------------------

    async def record_spend(
        self, session: AsyncSession, amount: Decimal, hedge_id: str, fill_ref: str, at: datetime
    ) -> bool:
        """Add premium paid; a fill already booked (same fill_ref) is not booked twice."""
        month, year = month_key(at)
        values = {
            "account": self.account,
            "at": at,
            "month": month,
            "year": year,
            "amount": amount,
            "hedge_id": hedge_id,
            "fill_ref": fill_ref,
        }
        insert = dialect_insert(session)
        result = await session.execute(
            insert(HedgeSpend).values(**values).on_conflict_do_nothing(index_elements=["fill_ref"])
        )
        return bool(getattr(result, "rowcount", 0))

    async def spend(self, at: datetime) -> tuple[Decimal, Decimal]:
        """(month-to-date, year-to-date) premium spend at ``at``."""
        month, year = month_key(at)
        async with self._sessions() as s:
            rows = (
                await s.execute(
                    select(HedgeSpend.month, HedgeSpend.amount).where(
                        HedgeSpend.account == self.account, HedgeSpend.year == year
                    )
                )
            ).all()
        ytd = sum((amount for _m, amount in rows), Decimal(0))
        mtd = sum((amount for m, amount in rows if m == month), Decimal(0))
        return mtd, ytd

    async def spend_between(self, start: datetime, end: datetime) -> Decimal:
        """Premium paid from ``start`` (inclusive) to ``end`` (exclusive)."""
        async with self._sessions() as s:
            amounts = await s.scalars(
                select(HedgeSpend.amount).where(
                    HedgeSpend.account == self.account,
                    HedgeSpend.at >= start,
                    HedgeSpend.at < end,
                )
            )
            return sum(amounts, Decimal(0))

    async def spend_by_year(self) -> dict[int, Decimal]:
        async with self._sessions() as s:
            rows = (
                await s.execute(
                    select(HedgeSpend.year, HedgeSpend.amount).where(
                        HedgeSpend.account == self.account
                    )
                )
            ).all()
        totals: dict[int, Decimal] = {}
        for year, amount in rows:
            totals[year] = totals.get(year, Decimal(0)) + amount
        return totals

    async def spend_by_month(self) -> dict[str, Decimal]:
        async with self._sessions() as s:
            rows = (
                await s.execute(
                    select(HedgeSpend.month, HedgeSpend.amount).where(
                        HedgeSpend.account == self.account
                    )
                )
            ).all()
        totals: dict[str, Decimal] = {}
        for month, amount in rows:
            totals[month] = totals.get(month, Decimal(0)) + amount
        return totals

    # -- evaluations -------------------------------------------------------------

    async def save_evaluation(
        self,
        session_date: date,
        plan_id: str | None,
        correlation_id: str,
        event: dict[str, Any],
        explanation: dict[str, Any],
        skip_reason: str | None,
    ) -> bool:
        """Store an evaluation; False if this account, day and plan already has one."""
        async with self._sessions.begin() as s:
            insert = dialect_insert(s)
            result = await s.execute(
                insert(HedgeEvaluation)
                .values(
                    account=self.account,
                    session_date=session_date,
                    plan_id=plan_id or "",
                    correlation_id=correlation_id,
                    skip_reason=skip_reason,
                    event=to_json_safe(event),
                    explanation=to_json_safe(explanation),
                    created_at=self._clock.now(),
                )
                .on_conflict_do_nothing(index_elements=["account", "session_date", "plan_id"])
            )
            return bool(getattr(result, "rowcount", 0))

    async def evaluations(self, limit: int = 20) -> list[dict[str, Any]]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(HedgeEvaluation)
                .where(HedgeEvaluation.account == self.account)
                .order_by(HedgeEvaluation.created_at.desc(), HedgeEvaluation.id.desc())
                .limit(limit)
            )
            return [
                {
                    "session_date": r.session_date,
                    "plan_id": r.plan_id or None,
                    "correlation_id": r.correlation_id,
                    "skip_reason": r.skip_reason,
                    "event": r.event,
                    "explanation": r.explanation,
                    "created_at": r.created_at,
                }
                for r in rows
            ]

    # -- kill switch and cycles --------------------------------------------------

    async def kill_switch(self) -> KillSwitch:
        async with self._sessions() as s:
            row = await s.get(HedgeControl, self.account)
            if row is None:
                return KillSwitch(True, "", "", None)
            return KillSwitch(row.enabled, row.reason, row.changed_by, row.changed_at)

    async def set_kill_switch(self, enabled: bool, reason: str, changed_by: str) -> None:
        async with self._sessions.begin() as s:
            row = await s.get(HedgeControl, self.account, with_for_update=True)
            now = self._clock.now()
            if row is None:
                s.add(
                    HedgeControl(
                        account=self.account,
                        enabled=enabled,
                        reason=reason,
                        changed_by=changed_by,
                        changed_at=now,
                    )
                )
            else:
                row.enabled, row.reason, row.changed_by, row.changed_at = (
                    enabled,
                    reason,
                    changed_by,
                    now,
                )

    async def record_cycle(self, kind: str, ok: bool, error: str | None = None) -> None:
        async with self._sessions.begin() as s:
            s.add(
                HedgeCycle(
                    account=self.account, at=self._clock.now(), kind=kind, ok=ok, error=error
                )
            )

    async def failed_cycles_since(self, since: datetime) -> int:
        async with self._sessions() as s:
            count = await s.scalar(
                select(func.count())
                .select_from(HedgeCycle)
                .where(
                    HedgeCycle.account == self.account,
                    HedgeCycle.at >= since,
                    HedgeCycle.ok.is_(False),
                )
            )
            return int(count or 0)


class IvHistoryStore:
    """Daily ATM implied volatility per underlying, shared by hedging and income."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def record(
        self, symbol: str, session_date: date, atm_iv: Decimal, vol_index: Decimal | None = None
    ) -> bool:
        """Store the day's value once (a second call the same day changes nothing)."""
        async with self._sessions.begin() as s:
            insert = dialect_insert(s)
            result = await s.execute(
                insert(IvHistory)
                .values(
                    symbol=symbol,
                    session_date=session_date,
                    atm_iv=atm_iv,
                    vol_index=vol_index,
                    recorded_at=self._clock.now(),
                )
                .on_conflict_do_nothing(index_elements=["symbol", "session_date"])
            )
            return bool(getattr(result, "rowcount", 0))

    async def history(self, symbol: str, before: date, limit: int = 252) -> list[Decimal]:
        """The last ``limit`` daily values before ``before``, oldest first."""
        async with self._sessions() as s:
            rows = await s.scalars(
                select(IvHistory.atm_iv)
                .where(IvHistory.symbol == symbol, IvHistory.session_date < before)
                .order_by(IvHistory.session_date.desc())
                .limit(limit)
            )
            return list(reversed(list(rows)))
