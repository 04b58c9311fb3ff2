"""Tables of the daemon's own machinery: durable queue, audit history, job runs, instances.

Strategy tables (hedges, income positions, orders, ledgers) are added by their
modules' migrations; every table is created only through Alembic.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from alchemiser.store.types import JsonMap, Money, UtcDateTime

# Named constraints so migrations (and SQLite batch rebuilds) can refer to them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY autoincrements).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Job(Base):
    """A message of the durable queue (the stand-in for the original design's SQS)."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonMap)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    # pending -> running -> done; running -> pending (failure, retry) -> dead
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    visibility_timeout_seconds: Mapped[int] = mapped_column(Integer)
    available_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_jobs_claimable", "queue", "status", "available_at"),)


class AuditEntry(Base):
    """One recorded action: the history every decision, order and event leaves behind."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    action: Mapped[str] = mapped_column(String(64))
    # Ids this entry is about: {"hedge_id": ..., "job_id": ..., "client_order_id": ...}
    related_ids: Mapped[dict[str, Any]] = mapped_column(JsonMap)
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JsonMap)

    __table_args__ = (
        Index("ix_audit_account_at", "account", "at"),
        Index("ix_audit_action", "action"),
    )


class JobRun(Base):
    """One scheduled job's run for one session date: what makes jobs idempotent per day."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    job_name: Mapped[str] = mapped_column(String(64))
    session_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    instance_id: Mapped[str] = mapped_column(String(64))
    correlation_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("account", "job_name", "session_date"),)


class DaemonInstance(Base):
    """A daemon process's life: start, heartbeats, clean stop. `status` reads it."""

    __tablename__ = "daemon_instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_beat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(16))  # running | stopped

    __table_args__ = (Index("ix_daemon_instances_account_started", "account", "started_at"),)


# -- Simulated broker (alchemiser.broker.sim; repository: alchemiser.store.sim_state) ------------
# The simulated exchange's book: account cash and clock cursor, positions, orders,
# fills and account activities, so a restarted daemon continues where it stopped.


class SimAccount(Base):
    """A simulated brokerage account: cash and how far in time the simulation has run."""

    __tablename__ = "sim_accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cash: Mapped[Decimal] = mapped_column(Money)
    realized_pnl: Mapped[Decimal] = mapped_column(Money)
    # Everything due up to this instant (fills, expiries, assignments) is processed.
    processed_until: Mapped[datetime] = mapped_column(UtcDateTime)
    seeded_from: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SimPosition(Base):
    """One open position of a simulated account (a row disappears when flat)."""

    __tablename__ = "sim_positions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("sim_accounts.account_id"))
    symbol: Mapped[str] = mapped_column(String(32))
    asset_class: Mapped[str] = mapped_column(String(16))
    qty: Mapped[Decimal] = mapped_column(Money)  # signed: negative is short
    avg_entry_price: Mapped[Decimal] = mapped_column(Money)
    multiplier: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("account_id", "symbol"),)


class SimOrder(Base):
    """An order the simulated broker accepted (rejected orders are never stored, as at Alpaca)."""

    __tablename__ = "sim_orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("sim_accounts.account_id"))
    client_order_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(24))
    order_class: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(8))
    time_in_force: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal] = mapped_column(Money)
    filled_qty: Mapped[Decimal] = mapped_column(Money)
    filled_avg_price: Mapped[Decimal | None] = mapped_column(Money)
    limit_price: Mapped[Decimal | None] = mapped_column(Money)
    symbol: Mapped[str | None] = mapped_column(String(32))
    side: Mapped[str | None] = mapped_column(String(8))
    position_intent: Mapped[str | None] = mapped_column(String(16))
    # Multi-leg orders: [{"symbol", "side", "ratio_qty", "position_intent"}, ...]
    legs: Mapped[list[dict[str, Any]]] = mapped_column(JsonMap)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # A day order expires at the close of the session it was accepted for.
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_matched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("account_id", "client_order_id"),
        Index("ix_sim_orders_account_status", "account_id", "status"),
    )


class SimFill(Base):
    """One execution of one leg of an order."""

    __tablename__ = "sim_fills"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("sim_accounts.account_id"))
    order_id: Mapped[str] = mapped_column(ForeignKey("sim_orders.id"))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal] = mapped_column(Money)  # unsigned, in shares or contracts
    price: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money)
    realized_pnl: Mapped[Decimal] = mapped_column(Money)
    at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_sim_fills_order_id", "order_id"),
        Index("ix_sim_fills_account_at", "account_id", "at"),
    )


