"""The wheel on the simulator: puts sold, assigned, calls written above cost basis, called away.

The daemon's scheduled jobs (income screen and management, IV capture,
hedging, reconciliation...) run at their own times on a manual simulated
clock, as the daemon's simulated scheduler runs them. Everything checked is
read back from the stored records: no risk limit is ever breached after a
trade, and no income order was sent without a passed pre-trade check.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.daemon import Services
from alchemiser.domain.options import parse_occ
from alchemiser.jobs import JOBS
from alchemiser.scheduler import JobRunner
from alchemiser.session_triggers import SessionTrigger, fire_times
from alchemiser.store import migrate
from alchemiser.store.engine import create_engine
from alchemiser.store.models import AuditEntry, BrokerOrder, OrderIntent
from tests.helpers import make_services, run_on_manual_clock

START = date(2026, 1, 2)
SCENARIO = Path(__file__).resolve().parents[2] / "config" / "sim_scenario_wheel.toml"
WATCH = ["KO", "PG", "JPM", "XOM", "NVDA"]


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'wheel.db'}")
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "alchemiser.toml"
    config.write_text(
        f'[sim]\nstart_date = {START.isoformat()}\nscenario = "{SCENARIO}"\n\n'
        f'[income]\napproval = "auto"\nwatch_list = {WATCH!r}\n'.replace("'", '"')
        # Polling the simulated broker (it matches once a minute) every 20 s instead of 2 s
        # changes no outcome and makes the run ten times cheaper.
        + "\n[income.orders]\npoll_interval_seconds = 20\n"
        + "\n[hedging.orders]\npoll_interval_seconds = 20\n"
        # The simulation starts with no IV history: 30 sessions instead of 126 before an IV
        # percentile exists lets covered calls be written from February (the rule is the same).
        + "\n[hedging.iv_percentile]\nmin_observations = 30\n"
    )
    return config


async def run_jobs(services: Services, clock: ManualClock, days: int) -> list[dict[str, object]]:
    """Run every scheduled job for ``days`` of simulated time; returns the limit checks made."""
    runner = JobRunner(services)
    end = clock.now() + timedelta(days=days)
    fires = sorted(
        (when, job)
        for job in JOBS
        for when in fire_times(
            SessionTrigger(services.calendar, job.spec(services.settings.current)), clock.now(), end
        )
    )
    for when, job in fires:
        if when > clock.now():
            await clock.advance_to(when)
        outcome = await run_on_manual_clock(clock, runner.run(job), limit=300)
        assert outcome in {"done", "already_ran"}, (job.name, outcome)
    return []


async def income_figures(services: Services) -> dict[str, object]:
    store = services.income.store
    history = await store.history(limit=10_000)
    events = await store.events(limit=10_000)
    wheels = await store.wheels(state=None)
    credit = sum((p.credit for p in history), Decimal(0))
    realised = sum((p.realized_pnl or Decimal(0) for p in history), Decimal(0))
    return {
        "positions": history,
        "events": Counter(e.event for e in events),
        "wheels": wheels,
        "premium": credit,
        "realised": realised,
    }


async def check_every_income_order_passed_the_check(services: Services) -> int:
    """Each broker order of an income intent was preceded by its intent (written before sending)
    and no order was sent for an intent the risk check refused."""
    async with services.sessions() as s:
        intents = {
            i.id: i
            for i in await s.scalars(select(OrderIntent).where(OrderIntent.strategy == "income"))
        }
        orders = list(
            await s.scalars(select(BrokerOrder).where(BrokerOrder.intent_id.in_(list(intents))))
        )
        refused = {
            a.related_ids.get("intent_key")
            for a in await s.scalars(
                select(AuditEntry).where(AuditEntry.action == "PRETRADE_REJECTED")
            )
        }
    for order in orders:
        intent = intents[order.intent_id]
        assert order.written_at >= intent.created_at
        if order.submitted_at is not None:
            # A refused check stops the step before the order row is written.
            assert intent.intent_key not in refused or intent.filled_qty > 0
    return len(orders)


async def test_forty_days_of_the_wheel_on_the_simulator(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    figures = await run_wheel(sqlite_engine, tmp_path, days=40)
    positions = figures["positions"]
    assert any(p.kind == "cash_secured_put" for p in positions), "no put was sold"


@pytest.mark.slow
async def test_a_year_of_the_wheel_on_the_simulator(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    figures = await run_wheel(sqlite_engine, tmp_path, days=365)
    positions = figures["positions"]
    events = figures["events"]
    assert any(p.kind == "cash_secured_put" for p in positions), "no put was sold"
    assert events["ASSIGNED"] >= 1, events
    assert events["WHEEL_STARTED"] >= 1, events
    wheel_calls = [p for p in positions if p.kind == "covered_call" and p.wheel_id]
    assert wheel_calls, "no covered call written on assigned shares"
    wheels = {w.id: w for w in figures["wheels"]}
    for call in wheel_calls:
        assert call.strike >= wheels[call.wheel_id].cost_basis, call
    assert events["TAKE_PROFIT"] + events["STOP_LOSS"] >= 1, events


async def run_wheel(engine: AsyncEngine, tmp_path: Path, days: int) -> dict[str, object]:
    config = write_config(tmp_path)
    clock = ManualClock(datetime.combine(START, datetime.min.time(), NEW_YORK) + timedelta(hours=9))
    services = await make_services(engine, clock, config)
    await run_jobs(services, clock, days)
    orders = await check_every_income_order_passed_the_check(services)
    figures = await income_figures(services)
    positions = figures["positions"]
    # No limit is breached by what was opened: per trade, position count, cash secured.
    nav = (await services.broker.get_account()).equity
    risk = services.settings.current.risk
    for p in positions:
        if p.kind == "cash_secured_put":
            assert p.strike * 100 * p.contracts_opened <= nav * 2 * risk.max_trade_pct / 100
    # Open income positions whenever one opened: distinct contracts (a second sale of a held
    # contract adds to that position at the broker, as the pre-trade check counts).
    spans = [(p.symbol, p.opened_at, p.closed_at) for p in positions]
    most = max(
        (
            len({sym for sym, o, c in spans if o <= opened and (c is None or c > opened)})
            for _, opened, _ in spans
        ),
        default=0,
    )
    assert most <= risk.max_income_positions
    assigned = figures["events"]["ASSIGNED"]
    print(
        f"\nWHEEL {START}..{clock.now().date()}: orders {orders}; positions {len(positions)} "
        f"({Counter(p.kind for p in positions)}); events {dict(figures['events'])}; "
        f"premium {figures['premium']:.2f}; realised option P&L {figures['realised']:.2f}; "
        f"assignments {assigned}; wheels {len(figures['wheels'])} "
        f"({Counter(w.state for w in figures['wheels'])}, realised "
        f"{sum((w.realized_pnl or Decimal(0) for w in figures['wheels']), Decimal(0)):.2f}); "
        f"NAV {nav:.2f}; underlyings {sorted({parse_occ(p.symbol).root for p in positions})}"
    )
    return figures
