"""The hedging services end to end on the simulated broker and a real database."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.daemon import Services
from alchemiser.hedging.context import EXECUTION_QUEUE, PLAN_QUEUE, ROLL_QUEUE
from alchemiser.hedging.evaluator import HedgeEvaluator
from alchemiser.hedging.roller import RollManager
from alchemiser.store.hedges import ACTIVE, ROLLED
from alchemiser.store.models import OrderIntent, SimOrder
from tests.helpers import make_services, run_on_manual_clock

# A calm session of the default sim seed on which the default tail_first rule buys.
SESSION = datetime(2026, 1, 7, 15, 30, tzinfo=NEW_YORK)


def config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "alchemiser.toml"
    path.write_text("[sim]\nstart_date = 2026-01-02\n" + extra)
    return path


async def broker_orders(services: Services) -> int:
    async with services.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(SimOrder)) or 0)


async def evaluate_and_execute(services: Services, clock: ManualClock) -> None:
    await HedgeEvaluator(services.hedging).evaluate(clock.now().astimezone(NEW_YORK).date())
    await run_on_manual_clock(clock, services.hedge_executor.drain("w", EXECUTION_QUEUE))


async def test_an_evaluation_buys_a_hedge_and_books_its_premium_once(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    clock = ManualClock(SESSION)
    services = await make_services(engine, clock, config_file(tmp_path))
    await evaluate_and_execute(services, clock)

    [hedge] = await services.hedging.store.active()
    assert hedge.state == ACTIVE and hedge.contracts >= 1 and hedge.underlying == "QQQ"
    mtd, ytd = await services.hedging.store.spend(clock.now())
    assert mtd == ytd == hedge.premium_paid > 0
    nav = (await services.broker.get_account()).equity
    assert mtd <= nav * Decimal("0.0035")  # the monthly cap, 0.35 % of NAV
    # The broker holds exactly what the store says.
    held = {p.symbol: p.qty for p in await services.broker.get_positions()}
    assert held[hedge.long_symbol] == hedge.contracts
    actions = [e.action for e in await services.audit.entries()]
    assert {"EVALUATION_COMPLETED", "HedgeExecuted", "OPENED", "AllHedgesCompleted"} <= set(actions)


async def test_the_same_evaluation_delivered_twice_sends_one_set_of_orders(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    clock = ManualClock(SESSION)
    services = await make_services(engine, clock, config_file(tmp_path))
    outcome = await HedgeEvaluator(services.hedging).assess(clock.now().date())
    assert outcome.event["recommendations"]
    executor = services.hedge_executor
    await run_on_manual_clock(clock, executor.execute_event(outcome.event))
    sent = await broker_orders(services)
    assert sent >= 1
    # Redelivery (a queue retry after a crash, or a duplicate message): nothing new is sent.
    await run_on_manual_clock(clock, executor.execute_event(outcome.event))
    assert await broker_orders(services) == sent
    assert len(await services.hedging.store.active()) == 1
    # And a second evaluation the same day is recorded once and enqueued once.
    first = await HedgeEvaluator(services.hedging).evaluate(clock.now().date())
    again = await HedgeEvaluator(services.hedging).evaluate(clock.now().date())
    assert not first.duplicate and again.duplicate and not again.enqueued


async def test_the_cap_check_refuses_an_order_past_the_monthly_cap(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    clock = ManualClock(SESSION)
    services = await make_services(engine, clock, config_file(tmp_path))
    outcome = await HedgeEvaluator(services.hedging).assess(clock.now().date())
    assert outcome.event["recommendations"]
    # Meanwhile (say another plan), the month's budget was spent: the executor re-checks.
    nav = (await services.broker.get_account()).equity
    async with services.sessions.begin() as s:
        await services.hedging.store.record_spend(
            s, nav * Decimal("0.0035") - Decimal("1"), "other-hedge", "seeded-fill", clock.now()
        )
    before = await broker_orders(services)
    summary = await run_on_manual_clock(clock, services.hedge_executor.execute_event(outcome.event))
    assert summary["succeeded_hedges"] == 0 and summary["failed_hedges"] == 1
    assert await broker_orders(services) == before  # nothing reached the broker
    mtd, _ = await services.hedging.store.spend(clock.now())
    assert mtd <= nav * Decimal("0.0035")
    [executed] = [e.details for e in await services.audit.entries(action="HedgeExecuted")]
    assert "monthly premium cap" in executed["error_message"]


async def test_a_hedge_near_expiry_is_rolled_as_one_tracked_unit(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    clock = ManualClock(SESSION)
    # A short target tenor makes the first hedge roll-eligible soon after it is bought.
    services = await make_services(engine, clock, config_file(tmp_path))
    await evaluate_and_execute(services, clock)
    [old] = await services.hedging.store.active()
    # Move to a session where the hedge has fewer than 45 days left, 15:45.
    day = old.expiry - timedelta(days=40)
    cal = services.calendar
    day = day if cal.is_session(day) else cal.next_session(day)
    await clock.advance_to(datetime(day.year, day.month, day.day, 15, 45, tzinfo=NEW_YORK))
    roller = RollManager(services.hedging, services.hedge_executor)
    due = await roller.check(day)
    assert [(d.hedge_id, d.reason) for d in due] == [(old.id, "dte_threshold")]
    await run_on_manual_clock(clock, services.hedge_executor.drain("w", ROLL_QUEUE))

    rolled = await services.hedging.store.get(old.id)
    assert rolled is not None and rolled.rolled_to is not None  # the replacement came first
    # The replacement's intent is the session's own: an unfilled one is chosen afresh (perhaps
    # another contract) the next day, under a new key, instead of conflicting with this one.
    async with services.sessions() as s:
        keys = set(await s.scalars(select(OrderIntent.intent_key)))
    assert f"hedge-roll-open:{old.id}:{day.isoformat()}" in keys
    if rolled.state == ACTIVE:
        # The sale expired at the close: the next roll check sells it, buying nothing again.
        day = cal.next_session(day)
        await clock.advance_to(datetime(day.year, day.month, day.day, 15, 45, tzinfo=NEW_YORK))
        await roller.check(day)
        await run_on_manual_clock(clock, services.hedge_executor.drain("w", ROLL_QUEUE))
        rolled = await services.hedging.store.get(old.id)
        assert rolled is not None
    active = await services.hedging.store.active()
    assert rolled.state == ROLLED, rolled
    [new] = active
    assert new.rolled_from == old.id and rolled.rolled_to == new.id
    assert new.expiry > old.expiry
    assert rolled.proceeds is not None and rolled.realized_pnl is not None
    held = {p.symbol for p in await services.broker.get_positions()}
    assert old.long_symbol not in held and new.long_symbol in held
    actions = [e.action for e in await services.audit.entries()]
    assert "HedgeRollTriggered" in actions and "ROLLED" in actions


async def test_a_rebalance_planned_event_is_evaluated_with_its_plan_id_once(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    clock = ManualClock(SESSION)
    services = await make_services(engine, clock, config_file(tmp_path))
    event = {"event_type": "RebalancePlanned", "plan_id": "plan-42", "session_date": "2026-01-07"}
    for _ in range(2):  # delivered twice: one job (dedupe key), one evaluation
        await services.queue.enqueue(
            PLAN_QUEUE, event, dedupe_key="rebalance-planned:default:plan-42"
        )
    handled = await run_on_manual_clock(clock, services.hedge_executor.consume("w"))
    assert handled >= 1
    [evaluation] = await services.hedging.store.evaluations()
    assert evaluation["plan_id"] == "plan-42"
    assert evaluation["event"]["plan_id"] == "plan-42"
    [hedge] = await services.hedging.store.active()
    assert hedge.plan_id == "plan-42"
    assert await run_on_manual_clock(clock, services.hedge_executor.consume("w")) == 0
