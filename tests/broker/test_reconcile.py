"""Start-up reconciliation on the real simulated broker over the synthetic market and real
databases (SQLite and PostgreSQL), time moved by hand.

Cases: a clean book; an order the broker accepted but we never recorded; a hedge
closed outside the daemon; an expiry and an assignment while the daemon was
down; an unexplained mismatch that halts opening trades until
``alchemiser reconcile --accept``; one case through the Alpaca adapter against
the local Alpaca-compatible server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner, Result
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.broker.base import Broker
from alchemiser.broker.reconcile import (
    Reconciler,
    ReconcileReport,
    TradingStateGate,
    hedge_fill_handlers,
)
from alchemiser.cli.common import CliState
from alchemiser.cli.reconcile_cmd import reconcile_command
from alchemiser.cli.trading_cmd import trading_group
from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.daemon import Services
from alchemiser.domain.trading import (
    ActivityType,
    OrderLeg,
    OrderRequest,
    OrderStatus,
    PositionIntent,
    Side,
)
from alchemiser.execution.engine import ExecutionPlan, OrderExecutor, PreTradeRejected
from alchemiser.settings.orders import OrderSettings
from alchemiser.store.audit import AuditLog
from alchemiser.store.hedges import ACTIVE, CLOSED, EXERCISED, EXPIRED, HedgeStore, NewHedge
from alchemiser.store.models import HedgePosition, SimOrder
from alchemiser.store.orders import (
    BrokerOrderStatus,
    FillEvent,
    IntentStatus,
    NewIntent,
    OrderStore,
)
from alchemiser.store.reconcile_state import TradingMode, TradingStateStore
from tests.helpers import make_services, run_on_manual_clock

D = Decimal
ACCOUNT = "default"
TUESDAY = date(2026, 1, 6)  # market open; SPY options expire Friday 2026-01-09
START = datetime.combine(TUESDAY, time(10, 30), NEW_YORK)
EXPIRY = date(2026, 1, 9)

# Chase quickly toward the far side so set-up orders fill in a few simulated seconds.
QUICK = OrderSettings(
    initial_improvement_pct=D(0),
    poll_interval_seconds=5,
    first_wait_seconds=10,
    reprice_step_pct=D(5),
    reprice_wait_seconds=10,
    max_reprice_steps=3,
    max_slippage_pct=D(15),
)


def spy_put(strike: int, expiry: date = EXPIRY) -> str:
    return f"SPY{expiry:%y%m%d}P{strike * 1000:08d}"


@dataclasses.dataclass
class Env:
    services: Services
    clock: ManualClock
    orders: OrderStore
    hedges: HedgeStore
    state: TradingStateStore
    audit: AuditLog
    tmp_path: Path

    @property
    def broker(self) -> Broker:
        return self.services.broker

    def reconciler(self, broker: Broker | None = None) -> Reconciler:
        return Reconciler(
            broker or self.broker,
            self.orders,
            self.hedges,
            self.audit,
            self.clock,
            ACCOUNT,
            state=self.state,
            fill_handlers=hedge_fill_handlers(self.hedges),
        )

    async def reconcile(
        self, *, accept: bool = False, broker: Broker | None = None
    ) -> ReconcileReport:
        return await run_on_manual_clock(
            self.clock, self.reconciler(broker).run(accept=accept, accepted_by="tester")
        )

    async def open_hedge(self, key: str, long: str, qty: int, short: str | None = None) -> str:
        """Buy a hedge through the real order life cycle, booked as the hedge executor books it."""
        hedge_id = f"hedge-{key}"
        legs = [OrderLeg(long, Side.BUY, 1, PositionIntent.BUY_TO_OPEN)]
        if short:
            legs.append(OrderLeg(short, Side.SELL, 1, PositionIntent.SELL_TO_OPEN))
        new = NewHedge(
            id=hedge_id,
            underlying="SPY",
            template="smoothing" if short else "tail_first",
            long_symbol=long,
            long_strike=D(long[-8:]) / 1000,
            short_symbol=short,
            short_strike=D(short[-8:]) / 1000 if short else None,
            expiry=EXPIRY,
            open_intent_key=key,
        )

        async def on_fill(session: Any, fill: FillEvent) -> None:
            await self.hedges.add_opening_fill(session, new, fill.delta_qty, fill.price, fill.cost)
            await self.hedges.record_spend(
                session,
                fill.cost,
                hedge_id,
                f"{fill.client_order_id}@{fill.intent.filled_qty}",
                fill.at,
            )

        executor = OrderExecutor(self.broker, self.orders, self.clock, lambda: QUICK)
        plan = ExecutionPlan(
            intent_key=key,
            strategy="hedge",
            purpose="open",
            legs=tuple(legs),
            qty=qty,
            direction="debit",
            related_ids={"hedge_id": hedge_id},
        )
        result = await run_on_manual_clock(self.clock, executor.execute(plan, on_fill))
        assert result.status is IntentStatus.FILLED, result
        return hedge_id

    async def sim_orders(self) -> int:
        async with self.services.sessions() as s:
            return int(await s.scalar(select(func.count()).select_from(SimOrder)) or 0)

    async def held(self) -> dict[str, Decimal]:
        return {p.symbol: p.qty for p in await self.broker.get_positions() if p.is_option}

    async def actions(self) -> list[str]:
        return [e.action for e in await self.audit.entries(limit=500)]


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "alchemiser.toml"
    path.write_text('[sim]\nstart_date = 2026-01-02\n[broker]\naccount = "default"\n')
    return path


@pytest.fixture
async def env(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Env]:
    clock = ManualClock(START)
    services = await make_services(engine, clock, config_file(tmp_path), account=ACCOUNT)
    sessions = services.sessions
    yield Env(
        services=services,
        clock=clock,
        orders=OrderStore(sessions, clock, ACCOUNT),
        hedges=HedgeStore(sessions, clock, ACCOUNT),
        state=TradingStateStore(sessions, clock, ACCOUNT),
        audit=services.audit,
        tmp_path=tmp_path,
    )


def nothing_changed(report: ReconcileReport) -> bool:
    return report.clean and not any(report.counts().values())


# -- a clean book ---------------------------------------------------------------------------


async def test_a_clean_book_reconciles_without_changes(env: Env) -> None:
    await env.open_hedge("clean-1", spy_put(560), 2)
    first = await env.reconcile()
    assert nothing_changed(first), first.lines()
    assert first.state is not None and first.state.state is TradingMode.ACTIVE
    # The equity book (the scenario's stocks) is the user's: never a mismatch.
    assert any(not p.is_option for p in await env.broker.get_positions())
    assert await env.state.last_reconciled_at() == env.clock.now()
    [hedge] = await env.hedges.active()
    assert hedge.contracts == 2
    again = await env.reconcile()
    assert nothing_changed(again)
    assert "RECONCILED" in await env.actions()


async def test_an_unknown_option_position_is_adopted_as_external_once(env: Env) -> None:
    sent = await env.broker.submit_order(
        OrderRequest(
            client_order_id="users-own-trade",
            qty=D(1),
            limit_price=D("2.00"),
            symbol=spy_put(565),
            side=Side.BUY,
            position_intent=PositionIntent.BUY_TO_OPEN,
        )
    )
    assert sent.status is OrderStatus.FILLED
    with structlog.testing.capture_logs() as logs:
        report = await env.reconcile()
    assert report.clean and [(s, q) for s, q, _ in report.adopted_externals] == [
        (spy_put(565), D(1))
    ]
    assert any(e["event"] == "external_position_adopted" for e in logs)
    [external] = await env.state.external_positions()
    assert external.symbol == spy_put(565) and external.qty == 1
    # Known from now on: nothing new, never a mismatch, never managed.
    assert nothing_changed(await env.reconcile())
    # Gone at the broker (the user sold it): forgotten.
    await env.broker.close_position(spy_put(565))
    gone = await env.reconcile()
    assert gone.clean and gone.dropped_externals == [spy_put(565)]
    assert await env.state.external_positions() == []


# -- an order accepted by the broker but never recorded -----------------------------------


async def test_an_order_accepted_but_unrecorded_is_resolved_and_booked_once(env: Env) -> None:
    symbol = spy_put(560)
    hedge_id = "hedge-unrecorded"
    legs = (OrderLeg(symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),)
    intent, _ = await env.orders.create_intent(
        NewIntent(
            "hedge-open:default:unrecorded",
            "hedge",
            "open",
            legs,
            2,
            "debit",
            {"hedge_id": hedge_id},
        )
    )
    row, _ = await env.orders.write_broker_order(intent.id, 0, qty=2, limit_price=D("0.70"))
    # The crash: the order reached the broker, our process died before recording the reply.
    order = await env.broker.submit_order(
        OrderRequest(
            client_order_id=row.client_order_id,
            qty=D(2),
            limit_price=D("0.70"),
            symbol=symbol,
            side=Side.BUY,
            position_intent=PositionIntent.BUY_TO_OPEN,
        )
    )
    assert order.status is OrderStatus.FILLED and order.filled_avg_price is not None
    # A second intent whose order row was written but never sent.
    unsent, _ = await env.orders.create_intent(
        NewIntent(
            "hedge-open:default:unsent",
            "hedge",
            "open",
            legs,
            1,
            "debit",
            {"hedge_id": "hedge-unsent"},
        )
    )
    unsent_row, _ = await env.orders.write_broker_order(unsent.id, 0, qty=1, limit_price=D("0.50"))
    sent_before = await env.sim_orders()

    report = await env.reconcile()

    assert report.clean, report.lines()
    assert sorted(report.finalized_intents) == [
        ("hedge-open:default:unrecorded", "filled"),
        ("hedge-open:default:unsent", "unfilled"),
    ]
    done = await env.orders.get_intent("hedge-open:default:unrecorded")
    assert done is not None and done.status is IntentStatus.FILLED and done.filled_qty == 2
    expected_cost = order.filled_avg_price * 2 * 100
    assert done.cost == expected_cost
    hedge = await env.hedges.get(hedge_id)
    assert hedge is not None and hedge.state == ACTIVE and hedge.contracts == 2
    assert hedge.premium_paid == expected_cost and hedge.template == "tail_first"
    mtd, _ = await env.hedges.spend(env.clock.now())
    assert mtd == expected_cost
    never = await env.orders.get_order(unsent_row.client_order_id)
    assert never is not None and never.status is BrokerOrderStatus.REJECTED
    assert (never.reject_reason or "").startswith("not sent")
    assert await env.sim_orders() == sent_before  # nothing was sent on a stale price
    assert await env.orders.in_flight() == []

    # Booked exactly once: a second reconciliation finds nothing to do.
    again = await env.reconcile()
    assert nothing_changed(again)
    assert (await env.hedges.spend(env.clock.now()))[0] == expected_cost
    assert (await env.hedges.get(hedge_id)).contracts == 2  # type: ignore[union-attr]


async def test_a_fill_that_cannot_be_booked_halts_and_accept_books_it_on_the_intent(
    env: Env,
) -> None:
    symbol = spy_put(560)
    legs = (OrderLeg(symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),)
    intent, _ = await env.orders.create_intent(
        NewIntent(
            "hedge-open:default:broken", "hedge", "open", legs, 1, "debit", {"hedge_id": "h-x"}
        )
    )
    row, _ = await env.orders.write_broker_order(intent.id, 0, qty=1, limit_price=D("0.70"))
    request = OrderRequest(
        client_order_id=row.client_order_id,
        qty=D(1),
        limit_price=D("0.70"),
        symbol=symbol,
        side=Side.BUY,
        position_intent=PositionIntent.BUY_TO_OPEN,
    )
    assert (await env.broker.submit_order(request)).status is OrderStatus.FILLED

    async def refuse(session: Any, fill: FillEvent) -> None:
        raise RuntimeError("ledger unavailable")

    def reconciler() -> Reconciler:
        return Reconciler(
            env.broker,
            env.orders,
            env.hedges,
            env.audit,
            env.clock,
            ACCOUNT,
            state=env.state,
            fill_handlers={"hedge": lambda _intent: refuse},
        )

    report = await run_on_manual_clock(env.clock, reconciler().run())
    assert report.halted and [d.kind for d in report.mismatches] == ["fill_booking_failed"]
    stuck = await env.orders.get_intent("hedge-open:default:broken")
    assert stuck is not None and stuck.filled_qty == 0  # rolled back with the handler
    accepted = await run_on_manual_clock(env.clock, reconciler().run(accept=True))
    assert not accepted.halted
    booked = await env.orders.get_intent("hedge-open:default:broken")
    assert booked is not None and booked.status is IntentStatus.FILLED and booked.filled_qty == 1
    # The position no hedge records is then the user's to manage.
    later = await env.reconcile()
    assert later.clean and [s for s, _, _ in later.adopted_externals] == [symbol]


async def test_an_open_order_left_by_a_crash_is_cancelled_and_its_fills_kept(env: Env) -> None:
    symbol = spy_put(560)
    legs = (OrderLeg(symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),)
    intent, _ = await env.orders.create_intent(
        NewIntent(
            "hedge-open:default:working",
            "hedge",
            "open",
            legs,
            3,
            "debit",
            {"hedge_id": "hedge-working"},
        )
    )
    row, _ = await env.orders.write_broker_order(intent.id, 0, qty=3, limit_price=D("0.05"))
    order = await env.broker.submit_order(
        OrderRequest(
            client_order_id=row.client_order_id,
            qty=D(3),
            limit_price=D("0.05"),  # far below the market: it rests
            symbol=symbol,
            side=Side.BUY,
            position_intent=PositionIntent.BUY_TO_OPEN,
        )
    )
    assert order.status.is_open
    report = await env.reconcile()
    assert report.clean
    assert [(o.action, o.status) for o in report.resolved_orders] == [("canceled", "canceled")]
    assert report.finalized_intents == [("hedge-open:default:working", "unfilled")]
    assert await env.broker.list_open_orders() == []


async def test_an_intent_being_worked_is_left_to_its_executor(env: Env) -> None:
    """The end-of-session run may overlap a job: a recently active intent is not touched."""
    symbol = spy_put(560)
    legs = (OrderLeg(symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),)
    intent, _ = await env.orders.create_intent(
        NewIntent(
            "hedge-open:default:busy", "hedge", "open", legs, 1, "debit", {"hedge_id": "h-busy"}
        )
    )
    row, _ = await env.orders.write_broker_order(intent.id, 0, qty=1, limit_price=D("0.05"))
    request = OrderRequest(
        client_order_id=row.client_order_id,
        qty=D(1),
        limit_price=D("0.05"),
        symbol=symbol,
        side=Side.BUY,
        position_intent=PositionIntent.BUY_TO_OPEN,
    )
    assert (await env.broker.submit_order(request)).status.is_open
    reconciler = Reconciler(
        env.broker,
        env.orders,
        env.hedges,
        env.audit,
        env.clock,
        ACCOUNT,
        state=env.state,
        in_flight_grace_seconds=300,
    )
    report = await run_on_manual_clock(env.clock, reconciler.run())
    assert report.clean and report.deferred_intents == ["hedge-open:default:busy"]
    assert symbol in report.deferred_symbols and report.resolved_orders == []
    assert len(await env.broker.list_open_orders()) == 1


# -- a position closed outside the daemon --------------------------------------------------


async def test_a_hedge_closed_outside_the_daemon_is_closed_with_its_proceeds(env: Env) -> None:
    symbol = spy_put(560)
    hedge_id = await env.open_hedge("outside-1", symbol, 2)
    await env.clock.advance(120)
    # The user sells one contract, then the other, in the broker's app.
    first = await env.broker.close_position(symbol, D(1))
    assert first.status is OrderStatus.FILLED and first.filled_avg_price is not None
    partly = await env.reconcile()
    assert partly.clean, partly.lines()
    [change] = partly.closed_hedges
    assert (change.hedge_id, change.state, change.contracts) == (hedge_id, ACTIVE, 1)
    assert change.proceeds == first.filled_avg_price * 100
    hedge = await env.hedges.get(hedge_id)
    assert hedge is not None and hedge.state == ACTIVE and hedge.contracts == 1

    await env.clock.advance(120)
    second = await env.broker.close_position(symbol)
    assert second.filled_avg_price is not None
    report = await env.reconcile()
    assert report.clean
    [change] = report.closed_hedges
    assert (change.state, change.contracts) == (CLOSED, 1)
    closed = await env.hedges.get(hedge_id)
    assert closed is not None and closed.state == CLOSED
    assert closed.proceeds == (first.filled_avg_price + second.filled_avg_price) * 100
    assert closed.realized_pnl == closed.proceeds - closed.premium_paid
    assert (await env.actions()).count("CLOSED_OUTSIDE") == 2
    assert nothing_changed(await env.reconcile())


# -- an expiry and an assignment while the daemon was down ---------------------------------


async def test_expiry_and_assignment_while_down_are_settled(env: Env) -> None:
    otm = await env.open_hedge("expiry-otm", spy_put(560), 1)
    # A put spread deep in the money: the long is exercised, the short assigned.
    spread = await env.open_hedge("expiry-spread", spy_put(620), 1, short=spy_put(610))
    assert nothing_changed(await env.reconcile())
    # The daemon is down from Tuesday until Monday morning; Friday's expiry passes.
    await env.clock.advance_to(datetime(2026, 1, 12, 9, 0, tzinfo=NEW_YORK))
    activities = await env.broker.get_activities(
        START, [ActivityType.OPEXP, ActivityType.OPEXC, ActivityType.OPASN]
    )
    kinds = {(a.activity_type, a.symbol) for a in activities}
    assert (ActivityType.OPEXP, spy_put(560)) in kinds
    assert (ActivityType.OPEXC, spy_put(620)) in kinds and (
        ActivityType.OPASN,
        spy_put(610),
    ) in kinds

    report = await env.reconcile()

    assert report.clean, report.lines()
    settled = {h.hedge_id: h for h in report.settled_hedges}
    assert settled[otm].state == EXPIRED and settled[otm].proceeds == 0
    # Exercise and assignment net to the spread's width: (620 - 610) x 100.
    assert settled[spread].state == EXERCISED and settled[spread].proceeds == D(1000)
    assert await env.hedges.active() == []
    exercised = await env.hedges.get(spread)
    assert exercised is not None and exercised.realized_pnl == D(1000) - exercised.premium_paid
    assert {"EXPIRED", "EXERCISED"} <= set(await env.actions())
    assert nothing_changed(await env.reconcile())


# -- an unexplained mismatch halts trading -------------------------------------------------


def opening_plan() -> ExecutionPlan:
    return ExecutionPlan(
        intent_key="gate-open",
        strategy="hedge",
        purpose="open",
        legs=(OrderLeg(spy_put(560), Side.BUY, 1, PositionIntent.BUY_TO_OPEN),),
        qty=1,
        direction="debit",
    )


def closing_plan() -> ExecutionPlan:
    return ExecutionPlan(
        intent_key="gate-close",
        strategy="hedge",
        purpose="roll_close",
        legs=(OrderLeg(spy_put(560), Side.SELL, 1, PositionIntent.SELL_TO_CLOSE),),
        qty=1,
        direction="credit",
    )


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No alchemiser settings inherited from the developer's environment."""
    for name in list(os.environ):
        if name.upper().startswith(("ALCHEMISER", "ALPACA__")) or name.upper() == "DATABASE_URL":
            monkeypatch.delenv(name)
    yield


