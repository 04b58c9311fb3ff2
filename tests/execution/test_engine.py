"""The shared order life cycle on the real simulated broker over the synthetic market,
on both databases, with time moved by hand.

Expected prices are read from the market at the instant the executor or the
broker used them (the market is deterministic), so every check compares with
what really was quoted, not with a copy of the executor's arithmetic.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alchemiser.broker.base import BrokerUnavailable, OrderOutcomeUnknown
from alchemiser.broker.sim import SimBroker, SimBrokerConfig
from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.domain.options import OptionRight
from alchemiser.domain.trading import (
    OptionSnapshot,
    Order,
    OrderClass,
    OrderLeg,
    OrderRequest,
    OrderStatus,
    PositionIntent,
    Side,
)
from alchemiser.execution import (
    ExecutionPlan,
    ExecutionResult,
    FillEvent,
    IntentStatus,
    OrderExecutor,
    PreTradeRejected,
)
from alchemiser.execution.pricing import (
    NoValidQuote,
    Touch,
    checked_touches,
    price_step,
    round_to_tick,
    step_target,
)
from alchemiser.settings.orders import OrderSettings
from alchemiser.sim.market import SimMarket
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import session_factory
from alchemiser.store.models import OrderIntent, SimFill, SimOrder
from alchemiser.store.orders import (
    BrokerOrderStatus,
    IntentConflict,
    OrderStore,
    client_order_id_for,
)
from alchemiser.store.sim_state import SimBrokerStore
from tests.helpers import run_on_manual_clock

D = Decimal
MARKET_START = date(2026, 1, 2)
DAY = date(2026, 1, 6)  # a Tuesday, market open
ACCOUNT = "default"
SIM_ACCOUNT = "sim-exec"
CENT = D("0.01")

# Short waits so a test runs a few dozen clock jumps, and a matching pass every 5 s.
FAST = OrderSettings(
    initial_improvement_pct=D(2),
    poll_interval_seconds=5,
    first_wait_seconds=20,
    reprice_step_pct=D(1),
    reprice_wait_seconds=10,
    max_reprice_steps=4,
    max_slippage_pct=D(2),
)


def fast(**changes: Any) -> OrderSettings:
    """FAST with some fields changed (validated like a config edit)."""
    return OrderSettings(**{**FAST.model_dump(), **changes})


def ny(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), NEW_YORK)


@pytest.fixture(scope="module")
def market() -> SimMarket:
    return SimMarket(seed=11, start=MARKET_START)


@dataclasses.dataclass
class Env:
    market: SimMarket
    clock: ManualClock
    sessions: async_sessionmaker[AsyncSession]
    broker: SimBroker
    store: OrderStore
    settings: OrderSettings

    def executor(self, broker: Any = None, **kw: Any) -> OrderExecutor:
        return OrderExecutor(
            broker or self.broker,
            self.store,
            self.clock,
            lambda: self.settings,
            penny_pilot=lambda u: self.market.instrument(u).penny_pilot,
            **kw,
        )

    async def run(self, executor: OrderExecutor, plan: ExecutionPlan, **kw: Any) -> ExecutionResult:
        return await run_on_manual_clock(self.clock, executor.execute(plan, **kw))

    async def sim_orders(self, intent_key: str) -> list[SimOrder]:
        """Every order the simulated broker accepted for this intent, by submission."""
        async with self.sessions() as s, s.begin():
            rows = (
                (
                    await s.execute(
                        select(SimOrder)
                        .where(SimOrder.client_order_id.like(f"{intent_key}#%"))
                        .order_by(SimOrder.submitted_at, SimOrder.client_order_id)
                    )
                )
                .scalars()
                .all()
            )
            return list(rows)

    async def sim_fills(self, order_id: str) -> list[SimFill]:
        async with self.sessions() as s, s.begin():
            rows = await s.execute(select(SimFill).where(SimFill.order_id == order_id))
            return list(rows.scalars().all())

    async def all_sim_orders(self) -> int:
        async with self.sessions() as s, s.begin():
            return int((await s.execute(select(func.count()).select_from(SimOrder))).scalar_one())

    def quote(self, symbol: str, at: datetime) -> OptionSnapshot:
        return self.market.option_quotes([symbol], at)[symbol]


@pytest.fixture
async def env(engine: AsyncEngine, market: SimMarket) -> Env:
    clock = ManualClock(ny(DAY, 10, 30))
    sessions = session_factory(engine)
    broker = SimBroker(
        market,
        clock,
        SimBrokerStore(sessions),
        SimBrokerConfig(account_id=SIM_ACCOUNT, match_interval_seconds=5),
    )
    assert await broker.seed_book(D(3_000_000))
    return Env(market, clock, sessions, broker, OrderStore(sessions, clock, ACCOUNT), FAST)


def pick_put(
    market: SimMarket,
    at: datetime,
    *,
    half_spread_pct: tuple[str, str],
    mid: tuple[str, str],
    underlying: str = "SPY",
) -> OptionSnapshot:
    """A put 20-60 days out whose half spread (as % of mid) and mid fall in the ranges."""
    today = at.astimezone(NEW_YORK).date()
    lo_h, hi_h = D(half_spread_pct[0]), D(half_spread_pct[1])
    lo_m, hi_m = D(mid[0]), D(mid[1])
    chain = market.chain(underlying, at, today + timedelta(days=20), today + timedelta(days=60))
    fits = [
        s
        for s in chain
        if s.contract.right is OptionRight.PUT
        and s.bid > 0
        and lo_m <= s.mid <= hi_m
        and lo_h <= (s.ask - s.mid) / s.mid * 100 <= hi_h
    ]
    assert fits, f"no {underlying} put with half spread {half_spread_pct}% and mid {mid}"
    first = min(s.contract.expiry for s in fits)
    return max((s for s in fits if s.contract.expiry == first), key=lambda s: s.ask_size)


def buy_plan(key: str, symbol: str, qty: int, **kw: Any) -> ExecutionPlan:
    return ExecutionPlan(
        intent_key=key,
        strategy="hedge",
        purpose="open",
        legs=(OrderLeg(symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),),
        qty=qty,
        direction="debit",
        **kw,
    )


def floor_cent(x: Decimal) -> Decimal:
    return (x / CENT).to_integral_value(rounding=ROUND_FLOOR) * CENT


def ceil_cent(x: Decimal) -> Decimal:
    return (x / CENT).to_integral_value(rounding=ROUND_CEILING) * CENT


class RecordingCheck:
    """A pre-trade check (our own protocol) that records what it was asked and may refuse."""

    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[tuple[str, int, Decimal]] = []
        self.refuse = refuse

    async def check(self, plan: ExecutionPlan, qty: int, limit_price: Decimal) -> None:
        self.calls.append((plan.intent_key, qty, limit_price))
        if self.refuse:
            raise PreTradeRejected(self.refuse)


class FlakyNetwork:
    """The network between us and the (real, simulated) broker, with injected faults.

    ``lose_submit_replies``: that many submits reach the broker but their reply is
    lost (OrderOutcomeUnknown). ``hide_from_lookups``: that many lookups by client
    id answer "no such order" although it exists (a lagging read side). ``drop_submits`` / ``drop_lookups``: that many
    calls fail before reaching it (BrokerUnavailable); -1 means all of them.
    """

    def __init__(self, broker: SimBroker) -> None:
        self._broker = broker
        self.lose_submit_replies = 0
        self.drop_submits = 0
        self.drop_lookups = 0
        self.hide_from_lookups = 0
        self.submits: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    async def submit_order(self, request: OrderRequest) -> Order:
        self.submits.append(request.client_order_id)
        if self.drop_submits:
            self.drop_submits -= 1 if self.drop_submits > 0 else 0
            raise BrokerUnavailable("503 service unavailable")
        order = await self._broker.submit_order(request)
        if self.lose_submit_replies:
            self.lose_submit_replies -= 1
            raise OrderOutcomeUnknown(request.client_order_id, "read timeout")
        return order

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        if self.drop_lookups:
            self.drop_lookups -= 1 if self.drop_lookups > 0 else 0
            raise BrokerUnavailable("connection reset")
        if self.hide_from_lookups:
            self.hide_from_lookups -= 1
            return None  # the broker's read side lags its write side
        return await self._broker.get_order_by_client_id(client_order_id)


async def fills_cost(env: Env, orders: Sequence[SimOrder], sign: int = 1) -> Decimal:
    """Signed cash of every fill of these orders, from the broker's own fill records."""
    total = D(0)
    for order in orders:
        for fill in await env.sim_fills(order.id):
            leg_sign = 1 if fill.side == "buy" else -1
            total += leg_sign * fill.price * fill.qty * 100
    return total * sign


