"""The broker, clock and hedging services for CLI verbs that read or act on the book.

``broker.kind = "sim"``: the simulated broker over the synthetic market on a
*manual* clock standing at the stored simulation time (the sim account's
``processed_until``; before the first start, the open of ``sim.start_date``'s
session), so a verb sees the book as the daemon left it and never moves
simulated time. ``broker.kind = "alpaca"``: the Alpaca adapter on wall time,
closed on exit.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.alerts.service import AlertService
from alchemiser.broker.alpaca import AlpacaBroker, AlpacaConfigError
from alchemiser.broker.base import Broker
from alchemiser.broker.sim_scenario import ScenarioError
from alchemiser.cli.common import CliFailure, open_database
from alchemiser.clock import NEW_YORK, Clock, ManualClock, RealClock
from alchemiser.daemon import Services
from alchemiser.exit_codes import ExitCode
from alchemiser.market.reference import ReferenceDataError
from alchemiser.settings import LiveSettings, Settings
from alchemiser.sim_runtime import SimRuntime
from alchemiser.sim_time import next_open_at_or_after
from alchemiser.store.alerts import AlertStore
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import session_factory
from alchemiser.store.job_runs import JobRuns
from alchemiser.store.queue import DurableQueue
from alchemiser.store.reconcile_state import TradingStateStore
from alchemiser.store.sim_state import SimBrokerStore
from alchemiser.trading_calendar import TradingCalendar, nyse_calendar
from alchemiser.wiring import build_hedging, build_income

__all__ = ["CliServices", "open_trading", "stored_sim_time", "trading_clock"]


@dataclass(frozen=True)
class CliServices(Services):
    """The daemon's services as a CLI verb gets them; ``sim`` is set for the simulated broker."""

    sim: SimRuntime | None = None


async def stored_sim_time(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], calendar: TradingCalendar
) -> datetime:
    """Where the simulation stands: the account's processed_until, else the first session open."""
    first_open = next_open_at_or_after(
        calendar, datetime.combine(settings.sim.start_date, time(0), NEW_YORK)
    )
    stored = await SimBrokerStore(sessions).get_account(settings.broker.account)
    # The same rule as SimRuntime.create: never before the first session of the simulation.
    return max(first_open, stored.processed_until) if stored else first_open


async def trading_clock(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], calendar: TradingCalendar
) -> Clock:
    """The clock the daemon's records are on: a manual clock at the stored sim time, or wall time."""
    if settings.broker.kind == "alpaca":
        return RealClock()
    return ManualClock(await stored_sim_time(settings, sessions, calendar))


@asynccontextmanager
async def open_trading(settings: Settings) -> AsyncIterator[CliServices]:
    """Database, broker and hedging services for one CLI verb; everything closed on exit."""
    live = LiveSettings(settings)
    account = settings.broker.account
    calendar = nyse_calendar()
    async with open_database(settings) as engine:
        sessions = session_factory(engine)
        clock = await trading_clock(settings, sessions, calendar)
        sim: SimRuntime | None = None
        broker: Broker
        if settings.broker.kind == "alpaca":
            try:
                alpaca = AlpacaBroker.from_settings(settings, clock=clock)
            except AlpacaConfigError as exc:
                raise CliFailure(str(exc), ExitCode.CONFIG) from None
            broker = alpaca
        else:
            alpaca = None
            try:
                sim = await SimRuntime.create(settings, sessions, calendar, clock)
            except ScenarioError as exc:
                raise CliFailure(str(exc), ExitCode.CONFIG) from None
            broker = sim.broker
        try:
            queue = DurableQueue(sessions, clock, lambda: live.queue)
            audit = AuditLog(sessions, clock, account)
            try:
                hedging, executor = build_hedging(
                    live, broker, sessions, clock, calendar, queue, audit
                )
                income = build_income(
                    live, broker, sessions, clock, calendar, audit, hedging.reference
                )
            except ReferenceDataError as exc:
                raise CliFailure(str(exc), ExitCode.CONFIG) from None
            yield CliServices(
                alerts=AlertService(
                    AlertStore(sessions, clock, account),
                    [],
                    clock,
                    lambda: live.current.risk.alerts,
                    TradingStateStore(sessions, clock, account),
                ),
                settings=live,
                clock=clock,
                calendar=calendar,
                engine=engine,
                sessions=sessions,
                queue=queue,
                audit=audit,
                job_runs=JobRuns(sessions, account),
                instance_id=f"cli-{uuid.uuid4().hex}",
                broker=broker,
                hedging=hedging,
                hedge_executor=executor,
                income=income,
                sim=sim,
            )
        finally:
            if alpaca is not None:
                await alpaca.aclose()