async def cli(env: Env, db_url: str, command: Any, *args: str) -> Result:
    """Run a CLI verb in-process (in a thread: it runs its own event loop)."""
    state = CliState(config_path=config_file(env.tmp_path))
    return await asyncio.to_thread(
        CliRunner().invoke,
        command,
        list(args),
        obj=state,
        env={"DATABASE_URL": db_url},
        catch_exceptions=False,
    )


async def test_an_unexplained_mismatch_halts_opening_trades_until_accepted(
    env: Env, db_url: str, clean_environ: None
) -> None:
    hedge_id = await env.open_hedge("mismatch-1", spy_put(560), 2)
    # Our records say 3 contracts; the broker holds 2 and no activity explains the difference.
    async with env.services.sessions.begin() as s:
        await s.execute(
            update(HedgePosition).where(HedgePosition.id == hedge_id).values(contracts=3)
        )

    with structlog.testing.capture_logs() as logs:
        report = await env.reconcile()

    assert not report.clean and report.halted
    [found] = report.mismatches
    assert found.kind == "hedge_quantity" and found.hedge_id == hedge_id
    assert (found.ours, found.broker) == (D(3), D(2))
    [failed] = [e for e in logs if e["event"] == "reconciliation_failed"]
    assert failed["log_level"] == "critical" and failed["mismatches"][0]["hedge_id"] == hedge_id
    assert "RECONCILIATION_FAILED" in await env.actions()

    # Persisted: a fresh store (a restarted daemon) reads HALTED.
    stored = await TradingStateStore(env.services.sessions, env.clock, ACCOUNT).trading_state()
    assert stored.state is TradingMode.HALTED and "hedge_quantity" not in stored.reason
    assert hedge_id in stored.reason

    gate = TradingStateGate(env.state)
    with pytest.raises(PreTradeRejected, match="trading halted"):
        await gate.check(opening_plan(), 1, D("0.60"))
    await gate.check(closing_plan(), 1, D("0.60"))  # a halted book may still shrink

    # A clean-looking rerun does not lift the halt by itself.
    again = await env.reconcile()
    assert again.halted and len(again.mismatches) == 1

    refused = await cli(env, db_url, reconcile_command)
    assert refused.exit_code == 1, refused.output
    assert "MISMATCH hedge_quantity" in refused.stdout

    status = await cli(env, db_url, trading_group, "status")
    assert status.exit_code == 0 and "HALTED" in status.stdout

    accepted = await cli(env, db_url, reconcile_command, "--accept", "--by", "alice")
    assert accepted.exit_code == 0, accepted.output
    assert "accepted:" in accepted.stdout and "trading: ACTIVE" in accepted.stdout

    after = await env.state.trading_state()
    assert after.state is TradingMode.ACTIVE and after.accepted_by == "alice"
    hedge = await env.hedges.get(hedge_id)
    assert hedge is not None and hedge.state == ACTIVE and hedge.contracts == 2
    assert {"RECONCILIATION_ACCEPTED", "RECONCILE_ACCEPTED", "TRADING_RESUMED"} <= set(
        await env.actions()
    )
    await gate.check(opening_plan(), 1, D("0.60"))  # open again
    assert nothing_changed(await env.reconcile())