# -- fills and the fill transaction ------------------------------------------------------


async def test_a_buy_fills_at_or_below_its_limit_and_its_effects_commit_with_it(
    env: Env,
) -> None:
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.6"), mid=("3", "8"))
    audit = AuditLog(env.sessions, env.clock, ACCOUNT)
    check = RecordingCheck()
    events: list[FillEvent] = []

    async def on_fill(s: AsyncSession, event: FillEvent) -> None:
        # The handler sees the fill booked in its own session: the same transaction.
        booked = (
            await s.execute(select(OrderIntent.filled_qty).where(OrderIntent.id == event.intent.id))
        ).scalar_one()
        assert booked == event.intent.filled_qty
        await audit.record("HEDGE_FILLED", details={"qty": event.delta_qty}, session=s)
        events.append(event)

    plan = buy_plan("hedge-open:default:2026-01-06:SPY", put.symbol, 3)
    result = await env.run(env.executor(pretrade=check), plan, on_fill=on_fill)

    assert result.status is IntentStatus.FILLED and result.filled_qty == 3 and result.error is None
    orders = await env.sim_orders(plan.intent_key)
    assert [o.client_order_id for o in orders] == result.orders
    assert result.orders == [client_order_id_for(plan.intent_key, k) for k in range(len(orders))]
    for order in orders:
        assert order.limit_price is not None
        if order.filled_qty:
            assert order.filled_avg_price is not None
            assert order.filled_avg_price <= order.limit_price
    assert orders[-1].status == "filled"
    # Every order passed the pre-trade check first, with the quantity and limit it was sent with.
    assert [(q, p) for _, q, p in check.calls] == [(int(o.qty), o.limit_price) for o in orders]
    # The fills the broker made are what was booked, and the handler saw each once.
    assert result.cost == await fills_cost(env, orders)
    assert result.avg_price == (result.cost / 300).quantize(D("0.0001"))
    assert sum(e.delta_qty for e in events) == 3 and sum(e.cost for e in events) == result.cost
    assert sorted(e.details["qty"] for e in await audit.entries()) == sorted(
        e.delta_qty for e in events
    )
    positions = {p.symbol: p.qty for p in await env.broker.get_positions()}
    assert positions[put.symbol] == 3


