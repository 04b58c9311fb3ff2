"""A year of the default book on the simulator: hedges open, roll, expire or close, inside the caps.

The scheduled jobs run at their own times on a manual simulated clock (what
the daemon's simulated scheduler does, minus waiting for real time), so the
run is deterministic. It prints the figures the README records.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.hedging.book import book_payoff
from alchemiser.jobs import JOBS
from alchemiser.scheduler import JobRunner
from alchemiser.session_triggers import SessionTrigger, fire_times
from alchemiser.store import migrate
from alchemiser.store.engine import create_engine
from alchemiser.store.hedges import ACTIVE, month_key
from tests.helpers import make_services, run_on_manual_clock

START = date(2026, 1, 2)


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'year.db'}")
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


async def test_a_quarter_of_hedging_on_the_simulator(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    await run_hedging(sqlite_engine, tmp_path, days=100)


@pytest.mark.slow
async def test_a_year_of_hedging_on_the_simulator(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    await run_hedging(sqlite_engine, tmp_path, days=365)


async def run_hedging(sqlite_engine: AsyncEngine, tmp_path: Path, days: int) -> None:
    config = tmp_path / "alchemiser.toml"
    config.write_text(f"[sim]\nstart_date = {START.isoformat()}\n")
    clock = ManualClock(datetime.combine(START, datetime.min.time(), NEW_YORK) + timedelta(hours=9))
    services = await make_services(sqlite_engine, clock, config)
    runner = JobRunner(services)
    end = clock.now() + timedelta(days=days)
    fires = sorted(
        (when, job)
        for job in JOBS
        for when in fire_times(
            SessionTrigger(services.calendar, job.spec(services.settings.current)), clock.now(), end
        )
    )
    nav_by_month: dict[str, list[Decimal]] = defaultdict(list)
    payoffs: list[Decimal] = []
    navs: list[Decimal] = []
    for when, job in fires:
        if when > clock.now():
            await clock.advance_to(when)
        assert await run_on_manual_clock(clock, runner.run(job), limit=120) in {
            "done",
            "already_ran",
        }
        if job.name == "daily_summary":
            nav = (await services.broker.get_account()).equity
            navs.append(nav)
            nav_by_month[month_key(clock.now())[0]].append(nav)
            active = await services.hedging.store.active()
            payoffs.append(
                await book_payoff(
                    services.broker,
                    active,
                    clock.now(),
                    services.hedging.rate,
                    Decimal(-20),
                    Decimal(10),
                )
            )

    store = services.hedging.store
    history = await store.history(limit=1000)
    assert history, "no hedge was ever opened"
    by_month = await store.spend_by_month()
    by_year = await store.spend_by_year()
    caps = services.settings.current.hedging.caps
    # The caps, checked from the stored records (at the month's highest NAV, the loosest reading).
    for month, spent in by_month.items():
        assert spent <= max(nav_by_month[month]) * caps.monthly_pct / 100, month
    for year, spent in by_year.items():
        assert spent <= max(navs) * caps.annual_pct / 100, year
    for hedge in history:
        assert hedge.premium_paid <= max(navs) * caps.per_position_pct / 100, hedge.id
    # Hedges are rolled before 45 DTE, or expire/close: none is left ACTIVE past its expiry.
    for hedge in history:
        if hedge.state == ACTIVE:
            assert hedge.expiry >= clock.now().date(), hedge
        if hedge.state == "ROLLED":
            assert hedge.closed_at is not None
            assert (hedge.expiry - hedge.closed_at.astimezone(NEW_YORK).date()).days < 45
    states = {h.state for h in history}
    assert "ROLLED" in states or "EXPIRED" in states or "CLOSED" in states, states

    spent = sum(by_year.values(), Decimal(0))
    avg_nav = sum(navs, Decimal(0)) / len(navs)
    annual_pct = spent / avg_nav * 100 * Decimal(365) / Decimal(days)
    avg_payoff_pct = (
        sum((p / n for p, n in zip(payoffs, navs, strict=True)), Decimal(0)) / len(navs) * 100
    )
    end_payoff_pct = payoffs[-1] / navs[-1] * 100
    floor_days = sum(
        1 for p, n in zip(payoffs, navs, strict=True) if p >= n * caps.protection_floor_pct / 100
    )
    print(
        f"\nHEDGE YEAR {START}..{clock.now().date()}: hedges opened {len(history)}, states "
        f"{sorted(states)}; premium {spent:.2f} = {annual_pct:.2f} % NAV/year (cap {caps.annual_pct} %); "
        f"payoff at -20 %: average {avg_payoff_pct:.2f} % NAV, end {end_payoff_pct:.2f} % NAV; "
        f"6 % floor met on {floor_days}/{len(navs)} sessions"
    )
