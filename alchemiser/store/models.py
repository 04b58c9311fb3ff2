"""Tables of the daemon's own machinery: durable queue, audit history, job runs, instances.

Strategy tables (hedges, income positions, orders, ledgers) are added by their
modules' migrations; every table is created only through Alembic.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from alchemiser.store.types import JsonMap, UtcDateTime

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