async def test_a_failed_fill_booking_rolls_back_with_its_effects_and_is_booked_once_later(
    env: Env,
) -> None:
    env.settings = fast(initial_improvement_pct=D(0), reprice_step_pct=D(5), max_slippage_pct=D(5))
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.6"), mid=("3", "8"))
    audit = AuditLog(env.sessions, env.clock, ACCOUNT)
    booked: list[FillEvent] = []

    async def book_then_fail(s: AsyncSession, event: FillEvent) -> None:
        await audit.record("HEDGE_FILLED", details={"qty": event.delta_qty}, session=s)
        raise RuntimeError("injected failure after the handler's write")

    async def book(s: AsyncSession, event: FillEvent) -> None:
        await audit.record("HEDGE_FILLED", details={"qty": event.delta_qty}, session=s)
        booked.append(event)

    plan = buy_plan("hedge-open:default:2026-01-06:SPY", put.symbol, 2)
    executor = env.executor()
    with pytest.raises(RuntimeError, match="injected"):
        await env.run(executor, plan, on_fill=book_then_fail)

    sent = await env.sim_orders(plan.intent_key)
    assert sum(o.filled_qty for o in sent) > 0  # the broker did fill
    intent = await env.store.get_intent(plan.intent_key)
    assert intent is not None
    # ... but nothing of it was booked: not the fill, not the handler's row.
    assert intent.status is IntentStatus.UNKNOWN and intent.filled_qty == 0 and intent.cost == 0
    assert "not booked" in (intent.last_error or "")
    assert await audit.entries() == []
    assert all(o.filled_qty == 0 for o in await env.store.orders_of(intent.id))

    # The next run (a queue retry) books it exactly once and finishes the intent.
    result = await env.run(env.executor(), plan, on_fill=book)
    after = await env.sim_orders(plan.intent_key)
    filled_at_broker = sum(int(o.filled_qty) for o in after)
    assert result.filled_qty == filled_at_broker == sum(e.delta_qty for e in booked)
    assert len(await audit.entries()) == len(booked)
    assert result.cost == await fills_cost(env, after)
    assert result.status in (IntentStatus.FILLED, IntentStatus.PARTIAL)