class SimActivity(Base):
    """An account activity (fill, exercise, assignment, expiry, fee) as Alpaca reports them."""

    __tablename__ = "sim_activities"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("sim_accounts.account_id"))
    activity_type: Mapped[str] = mapped_column(String(8))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    symbol: Mapped[str] = mapped_column(String(32))
    qty: Mapped[Decimal] = mapped_column(Money)  # signed: the change of the position
    price: Mapped[Decimal | None] = mapped_column(Money)
    side: Mapped[str | None] = mapped_column(String(8))
    order_id: Mapped[str | None] = mapped_column(String(36))
    net_amount: Mapped[Decimal | None] = mapped_column(Money)  # cash change

    __table_args__ = (Index("ix_sim_activities_account_at", "account_id", "occurred_at"),)


# -- Orders (alchemiser.execution; repository: alchemiser.store.orders) ---------------------------
# One intent per thing a strategy wants done (idempotent by its key) and one row
# per submission attempt, written before the order is sent.


class OrderIntent(Base):
    """What a strategy wants done: legs, quantity, direction; and how far it got."""

    __tablename__ = "order_intents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    # Deterministic, given by the caller (it embeds the account), e.g. hedge-open:default:2026-11-23:QQQ
    intent_key: Mapped[str] = mapped_column(String(255), unique=True)
    strategy: Mapped[str] = mapped_column(String(16))  # hedge | income
    purpose: Mapped[str] = mapped_column(String(32))  # open, close, roll_close, ...
    related_ids: Mapped[dict[str, Any]] = mapped_column(JsonMap)
    # [{"symbol", "side", "ratio_qty", "position_intent"}, ...]
    legs: Mapped[list[dict[str, Any]]] = mapped_column(JsonMap)
    target_qty: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(8))  # debit | credit
    filled_qty: Mapped[int] = mapped_column(Integer)
    # Per unit, in the direction's terms: what was paid (debit) or received (credit).
    avg_fill_price: Mapped[Decimal | None] = mapped_column(Money)
    # Signed cash of all fills: + paid, - received, multiplier applied.
    cost: Mapped[Decimal] = mapped_column(Money)
    # Net mid per unit (direction's terms) when the intent was first priced: the slippage anchor.
    reference_mid: Mapped[Decimal | None] = mapped_column(Money)
    # pending -> working -> filled | partial | unfilled | rejected | failed; unknown = reconcile
    status: Mapped[str] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_order_intents_account_status", "account", "status"),)


class BrokerOrder(Base):
    """One submission attempt of an intent (one re-pricing step), written before it is sent."""

    __tablename__ = "broker_orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    intent_id: Mapped[int] = mapped_column(ForeignKey("order_intents.id"))
    step: Mapped[int] = mapped_column(Integer)  # 0 = first limit, then one per re-price
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    broker_order_id: Mapped[str | None] = mapped_column(String(64))
    qty: Mapped[int] = mapped_column(Integer)
    # As sent to the broker: per unit; for a multi-leg order the signed net (credit < 0).
    limit_price: Mapped[Decimal] = mapped_column(Money)
    # Net mid per unit (direction's terms) the limit was computed from.
    quote_mid: Mapped[Decimal | None] = mapped_column(Money)
    # The limit hit the maximum slippage: this is the last step.
    at_max_slippage: Mapped[bool] = mapped_column(Boolean)
    # written -> accepted | partially_filled | filled | canceled | expired | rejected | unknown
    status: Mapped[str] = mapped_column(String(24))
    filled_qty: Mapped[int] = mapped_column(Integer)
    filled_avg_price: Mapped[Decimal | None] = mapped_column(Money)  # as the broker reports it
    cost: Mapped[Decimal] = mapped_column(Money)  # signed cash of this order's fills
    written_at: Mapped[datetime] = mapped_column(UtcDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reject_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("intent_id", "step"),)


# -- Hedging --------------------------------------------------------------------------------


