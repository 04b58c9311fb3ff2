"""Risk: stored closes, risk snapshots, daily VaR/ES/stress, weekly reviews

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from alchemiser.store.types import JsonMap, Money, UtcDateTime

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "price_history",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("session_date", sa.Date(), nullable=False),
        sa.Column("close", Money(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_history")),
        sa.UniqueConstraint(
            "symbol", "session_date", name=op.f("uq_price_history_symbol_session_date")
        ),
    )
    op.create_table(
        "risk_snapshots",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("session_date", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("nav", Money(), nullable=False),
        sa.Column("greeks", JsonMap, nullable=False),
        sa.Column("limits", JsonMap, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_snapshots")),
    )
    op.create_index(
        "ix_risk_snapshots_account_session_date_kind",
        "risk_snapshots",
        ["account", "session_date", "kind"],
        unique=False,
    )
    op.create_table(
        "risk_daily",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("session_date", sa.Date(), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("nav", Money(), nullable=False),
        sa.Column("confidence", Money(), nullable=False),
        sa.Column("var_historical", Money(), nullable=True),
        sa.Column("es_historical", Money(), nullable=True),
        sa.Column("var_delta_gamma", Money(), nullable=True),
        sa.Column("var_delta_normal", Money(), nullable=True),
        sa.Column("sessions_used", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("stress", JsonMap, nullable=False),
        sa.Column("hedge_payoff_pct_nav", Money(), nullable=True),
        sa.Column("details", JsonMap, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_daily")),
        sa.UniqueConstraint(
            "account", "session_date", name=op.f("uq_risk_daily_account_session_date")
        ),
    )
    op.create_table(
        "weekly_reviews",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("week_ending", sa.Date(), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("summary", JsonMap, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weekly_reviews")),
        sa.UniqueConstraint(
            "account", "week_ending", name=op.f("uq_weekly_reviews_account_week_ending")
        ),
    )


def downgrade() -> None:
    op.drop_table("weekly_reviews")
    op.drop_table("risk_daily")
    op.drop_index("ix_risk_snapshots_account_session_date_kind", table_name="risk_snapshots")
    op.drop_table("risk_snapshots")
    op.drop_table("price_history")