async def test_trading_resume_lifts_a_halt_with_an_audit_entry(
    env: Env, db_url: str, clean_environ: None
) -> None:
    await env.state.halt("test: halted by hand")
    resumed = await cli(env, db_url, trading_group, "resume", "--reason", "checked", "--by", "bob")
    assert resumed.exit_code == 0, resumed.output
    assert "HALTED -> ACTIVE" in resumed.stdout
    state = await env.state.trading_state()
    assert state.state is TradingMode.ACTIVE and state.accepted_by == "bob"
    [entry] = await env.audit.entries(action="TRADING_RESUMED")
    assert entry.details["previous_state"] == "HALTED" and entry.details["by"] == "bob"
    again = await cli(env, db_url, trading_group, "resume")
    assert "already ACTIVE" in again.stdout


async def test_one_leg_of_a_spread_closed_outside_halts_and_accept_adopts_the_rest(
    env: Env,
) -> None:
    hedge_id = await env.open_hedge("ragged", spy_put(620), 1, short=spy_put(610))
    await env.clock.advance(120)
    await env.broker.close_position(spy_put(610))  # the user buys back the short leg only
    report = await env.reconcile()
    assert report.halted
    [found] = report.mismatches
    assert found.kind == "hedge_quantity" and "activities not ours" in found.detail
    accepted = await env.reconcile(accept=True)
    assert not accepted.halted and accepted.state is not None
    hedge = await env.hedges.get(hedge_id)
    assert hedge is not None and hedge.state == CLOSED
    [external] = await env.state.external_positions()
    assert (external.symbol, external.qty) == (spy_put(620), D(1))
    assert nothing_changed(await env.reconcile())