class HedgePosition(Base):
    """A hedge the daemon opened: a long put, or a put spread tracked as one unit."""

    __tablename__ = "hedge_positions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    underlying: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(16))  # tail_first | smoothing
    long_symbol: Mapped[str] = mapped_column(String(32))
    long_strike: Mapped[Decimal] = mapped_column(Money)
    short_symbol: Mapped[str | None] = mapped_column(String(32))
    short_strike: Mapped[Decimal | None] = mapped_column(Money)
    expiry: Mapped[date] = mapped_column(Date)
    contracts: Mapped[int] = mapped_column(Integer)
    entry_price: Mapped[Decimal] = mapped_column(Money)  # net debit per unit
    premium_paid: Mapped[Decimal] = mapped_column(Money)  # total, × 100
    entry_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # ACTIVE | CLOSED | ROLLED | EXPIRED | EXERCISED
    state: Mapped[str] = mapped_column(String(16))
    # HOLDING | PENDING_ROLL | ROLLED
    roll_state: Mapped[str] = mapped_column(String(16))
    plan_id: Mapped[str | None] = mapped_column(String(128))
    open_intent_key: Mapped[str] = mapped_column(String(255), unique=True)
    close_intent_key: Mapped[str | None] = mapped_column(String(255))
    rolled_from: Mapped[str | None] = mapped_column(String(64))
    rolled_to: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    proceeds: Mapped[Decimal | None] = mapped_column(Money)  # total received on close
    realized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_hedge_positions_account_state", "account", "state"),)


class HedgeSpend(Base):
    """Premium paid to open hedges, one row per fill: the month-to-date and year-to-date ledger."""

    __tablename__ = "hedge_spend"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, New York calendar
    year: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Money)
    hedge_id: Mapped[str] = mapped_column(String(64))
    # The fill this spend came from (client order id + cumulative qty): booked once.
    fill_ref: Mapped[str] = mapped_column(String(128), unique=True)

    __table_args__ = (Index("ix_hedge_spend_account_year_month", "account", "year", "month"),)


class HedgeEvaluation(Base):
    """One evaluation's outcome: the HedgeEvaluationCompleted event and its explanation."""

    __tablename__ = "hedge_evaluations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    session_date: Mapped[date] = mapped_column(Date)
    plan_id: Mapped[str] = mapped_column(String(128))  # "" when no external plan
    correlation_id: Mapped[str] = mapped_column(String(64))
    skip_reason: Mapped[str | None] = mapped_column(String(128))
    event: Mapped[dict[str, Any]] = mapped_column(JsonMap)
    explanation: Mapped[dict[str, Any]] = mapped_column(JsonMap)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("account", "session_date", "plan_id"),)


class HedgeControl(Base):
    """The persisted kill switch (besides `hedging.enabled` in the config)."""

    __tablename__ = "hedge_control"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(16))  # user | auto
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class HedgeCycle(Base):
    """One hedging cycle (evaluation, execution or roll) and whether it failed."""

    __tablename__ = "hedge_cycles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_hedge_cycles_account_at", "account", "at"),)


class IvHistory(Base):
    """Daily at-the-money implied volatility per underlying (for IV percentile)."""

    __tablename__ = "iv_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(16))
    session_date: Mapped[date] = mapped_column(Date)
    atm_iv: Mapped[Decimal] = mapped_column(Money)
    vol_index: Mapped[Decimal | None] = mapped_column(Money)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("symbol", "session_date"),)


# -- Reconciliation and trading state (alchemiser.broker.reconcile; repository: --------------------
# alchemiser.store.reconcile_state). Whether the daemon may open positions, and the option
# positions at the broker it found and adopted as the user's own (never managed).


class TradingState(Base):
    """The account's trading state: ACTIVE, or a mode that refuses opening orders (persisted)."""

    __tablename__ = "trading_state"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    # ACTIVE | HALTED (reconciliation, operator); REDUCING | EMERGENCY are the risk engine's
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    # Who set the state: reconcile | risk | an operator's name
    changed_by: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UtcDateTime)
    last_reconciled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The operator who last accepted the broker's state or resumed trading, and when
    accepted_by: Mapped[str | None] = mapped_column(String(64))
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ExternalPosition(Base):
    """An option position at the broker that no strategy of ours opened: adopted, never managed."""

    __tablename__ = "external_positions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    qty: Mapped[Decimal] = mapped_column(Money)  # signed: negative is short
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    note: Mapped[str] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("account", "symbol"),)


