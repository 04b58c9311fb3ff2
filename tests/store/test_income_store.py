"""The income store on SQLite and PostgreSQL: positions booked from fills (each fill once),
closes and settlements realising P&L once, wheel cycles, approvals expiring at the close."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alchemiser.clock import ManualClock
from alchemiser.store.engine import session_factory
from alchemiser.store.income import (
    APPROVAL_EXPIRED,
    APPROVED,
    ASSIGNED,
    CLOSED,
    DONE,
    EXECUTED,
    EXPIRED,
    OPEN,
    PENDING,
    REJECTED,
    ROLLED,
    SHARES,
    ApprovalError,
    ApprovalView,
    IncomePositionView,
    IncomeStore,
    NewCandidate,
    NewIncomePosition,
    position_id_for,
)
from alchemiser.store.models import IncomeEvent

D = Decimal
START = datetime(2026, 1, 6, 15, 30, tzinfo=UTC)
CLOSE = datetime(2026, 1, 6, 21, 0, tzinfo=UTC)  # 16:00 New York
PUT = "KO260220P00065000"
CALL = "KO260320C00072000"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def store(sessions: async_sessionmaker[AsyncSession], clock: ManualClock) -> IncomeStore:
    return IncomeStore(sessions, clock, "default")


def new_put(key: str = "income-open:2026-01-06:" + PUT, **extra: object) -> NewIncomePosition:
    return NewIncomePosition(
        id=position_id_for(key),
        kind="cash_secured_put",
        underlying="KO",
        symbol=PUT,
        strike=D("65"),
        expiry=date(2026, 2, 20),
        open_intent_key=key,
        entry_iv=D("0.21"),
        **extra,  # type: ignore[arg-type]
    )


def new_call(wheel_id: str, key: str = "income-open:2026-02-23:" + CALL) -> NewIncomePosition:
    return NewIncomePosition(
        id=position_id_for(key),
        kind="covered_call",
        underlying="KO",
        symbol=CALL,
        strike=D("72"),
        expiry=date(2026, 3, 20),
        open_intent_key=key,
        wheel_id=wheel_id,
    )


async def open_fill(
    sessions: async_sessionmaker[AsyncSession],
    store: IncomeStore,
    new: NewIncomePosition,
    contracts: int,
    credit: Decimal,
    ref: str,
) -> IncomePositionView:
    async with sessions.begin() as s:
        return await store.add_opening_fill(s, new, contracts, credit, ref)


async def close_fill(
    sessions: async_sessionmaker[AsyncSession],
    store: IncomeStore,
    position_id: str,
    contracts: int,
    paid: Decimal,
    reason: str,
    ref: str,
) -> IncomePositionView:
    async with sessions.begin() as s:
        return await store.add_closing_fill(s, position_id, contracts, paid, reason, ref)


async def event_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(IncomeEvent)) or 0)


async def pending_approval(
    store: IncomeStore, candidate_id: int, symbol: str = PUT, expires_at: datetime = CLOSE
) -> ApprovalView:
    return await store.add_approval(
        candidate_id=candidate_id,
        kind="cash_secured_put",
        underlying="KO",
        symbol=symbol,
        contracts=2,
        min_credit=D("0.85"),
        score=D("8.10"),
        rationale="KO put: good yield, far from earnings",
        intent_key=f"income-open:2026-01-06:{symbol}",
        expires_at=expires_at,
    )


# -- positions from fills ---------------------------------------------------------------------


async def test_opening_fills_accumulate_contracts_and_credit(
    sessions: async_sessionmaker[AsyncSession], store: IncomeStore, clock: ManualClock
) -> None:
    new = new_put()
    first = await open_fill(sessions, store, new, 2, D("170.00"), "cid#0@2")
    assert (first.state, first.contracts, first.contracts_opened) == (OPEN, 2, 2)
    assert first.credit == D("170.00") and first.credit_per_share == D("0.85")
    assert first.opened_at == START and first.entry_iv == D("0.21")
    await clock.advance(timedelta(minutes=3).total_seconds())
    second = await open_fill(sessions, store, new, 1, D("80.00"), "cid#1@3")
    assert (second.contracts, second.contracts_opened) == (3, 3)
    assert second.credit == D("250.00")
    # Per share over every contract opened: 250 / 300, to 4 places.
    assert second.credit_per_share == (D("250") / 300).quantize(D("0.0001"))
    assert second.opened_at == START  # the first fill opened it
    assert [p.id for p in await store.open_positions()] == [new.id]
    assert await store.open_symbols() == {PUT}
    assert await store.expected_contracts() == {PUT: -3}
    assert await store.get(new.id) == second
    events = await store.events()
    assert [e.event for e in events] == ["OPENED", "OPENED"]
    assert {e.details["contracts"] for e in events} == {2, 1}


async def test_a_redelivered_fill_is_booked_once(
    sessions: async_sessionmaker[AsyncSession], store: IncomeStore
) -> None:
    new = new_put()
    booked = await open_fill(sessions, store, new, 2, D("170.00"), "cid#0@2")
    again = await open_fill(sessions, store, new, 2, D("170.00"), "cid#0@2")
    assert await event_count(sessions) == 1
    assert again == booked  # no second event, and no second booking of the contracts
    assert await store.expected_contracts() == {PUT: -2}

    await close_fill(sessions, store, new.id, 1, D("40.00"), "take_profit", "close#0@1")
    twice = await close_fill(sessions, store, new.id, 1, D("40.00"), "take_profit", "close#0@1")
    assert await event_count(sessions) == 2
    assert (twice.contracts, twice.close_cost, twice.state) == (1, D("40.00"), OPEN)


async def test_closing_fills_close_the_position_with_credit_less_buyback(
    sessions: async_sessionmaker[AsyncSession], store: IncomeStore, clock: ManualClock
) -> None:
    new = new_put()
    await open_fill(sessions, store, new, 3, D("255.00"), "o@3")
    await clock.advance(timedelta(days=5).total_seconds())
    partial = await close_fill(sessions, store, new.id, 1, D("30.10"), "take_profit", "c@1")
    assert (partial.state, partial.contracts, partial.close_cost) == (OPEN, 2, D("30.10"))
    assert partial.realized_pnl is None and partial.closed_at is None
    done = await close_fill(sessions, store, new.id, 2, D("60.20"), "take_profit", "c@3")
    assert (done.state, done.contracts, done.close_reason) == (CLOSED, 0, "take_profit")
    assert done.close_cost == D("90.30")
    assert done.realized_pnl == done.credit - done.close_cost == D("164.70")
    assert done.closed_at == clock.now()
    assert await store.open_positions() == []
    assert await store.expected_contracts() == {}
    events = await store.events()
    assert [e.event for e in events] == ["TAKE_PROFIT", "PARTIAL_CLOSE", "OPENED"]
    assert events[0].realized_pnl == D("164.70") and events[1].realized_pnl is None
    with pytest.raises(LookupError, match="no income position"):
        await close_fill(sessions, store, "inc-missing", 1, D("1"), "closed", "x@1")


async def test_a_roll_close_ends_rolled_and_links_its_replacement(
    sessions: async_sessionmaker[AsyncSession], store: IncomeStore
) -> None:
    old = new_put()
    await open_fill(sessions, store, old, 2, D("170.00"), "o@2")
    rolled = await close_fill(sessions, store, old.id, 2, D("210.00"), "rolled", "c@2")
    assert (rolled.state, rolled.close_reason) == (ROLLED, "rolled")
    assert rolled.realized_pnl == D("-40.00")  # bought back dearer than sold: a loss
    replacement = new_put("income-roll-open:" + old.id, rolled_from=old.id)
    opened = await open_fill(sessions, store, replacement, 2, D("260.00"), "r@2")
    await store.link_roll(old.id, opened.id)
    assert opened.rolled_from == old.id
    assert (await store.get(old.id)).rolled_to == opened.id  # type: ignore[union-attr]
    assert [e.event for e in await store.events()][:2] == ["OPENED", "ROLLED"]


async def test_money_round_trips_exactly(
    sessions: async_sessionmaker[AsyncSession], store: IncomeStore
) -> None:
    new = new_put()
    await open_fill(sessions, store, new, 1, D("0.1"), "o@1")
    booked = await open_fill(sessions, store, new, 1, D("0.2"), "o@2")
    assert booked.credit == D("0.3")
    stored = await store.get(new.id)
    assert (
        stored is not None
        and stored.credit == D("0.3")
        and str(stored.credit) != "0.30000000000000004"
    )
    closed = await close_fill(sessions, store, new.id, 2, D("0.1"), "closed", "c@2")
    assert (await store.get(new.id)).realized_pnl == closed.realized_pnl == D("0.2")  # type: ignore[union-attr]


# -- settlement -----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [EXPIRED, ASSIGNED])
async def test_settlement_realises_the_credit_once(
    sessions: async_sessionmaker[AsyncSession],
    store: IncomeStore,
    clock: ManualClock,
    state: str,
) -> None:
    new = new_put()
    await open_fill(sessions, store, new, 2, D("170.00"), "o@2")
    await close_fill(sessions, store, new.id, 1, D("20.00"), "take_profit", "c@1")
    await clock.advance(timedelta(days=45).total_seconds())
    view, changed = await store.settle(new.id, state, "activity:A1", {"activity_id": "A1"})
    assert changed
    assert (view.state, view.contracts, view.close_reason) == (state, 0, state.lower())
    assert view.realized_pnl == D("150.00") and view.closed_at == clock.now()
    assert view.contracts_opened == 2
    assert await store.has_event("activity:A1")
    assert await store.open_positions() == []

    again, changed_again = await store.settle(new.id, state, "activity:A2", {})
    assert not changed_again and again == view
    assert not await store.has_event("activity:A2")
    assert [e.event for e in await store.events()].count(state) == 1
    with pytest.raises(ValueError, match="EXPIRED or ASSIGNED"):
        await store.settle(new.id, CLOSED, "activity:A3", {})


# -- the wheel ------------------------------------------------------------------------------------


async def test_a_wheel_realises_the_share_result_plus_every_premium_once(
    sessions: async_sessionmaker[AsyncSession], store: IncomeStore, clock: ManualClock
) -> None:
    put_new = new_put()
    await open_fill(sessions, store, put_new, 2, D("170.00"), "o@2")
    put, _ = await store.settle(put_new.id, ASSIGNED, "activity:P", {})
    basis = put.strike - put.credit_per_share
    wheel = await store.start_wheel(put, 200, basis)
    assert (wheel.state, wheel.shares, wheel.cost_basis) == (SHARES, 200, D("64.15"))
    assert wheel.premium == D("170.00") and wheel.underlying == "KO"
    assert wheel.put_position_id == put.id and wheel.realized_pnl is None
    assert await store.start_wheel(put, 999, D("1")) == wheel  # once per put
    assert await store.wheels() == [wheel]

    # Covered calls on the shares add to (and buybacks take from) the cycle's premium.
    call_new = new_call(wheel.id)
    await open_fill(sessions, store, call_new, 2, D("90.00"), "cc@2")
    await close_fill(sessions, store, call_new.id, 2, D("30.00"), "take_profit", "cc-close@2")
    call2 = new_call(wheel.id, key="income-open:2026-03-23:" + CALL)
    await open_fill(sessions, store, call2, 2, D("0.1"), "cc2@1")
    await open_fill(sessions, store, call2, 0, D("0.2"), "cc2@2")
    cycle = (await store.wheels())[0]
    assert cycle.premium == D("170.00") + D("90.00") - D("30.00") + D("0.3")

    await clock.advance(timedelta(days=60).total_seconds())
    sale = D("72")
    ended = await store.end_wheel(wheel.id, sale, "called_away", "called-away:X")
    assert ended is not None and ended.state == DONE and ended.ended_at == clock.now()
    assert ended.realized_pnl == (sale - put.strike) * 200 + cycle.premium
    assert ended.realized_pnl == D("1630.30")
    assert await store.end_wheel(wheel.id, D("80"), "called_away", "called-away:Y") is None
    assert await store.wheels() == []
    assert await store.wheels(state=None) == [ended]
    events = [e.event for e in await store.events()]
    assert events.count("WHEEL_STARTED") == 1 and events.count("WHEEL_ENDED") == 1


async def test_a_wheel_sold_below_the_put_strike_can_lose(
    sessions: async_sessionmaker[AsyncSession], store: IncomeStore
) -> None:
    put_new = new_put()
    await open_fill(sessions, store, put_new, 1, D("85.00"), "o@1")
    put, _ = await store.settle(put_new.id, ASSIGNED, "activity:P", {})
    wheel = await store.start_wheel(put, 100, put.strike - put.credit_per_share)
    ended = await store.end_wheel(wheel.id, D("60"), "called_away", "called-away:X")
    assert ended is not None and ended.realized_pnl == (D("60") - D("65")) * 100 + D("85.00")
    assert ended.realized_pnl < 0


# -- screen runs ----------------------------------------------------------------------------------


async def test_screen_runs_and_candidates_are_stored_with_decisions(store: IncomeStore) -> None:
    candidate = NewCandidate(
        kind="cash_secured_put",
        underlying="KO",
        symbol=PUT,
        contracts=2,
        bid=D("0.84"),
        mid=D("0.87"),
        total_score=D("8.05"),
        decision="execute",
        rationale="good",
        details={"delta": -0.25, "strike": "65"},
    )
    low = NewCandidate(**{**candidate.__dict__, "symbol": CALL, "total_score": D("6.1")})
    run_id, ids = await store.save_run(
        date(2026, 1, 6), "corr-1", {"universe": {"puts": ["KO"]}}, [low, candidate]
    )
    assert len(ids) == 2
    runs = await store.runs()
    assert runs[0]["id"] == run_id and runs[0]["universe"] == {"puts": ["KO"]}
    stored = await store.candidates(run_id)
    assert [c["symbol"] for c in stored] == [PUT, CALL]  # best score first
    assert stored[0]["mid"] == D("0.87") and stored[0]["delta"] == -0.25
    await store.set_candidate_decision(ids[1], "approval_pending")
    assert (await store.candidates(run_id))[0]["decision"] == "approval_pending"


# -- approvals ------------------------------------------------------------------------------------


async def test_an_approval_is_added_once_per_intent_key(store: IncomeStore) -> None:
    first = await pending_approval(store, 1)
    assert first.state == PENDING and first.expires_at == CLOSE and first.min_credit == D("0.85")
    again = await pending_approval(store, 2)  # same intent key: the first one
    assert again == first
    other = await pending_approval(store, 3, symbol=CALL)
    assert [a.id for a in await store.approvals()] == [first.id, other.id]


async def test_approve_and_reject_answer_once(store: IncomeStore, clock: ManualClock) -> None:
    a = await pending_approval(store, 1)
    b = await pending_approval(store, 2, symbol=CALL)
    await clock.advance(timedelta(minutes=10).total_seconds())
    approved = await store.decide(a.id, True, "alice")
    assert (approved.state, approved.decided_by, approved.decided_at) == (
        APPROVED,
        "alice",
        clock.now(),
    )
    rejected = await store.decide(b.id, False, "bob", note="too close to earnings")
    assert (rejected.state, rejected.note) == (REJECTED, "too close to earnings")
    assert await store.approvals() == []
    assert [x.id for x in await store.approvals((APPROVED,))] == [a.id]

    with pytest.raises(ApprovalError, match=f"approval {a.id} is APPROVED"):
        await store.decide(a.id, False, "bob")
    with pytest.raises(ApprovalError, match=f"approval {b.id} is REJECTED"):
        await store.decide(b.id, True, "alice")
    with pytest.raises(ApprovalError, match="no approval 999"):
        await store.decide(999, True, "alice")
    other_account = IncomeStore(store._sessions, clock, "other")
    with pytest.raises(ApprovalError, match=f"no approval {a.id}"):
        await other_account.decide(a.id, True, "mallory")
    # Unchanged by the refusals.
    assert [x.state for x in await store.approvals(None)] == [APPROVED, REJECTED]

    await store.mark_executed(a.id, "filled: 2/2")
    done = await store.approvals((EXECUTED,))
    assert [(x.id, x.note) for x in done] == [(a.id, "filled: 2/2")]


async def test_deciding_after_the_close_is_refused_and_expires_the_approval(
    store: IncomeStore, clock: ManualClock
) -> None:
    a = await pending_approval(store, 1)
    await clock.advance_to(CLOSE)
    with pytest.raises(ApprovalError, match="expired at 2026-01-06T21:00:00"):
        await store.decide(a.id, True, "alice")
    [row] = await store.approvals(None)
    assert (row.state, row.decided_by, row.decided_at) == (APPROVAL_EXPIRED, "expiry", CLOSE)
    with pytest.raises(ApprovalError, match="is EXPIRED"):
        await store.decide(a.id, True, "alice")


async def test_expire_due_expires_pending_and_unsent_approved_at_their_close(
    store: IncomeStore, clock: ManualClock
) -> None:
    pending = await pending_approval(store, 1)
    approved = await pending_approval(store, 2, symbol=CALL)
    later = await pending_approval(
        store, 3, symbol="PG260220P00140000", expires_at=CLOSE + timedelta(days=1)
    )
    rejected = await pending_approval(store, 4, symbol="XOM260220P00100000")
    await store.decide(approved.id, True, "alice")
    await store.decide(rejected.id, False, "alice")
    await clock.advance(timedelta(hours=1).total_seconds())
    assert await store.expire_due() == []  # before the close: nothing
    await clock.advance_to(CLOSE)
    expired = await store.expire_due()
    assert sorted(x.id for x in expired) == [pending.id, approved.id]
    assert all(x.state == APPROVAL_EXPIRED for x in expired)
    by_id = {x.id: x for x in await store.approvals(None)}
    assert by_id[approved.id].decided_by == "alice"  # who approved it is kept
    assert by_id[pending.id].decided_by == "expiry"
    assert by_id[later.id].state == PENDING and by_id[rejected.id].state == REJECTED
    assert await store.expire_due() == []  # once
