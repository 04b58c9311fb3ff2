"""What the income services need, wired once by the daemon (or the CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from alchemiser.broker.base import Broker
from alchemiser.clock import NEW_YORK, Clock
from alchemiser.execution.engine import OrderExecutor
from alchemiser.income.scoring import Advisor
from alchemiser.market.reference import ReferenceData
from alchemiser.risk.pretrade import IncomeRiskCheck
from alchemiser.settings import LiveSettings
from alchemiser.settings.income import IncomeSettings
from alchemiser.store.audit import AuditLog
from alchemiser.store.hedges import IvHistoryStore
from alchemiser.store.income import IncomeStore
from alchemiser.trading_calendar import TradingCalendar


@dataclass(frozen=True)
class IncomeContext:
    account: str
    broker: Broker
    store: IncomeStore
    iv_history: IvHistoryStore
    orders: OrderExecutor
    audit: AuditLog
    settings: LiveSettings
    clock: Clock
    calendar: TradingCalendar
    reference: ReferenceData
    advisor: Advisor
    risk: IncomeRiskCheck

    @property
    def income(self) -> IncomeSettings:
        """The income settings in force now (read at each use: live edits apply)."""
        return self.settings.current.income

    def today(self) -> date:
        """The New York calendar date now."""
        return self.clock.now().astimezone(NEW_YORK).date()
