"""The order store: intents idempotent by key, broker order rows written before sending,
fills booked exactly once with their handler in the same transaction, in-flight queries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from alchemiser.clock import ManualClock
from alchemiser.domain.trading import (
    Order,
    OrderClass,
    OrderLeg,
    OrderStatus,
    OrderType,
    PositionIntent,
    Side,
)
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import session_factory
from alchemiser.store.models import OrderIntent
from alchemiser.store.orders import (
    CLIENT_ORDER_ID_MAX,
    BrokerOrderStatus,
    FillEvent,
    IntentConflict,
    IntentStatus,
    NewIntent,
    OrderStore,
    OrderStoreError,
    client_order_id_for,
)

D = Decimal
START = datetime(2026, 1, 6, 15, 30, tzinfo=UTC)
PUT = "SPY260130P00560000"
PUT_LOW = "SPY260130P00540000"


def put_buy(key: str = "hedge-open:default:2026-01-06:SPY", qty: int = 5) -> NewIntent:
    return NewIntent(
        intent_key=key,
        strategy="hedge",
        purpose="open",
        legs=(OrderLeg(PUT, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),),
        target_qty=qty,
        direction="debit",
        related_ids={"evaluation_id": "e-1"},
    )


def put_sale(key: str = "income-open:default:2026-01-06:SPY", qty: int = 2) -> NewIntent:
    return NewIntent(
        intent_key=key,
        strategy="income",
        purpose="open",
        legs=(OrderLeg(PUT, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),),
        target_qty=qty,
        direction="credit",
    )


def credit_spread(key: str = "income-open:default:2026-01-06:SPY-pcs", qty: int = 3) -> NewIntent:
    return NewIntent(
        intent_key=key,
        strategy="income",
        purpose="open",
        legs=(
            OrderLeg(PUT, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),
            OrderLeg(PUT_LOW, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),
        ),
        target_qty=qty,
        direction="credit",
    )


def broker_order(
    cid: str,
    status: OrderStatus,
    qty: int,
    filled: int = 0,
    avg: Decimal | None = None,
    at: datetime = START,
    order_id: str = "b-1",
) -> Order:
    """The broker's view of an order, as a Broker returns it (a domain value, not a fake)."""
    return Order(
        id=order_id,
        client_order_id=cid,
        status=status,
        order_class=OrderClass.SIMPLE,
        type=OrderType.LIMIT,
        qty=D(qty),
        filled_qty=D(filled),
        filled_avg_price=avg,
        limit_price=D("1.50"),
        submitted_at=at,
        updated_at=at,
        symbol=PUT,
        side=Side.BUY,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(engine: AsyncEngine, clock: ManualClock) -> OrderStore:
    return OrderStore(session_factory(engine), clock, "default")


async def test_an_intent_is_created_once_per_key(store: OrderStore, clock: ManualClock) -> None:
    first, created = await store.create_intent(put_buy())
    assert created and first.status is IntentStatus.PENDING
    assert first.filled_qty == 0 and first.cost == 0 and first.avg_fill_price is None
    assert first.legs == put_buy().legs and first.related_ids == {"evaluation_id": "e-1"}
    again, created_again = await store.create_intent(put_buy())
    assert not created_again and again.id == first.id

    # Racing creators (a redelivered job next to the first run): one row, one winner.
    results = await asyncio.gather(*(store.create_intent(put_buy("race")) for _ in range(6)))
    assert sum(created for _, created in results) == 1
    assert len({record.id for record, _ in results}) == 1
    assert (await store.get_intent("race")) is not None
    assert await store.get_intent("nope") is None


async def test_a_key_reused_for_another_plan_or_account_is_refused(
    engine: AsyncEngine, store: OrderStore, clock: ManualClock
) -> None:
    await store.create_intent(put_buy(qty=5))
    with pytest.raises(IntentConflict, match="target_qty"):
        await store.create_intent(put_buy(qty=6))
    other = OrderStore(session_factory(engine), clock, "other")
    with pytest.raises(IntentConflict, match="belongs to account 'default'"):
        await other.create_intent(put_buy(qty=5))


def test_client_order_ids_are_deterministic_and_at_most_48_characters() -> None:
    assert client_order_id_for("hedge-open:default:2026-11-23:QQQ", 0) == (
        "hedge-open:default:2026-11-23:QQQ#0"
    )
    long_key = "hedge-roll-open:default:2026-11-23:QQQ:QQQ261218P00450000"
    ids = [client_order_id_for(long_key, step) for step in range(12)]
    assert all(len(cid) <= CLIENT_ORDER_ID_MAX for cid in ids)
    assert len(set(ids)) == len(ids)
    assert ids == [client_order_id_for(long_key, step) for step in range(12)]  # stable
    assert ids[3].endswith("#3") and ids[3].startswith("hedge-roll-open:default:")
    # Keys sharing a long prefix still get different ids (the hash is of the whole key).
    assert client_order_id_for(long_key + "X", 0) != ids[0]


async def test_a_broker_order_row_is_written_once_per_step_before_sending(
    store: OrderStore,
) -> None:
    intent, _ = await store.create_intent(put_buy())
    row, created = await store.write_broker_order(
        intent.id, 0, qty=5, limit_price=D("1.62"), quote_mid=D("1.655")
    )
    assert created and row.status is BrokerOrderStatus.WRITTEN and row.broker_order_id is None
    assert row.client_order_id == "hedge-open:default:2026-01-06:SPY#0"
    assert row.submitted_at is None and row.filled_qty == 0 and not row.at_max_slippage
    stored = await store.get_intent_by_id(intent.id)
    assert stored.status is IntentStatus.WORKING and stored.reference_mid == D("1.655")

    # A second writer of the same step gets the existing row, unchanged.
    same, created_again = await store.write_broker_order(
        intent.id, 0, qty=4, limit_price=D("1.70"), quote_mid=D("1.70")
    )
    assert not created_again and same == row
    # The reference mid stays the first one.
    await store.write_broker_order(intent.id, 1, qty=5, limit_price=D("1.64"), quote_mid=D("1.7"))
    assert (await store.get_intent_by_id(intent.id)).reference_mid == D("1.655")
    assert [o.step for o in await store.orders_of(intent.id)] == [0, 1]


async def test_fills_are_booked_once_from_the_brokers_cumulative_figures(
    store: OrderStore, clock: ManualClock
) -> None:
    intent, _ = await store.create_intent(put_buy(qty=5))
    row, _ = await store.write_broker_order(intent.id, 0, qty=5, limit_price=D("1.30"))
    cid = row.client_order_id

    first = await store.record_fill(cid, filled_qty=D(2), filled_avg_price=D("1.23"), at=START)
    assert first is not None
    assert (first.delta_qty, first.price, first.cost) == (2, D("1.23"), D("246.00"))
    assert first.intent.filled_qty == 2 and first.step == 0
    # The same observation again (a poll after a restart) books nothing.
    assert (
        await store.record_fill(cid, filled_qty=D(2), filled_avg_price=D("1.23"), at=START) is None
    )
    # A stale, smaller figure never takes fills back.
    assert (
        await store.record_fill(cid, filled_qty=D(1), filled_avg_price=D("1.23"), at=START) is None
    )

    avg = (D("1.23") * 2 + D("1.25") * 3) / 5
    second = await store.record_fill(cid, filled_qty=D(5), filled_avg_price=avg, at=START)
    assert second is not None
    assert (second.delta_qty, second.price, second.cost) == (3, D("1.25"), D("375.00"))
    intent = await store.get_intent_by_id(intent.id)
    assert (intent.filled_qty, intent.cost, intent.avg_fill_price) == (5, D("621.00"), D("1.242"))
    order = (await store.orders_of(intent.id))[0]
    assert order.status is BrokerOrderStatus.FILLED and order.cost == D("621.00")
    assert order.filled_avg_price == avg

    # A repeating average from the broker still gives cash exact to the cent.
    other, _ = await store.create_intent(put_buy("k2", qty=3))
    row2, _ = await store.write_broker_order(other.id, 0, qty=3, limit_price=D("1.30"))
    event = await store.record_fill(
        row2.client_order_id, filled_qty=D(3), filled_avg_price=D("3.71") / 3, at=START
    )
    assert event is not None and event.cost == D("371.00") and event.price == D("1.2367")

    with pytest.raises(OrderStoreError, match="without an average price"):
        await store.record_fill(cid, filled_qty=D(6), filled_avg_price=None, at=START)
    with pytest.raises(OrderStoreError, match="whole number"):
        await store.record_fill(cid, filled_qty=D("5.5"), filled_avg_price=D(1), at=START)


async def test_credits_and_spreads_are_signed_cash_with_prices_in_direction_terms(
    store: OrderStore,
) -> None:
    sale, _ = await store.create_intent(put_sale(qty=2))
    row, _ = await store.write_broker_order(sale.id, 0, qty=2, limit_price=D("1.70"))
    event = await store.record_fill(
        row.client_order_id, filled_qty=D(2), filled_avg_price=D("1.72"), at=START
    )
    assert event is not None and event.cost == D("-344.00") and event.price == D("1.72")

    spread, _ = await store.create_intent(credit_spread(qty=3))
    # A multi-leg limit and fill price are signed nets: a credit is negative.
    row, _ = await store.write_broker_order(spread.id, 0, qty=3, limit_price=D("-0.85"))
    event = await store.record_fill(
        row.client_order_id, filled_qty=D(3), filled_avg_price=D("-0.87"), at=START
    )
    assert event is not None and event.cost == D("-261.00") and event.price == D("0.87")
    stored = await store.get_intent_by_id(spread.id)
    assert stored.avg_fill_price == D("0.87") and stored.cost == D("-261.00")

    # A broker that reports a spread's fill price unsigned books the same cash for a credit.
    unsigned, _ = await store.create_intent(credit_spread("unsigned", qty=3))
    row, _ = await store.write_broker_order(unsigned.id, 0, qty=3, limit_price=D("-0.85"))
    event = await store.record_fill(
        row.client_order_id, filled_qty=D(3), filled_avg_price=D("0.87"), at=START
    )
    assert event is not None and event.cost == D("-261.00") and event.price == D("0.87")


async def test_the_fill_handler_runs_inside_the_fill_transaction(
    engine: AsyncEngine, store: OrderStore, clock: ManualClock
) -> None:
    sessions = session_factory(engine)
    audit = AuditLog(sessions, clock, "default")
    intent, _ = await store.create_intent(put_buy(qty=5))
    row, _ = await store.write_broker_order(intent.id, 0, qty=5, limit_price=D("1.30"))
    seen: list[int] = []

    async def book(s: AsyncSession, event: FillEvent) -> None:
        # The fill's own changes are visible in the handler's session: one transaction.
        stored = (
            await s.execute(select(OrderIntent.filled_qty).where(OrderIntent.id == intent.id))
        ).scalar_one()
        seen.append(stored)
        await audit.record("HEDGE_FILLED", details={"qty": event.delta_qty}, session=s)

    async def book_then_fail(s: AsyncSession, event: FillEvent) -> None:
        await book(s, event)
        raise RuntimeError("injected failure after the handler's write")

    with pytest.raises(RuntimeError, match="injected"):
        await store.record_fill(
            row.client_order_id,
            filled_qty=D(2),
            filled_avg_price=D("1.25"),
            at=START,
            on_fill=book_then_fail,
        )
    # Everything rolled back together: the handler's row, the order's and the intent's fills.
    assert await audit.entries() == []
    assert (await store.get_intent_by_id(intent.id)).filled_qty == 0
    assert (await store.orders_of(intent.id))[0].filled_qty == 0

    event = await store.record_fill(
        row.client_order_id, filled_qty=D(2), filled_avg_price=D("1.25"), at=START, on_fill=book
    )
    assert event is not None and event.delta_qty == 2
    assert seen == [2, 2]
    entries = await audit.entries()
    assert [(e.action, e.details) for e in entries] == [("HEDGE_FILLED", {"qty": 2})]
    assert (await store.get_intent_by_id(intent.id)).filled_qty == 2


async def test_concurrent_bookings_of_one_observation_book_it_once(store: OrderStore) -> None:
    intent, _ = await store.create_intent(put_buy(qty=5))
    row, _ = await store.write_broker_order(intent.id, 0, qty=5, limit_price=D("1.30"))
    events = await asyncio.gather(
        *(
            store.record_fill(
                row.client_order_id, filled_qty=D(3), filled_avg_price=D("1.2"), at=START
            )
            for _ in range(5)
        )
    )
    assert sum(e is not None for e in events) == 1
    stored = await store.get_intent_by_id(intent.id)
    assert stored.filled_qty == 3 and stored.cost == D("360.0")


async def test_broker_views_update_status_ids_and_fills_and_never_reopen(
    store: OrderStore, clock: ManualClock
) -> None:
    intent, _ = await store.create_intent(put_buy(qty=5))
    row, _ = await store.write_broker_order(intent.id, 0, qty=5, limit_price=D("1.30"))
    cid = row.client_order_id
    row, event = await store.apply_broker_order(cid, broker_order(cid, OrderStatus.NEW, 5))
    assert event is None and row.status is BrokerOrderStatus.ACCEPTED
    assert row.broker_order_id == "b-1" and row.submitted_at == START

    later = START + timedelta(seconds=30)
    row, event = await store.apply_broker_order(
        cid, broker_order(cid, OrderStatus.PARTIALLY_FILLED, 5, 2, D("1.29"), later)
    )
    assert row.status is BrokerOrderStatus.PARTIALLY_FILLED and row.filled_qty == 2
    assert event is not None and event.at == later and event.cost == D("258.00")

    row, event = await store.apply_broker_order(
        cid, broker_order(cid, OrderStatus.CANCELED, 5, 3, (D("1.29") * 2 + D("1.3")) / 3)
    )
    assert row.status is BrokerOrderStatus.CANCELED and row.filled_qty == 3
    assert event is not None and event.delta_qty == 1 and event.price == D("1.30")
    # A stale read cannot reopen a final order.
    row, event = await store.apply_broker_order(cid, broker_order(cid, OrderStatus.ACCEPTED, 5))
    assert row.status is BrokerOrderStatus.CANCELED and row.filled_qty == 3 and event is None

    with pytest.raises(OrderStoreError, match="client id"):
        await store.apply_broker_order(cid, broker_order("other#0", OrderStatus.NEW, 5))
    with pytest.raises(OrderStoreError, match="cannot be rewritten"):
        await store.rewrite_unsent(
            cid, qty=2, limit_price=D("1.31"), quote_mid=None, at_max_slippage=False
        )


async def test_in_flight_lists_unfinished_intents_with_their_open_orders(
    engine: AsyncEngine, store: OrderStore, clock: ManualClock
) -> None:
    pending, _ = await store.create_intent(put_buy("pending"))
    working, _ = await store.create_intent(put_buy("working"))
    done_row, _ = await store.write_broker_order(working.id, 0, qty=5, limit_price=D("1.3"))
    await store.apply_broker_order(
        done_row.client_order_id,
        broker_order(done_row.client_order_id, OrderStatus.CANCELED, 5, order_id="b-0"),
    )
    open_row, _ = await store.write_broker_order(working.id, 1, qty=5, limit_price=D("1.31"))
    unknown, _ = await store.create_intent(put_buy("unknown"))
    await store.set_intent_status(unknown.id, IntentStatus.UNKNOWN, error="lost")
    filled, _ = await store.create_intent(put_buy("filled"))
    await store.set_intent_status(filled.id, IntentStatus.FILLED)
    await OrderStore(session_factory(engine), clock, "other").create_intent(put_buy("theirs"))

    flights = await store.in_flight()
    assert [f.intent.intent_key for f in flights] == ["pending", "working", "unknown"]
    by_key = {f.intent.intent_key: f for f in flights}
    assert [o.client_order_id for o in by_key["working"].open_orders] == [open_row.client_order_id]
    assert by_key["pending"].open_orders == [] and by_key["unknown"].intent.last_error == "lost"
    assert pending.id in {f.intent.id for f in flights}


async def test_a_final_intent_never_changes_and_takes_no_more_orders(
    store: OrderStore, clock: ManualClock
) -> None:
    intent, _ = await store.create_intent(put_buy())
    await clock.advance(10)
    done = await store.set_intent_status(intent.id, IntentStatus.UNFILLED)
    assert done.finished_at == clock.now() and done.status.is_final
    again = await store.set_intent_status(intent.id, IntentStatus.UNKNOWN, error="late")
    assert again.status is IntentStatus.UNFILLED and again.last_error is None
    with pytest.raises(OrderStoreError, match="no more orders"):
        await store.write_broker_order(intent.id, 0, qty=1, limit_price=D("1"))
