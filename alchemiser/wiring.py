"""Builds the strategy services from concrete parts: shared by the daemon and the CLI."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import alchemiser
from alchemiser.alerts.model import AlertLevel
from alchemiser.alerts.service import AlertService
from alchemiser.broker.base import Broker
from alchemiser.broker.reconcile import (
    Reconciler,
    ReconcileReport,
    TradingStateGate,
    hedge_fill_handlers,
)
from alchemiser.clock import Clock
from alchemiser.domain.ticks import INDEX_PENNY_ALL
from alchemiser.execution.engine import ExecutionPlan, OrderExecutor, PreTradeCheck
from alchemiser.hedging.context import HedgingContext
from alchemiser.hedging.executor import HedgeCapCheck, HedgeExecutor
from alchemiser.income.context import IncomeContext
from alchemiser.income.fills import income_fill_handlers
from alchemiser.income.scoring import Advisor, RulesAdvisor
from alchemiser.market.reference import ReferenceData, TomlReferenceData
from alchemiser.risk.pretrade import IncomeRiskCheck
from alchemiser.settings import LiveSettings
from alchemiser.store.audit import AuditLog
from alchemiser.store.hedges import HedgeStore, IvHistoryStore
from alchemiser.store.income import IncomeStore
from alchemiser.store.orders import OrderStore
from alchemiser.store.queue import DurableQueue
from alchemiser.store.reconcile_state import TradingStateStore
from alchemiser.trading_calendar import TradingCalendar

REFERENCE_FILE = "reference_data.toml"


def reference_path(configured: str) -> Path:
    """The configured file, else the copy shipped with the package (wheel or checkout)."""
    path = Path(configured)
    if path.exists():
        return path
    package = Path(alchemiser.__file__).resolve().parent
    for candidate in (
        package / "_config" / REFERENCE_FILE,
        package.parent / "config" / REFERENCE_FILE,
    ):
        if candidate.exists():
            return candidate
    return path  # loading it reports the missing file by name


def load_reference(settings: LiveSettings) -> ReferenceData:
    return TomlReferenceData.load(reference_path(settings.current.income.reference_data_path))


class AllChecks:
    """Pre-trade checks in order; the first refusal stops the order."""

    def __init__(self, *checks: PreTradeCheck) -> None:
        self._checks = checks

    async def check(self, plan: ExecutionPlan, qty: int, limit_price: Decimal) -> None:
        for check in self._checks:
            await check.check(plan, qty, limit_price)


def build_reconciler(
    broker: Broker,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    calendar: TradingCalendar,
    audit: AuditLog,
    hedges: HedgeStore,
    account: str,
    in_flight_grace_seconds: float = 0.0,
    income: IncomeStore | None = None,
) -> Reconciler:
    """The reconciler with every strategy's fill booking; income positions are the income
    module's to settle, so they are never adopted as external nor called a mismatch."""
    handlers = dict(hedge_fill_handlers(hedges))
    if income is not None:
        handlers.update(income_fill_handlers(income))
    return Reconciler(
        broker,
        OrderStore(sessions, clock, account),
        hedges,
        audit,
        clock,
        account,
        state=TradingStateStore(sessions, clock, account),
        fill_handlers=handlers,
        calendar=calendar,
        in_flight_grace_seconds=in_flight_grace_seconds,
        strategy_positions=None if income is None else income.expected_contracts,
    )


async def raise_reconciliation_alert(alerts: AlertService, report: ReconcileReport) -> None:
    """An unexplained mismatch is an EMERGENCY alert (trading is already halted by it)."""
    if not report.halted:
        return
    await alerts.raise_alert(
        "reconciliation_failed",
        AlertLevel.EMERGENCY,
        "Reconciliation with the broker failed: opening orders are halted",
        {
            "mismatches": [m.as_json() for m in report.mismatches],
            "resume": "alchemiser reconcile --accept, or fix it and alchemiser trading resume",
        },
    )


def build_hedging(
    settings: LiveSettings,
    broker: Broker,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    calendar: TradingCalendar,
    queue: DurableQueue,
    audit: AuditLog,
    penny_pilot: frozenset[str] = INDEX_PENNY_ALL,
) -> tuple[HedgingContext, HedgeExecutor]:
    account = settings.current.broker.account
    store = HedgeStore(sessions, clock, account)
    orders = OrderExecutor(
        broker,
        OrderStore(sessions, clock, account),
        clock,
        lambda: settings.current.hedging.orders,
        AllChecks(
            TradingStateGate(TradingStateStore(sessions, clock, account)),
            HedgeCapCheck(broker, store, clock, settings),
        ),
        penny_pilot=lambda underlying: underlying in penny_pilot,
    )
    ctx = HedgingContext(
        account=account,
        broker=broker,
        store=store,
        iv_history=IvHistoryStore(sessions, clock),
        orders=orders,
        queue=queue,
        audit=audit,
        settings=settings,
        clock=clock,
        calendar=calendar,
        reference=load_reference(settings),
    )
    return ctx, HedgeExecutor(ctx)


def build_income(
    settings: LiveSettings,
    broker: Broker,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    calendar: TradingCalendar,
    audit: AuditLog,
    reference: ReferenceData,
    advisor: Advisor | None = None,
    penny_pilot: frozenset[str] = INDEX_PENNY_ALL,
) -> IncomeContext:
    """The income module on the shared order life cycle, behind the trading-state gate and
    the risk engine's pre-trade check (every income order passes both)."""
    account = settings.current.broker.account
    store = IncomeStore(sessions, clock, account)
    risk = IncomeRiskCheck(broker, settings, reference, audit, clock, store.open_symbols)
    orders = OrderExecutor(
        broker,
        OrderStore(sessions, clock, account),
        clock,
        lambda: settings.current.income.orders,
        AllChecks(TradingStateGate(TradingStateStore(sessions, clock, account)), risk),
        penny_pilot=lambda underlying: underlying in penny_pilot,
    )
    return IncomeContext(
        account=account,
        broker=broker,
        store=store,
        iv_history=IvHistoryStore(sessions, clock),
        orders=orders,
        audit=audit,
        settings=settings,
        clock=clock,
        calendar=calendar,
        reference=reference,
        advisor=advisor or RulesAdvisor(lambda: settings.current.income),
        risk=risk,
    )