# -- pricing and re-pricing -----------------------------------------------------------------


async def test_repricing_steps_toward_the_ask_and_never_beyond_the_maximum_slippage(
    env: Env,
) -> None:
    # Half spread well above the 2 % bound: the ask is never reached, every step is placed.
    env.settings = fast(
        initial_improvement_pct=D(10),
        reprice_step_pct=D(4),
        max_slippage_pct=D(2),
        max_reprice_steps=10,
    )
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("4", "8"), mid=("0.3", "1"))
    plan = buy_plan("hedge-open:default:2026-01-06:SPY-far", put.symbol, 1)
    result = await env.run(env.executor(), plan)

    assert result.status is IntentStatus.UNFILLED and result.filled_qty == 0
    orders = await env.sim_orders(plan.intent_key)
    # 0.90, 0.94, 0.98, 1.02 (the bound: the last step even though 10 were allowed).
    assert len(orders) == 4 and all(o.status == "canceled" for o in orders)
    reference = env.quote(put.symbol, orders[0].submitted_at).mid
    for k, order in enumerate(orders):
        q = env.quote(put.symbol, order.submitted_at)
        factor = D("0.90") + D("0.04") * k
        bound = min(q.mid, reference) * D("1.02")
        expected = floor_cent(min(q.mid * factor, bound))
        assert order.limit_price == expected, f"step {k}"
        assert order.limit_price is not None and order.limit_price <= bound < q.ask
    stored = await env.store.orders_of((await env.store.get_intent(plan.intent_key)).id)  # type: ignore[union-attr]
    assert [o.at_max_slippage for o in stored] == [False, False, False, True]
    # Each step waited its time: 20 s first, 10 s after.
    gaps = [
        (b.submitted_at - a.submitted_at).total_seconds() for a, b in itertools.pairwise(orders)
    ]
    assert gaps[0] >= 20 and all(g >= 10 for g in gaps[1:])


async def test_only_the_remaining_quantity_is_placed_again_after_a_partial_fill(
    env: Env,
) -> None:
    env.settings = fast(
        initial_improvement_pct=D(0),
        reprice_step_pct=D(3),
        max_slippage_pct=D(6),
        max_reprice_steps=3,
    )
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.6"), mid=("3", "8"))
    target = 400  # far more than the quoted size: fills come a few dozen per matching pass
    assert put.ask_size < 100
    plan = buy_plan("hedge-open:default:2026-01-06:SPY-big", put.symbol, target)
    result = await env.run(env.executor(), plan)

    orders = await env.sim_orders(plan.intent_key)
    assert len(orders) >= 2
    filled_before = 0
    for order in orders:
        assert int(order.qty) == target - filled_before  # the remainder only
        filled_before += int(order.filled_qty)
    assert any(0 < o.filled_qty < o.qty for o in orders)
    assert result.filled_qty == filled_before
    assert result.cost == await fills_cost(env, orders)
    assert result.status is (
        IntentStatus.FILLED if filled_before == target else IntentStatus.PARTIAL
    )
    positions = {p.symbol: p.qty for p in await env.broker.get_positions()}
    assert positions[put.symbol] == filled_before


# -- idempotency and crash recovery --------------------------------------------------------


async def test_executing_the_same_plan_twice_sends_one_set_of_orders(env: Env) -> None:
    env.settings = fast(initial_improvement_pct=D(0), reprice_step_pct=D(3))
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.6"), mid=("3", "8"))
    plan = buy_plan("hedge-open:default:2026-01-06:SPY", put.symbol, 2)
    first = await env.run(env.executor(), plan)
    sent = await env.all_sim_orders()

    handler_calls: list[FillEvent] = []

    async def on_fill(s: AsyncSession, event: FillEvent) -> None:
        handler_calls.append(event)

    again = await env.run(env.executor(), plan, on_fill=on_fill)
    assert again == first
    assert await env.all_sim_orders() == sent
    assert await env.broker.list_open_orders() == []
    assert handler_calls == []
    for cid in first.orders:
        assert await env.broker.get_order_by_client_id(cid) is not None

    # The same key for a different plan is a caller bug: refused, nothing sent.
    with pytest.raises(IntentConflict, match="different plan"):
        await env.run(env.executor(), buy_plan(plan.intent_key, put.symbol, 3))
    assert await env.all_sim_orders() == sent


