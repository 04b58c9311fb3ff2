"""Wiring of the embedded default: synthetic market, simulated broker and simulated clock.

Only the daemon (and later the backtest) builds this. The simulated clock
starts where the stored simulation stopped, so a restarted daemon continues
the same market and book instead of replaying them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.broker.sim import SimBroker
from alchemiser.broker.sim_scenario import SimScenario, load_scenario
from alchemiser.clock import NEW_YORK, Clock, SimClock
from alchemiser.settings import Settings
from alchemiser.sim.market import SimMarket
from alchemiser.sim_time import ClosedHoursSkipper, next_open_at_or_after
from alchemiser.store.sim_state import SimBrokerStore
from alchemiser.trading_calendar import TradingCalendar

log = structlog.stdlib.get_logger("alchemiser.sim")


@dataclass
class SimRuntime:
    market: SimMarket
    broker: SimBroker
    clock: Clock
    calendar: TradingCalendar
    scenario: SimScenario
    settings: Settings

    @classmethod
    async def create(
        cls,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        calendar: TradingCalendar,
        clock: Clock | None = None,
    ) -> SimRuntime:
        """Build the market, the broker and (unless given) the clock; open the account once."""
        sim = settings.sim
        scenario = load_scenario(sim.scenario or None)
        market = SimMarket(seed=sim.seed, start=sim.start_date, calendar=calendar)
        store = SimBrokerStore(sessions)
        config = scenario.broker_config(settings.broker.account)
        if clock is None:
            stored = await store.get_account(config.account_id)
            first_open = next_open_at_or_after(
                calendar, datetime.combine(sim.start_date, time(0), NEW_YORK)
            )
            start = max(first_open, stored.processed_until) if stored else first_open
            clock = SimClock(start, speed=sim.speed)
        broker = SimBroker(market, clock, store, config, calendar)
        created = await broker.seed(scenario)
        log.info(
            "sim_ready",
            scenario=scenario.name,
            seeded_now=created,
            seed=sim.seed,
            clock=clock.now().isoformat(),
            speed=clock.speed,
        )
        return cls(market, broker, clock, calendar, scenario, settings)

    def skipper(self, is_idle: ClosedHoursSkipper.IdleCheck) -> ClosedHoursSkipper | None:
        """The closed-hours skipper, when the clock is accelerated and skipping is on."""
        clock = self.clock
        if (
            not isinstance(clock, SimClock)
            or clock.manual
            or not self.settings.sim.skip_closed_hours
        ):
            return None
        return ClosedHoursSkipper(clock, self.calendar, is_idle)

    async def sync_forever(self, minutes: int) -> None:
        """Let the broker match orders every few simulated minutes and settle each close."""
        while True:
            await self.broker.sync()
            now = self.clock.now()
            day = now.astimezone(NEW_YORK).date()
            if self.calendar.is_open_at(now):
                until = min(now + timedelta(minutes=minutes), self.calendar.session_close(day))
            else:
                until = next_open_at_or_after(self.calendar, now)
            await self.clock.sleep_until(until)
