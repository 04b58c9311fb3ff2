"""The pure comparison of reconciliation: no broker, no database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from alchemiser.broker.reconcile import (
    HedgeLegs,
    LeftoverKind,
    Outcome,
    allocate,
    classify_leftover,
    explain_shortfall,
    final_status,
    is_closing,
)
from alchemiser.domain.trading import Activity, ActivityType, OrderLeg, PositionIntent, Side
from alchemiser.execution.engine import ExecutionPlan
from alchemiser.store.orders import (
    BrokerOrderRecord,
    BrokerOrderStatus,
    IntentRecord,
    IntentStatus,
)
from alchemiser.store.reconcile_state import TradingMode

D = Decimal
AT = datetime(2026, 1, 6, 15, 30, tzinfo=UTC)
LONG, SHORT, OTHER = "SPY260320P00500000", "SPY260320P00450000", "QQQ260320P00400000"


def put(hedge_id: str = "h1", contracts: int = 2) -> HedgeLegs:
    return HedgeLegs(hedge_id, contracts, ((LONG, 1),))


def spread(hedge_id: str = "s1", contracts: int = 2) -> HedgeLegs:
    return HedgeLegs(hedge_id, contracts, ((LONG, 1), (SHORT, -1)))


def activity(
    kind: ActivityType,
    symbol: str,
    qty: str,
    *,
    price: str | None = None,
    order_id: str | None = None,
    net: str | None = None,
    ident: str = "a",
) -> Activity:
    return Activity(
        id=ident,
        activity_type=kind,
        occurred_at=AT,
        symbol=symbol,
        qty=D(qty),
        price=None if price is None else D(price),
        side=None,
        order_id=order_id,
        net_amount=None if net is None else D(net),
    )


# -- allocate --------------------------------------------------------------------------------


def test_matching_positions_leave_nothing_over() -> None:
    alloc = allocate([put(), spread("s1", 1)], {LONG: D(3), SHORT: D(-1)})
    assert alloc.shortfall(put()) == {LONG: 0}
    assert alloc.shortfall(spread("s1", 1)) == {LONG: 0, SHORT: 0}
    assert alloc.leftover == {}


def test_missing_contracts_are_a_shortfall_and_extra_ones_leftover() -> None:
    alloc = allocate([put(contracts=3)], {LONG: D(1), OTHER: D(-2)})
    assert alloc.shortfall(put(contracts=3)) == {LONG: 2}
    assert alloc.leftover == {OTHER: D(-2)}
    more = allocate([put(contracts=1)], {LONG: D(4)})
    assert more.shortfall(put(contracts=1)) == {LONG: 0} and more.leftover == {LONG: D(3)}


def test_a_wrong_sign_is_not_taken_and_stays_leftover() -> None:
    alloc = allocate([spread()], {LONG: D(2), SHORT: D(2)})  # the short leg held long
    assert alloc.shortfall(spread()) == {LONG: 0, SHORT: 2}
    assert alloc.leftover == {SHORT: D(2)}


def test_hedges_sharing_a_contract_take_in_order() -> None:
    first, second = put("h1", 2), put("h2", 2)
    alloc = allocate([first, second], {LONG: D(3)})
    assert alloc.shortfall(first) == {LONG: 0} and alloc.shortfall(second) == {LONG: 1}


def test_a_ragged_spread_shows_per_leg() -> None:
    alloc = allocate([spread(contracts=3)], {LONG: D(3), SHORT: D(-1)})
    assert alloc.shortfall(spread(contracts=3)) == {LONG: 0, SHORT: 2}


# -- explain_shortfall -----------------------------------------------------------------------


def test_an_expiry_activity_explains_a_hedge_gone() -> None:
    found = explain_shortfall(
        put(), 2, [activity(ActivityType.OPEXP, LONG, "-2")], [], past_expiry=True
    )
    assert found is not None and found.outcome is Outcome.EXPIRED and found.contracts == 2


def test_exercise_or_assignment_make_it_exercised() -> None:
    acts = [
        activity(ActivityType.OPEXC, LONG, "-2", ident="x"),
        activity(ActivityType.OPASN, SHORT, "2", ident="y"),
    ]
    found = explain_shortfall(spread(), 2, acts, [], past_expiry=True)
    assert found is not None and found.outcome is Outcome.EXERCISED
    assert set(found.activity_ids) == {"x", "y"}


def test_gone_after_expiry_without_activity_is_judged_from_the_expiry() -> None:
    found = explain_shortfall(put(), 2, [], [], past_expiry=True)
    assert found is not None and found.outcome is Outcome.EXPIRED and not found.activity_ids
    assert explain_shortfall(put(), 2, [], [], past_expiry=False) is None


def test_a_sale_that_is_not_ours_closes_it_outside_with_its_proceeds() -> None:
    sale = activity(ActivityType.FILL, LONG, "-2", price="1.25", order_id="theirs", net="250")
    found = explain_shortfall(put(), 2, [sale], ["ours"], past_expiry=False)
    assert found is not None and found.outcome is Outcome.CLOSED_OUTSIDE
    assert found.proceeds == D("250.00") and found.contracts == 2


def test_our_own_sale_explains_nothing() -> None:
    sale = activity(ActivityType.FILL, LONG, "-2", price="1.25", order_id="ours", net="250")
    assert explain_shortfall(put(), 2, [sale], ["ours"], past_expiry=False) is None


def test_buys_do_not_close_a_long_leg_and_too_few_sales_explain_nothing() -> None:
    buy = activity(ActivityType.FILL, LONG, "2", price="1", order_id="theirs", net="-200")
    small = activity(ActivityType.FILL, LONG, "-1", price="1", order_id="theirs", net="100")
    assert explain_shortfall(put(), 2, [buy, small], [], past_expiry=False) is None


def test_a_larger_outside_sale_gives_proceeds_pro_rata() -> None:
    sale = activity(ActivityType.OPTRD, LONG, "-3", price="1", net="300")
    found = explain_shortfall(put(contracts=3), 2, [sale], [], past_expiry=False)
    assert found is not None and found.proceeds == D("200.00")


def test_a_spread_closed_outside_needs_both_legs_and_nets_their_cash() -> None:
    sell_long = activity(ActivityType.FILL, LONG, "-2", price="3", order_id="t1", ident="l")
    assert explain_shortfall(spread(), 2, [sell_long], [], past_expiry=False) is None
    buy_short = activity(ActivityType.FILL, SHORT, "2", price="1", order_id="t2", ident="s")
    found = explain_shortfall(spread(), 2, [sell_long, buy_short], [], past_expiry=False)
    # No net amount given: -qty x price x 100 per leg: +600 - 200.
    assert found is not None and found.proceeds == D("400.00")


def test_a_partial_shortfall_is_never_an_expiry() -> None:
    expired = activity(ActivityType.OPEXP, LONG, "-1")
    assert explain_shortfall(put(contracts=3), 1, [expired], [], past_expiry=True) is None


# -- classify_leftover -------------------------------------------------------------------------


def test_leftovers_are_known_adopted_or_mismatched() -> None:
    verdicts, gone = classify_leftover(
        {OTHER: D(1), LONG: D(2), SHORT: D(-1), "IWM260320P00150000": D(-3)},
        {OTHER: D(1), "QQQ260320P00300000": D(2), "IWM260320P00150000": D(-1)},
        active_symbols=[LONG],
        closed_symbols=[SHORT],
        in_motion=[],
    )
    kinds = {v.symbol: v.kind for v in verdicts}
    assert kinds == {
        OTHER: LeftoverKind.KNOWN_EXTERNAL,
        LONG: LeftoverKind.EXCESS_ON_HEDGE,
        SHORT: LeftoverKind.CLOSED_HEDGE_HELD,
        "IWM260320P00150000": LeftoverKind.ADOPT,  # an external whose quantity changed
    }
    assert gone == ["QQQ260320P00300000"]


def test_symbols_in_motion_are_left_for_next_time() -> None:
    verdicts, gone = classify_leftover(
        {LONG: D(2)},
        {SHORT: D(1)},
        active_symbols=[LONG],
        closed_symbols=[],
        in_motion=[LONG, SHORT],
    )
    assert [v.kind for v in verdicts] == [LeftoverKind.IN_MOTION] and gone == []


# -- final_status and is_closing --------------------------------------------------------------


def intent(filled: int, target: int = 3) -> IntentRecord:
    return IntentRecord(
        id=1,
        account="a",
        intent_key="k",
        strategy="hedge",
        purpose="open",
        related_ids={},
        legs=(OrderLeg(LONG, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),),
        target_qty=target,
        direction="debit",
        filled_qty=filled,
        avg_fill_price=None,
        cost=D(0),
        reference_mid=None,
        status=IntentStatus.WORKING,
        last_error=None,
        correlation_id=None,
        created_at=AT,
        updated_at=AT,
        finished_at=None,
    )


def order(status: BrokerOrderStatus, reason: str | None = None) -> BrokerOrderRecord:
    return BrokerOrderRecord(
        id=1,
        intent_id=1,
        step=0,
        client_order_id="k#0",
        broker_order_id=None,
        qty=3,
        limit_price=D(1),
        quote_mid=None,
        at_max_slippage=False,
        status=status,
        filled_qty=0,
        filled_avg_price=None,
        cost=D(0),
        written_at=AT,
        submitted_at=None,
        updated_at=AT,
        reject_reason=reason,
    )


@pytest.mark.parametrize(
    ("filled", "orders", "expected"),
    [
        (3, [order(BrokerOrderStatus.FILLED)], IntentStatus.FILLED),
        (1, [order(BrokerOrderStatus.CANCELED)], IntentStatus.PARTIAL),
        (0, [order(BrokerOrderStatus.EXPIRED)], IntentStatus.UNFILLED),
        (0, [order(BrokerOrderStatus.REJECTED, "buying_power: no")], IntentStatus.REJECTED),
        (0, [order(BrokerOrderStatus.REJECTED, "not sent: unknown")], IntentStatus.UNFILLED),
        (0, [], IntentStatus.UNFILLED),
    ],
)
def test_final_status_comes_from_the_fills(
    filled: int, orders: list[BrokerOrderRecord], expected: IntentStatus
) -> None:
    assert final_status(intent(filled), orders) is expected


def plan(purpose: str, side: Side, pi: PositionIntent | None) -> ExecutionPlan:
    return ExecutionPlan(
        intent_key="k",
        strategy="hedge",
        purpose=purpose,
        legs=(OrderLeg(LONG, side, 1, pi),),
        qty=1,
        direction="debit" if side is Side.BUY else "credit",
    )


def test_closing_is_recognised_and_anything_unclear_is_opening() -> None:
    assert is_closing(plan("roll_close", Side.SELL, PositionIntent.SELL_TO_CLOSE))
    assert is_closing(plan("anything", Side.SELL, PositionIntent.SELL_TO_CLOSE))
    assert is_closing(plan("compensating_close", Side.SELL, None))
    assert not is_closing(plan("open", Side.BUY, PositionIntent.BUY_TO_OPEN))
    assert not is_closing(plan("roll_close", Side.BUY, PositionIntent.BUY_TO_OPEN))
    assert not is_closing(plan("mystery", Side.SELL, None))


def test_only_active_allows_opening_and_severity_orders_the_modes() -> None:
    assert [m for m in TradingMode if m.allows_opening] == [TradingMode.ACTIVE]
    assert all(m.allows_closing for m in TradingMode)
    ordered = sorted(TradingMode, key=lambda m: m.severity)
    assert ordered == [
        TradingMode.ACTIVE,
        TradingMode.REDUCING,
        TradingMode.HALTED,
        TradingMode.EMERGENCY,
    ]