async def test_a_crash_before_the_submit_resumes_and_sends_exactly_one_order(env: Env) -> None:
    env.settings = fast(max_reprice_steps=0)
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.6"), mid=("3", "8"))
    plan = buy_plan("hedge-open:default:2026-01-06:SPY", put.symbol, 2)
    # The dead process wrote the intent and the row of step 0, and died before sending.
    intent, _ = await env.store.create_intent(plan.new_intent())
    row, _ = await env.store.write_broker_order(
        intent.id, 0, qty=2, limit_price=D("0.05"), quote_mid=put.mid
    )
    await env.clock.advance(90)  # the restart takes a while; the market moves

    result = await env.run(env.executor(), plan)
    orders = await env.sim_orders(plan.intent_key)
    assert [o.client_order_id for o in orders] == [row.client_order_id] == result.orders
    # Sent at a price from the quotes of now, not the dead process's.
    now_mid = env.quote(put.symbol, orders[0].submitted_at).mid
    assert orders[0].limit_price == floor_cent(now_mid * D("0.98"))
    assert result.status in (IntentStatus.FILLED, IntentStatus.UNFILLED)
    assert result.filled_qty == int(orders[0].filled_qty)


async def test_an_order_the_broker_took_before_the_crash_is_found_and_not_sent_again(
    env: Env,
) -> None:
    env.settings = fast(max_reprice_steps=0)
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.6"), mid=("3", "8"))
    plan = buy_plan("hedge-open:default:2026-01-06:SPY", put.symbol, 2)
    intent, _ = await env.store.create_intent(plan.new_intent())
    limit = put.ask + D("0.05")
    row, _ = await env.store.write_broker_order(intent.id, 0, qty=2, limit_price=limit)
    # The broker accepted (and filled) it; the process died before recording anything.
    accepted = await env.broker.submit_order(
        OrderRequest(
            client_order_id=row.client_order_id,
            qty=D(2),
            limit_price=limit,
            symbol=put.symbol,
            side=Side.BUY,
            position_intent=PositionIntent.BUY_TO_OPEN,
        )
    )
    assert accepted.status is OrderStatus.FILLED
    assert (await env.store.orders_of(intent.id))[0].status is BrokerOrderStatus.WRITTEN

    network = FlakyNetwork(env.broker)
    events: list[FillEvent] = []

    async def on_fill(s: AsyncSession, event: FillEvent) -> None:
        events.append(event)

    result = await env.run(env.executor(broker=network), plan, on_fill=on_fill)
    assert network.submits == []  # found by its client id: nothing sent
    assert len(await env.sim_orders(plan.intent_key)) == 1
    assert result.status is IntentStatus.FILLED and result.filled_qty == 2
    assert [(e.delta_qty, e.price) for e in events] == [(2, accepted.filled_avg_price)]
    assert result.cost == accepted.filled_avg_price * 200  # type: ignore[operator]
    stored = (await env.store.orders_of(intent.id))[0]
    assert stored.broker_order_id == accepted.id and stored.status is BrokerOrderStatus.FILLED


async def test_a_duplicate_client_id_is_looked_up_and_continued_not_sent_twice(
    env: Env,
) -> None:
    env.settings = fast(max_reprice_steps=0)
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.6"), mid=("3", "8"))
    plan = buy_plan("hedge-open:default:2026-01-06:SPY", put.symbol, 2)
    intent, _ = await env.store.create_intent(plan.new_intent())
    limit = put.ask + D("0.05")
    row, _ = await env.store.write_broker_order(intent.id, 0, qty=2, limit_price=limit)
    await env.broker.submit_order(
        OrderRequest(
            client_order_id=row.client_order_id,
            qty=D(2),
            limit_price=limit,
            symbol=put.symbol,
            side=Side.BUY,
            position_intent=PositionIntent.BUY_TO_OPEN,
        )
    )
    network = FlakyNetwork(env.broker)
    network.hide_from_lookups = 1  # so the resume believes it was never sent and sends it
    result = await env.run(env.executor(broker=network), plan)
    assert network.submits == [row.client_order_id]  # refused as a duplicate, then found
    assert len(await env.sim_orders(plan.intent_key)) == 1
    assert result.status is IntentStatus.FILLED and result.filled_qty == 2
    stored = (await env.store.orders_of(intent.id))[0]
    assert stored.limit_price == limit and stored.qty == 2  # the broker's order, not our rewrite