# -- Alerts (alchemiser.alerts; repository: alchemiser.store.alerts). --------------------------------
# One row per alert (opened, acknowledged, resolved; its level escalates while unacknowledged) and
# a notification outbox: one row per (alert event, notifier), retried until sent, across restarts.


class Alert(Base):
    """An alert: INFO < WARNING < CRITICAL < EMERGENCY; OPEN, ACKNOWLEDGED or RESOLVED."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(128))
    # The key while the alert is unresolved, NULL after: one unresolved alert per key.
    open_key: Mapped[str | None] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(16))  # current level
    initial_level: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # OPEN | ACKNOWLEDGED | RESOLVED
    title: Mapped[str] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JsonMap)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("account", "open_key"),
        Index("ix_alerts_account_state", "account", "state"),
    )


class AlertNotification(Base):
    """One delivery of an alert event to one notifier: PENDING until SENT, or FAILED for good."""

    __tablename__ = "alert_notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(BigId, ForeignKey("alerts.id", ondelete="CASCADE"))
    notifier: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(16))  # opened | escalated
    level: Mapped[str] = mapped_column(String(16))  # the alert's level at the event
    state: Mapped[str] = mapped_column(String(16))  # PENDING | SENT | FAILED
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_alert_notifications_state_next_attempt_at", "state", "next_attempt_at"),
    )


# -- Income (alchemiser.income; repository: alchemiser.store.income) -----------------------------
# Short options sold for income (covered calls, cash-secured puts), the wheel cycles that
# assignment starts, every transition with its realised P&L, screen runs with the candidates
# that passed, and trades waiting for a person's approval.


class IncomePosition(Base):
    """A short option the income module sold: a covered call or a cash-secured put."""

    __tablename__ = "income_positions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24))  # covered_call | cash_secured_put
    underlying: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str] = mapped_column(String(32))
    strike: Mapped[Decimal] = mapped_column(Money)
    expiry: Mapped[date] = mapped_column(Date)
    contracts: Mapped[int] = mapped_column(Integer)  # still open (short)
    contracts_opened: Mapped[int] = mapped_column(Integer)
    credit: Mapped[Decimal] = mapped_column(Money)  # total received to open, × 100
    credit_per_share: Mapped[Decimal] = mapped_column(Money)
    entry_iv: Mapped[Decimal | None] = mapped_column(Money)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # OPEN | CLOSED | EXPIRED | ASSIGNED | ROLLED
    state: Mapped[str] = mapped_column(String(16))
    close_reason: Mapped[str | None] = mapped_column(String(32))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    close_cost: Mapped[Decimal] = mapped_column(Money)  # total paid to buy back, × 100
    realized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    wheel_id: Mapped[str | None] = mapped_column(String(64))
    open_intent_key: Mapped[str] = mapped_column(String(255), unique=True)
    close_intent_key: Mapped[str | None] = mapped_column(String(255))
    rolled_from: Mapped[str | None] = mapped_column(String(64))
    rolled_to: Mapped[str | None] = mapped_column(String(64))
    candidate_id: Mapped[int | None] = mapped_column(BigId)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_income_positions_account_state", "account", "state"),)


class IncomeWheel(Base):
    """One turn of the wheel: shares from an assigned put, until they are called away."""

    __tablename__ = "income_wheels"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    underlying: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # SHARES | DONE
    shares: Mapped[int] = mapped_column(Integer)
    cost_basis: Mapped[Decimal] = mapped_column(Money)  # per share: strike − premium
    premium: Mapped[Decimal] = mapped_column(Money)  # every credit of the cycle, net of buybacks
    put_position_id: Mapped[str] = mapped_column(String(64), unique=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    realized_pnl: Mapped[Decimal | None] = mapped_column(Money)

    __table_args__ = (Index("ix_income_wheels_account_state", "account", "state"),)


class IncomeEvent(Base):
    """A transition of an income position or wheel, with the P&L it realised."""

    __tablename__ = "income_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    event: Mapped[str] = mapped_column(String(32))
    position_id: Mapped[str | None] = mapped_column(String(64))
    wheel_id: Mapped[str | None] = mapped_column(String(64))
    realized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    # What made it (a fill or a broker activity): recorded once.
    ref: Mapped[str] = mapped_column(String(160), unique=True)
    details: Mapped[dict[str, Any]] = mapped_column(JsonMap)

    __table_args__ = (Index("ix_income_events_account_at", "account", "at"),)


class IncomeScreenRun(Base):
    """One screen: the universe, quotes dropped by reason, candidates removed by rule."""

    __tablename__ = "income_screen_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    session_date: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JsonMap)

    __table_args__ = (Index("ix_income_screen_runs_account_at", "account", "at"),)


class IncomeCandidate(Base):
    """A contract that passed every screen, with its scores, rationale and decision."""

    __tablename__ = "income_candidates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(BigId)
    account: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24))
    underlying: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str] = mapped_column(String(32))
    contracts: Mapped[int] = mapped_column(Integer)
    bid: Mapped[Decimal] = mapped_column(Money)
    mid: Mapped[Decimal] = mapped_column(Money)
    total_score: Mapped[Decimal] = mapped_column(Money)
    decision: Mapped[str] = mapped_column(String(24))
    rationale: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JsonMap)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_income_candidates_run_id", "run_id"),)


class IncomeApproval(Base):
    """A trade waiting for a person (income.approval = "manual"); it expires at the close."""

    __tablename__ = "income_approvals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    candidate_id: Mapped[int] = mapped_column(BigId, unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    underlying: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str] = mapped_column(String(32))
    contracts: Mapped[int] = mapped_column(Integer)
    min_credit: Mapped[Decimal] = mapped_column(Money)  # per share: the least we take
    score: Mapped[Decimal] = mapped_column(Money)
    rationale: Mapped[str] = mapped_column(Text)
    intent_key: Mapped[str] = mapped_column(String(255), unique=True)
    # PENDING | APPROVED | REJECTED | EXPIRED | EXECUTED
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_income_approvals_account_state", "account", "state"),)


# -- Risk (alchemiser.risk; repository: alchemiser.store.risk). --------------------------------------
# Daily closes of underlyings (market data, shared by accounts) for historical VaR; snapshots of the
# book's greeks and limit usage (intraday and at the close); the end-of-day VaR/ES/stress row; the
# weekly review.


class PriceHistory(Base):
    """One session's close of one symbol: captured after the close, or imported by the user."""

    __tablename__ = "price_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))
    session_date: Mapped[date] = mapped_column(Date)
    close: Mapped[Decimal] = mapped_column(Money)
    source: Mapped[str] = mapped_column(String(16))  # broker | import
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("symbol", "session_date"),)


