"""The income module's records: short option positions, wheel cycles, events, screens, approvals.

Money is summed in Python (Decimal), never with SQL SUM: on SQLite money is
stored as exact text (see store/types.py). Every transition is an
``income_events`` row keyed by what caused it (a fill, a broker activity), so
a redelivered fill or a re-read activity is never booked twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.clock import Clock
from alchemiser.store.audit import to_json_safe
from alchemiser.store.engine import dialect_insert
from alchemiser.store.models import (
    IncomeApproval,
    IncomeCandidate,
    IncomeEvent,
    IncomePosition,
    IncomeScreenRun,
    IncomeWheel,
)
from alchemiser.store.orders import OPTION_MULTIPLIER as MULTIPLIER
from alchemiser.store.types import clip_text

OPEN = "OPEN"
CLOSED = "CLOSED"
EXPIRED = "EXPIRED"
ASSIGNED = "ASSIGNED"
ROLLED = "ROLLED"
SHARES = "SHARES"
DONE = "DONE"

PENDING = "PENDING"
APPROVED = "APPROVED"
REJECTED = "REJECTED"
APPROVAL_EXPIRED = "EXPIRED"
EXECUTED = "EXECUTED"

_PRICE = Decimal("0.0001")


def position_id_for(intent_key: str) -> str:
    return "inc-" + hashlib.sha256(intent_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class IncomePositionView:
    id: str
    kind: str
    underlying: str
    symbol: str
    strike: Decimal
    expiry: date
    contracts: int
    contracts_opened: int
    credit: Decimal
    credit_per_share: Decimal
    entry_iv: Decimal | None
    opened_at: datetime
    state: str
    close_reason: str | None
    closed_at: datetime | None
    close_cost: Decimal
    realized_pnl: Decimal | None
    wheel_id: str | None
    open_intent_key: str
    close_intent_key: str | None
    rolled_from: str | None
    rolled_to: str | None
    candidate_id: int | None

    @property
    def is_call(self) -> bool:
        return self.kind == "covered_call"

    def as_json(self) -> dict[str, Any]:
        return dict(to_json_safe(self.__dict__))


def _position(row: IncomePosition) -> IncomePositionView:
    return IncomePositionView(
        id=row.id,
        kind=row.kind,
        underlying=row.underlying,
        symbol=row.symbol,
        strike=row.strike,
        expiry=row.expiry,
        contracts=row.contracts,
        contracts_opened=row.contracts_opened,
        credit=row.credit,
        credit_per_share=row.credit_per_share,
        entry_iv=row.entry_iv,
        opened_at=row.opened_at,
        state=row.state,
        close_reason=row.close_reason,
        closed_at=row.closed_at,
        close_cost=row.close_cost,
        realized_pnl=row.realized_pnl,
        wheel_id=row.wheel_id,
        open_intent_key=row.open_intent_key,
        close_intent_key=row.close_intent_key,
        rolled_from=row.rolled_from,
        rolled_to=row.rolled_to,
        candidate_id=row.candidate_id,
    )


@dataclass(frozen=True)
class NewIncomePosition:
    """What the executor knows when the first contracts of a sale fill."""

    id: str
    kind: str
    underlying: str
    symbol: str
    strike: Decimal
    expiry: date
    open_intent_key: str
    entry_iv: Decimal | None = None
    wheel_id: str | None = None
    rolled_from: str | None = None
    candidate_id: int | None = None


@dataclass(frozen=True)
class WheelView:
    id: str
    underlying: str
    state: str
    shares: int
    cost_basis: Decimal
    premium: Decimal
    put_position_id: str
    started_at: datetime
    ended_at: datetime | None
    realized_pnl: Decimal | None

    def as_json(self) -> dict[str, Any]:
        return dict(to_json_safe(self.__dict__))


def _wheel(row: IncomeWheel) -> WheelView:
    return WheelView(
        id=row.id,
        underlying=row.underlying,
        state=row.state,
        shares=row.shares,
        cost_basis=row.cost_basis,
        premium=row.premium,
        put_position_id=row.put_position_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        realized_pnl=row.realized_pnl,
    )


@dataclass(frozen=True)
class IncomeEventView:
    id: int
    at: datetime
    event: str
    position_id: str | None
    wheel_id: str | None
    realized_pnl: Decimal | None
    details: dict[str, Any]


@dataclass(frozen=True)
class ApprovalView:
    id: int
    candidate_id: int
    kind: str
    underlying: str
    symbol: str
    contracts: int
    min_credit: Decimal
    score: Decimal
    rationale: str
    intent_key: str
    state: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    note: str | None


def _approval(row: IncomeApproval) -> ApprovalView:
    return ApprovalView(
        id=row.id,
        candidate_id=row.candidate_id,
        kind=row.kind,
        underlying=row.underlying,
        symbol=row.symbol,
        contracts=row.contracts,
        min_credit=row.min_credit,
        score=row.score,
        rationale=row.rationale,
        intent_key=row.intent_key,
        state=row.state,
        created_at=row.created_at,
        expires_at=row.expires_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        note=row.note,
    )


class ApprovalError(Exception):
    """An approval that cannot be answered as asked (unknown, already answered, expired)."""


@dataclass(frozen=True)
class NewCandidate:
    kind: str
    underlying: str
    symbol: str
    contracts: int
    bid: Decimal
    mid: Decimal
    total_score: Decimal
    decision: str
    rationale: str
    details: dict[str, Any]


class IncomeStore:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, account: str
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.account = account

    # -- positions ---------------------------------------------------------------

    async def open_positions(self) -> list[IncomePositionView]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(IncomePosition)
                .where(IncomePosition.account == self.account, IncomePosition.state == OPEN)
                .order_by(IncomePosition.opened_at, IncomePosition.id)
            )
            return [_position(r) for r in rows]

    async def open_symbols(self) -> set[str]:
        return {p.symbol for p in await self.open_positions() if p.contracts > 0}

    async def expected_contracts(self) -> dict[str, int]:
        """Signed contracts our open income positions hold per option symbol (shorts: negative)."""
        held: dict[str, int] = {}
        for p in await self.open_positions():
            held[p.symbol] = held.get(p.symbol, 0) - p.contracts
        return held

    async def get(self, position_id: str) -> IncomePositionView | None:
        async with self._sessions() as s:
            row = await s.get(IncomePosition, position_id)
            return None if row is None or row.account != self.account else _position(row)

    async def history(self, limit: int = 50) -> list[IncomePositionView]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(IncomePosition)
                .where(IncomePosition.account == self.account)
                .order_by(IncomePosition.opened_at.desc(), IncomePosition.id)
                .limit(limit)
            )
            return [_position(r) for r in rows]

    async def add_opening_fill(
        self,
        session: AsyncSession,
        new: NewIncomePosition,
        contracts: int,
        credit: Decimal,
        fill_ref: str,
    ) -> IncomePositionView:
        """Book contracts sold to open (credit: cash received), in the fill's transaction."""
        now = self._clock.now()
        row = await session.get(IncomePosition, new.id, with_for_update=True)
        if row is not None and await self._booked(session, fill_ref):
            return _position(row)  # a redelivered fill: booked already
        if row is None:
            row = IncomePosition(
                id=new.id,
                account=self.account,
                kind=new.kind,
                underlying=new.underlying,
                symbol=new.symbol,
                strike=new.strike,
                expiry=new.expiry,
                contracts=0,
                contracts_opened=0,
                credit=Decimal(0),
                credit_per_share=Decimal(0),
                entry_iv=new.entry_iv,
                opened_at=now,
                state=OPEN,
                close_cost=Decimal(0),
                wheel_id=new.wheel_id,
                open_intent_key=new.open_intent_key,
                rolled_from=new.rolled_from,
                candidate_id=new.candidate_id,
                updated_at=now,
            )
            session.add(row)
        row.contracts += contracts
        row.contracts_opened += contracts
        row.credit = row.credit + credit
        row.credit_per_share = (row.credit / (row.contracts_opened * MULTIPLIER)).quantize(_PRICE)
        row.updated_at = now
        await session.flush()
        if row.wheel_id:
            await self._add_wheel_premium(session, row.wheel_id, credit)
        await self._event(
            session,
            "OPENED",
            fill_ref,
            position_id=row.id,
            wheel_id=row.wheel_id,
            details={"symbol": row.symbol, "contracts": contracts, "credit": str(credit)},
        )
        return _position(row)

    async def add_closing_fill(
        self,
        session: AsyncSession,
        position_id: str,
        contracts: int,
        paid: Decimal,
        reason: str,
        fill_ref: str,
    ) -> IncomePositionView:
        """Book contracts bought back (paid: cash); a position closed whole ends CLOSED/ROLLED."""
        now = self._clock.now()
        row = await self._locked(session, position_id)
        if await self._booked(session, fill_ref):
            return _position(row)  # a redelivered fill: booked already
        row.close_cost = row.close_cost + paid
        row.contracts = max(0, row.contracts - contracts)
        row.updated_at = now
        realized = None
        if row.contracts == 0 and row.state == OPEN:
            row.state = ROLLED if reason == "rolled" else CLOSED
            row.close_reason = reason
            row.closed_at = now
            row.realized_pnl = realized = row.credit - row.close_cost
        await session.flush()
        if row.wheel_id:
            await self._add_wheel_premium(session, row.wheel_id, -paid)
        await self._event(
            session,
            reason.upper() if realized is not None else "PARTIAL_CLOSE",
            fill_ref,
            position_id=row.id,
            wheel_id=row.wheel_id,
            realized_pnl=realized,
            details={"symbol": row.symbol, "contracts": contracts, "paid": str(paid)},
        )
        return _position(row)

    async def set_close_intent(self, position_id: str, intent_key: str) -> None:
        async with self._sessions.begin() as s:
            row = await self._locked(s, position_id)
            row.close_intent_key = intent_key
            row.updated_at = self._clock.now()

    async def link_roll(self, old_id: str, new_id: str) -> None:
        async with self._sessions.begin() as s:
            row = await self._locked(s, old_id)
            row.rolled_to = new_id
            row.updated_at = self._clock.now()

    async def settle(
        self, position_id: str, state: str, ref: str, details: dict[str, Any]
    ) -> tuple[IncomePositionView, bool]:
        """An open position ended at the broker (EXPIRED or ASSIGNED): realise its P&L once.

        Returns the position and whether this call changed it (False: already settled).
        """
        if state not in (EXPIRED, ASSIGNED):
            raise ValueError(f"settle to EXPIRED or ASSIGNED, not {state!r}")
        now = self._clock.now()
        async with self._sessions.begin() as s:
            row = await self._locked(s, position_id)
            if row.state != OPEN:
                return _position(row), False
            row.state = state
            row.close_reason = state.lower()
            row.closed_at = now
            row.contracts = 0
            row.realized_pnl = row.credit - row.close_cost
            row.updated_at = now
            await s.flush()
            await self._event(
                s,
                state,
                ref,
                position_id=row.id,
                wheel_id=row.wheel_id,
                realized_pnl=row.realized_pnl,
                details=details,
            )
            return _position(row), True

    # -- the wheel -----------------------------------------------------------------

    async def start_wheel(
        self, put: IncomePositionView, shares: int, cost_basis: Decimal
    ) -> WheelView:
        """An assigned put becomes shares at ``cost_basis`` (strike − premium): a new cycle."""
        wheel_id = "wheel-" + put.id.removeprefix("inc-")
        async with self._sessions.begin() as s:
            row = await s.get(IncomeWheel, wheel_id)
            if row is not None:
                return _wheel(row)
            row = IncomeWheel(
                id=wheel_id,
                account=self.account,
                underlying=put.underlying,
                state=SHARES,
                shares=shares,
                cost_basis=cost_basis,
                premium=put.credit - put.close_cost,
                put_position_id=put.id,
                started_at=self._clock.now(),
            )
            s.add(row)
            await s.flush()
            await self._event(
                s,
                "WHEEL_STARTED",
                f"wheel-start:{wheel_id}",
                position_id=put.id,
                wheel_id=wheel_id,
                details={
                    "underlying": put.underlying,
                    "shares": shares,
                    "cost_basis": str(cost_basis),
                },
            )
            return _wheel(row)

    async def end_wheel(
        self, wheel_id: str, sale_price: Decimal, how: str, ref: str
    ) -> WheelView | None:
        """The cycle's shares are gone (called away): realise the cycle's P&L once."""
        now = self._clock.now()
        async with self._sessions.begin() as s:
            row = await s.get(IncomeWheel, wheel_id, with_for_update=True)
            if row is None or row.state != SHARES:
                return None
            put = await s.get(IncomePosition, row.put_position_id)
            put_strike = put.strike if put is not None else row.cost_basis
            row.state = DONE
            row.ended_at = now
            # Shares bought at the put's strike and sold at sale_price, plus every premium.
            row.realized_pnl = (sale_price - put_strike) * row.shares + row.premium
            await s.flush()
            await self._event(
                s,
                "WHEEL_ENDED",
                ref,
                wheel_id=wheel_id,
                realized_pnl=row.realized_pnl,
                details={"how": how, "sale_price": str(sale_price), "shares": row.shares},
            )
            return _wheel(row)

    async def wheels(self, state: str | None = SHARES) -> list[WheelView]:
        async with self._sessions() as s:
            query = select(IncomeWheel).where(IncomeWheel.account == self.account)
            if state is not None:
                query = query.where(IncomeWheel.state == state)
            rows = await s.scalars(query.order_by(IncomeWheel.started_at, IncomeWheel.id))
            return [_wheel(r) for r in rows]

    async def _add_wheel_premium(self, s: AsyncSession, wheel_id: str, amount: Decimal) -> None:
        row = await s.get(IncomeWheel, wheel_id, with_for_update=True)
        if row is not None:
            row.premium = row.premium + amount

    # -- events ------------------------------------------------------------------------

    async def events(self, limit: int = 100) -> list[IncomeEventView]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(IncomeEvent)
                .where(IncomeEvent.account == self.account)
                .order_by(IncomeEvent.at.desc(), IncomeEvent.id.desc())
                .limit(limit)
            )
            return [
                IncomeEventView(
                    r.id, r.at, r.event, r.position_id, r.wheel_id, r.realized_pnl, r.details
                )
                for r in rows
            ]

    async def has_event(self, ref: str) -> bool:
        async with self._sessions() as s:
            return await s.scalar(select(IncomeEvent.id).where(IncomeEvent.ref == ref)) is not None

    async def _booked(self, s: AsyncSession, ref: str) -> bool:
        """Whether ``ref`` (a fill) has its event already: it was booked, never book it again."""
        found = await s.scalar(select(IncomeEvent.id).where(IncomeEvent.ref == clip_text(ref, 160)))
        return found is not None

    async def _event(
        self,
        s: AsyncSession,
        event: str,
        ref: str,
        *,
        position_id: str | None = None,
        wheel_id: str | None = None,
        realized_pnl: Decimal | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        insert = dialect_insert(s)
        await s.execute(
            insert(IncomeEvent)
            .values(
                account=self.account,
                at=self._clock.now(),
                event=event,
                position_id=position_id,
                wheel_id=wheel_id,
                realized_pnl=realized_pnl,
                ref=clip_text(ref, 160),
                details=to_json_safe(details or {}),
            )
            .on_conflict_do_nothing(index_elements=["ref"])
        )

    async def _locked(self, s: AsyncSession, position_id: str) -> IncomePosition:
        row = await s.get(IncomePosition, position_id, with_for_update=True)
        if row is None or row.account != self.account:
            raise LookupError(f"no income position {position_id}")
        return row

    # -- screen runs and candidates ---------------------------------------------------------

    async def save_run(
        self,
        session_date: date,
        correlation_id: str | None,
        summary: dict[str, Any],
        candidates: list[NewCandidate],
    ) -> tuple[int, list[int]]:
        """Store a screen run and its scored candidates; returns (run id, candidate ids)."""
        now = self._clock.now()
        async with self._sessions.begin() as s:
            run = IncomeScreenRun(
                account=self.account,
                session_date=session_date,
                at=now,
                correlation_id=correlation_id,
                summary=to_json_safe(summary),
            )
            s.add(run)
            await s.flush()
            rows = [
                IncomeCandidate(
                    run_id=run.id,
                    account=self.account,
                    kind=c.kind,
                    underlying=c.underlying,
                    symbol=c.symbol,
                    contracts=c.contracts,
                    bid=c.bid,
                    mid=c.mid,
                    total_score=c.total_score,
                    decision=c.decision,
                    rationale=c.rationale,
                    details=to_json_safe(c.details),
                    created_at=now,
                )
                for c in candidates
            ]
            s.add_all(rows)
            await s.flush()
            return run.id, [r.id for r in rows]

    async def set_candidate_decision(self, candidate_id: int, decision: str) -> None:
        async with self._sessions.begin() as s:
            row = await s.get(IncomeCandidate, candidate_id, with_for_update=True)
            if row is not None:
                row.decision = decision

    async def runs(self, limit: int = 10) -> list[dict[str, Any]]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(IncomeScreenRun)
                .where(IncomeScreenRun.account == self.account)
                .order_by(IncomeScreenRun.at.desc(), IncomeScreenRun.id.desc())
                .limit(limit)
            )
            return [
                {"id": r.id, "session_date": r.session_date, "at": r.at, **r.summary} for r in rows
            ]

    async def candidates(self, run_id: int) -> list[dict[str, Any]]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(IncomeCandidate)
                .where(IncomeCandidate.run_id == run_id)
                .order_by(IncomeCandidate.total_score.desc(), IncomeCandidate.id)
            )
            return [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "underlying": r.underlying,
                    "symbol": r.symbol,
                    "contracts": r.contracts,
                    "bid": r.bid,
                    "mid": r.mid,
                    "total_score": r.total_score,
                    "decision": r.decision,
                    "rationale": r.rationale,
                    **r.details,
                }
                for r in rows
            ]

    # -- approvals ---------------------------------------------------------------------------

    async def add_approval(
        self,
        candidate_id: int,
        kind: str,
        underlying: str,
        symbol: str,
        contracts: int,
        min_credit: Decimal,
        score: Decimal,
        rationale: str,
        intent_key: str,
        expires_at: datetime,
    ) -> ApprovalView:
        async with self._sessions.begin() as s:
            existing = await s.scalar(
                select(IncomeApproval).where(IncomeApproval.intent_key == intent_key)
            )
            if existing is not None:
                return _approval(existing)
            row = IncomeApproval(
                account=self.account,
                candidate_id=candidate_id,
                kind=kind,
                underlying=underlying,
                symbol=symbol,
                contracts=contracts,
                min_credit=min_credit,
                score=score,
                rationale=rationale,
                intent_key=intent_key,
                state=PENDING,
                created_at=self._clock.now(),
                expires_at=expires_at,
            )
            s.add(row)
            await s.flush()
            return _approval(row)

    async def approvals(self, states: tuple[str, ...] | None = (PENDING,)) -> list[ApprovalView]:
        async with self._sessions() as s:
            query = select(IncomeApproval).where(IncomeApproval.account == self.account)
            if states is not None:
                query = query.where(IncomeApproval.state.in_(states))
            rows = await s.scalars(query.order_by(IncomeApproval.id))
            return [_approval(r) for r in rows]

    async def decide(
        self, approval_id: int, approve: bool, by: str, note: str = ""
    ) -> ApprovalView:
        """Answer a pending approval; an expired or already answered one is refused by name."""
        now = self._clock.now()
        async with self._sessions.begin() as s:
            row = await s.get(IncomeApproval, approval_id, with_for_update=True)
            if row is None or row.account != self.account:
                raise ApprovalError(f"no approval {approval_id}")
            expired = row.state == PENDING and now >= row.expires_at
            if expired:
                row.state = APPROVAL_EXPIRED
                row.decided_at = now
                row.decided_by = "expiry"
            elif row.state != PENDING:
                raise ApprovalError(
                    f"approval {approval_id} is {row.state}, not PENDING: nothing changed"
                )
            else:
                row.state = APPROVED if approve else REJECTED
                row.decided_at = now
                row.decided_by = clip_text(by, 64)
                row.note = note or None
            await s.flush()
            view = _approval(row)
        if expired:
            # Refused only once the expiry is committed (raising inside would roll it back).
            raise ApprovalError(
                f"approval {approval_id} expired at {view.expires_at.isoformat()} "
                "(the close of the session it was proposed in): nothing was traded"
            )
        return view

    async def expire_due(self) -> list[ApprovalView]:
        """Pending and approved-but-unsent approvals whose session has closed expire."""
        now = self._clock.now()
        async with self._sessions.begin() as s:
            rows = list(
                await s.scalars(
                    select(IncomeApproval)
                    .where(
                        IncomeApproval.account == self.account,
                        IncomeApproval.state.in_((PENDING, APPROVED)),
                        IncomeApproval.expires_at <= now,
                    )
                    .with_for_update()
                )
            )
            for row in rows:
                row.state = APPROVAL_EXPIRED
                row.decided_at = now
                row.decided_by = row.decided_by or "expiry"
            await s.flush()
            return [_approval(r) for r in rows]

    async def mark_executed(self, approval_id: int, note: str) -> None:
        async with self._sessions.begin() as s:
            row = await s.get(IncomeApproval, approval_id, with_for_update=True)
            if row is not None:
                row.state = EXECUTED
                row.note = clip_text(note, 2000)