async def test_a_lost_submit_reply_is_resolved_by_client_id_not_resent(env: Env) -> None:
    env.settings = fast(max_reprice_steps=0)
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.6"), mid=("3", "8"))
    plan = buy_plan("hedge-open:default:2026-01-06:SPY", put.symbol, 1)
    network = FlakyNetwork(env.broker)
    network.lose_submit_replies = 1
    network.drop_lookups = 1  # and the first lookup fails too: retried with backoff
    result = await env.run(env.executor(broker=network), plan)
    assert network.submits == [client_order_id_for(plan.intent_key, 0)]
    assert len(await env.sim_orders(plan.intent_key)) == 1
    assert result.status in (IntentStatus.FILLED, IntentStatus.UNFILLED)


async def test_an_unreachable_broker_leaves_the_intent_unknown_until_it_is_resolved(
    env: Env,
) -> None:
    env.settings = fast(max_reprice_steps=0)
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.6"), mid=("3", "8"))
    plan = buy_plan("hedge-open:default:2026-01-06:SPY", put.symbol, 1)
    network = FlakyNetwork(env.broker)
    network.drop_submits = -1
    network.drop_lookups = -1
    result = await env.run(env.executor(broker=network), plan)
    assert result.status is IntentStatus.UNKNOWN and "unresolved" in (result.error or "")
    cid = client_order_id_for(plan.intent_key, 0)
    assert set(network.submits) == {cid} and len(network.submits) > 1  # retried, same id
    assert await env.sim_orders(plan.intent_key) == []
    assert [f.intent.intent_key for f in await env.store.in_flight()] == [plan.intent_key]

    # The broker is back: the next run looks the id up, finds nothing, sends it once.
    network.drop_submits = network.drop_lookups = 0
    network.submits.clear()
    again = await env.run(env.executor(broker=network), plan)
    assert network.submits == [cid]
    assert [o.client_order_id for o in await env.sim_orders(plan.intent_key)] == [cid]
    assert again.status in (IntentStatus.FILLED, IntentStatus.UNFILLED)
    assert again.error is None  # the resolved outage is not the outcome's reason
    assert await env.store.in_flight() == []


# -- refusals ------------------------------------------------------------------------------


async def test_no_valid_quote_fails_closed_and_sends_nothing(env: Env) -> None:
    expired = "SPY251219P00580000"  # expired before today: no quote
    plan = buy_plan("hedge-open:default:2026-01-06:SPY", expired, 1)
    before = await env.all_sim_orders()
    result = await env.run(env.executor(), plan)
    assert result.status is IntentStatus.FAILED and result.orders == []
    assert result.error is not None and result.error.startswith(f"no valid quote for {expired}")
    assert await env.all_sim_orders() == before


async def test_a_pretrade_rejection_sends_nothing(env: Env) -> None:
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.6"), mid=("3", "8"))
    check = RecordingCheck(refuse="monthly premium cap reached")
    plan = buy_plan("hedge-open:default:2026-01-06:SPY", put.symbol, 4)
    result = await env.run(env.executor(pretrade=check), plan)
    assert result.status is IntentStatus.FAILED and result.orders == []
    assert result.error == "pre-trade check: monthly premium cap reached"
    assert check.calls == [(plan.intent_key, 4, floor_cent(put.mid * D("0.98")))]
    assert await env.sim_orders(plan.intent_key) == []