class RiskSnapshot(Base):
    """The book's greeks by strategy and the usage of each limit at one instant."""

    __tablename__ = "risk_snapshots"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    session_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))  # intraday | eod (one eod per session)
    nav: Mapped[Decimal] = mapped_column(Money)
    greeks: Mapped[dict[str, Any]] = mapped_column(JsonMap)  # strategy/book -> field -> str
    limits: Mapped[list[dict[str, Any]]] = mapped_column(JsonMap)

    __table_args__ = (
        Index("ix_risk_snapshots_account_session_date_kind", "account", "session_date", "kind"),
    )


class RiskDaily(Base):
    """End-of-day risk of one session: VaR/ES (NULL with a ``note`` saying why), stress, NAV."""

    __tablename__ = "risk_daily"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    session_date: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    nav: Mapped[Decimal] = mapped_column(Money)
    confidence: Mapped[Decimal] = mapped_column(Money)  # an exact decimal, e.g. 0.95
    var_historical: Mapped[Decimal | None] = mapped_column(Money)
    es_historical: Mapped[Decimal | None] = mapped_column(Money)
    var_delta_gamma: Mapped[Decimal | None] = mapped_column(Money)
    var_delta_normal: Mapped[Decimal | None] = mapped_column(Money)
    sessions_used: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    stress: Mapped[list[dict[str, Any]]] = mapped_column(JsonMap)
    hedge_payoff_pct_nav: Mapped[Decimal | None] = mapped_column(Money)
    details: Mapped[dict[str, Any]] = mapped_column(JsonMap)

    __table_args__ = (UniqueConstraint("account", "session_date"),)


class WeeklyReview(Base):
    """The weekly risk review, stored on the week's last session."""

    __tablename__ = "weekly_reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    week_ending: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    summary: Mapped[dict[str, Any]] = mapped_column(JsonMap)
    text: Mapped[str] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("account", "week_ending"),)
