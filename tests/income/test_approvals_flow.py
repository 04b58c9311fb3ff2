"""Manual approval end to end: the screen job queues trades, a person answers, the daemon's
``execute_approved`` sends what was approved, and what is left unanswered expires at the close.

Real daemon services on the simulated broker (wheel scenario) and a manual clock; the income
screen job runs at its own scheduled time through the job runner.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.daemon import Services
from alchemiser.domain.trading import PositionIntent, Side
from alchemiser.income.trader import IncomeTrader
from alchemiser.jobs import JOBS
from alchemiser.scheduler import JobRunner
from alchemiser.session_triggers import SessionTrigger, fire_times
from alchemiser.store.income import (
    APPROVAL_EXPIRED,
    APPROVED,
    EXECUTED,
    PENDING,
    REJECTED,
    ApprovalError,
    ApprovalView,
    position_id_for,
)
from alchemiser.store.models import BrokerOrder, OrderIntent
from tests.helpers import make_services, run_on_manual_clock

START = date(2026, 1, 2)
SCENARIO = Path(__file__).resolve().parents[2] / "config" / "sim_scenario_wheel.toml"
WATCH = ["KO", "PG", "JPM", "XOM", "NVDA"]
MAX_SESSIONS = 5  # the screen proposes on the first session of this scenario; a little slack
SCREEN_JOB = next(job for job in JOBS if job.name == "income_screen")


def write_config(tmp_path: Path, approval: str) -> Path:
    config = tmp_path / "alchemiser.toml"
    watch = ", ".join(f'"{s}"' for s in WATCH)
    config.write_text(
        f'[sim]\nstart_date = {START.isoformat()}\nscenario = "{SCENARIO}"\n\n'
        f'[income]\napproval = "{approval}"\nwatch_list = [{watch}]\n\n'
        # The sim matches orders once a minute: polling every 2 s only costs real time.
        "[income.orders]\npoll_interval_seconds = 30\n"
    )
    return config


async def services_for(engine: AsyncEngine, tmp_path: Path, approval: str) -> Services:
    clock = ManualClock(datetime.combine(START, time(9, 0), NEW_YORK))
    return await make_services(engine, clock, write_config(tmp_path, approval))


async def screen_until_proposed(services: Services) -> date:
    """Run the income screen job at its scheduled time, session by session, until it proposes."""
    clock = services.clock
    assert isinstance(clock, ManualClock)
    trigger = SessionTrigger(services.calendar, SCREEN_JOB.spec(services.settings.current))
    runner = JobRunner(services)
    for when in fire_times(trigger, clock.now(), clock.now() + timedelta(days=10))[:MAX_SESSIONS]:
        await clock.advance_to(when)
        assert await run_on_manual_clock(clock, runner.run(SCREEN_JOB), limit=120) == "done"
        [run] = (await services.income.store.runs(limit=1))[:1]
        if run["proposals"]:
            return run["session_date"]  # type: ignore[no-any-return]
    raise AssertionError(f"the screen proposed nothing in {MAX_SESSIONS} sessions")


async def income_orders(services: Services) -> tuple[list[OrderIntent], list[BrokerOrder]]:
    async with services.sessions() as s:
        intents = list(
            await s.scalars(
                select(OrderIntent).where(OrderIntent.strategy == "income").order_by(OrderIntent.id)
            )
        )
        orders = list(
            await s.scalars(
                select(BrokerOrder).where(BrokerOrder.intent_id.in_([i.id for i in intents]))
            )
        )
    return intents, orders


def close_of(services: Services, session: date) -> datetime:
    return services.calendar.session_close(session)


async def test_manual_mode_queues_approvals_and_sends_only_what_was_approved(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    services = await services_for(engine, tmp_path, "manual")
    clock = services.clock
    assert isinstance(clock, ManualClock)
    session = await screen_until_proposed(services)
    store = services.income.store

    [run] = await store.runs(limit=1)
    pending = await store.approvals()
    # One approval per proposal of the run, waiting until that session's close; nothing sent.
    assert sorted(a.symbol for a in pending) == sorted(run["proposals"])
    assert all(a.state == PENDING for a in pending)
    assert {a.expires_at for a in pending} == {close_of(services, session)}
    assert all(a.created_at < a.expires_at for a in pending)
    assert all(a.contracts >= 1 and a.min_credit > 0 and a.rationale for a in pending)
    assert await income_orders(services) == ([], [])
    assert await store.open_positions() == []
    # The candidates behind them are stored with their run.
    stored = {c["id"]: c for c in await store.candidates(run["id"])}
    for a in pending:
        assert stored[a.candidate_id]["symbol"] == a.symbol
    # A second run of the job the same session neither re-runs nor queues anything twice.
    runner = JobRunner(services)
    assert await run_on_manual_clock(clock, runner.run(SCREEN_JOB)) == "already_ran"
    assert len(await store.approvals(None)) == len(pending)

    chosen = pending[0]
    approved = await store.decide(chosen.id, True, "tester")
    assert approved.state == APPROVED
    rejected: ApprovalView | None = None
    if len(pending) > 1:
        rejected = await store.decide(pending[1].id, False, "tester", note="not today")
        assert rejected.state == REJECTED

    trader = IncomeTrader(services.income)
    assert await run_on_manual_clock(clock, trader.execute_approved(), limit=120) == 1
    intents, orders = await income_orders(services)
    # Exactly the approved trade: one intent under the approval's key, its orders only.
    assert [i.intent_key for i in intents] == [chosen.intent_key]
    [intent] = intents
    assert intent.purpose == "open" and intent.direction == "credit"
    assert intent.target_qty == chosen.contracts
    assert [(leg["symbol"], leg["side"], leg["position_intent"]) for leg in intent.legs] == [
        (chosen.symbol, Side.SELL.value, PositionIntent.SELL_TO_OPEN.value)
    ]
    assert orders and {o.intent_id for o in orders} == {intent.id}
    # Never below the least credit the person approved.
    assert all(o.limit_price >= chosen.min_credit for o in orders)
    after = {a.id: a for a in await store.approvals(None)}
    assert after[chosen.id].state == EXECUTED
    assert after[chosen.id].note is not None and str(intent.filled_qty) in after[chosen.id].note
    if rejected is not None:
        assert after[rejected.id].state == REJECTED
    position = await store.get(position_id_for(chosen.intent_key))
    if intent.filled_qty > 0:
        assert position is not None and position.contracts == intent.filled_qty
        assert position.symbol == chosen.symbol and position.candidate_id == chosen.candidate_id
    else:
        assert position is None

    # Sent once: a second pass of the daemon's consumer sends nothing more.
    assert await run_on_manual_clock(clock, trader.execute_approved()) == 0
    assert len((await income_orders(services))[0]) == 1

    # What was left unanswered expires at the close: refused, never sent.
    left = [a for a in pending if a.id not in {chosen.id, rejected.id if rejected else -1}]
    await clock.advance_to(close_of(services, session) + timedelta(minutes=1))
    if left:
        with pytest.raises(ApprovalError, match=r"expired at .*nothing was traded"):
            await store.decide(left[0].id, True, "tester")
    expired = await store.expire_due()
    assert {a.id for a in expired} == {a.id for a in left[1:]}
    by_id = {a.id: a for a in await store.approvals(None)}
    assert all(by_id[a.id].state == APPROVAL_EXPIRED for a in left)
    for a in left:
        with pytest.raises(ApprovalError, match="EXPIRED"):
            await store.decide(a.id, True, "tester")
    assert await store.approvals() == []
    assert await run_on_manual_clock(clock, trader.execute_approved()) == 0
    assert len((await income_orders(services))[0]) == 1


async def test_an_approval_not_sent_before_the_close_expires_unsent(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    services = await services_for(engine, tmp_path, "manual")
    clock = services.clock
    assert isinstance(clock, ManualClock)
    session = await screen_until_proposed(services)
    store = services.income.store
    [first, *_] = await store.approvals()
    await store.decide(first.id, True, "tester")
    # Approved, but the daemon did not get to it before the close: a stale quote, not sent.
    await clock.advance_to(close_of(services, session) + timedelta(minutes=1))
    trader = IncomeTrader(services.income)
    assert await run_on_manual_clock(clock, trader.execute_approved()) == 0
    assert await income_orders(services) == ([], [])
    states = {a.id: a for a in await store.approvals(None)}
    assert states[first.id].state == APPROVAL_EXPIRED
    assert states[first.id].decided_by == "tester"
    assert all(a.state == APPROVAL_EXPIRED for a in states.values())


async def test_auto_mode_sells_what_the_same_screen_proposes(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    services = await services_for(engine, tmp_path, "auto")
    await screen_until_proposed(services)
    store = services.income.store
    [run] = await store.runs(limit=1)
    assert await store.approvals(None) == []  # nothing waits for a person
    intents, orders = await income_orders(services)
    assert sorted(i.legs[0]["symbol"] for i in intents) == sorted(run["proposals"])
    assert orders and all(i.direction == "credit" for i in intents)
    filled = [i for i in intents if i.filled_qty > 0]
    assert filled, "no sale filled"
    positions = {p.open_intent_key: p for p in await store.open_positions()}
    for intent in filled:
        position = positions[intent.intent_key]
        assert position.contracts == intent.filled_qty
        assert position.credit == -intent.cost > 0
    held = {p.symbol: p.qty for p in await services.broker.get_positions()}
    for position in positions.values():
        assert held[position.symbol] == -position.contracts