async def test_a_broker_rejection_is_final_and_not_retried(env: Env) -> None:
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.6"), mid=("3", "8"))
    # Selling to close a position the account does not hold: the broker refuses.
    plan = ExecutionPlan(
        intent_key="hedge-close:default:2026-01-06:SPY",
        strategy="hedge",
        purpose="close",
        legs=(OrderLeg(put.symbol, Side.SELL, 1, PositionIntent.SELL_TO_CLOSE),),
        qty=1,
        direction="credit",
    )
    network = FlakyNetwork(env.broker)
    result = await env.run(env.executor(broker=network), plan)
    assert result.status is IntentStatus.REJECTED and "position_intent" in (result.error or "")
    assert len(network.submits) == 1
    intent = await env.store.get_intent(plan.intent_key)
    assert intent is not None
    row = (await env.store.orders_of(intent.id))[0]
    assert row.status is BrokerOrderStatus.REJECTED and "position_intent" in (
        row.reject_reason or ""
    )


# -- spreads and credits -------------------------------------------------------------------


async def test_a_put_spread_fills_as_one_multi_leg_order_at_its_net_price(env: Env) -> None:
    env.settings = fast(initial_improvement_pct=D(0), reprice_step_pct=D(4), max_slippage_pct=D(12))
    now = env.clock.now()
    long_put = pick_put(env.market, now, half_spread_pct=("0.3", "0.7"), mid=("3", "5"))
    chain = env.market.chain("SPY", now, long_put.contract.expiry, long_put.contract.expiry)
    short_put = min(
        (
            s
            for s in chain
            if s.contract.right is OptionRight.PUT and s.bid > 0 and s.mid < long_put.mid
        ),
        key=lambda s: abs(s.mid - long_put.mid / 2),
    )
    plan = ExecutionPlan(
        intent_key="hedge-open:default:2026-01-06:SPY-spread",
        strategy="hedge",
        purpose="open",
        legs=(
            OrderLeg(long_put.symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),
            OrderLeg(short_put.symbol, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),
        ),
        qty=2,
        direction="debit",
    )
    result = await env.run(env.executor(), plan)
    assert result.status is IntentStatus.FILLED and result.filled_qty == 2

    orders = await env.sim_orders(plan.intent_key)
    assert all(o.order_class == OrderClass.MLEG.value and len(o.legs) == 2 for o in orders)
    first = orders[0]
    q_long = env.quote(long_put.symbol, first.submitted_at)
    q_short = env.quote(short_put.symbol, first.submitted_at)
    assert first.limit_price == floor_cent(q_long.mid - q_short.mid)  # net mid, 0 % improvement
    filled = orders[-1]
    assert filled.status == "filled" and filled.limit_price is not None
    legs = await env.sim_fills(filled.id)
    assert {f.symbol for f in legs} == {long_put.symbol, short_put.symbol}
    net = sum(((1 if f.side == "buy" else -1) * f.price for f in legs), D(0))
    assert filled.filled_avg_price == net <= filled.limit_price
    assert result.avg_price == net and result.cost == net * 200
    positions = {p.symbol: p.qty for p in await env.broker.get_positions()}
    assert positions[long_put.symbol] == 2 and positions[short_put.symbol] == -2


async def test_a_credit_sale_prices_from_the_bid_side(env: Env) -> None:
    env.settings = fast(reprice_step_pct=D(1), max_slippage_pct=D(2))
    put = pick_put(env.market, env.clock.now(), half_spread_pct=("0.3", "0.5"), mid=("3", "8"))
    plan = ExecutionPlan(
        intent_key="income-open:default:2026-01-06:SPY-csp",
        strategy="income",
        purpose="open",
        legs=(OrderLeg(put.symbol, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),),
        qty=2,
        direction="credit",
    )
    result = await env.run(env.executor(), plan)
    orders = await env.sim_orders(plan.intent_key)
    reference = env.quote(put.symbol, orders[0].submitted_at).mid
    for k, order in enumerate(orders):
        q = env.quote(put.symbol, order.submitted_at)
        bound = max(q.mid, reference) * D("0.98")
        expected = ceil_cent(max(q.mid * (D("1.02") - D("0.01") * k), bound))
        assert order.limit_price == expected, f"step {k}"
        assert order.side == "sell" and order.limit_price is not None
        assert order.limit_price >= bound  # never more than 2 % under the mid
        if order.filled_qty:
            assert order.filled_avg_price is not None
            assert order.filled_avg_price >= order.limit_price  # a sale fills at the bid or better
    assert orders[0].limit_price is not None and orders[0].limit_price > reference
    assert result.status is IntentStatus.FILLED and result.filled_qty == 2
    received = await fills_cost(env, orders)
    assert received < 0 and result.cost == received
    assert result.avg_price == (-received / 200).quantize(D("0.0001")) > 0


