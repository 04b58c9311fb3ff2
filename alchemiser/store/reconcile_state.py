"""The persisted trading state of an account and the external option positions it adopted.

**Trading state.** One row per account: whether the daemon may open positions.
``ACTIVE`` allows everything; every other mode refuses *opening* orders and
lets closing ones through (closing only ever reduces risk). Reconciliation
sets ``HALTED`` on a mismatch it cannot explain; the risk engine will use
``REDUCING`` and ``EMERGENCY`` the same way. Modes are ordered by severity and
:meth:`TradingStateStore.escalate` never lowers one, so a reconciliation halt
cannot soften a risk emergency; only :meth:`TradingStateStore.resume` (an
operator, or ``reconcile --accept``) returns to ``ACTIVE``. No row means ACTIVE.

**External positions.** Option positions at the broker that no strategy of
ours accounts for (the user's own trades): stored with the quantity last seen
so the next reconciliation recognises them, logged, and never managed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.clock import Clock
from alchemiser.store.audit import in_transaction
from alchemiser.store.engine import dialect_insert
from alchemiser.store.models import ExternalPosition, TradingState
from alchemiser.store.types import clip_text

__all__ = [
    "ExternalPositionView",
    "TradingMode",
    "TradingStateStore",
    "TradingStateView",
]

REASON_MAX = 4000
BY_MAX = 64


class TradingMode(StrEnum):
    """What the account may do, by increasing severity."""

    ACTIVE = "ACTIVE"  # open and close
    REDUCING = "REDUCING"  # risk engine: only risk-reducing (closing) orders
    HALTED = "HALTED"  # reconciliation or an operator: no opening orders until resumed
    EMERGENCY = "EMERGENCY"  # risk engine: no opening orders; it may close to cut risk

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def allows_opening(self) -> bool:
        return self is TradingMode.ACTIVE

    @property
    def allows_closing(self) -> bool:
        return True  # closing never adds risk; a halted book must still be able to shrink


_SEVERITY = {
    TradingMode.ACTIVE: 0,
    TradingMode.REDUCING: 1,
    TradingMode.HALTED: 2,
    TradingMode.EMERGENCY: 3,
}


@dataclass(frozen=True)
class TradingStateView:
    account: str
    state: TradingMode
    reason: str
    changed_by: str
    since: datetime | None  # None: never set (ACTIVE by default)
    last_reconciled_at: datetime | None
    accepted_by: str | None
    accepted_at: datetime | None

    @property
    def allows_opening(self) -> bool:
        return self.state.allows_opening


@dataclass(frozen=True)
class ExternalPositionView:
    symbol: str
    qty: Decimal
    first_seen: datetime
    last_seen: datetime
    note: str


def _view(account: str, row: TradingState | None) -> TradingStateView:
    if row is None:
        return TradingStateView(account, TradingMode.ACTIVE, "", "", None, None, None, None)
    return TradingStateView(
        account=row.account,
        state=TradingMode(row.state),
        reason=row.reason,
        changed_by=row.changed_by,
        since=row.since,
        last_reconciled_at=row.last_reconciled_at,
        accepted_by=row.accepted_by,
        accepted_at=row.accepted_at,
    )


class TradingStateStore:
    """The trading state and the external positions of one account."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, account: str
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.account = account

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One committed transaction that the other stores' ``session=`` arguments can join."""
        async with self._sessions() as s, s.begin():
            yield s

    # -- trading state ---------------------------------------------------------------

    async def trading_state(self) -> TradingStateView:
        async with self._sessions() as s:
            return _view(self.account, await s.get(TradingState, self.account))

    async def escalate(
        self, mode: TradingMode, reason: str, by: str, *, session: AsyncSession | None = None
    ) -> TradingStateView:
        """Enter ``mode`` unless the account is already in one at least as severe.

        The same mode again updates the reason but keeps ``since`` (when it began).
        """
        if mode is TradingMode.ACTIVE:
            raise ValueError("escalate to ACTIVE makes no sense: use resume()")
        async with in_transaction(self._sessions, session) as s:
            row = await self._locked_row(s)
            current = TradingMode(row.state)
            if current.severity > mode.severity:
                return _view(self.account, row)
            if current is not mode:
                row.since = self._clock.now()
            row.state = mode.value
            row.reason = clip_text(reason, REASON_MAX)
            row.changed_by = clip_text(by, BY_MAX)
            await s.flush()
            return _view(self.account, row)

    async def halt(
        self, reason: str, *, by: str = "reconcile", session: AsyncSession | None = None
    ) -> TradingStateView:
        """Refuse opening orders until resumed (persisted across restarts)."""
        return await self.escalate(TradingMode.HALTED, reason, by, session=session)

    async def resume(
        self, by: str, *, reason: str = "", session: AsyncSession | None = None
    ) -> TradingStateView:
        """Back to ACTIVE, recording who lifted the previous state and when."""
        async with in_transaction(self._sessions, session) as s:
            row = await self._locked_row(s)
            now = self._clock.now()
            if row.state != TradingMode.ACTIVE.value:
                row.since = now
            row.state = TradingMode.ACTIVE.value
            row.reason = clip_text(reason, REASON_MAX)
            row.changed_by = clip_text(by, BY_MAX)
            row.accepted_by = clip_text(by, BY_MAX)
            row.accepted_at = now
            await s.flush()
            return _view(self.account, row)

    async def mark_reconciled(
        self, at: datetime | None = None, *, session: AsyncSession | None = None
    ) -> None:
        async with in_transaction(self._sessions, session) as s:
            row = await self._locked_row(s)
            row.last_reconciled_at = at or self._clock.now()
            await s.flush()

    async def last_reconciled_at(self) -> datetime | None:
        return (await self.trading_state()).last_reconciled_at

    async def _locked_row(self, s: AsyncSession) -> TradingState:
        """The account's row, locked; created ACTIVE on first use (racing creators are fine)."""
        await s.execute(
            dialect_insert(s)(TradingState)
            .values(
                account=self.account,
                state=TradingMode.ACTIVE.value,
                reason="",
                changed_by="default",
                since=self._clock.now(),
            )
            .on_conflict_do_nothing(index_elements=[TradingState.account])
        )
        stmt = select(TradingState).where(TradingState.account == self.account)
        if s.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        stmt = stmt.execution_options(populate_existing=True)
        return (await s.execute(stmt)).scalar_one()

    # -- external positions ----------------------------------------------------------

    async def external_positions(self) -> list[ExternalPositionView]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(ExternalPosition)
                .where(ExternalPosition.account == self.account)
                .order_by(ExternalPosition.symbol)
            )
            return [
                ExternalPositionView(r.symbol, r.qty, r.first_seen, r.last_seen, r.note)
                for r in rows
            ]

    async def adopt_external(
        self, symbol: str, qty: Decimal, note: str, *, session: AsyncSession | None = None
    ) -> str:
        """Store (or update) an external position: returns "created", "changed" or "unchanged"."""
        if qty == 0:
            raise ValueError(f"an external position of 0 {symbol} is no position")
        now = self._clock.now()
        async with in_transaction(self._sessions, session) as s:
            created = (
                await s.execute(
                    dialect_insert(s)(ExternalPosition)
                    .values(
                        account=self.account,
                        symbol=symbol,
                        qty=qty,
                        first_seen=now,
                        last_seen=now,
                        note=clip_text(note, REASON_MAX),
                    )
                    .on_conflict_do_nothing(
                        index_elements=[ExternalPosition.account, ExternalPosition.symbol]
                    )
                    .returning(ExternalPosition.id)
                )
            ).scalar_one_or_none()
            if created is not None:
                return "created"
            stmt = select(ExternalPosition).where(
                ExternalPosition.account == self.account, ExternalPosition.symbol == symbol
            )
            if s.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update()
            row = (await s.execute(stmt.execution_options(populate_existing=True))).scalar_one()
            row.last_seen = now
            if row.qty == qty:
                await s.flush()
                return "unchanged"
            row.qty = qty
            row.note = clip_text(note, REASON_MAX)
            await s.flush()
            return "changed"

    async def drop_external(self, symbol: str, *, session: AsyncSession | None = None) -> bool:
        """Forget an external position the broker no longer holds; False if there was none."""
        async with in_transaction(self._sessions, session) as s:
            result = await s.execute(
                delete(ExternalPosition).where(
                    ExternalPosition.account == self.account, ExternalPosition.symbol == symbol
                )
            )
            return bool(getattr(result, "rowcount", 0))