async def test_the_trading_state_never_softens_and_persists(env: Env) -> None:
    assert (await env.state.trading_state()).state is TradingMode.ACTIVE
    await env.state.escalate(TradingMode.EMERGENCY, "risk: drawdown", "risk")
    halted = await env.state.halt("reconciliation mismatch")
    assert halted.state is TradingMode.EMERGENCY and halted.reason == "risk: drawdown"
    gate = TradingStateGate(env.state)
    with pytest.raises(PreTradeRejected, match="trading emergency: risk: drawdown"):
        await gate.check(opening_plan(), 1, D(1))
    await gate.check(closing_plan(), 1, D(1))
    resumed = await env.state.resume("carol", reason="reviewed")
    assert resumed.state is TradingMode.ACTIVE and resumed.accepted_by == "carol"
    reduced = await env.state.escalate(TradingMode.REDUCING, "risk: limit", "risk")
    assert reduced.state is TradingMode.REDUCING and not reduced.allows_opening


# -- through the Alpaca adapter against the local Alpaca-compatible server -------------------


async def test_an_unrecorded_order_is_resolved_through_the_alpaca_adapter(env: Env) -> None:
    from alchemiser.broker.alpaca import AlpacaBroker
    from alchemiser.broker.retry import RetryPolicy
    from alchemiser.broker.sim import SimBroker
    from alchemiser.sim.alpaca_server import AlpacaSimServer

    sim = env.broker
    assert isinstance(sim, SimBroker)
    key, secret = "PKRECONCILE0001", "reconcile-secret-0001"
    async with AlpacaSimServer(sim, sim._market, env.clock, key=key, secret=secret) as server:
        adapter = AlpacaBroker(
            key=key,
            secret=secret,
            trading_url=server.url,
            data_url=server.url,
            paper=True,
            retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05),
        )
        try:
            symbol = spy_put(560)
            legs = (OrderLeg(symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),)
            intent, _ = await env.orders.create_intent(
                NewIntent(
                    "hedge-open:default:alpaca",
                    "hedge",
                    "open",
                    legs,
                    1,
                    "debit",
                    {"hedge_id": "hedge-alpaca"},
                )
            )
            row, _ = await env.orders.write_broker_order(intent.id, 0, qty=1, limit_price=D("0.70"))
            order = await adapter.submit_order(
                OrderRequest(
                    client_order_id=row.client_order_id,
                    qty=D(1),
                    limit_price=D("0.70"),
                    symbol=symbol,
                    side=Side.BUY,
                    position_intent=PositionIntent.BUY_TO_OPEN,
                )
            )
            assert order.status is OrderStatus.FILLED
            report = await env.reconcile(broker=adapter)
            assert report.clean, report.lines()
            assert report.finalized_intents == [("hedge-open:default:alpaca", "filled")]
            hedge = await env.hedges.get("hedge-alpaca")
            assert hedge is not None and hedge.contracts == 1
            assert nothing_changed(await env.reconcile(broker=adapter))
        finally:
            await adapter.aclose()