# -- pricing rules (pure) --------------------------------------------------------------------


def snap(symbol: str, bid: str, ask: str, at: datetime, underlying: str = "SPY") -> OptionSnapshot:
    from alchemiser.domain.options import parse_occ

    return OptionSnapshot(
        contract=parse_occ(symbol), bid=D(bid), ask=D(ask), bid_size=10, ask_size=10, timestamp=at
    )


@pytest.mark.parametrize(
    ("bid", "ask", "why"),
    [
        ("NaN", "1.10", "not a number"),
        ("1.00", "0", "ask 0 is not positive"),
        ("0", "0.05", "bid 0 is not positive"),
        ("1.20", "1.10", "crossed"),
    ],
)
def test_bad_quotes_are_refused(bid: str, ask: str, why: str) -> None:
    at = ny(DAY, 10, 30)
    symbol = "SPY260130P00560000"
    leg = OrderLeg(symbol, Side.BUY)
    with pytest.raises(NoValidQuote, match=why):
        checked_touches([leg], {symbol: snap(symbol, bid, ask, at)}, at, 300)
    with pytest.raises(NoValidQuote, match="no quote"):
        checked_touches([leg], {}, at, 300)
    with pytest.raises(NoValidQuote, match="stale"):
        checked_touches(
            [leg], {symbol: snap(symbol, "1", "1.1", at - timedelta(minutes=10))}, at, 300
        )


def test_limits_round_toward_our_side_on_the_legal_tick() -> None:
    nickel_dime: Callable[[Decimal], Decimal] = lambda p: D("0.05") if p < 3 else D("0.10")  # noqa: E731
    assert round_to_tick("debit", D("3.07"), nickel_dime) == D("3.00")
    assert round_to_tick("debit", D("2.99"), nickel_dime) == D("2.95")
    assert round_to_tick("credit", D("2.97"), nickel_dime) == D("3.00")
    assert round_to_tick("credit", D("3.01"), nickel_dime) == D("3.10")
    # A debit limit that rounds to nothing cannot be sent.
    legs = (OrderLeg("XYZ260130P00010000", Side.BUY),)
    touches = [Touch("XYZ260130P00010000", D("0.01"), D("0.03"))]
    with pytest.raises(Exception, match="rounds to"):
        price_step(
            legs,
            "debit",
            touches,
            None,
            0,
            improvement_pct=D(2),
            step_pct=D(1),
            max_slippage_pct=D(2),
            penny_pilot=lambda _u: False,
        )


def test_slippage_is_bounded_by_the_arrival_and_the_current_mid() -> None:
    kw: dict[str, Any] = {
        "improvement_pct": D(2),
        "step_pct": D(1),
        "max_slippage_pct": D(2),
    }
    assert step_target("debit", D("2.00"), D("2.00"), 0, **kw) == (D("1.9600"), False)
    assert step_target("debit", D("2.00"), D("2.00"), 4, **kw) == (D("2.0400"), True)
    # The market ran up 10 %: the bound stays at the arrival mid + 2 %, not chased.
    assert step_target("debit", D("2.20"), D("2.00"), 1, **kw) == (D("2.0400"), True)
    # A credit steps down toward the bid and stops 2 % under the higher mid.
    assert step_target("credit", D("2.00"), None, 0, **kw) == (D("2.0400"), False)
    assert step_target("credit", D("1.90"), D("2.00"), 2, **kw) == (D("1.9600"), True)


def test_the_callers_price_limit_bounds_every_step() -> None:
    kw: dict[str, Any] = {
        "improvement_pct": D(2),
        "step_pct": D(1),
        "max_slippage_pct": D(5),
    }
    # Sized at 2.01 a contract: the steps may climb toward the ask but never past it.
    assert step_target("debit", D("2.00"), None, 0, price_limit=D("2.01"), **kw) == (
        D("1.9600"),
        False,
    )
    assert step_target("debit", D("2.00"), None, 4, price_limit=D("2.01"), **kw) == (
        D("2.01"),
        True,
    )
    # A credit never takes less than its floor.
    assert step_target("credit", D("2.00"), None, 5, price_limit=D("1.99"), **kw) == (
        D("1.99"),
        True,
    )
