"""What the hedging services need, wired once by the daemon (or the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from alchemiser.broker.base import Broker
from alchemiser.clock import Clock
from alchemiser.execution.engine import OrderExecutor
from alchemiser.market.reference import ReferenceData
from alchemiser.settings import LiveSettings
from alchemiser.settings.hedging import HedgingSettings
from alchemiser.store.audit import AuditLog
from alchemiser.store.hedges import HedgeStore, IvHistoryStore
from alchemiser.store.queue import DurableQueue
from alchemiser.trading_calendar import TradingCalendar

EXECUTION_QUEUE = "hedge_execution"
ROLL_QUEUE = "hedge_roll"
PLAN_QUEUE = "rebalance_planned"
# The underlying whose chain gives the 30-day volatility index (the VIX method).
VOL_INDEX_UNDERLYING = "SPY"


@dataclass(frozen=True)
class HedgingContext:
    account: str
    broker: Broker
    store: HedgeStore
    iv_history: IvHistoryStore
    orders: OrderExecutor
    queue: DurableQueue
    audit: AuditLog
    settings: LiveSettings
    clock: Clock
    calendar: TradingCalendar
    reference: ReferenceData

    @property
    def hedging(self) -> HedgingSettings:
        """The hedging settings in force now (read at each use: live edits apply)."""
        return self.settings.current.hedging

    @property
    def rate(self) -> float:
        """The risk-free rate for option valuation, as a decimal (0.04)."""
        return float(self.settings.current.risk.risk_free_rate_pct) / 100
