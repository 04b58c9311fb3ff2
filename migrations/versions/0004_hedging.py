"""Hedging: positions, spend ledger, evaluations, kill switch, cycles, IV history

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 12:54:21.871588
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from alchemiser.store.types import Money, UtcDateTime

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hedge_control",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(length=16), nullable=False),
        sa.Column("changed_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_hedge_control")),
    )
    op.create_table(
        "hedge_cycles",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hedge_cycles")),
    )
    op.create_index("ix_hedge_cycles_account_at", "hedge_cycles", ["account", "at"], unique=False)
    op.create_table(
        "hedge_evaluations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("session_date", sa.Date(), nullable=False),
        sa.Column("plan_id", sa.String(length=128), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("skip_reason", sa.String(length=128), nullable=True),
        sa.Column(
            "event",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "explanation",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hedge_evaluations")),
        sa.UniqueConstraint(
            "account",
            "session_date",
            "plan_id",
            name=op.f("uq_hedge_evaluations_account_session_date_plan_id"),
        ),
    )
    op.create_table(
        "hedge_positions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("underlying", sa.String(length=16), nullable=False),
        sa.Column("template", sa.String(length=16), nullable=False),
        sa.Column("long_symbol", sa.String(length=32), nullable=False),
        sa.Column("long_strike", Money(), nullable=False),
        sa.Column("short_symbol", sa.String(length=32), nullable=True),
        sa.Column("short_strike", Money(), nullable=True),
        sa.Column("expiry", sa.Date(), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("entry_price", Money(), nullable=False),
        sa.Column("premium_paid", Money(), nullable=False),
        sa.Column("entry_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("roll_state", sa.String(length=16), nullable=False),
        sa.Column("plan_id", sa.String(length=128), nullable=True),
        sa.Column("open_intent_key", sa.String(length=255), nullable=False),
        sa.Column("close_intent_key", sa.String(length=255), nullable=True),
        sa.Column("rolled_from", sa.String(length=64), nullable=True),
        sa.Column("rolled_to", sa.String(length=64), nullable=True),
        sa.Column("closed_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("proceeds", Money(), nullable=True),
        sa.Column("realized_pnl", Money(), nullable=True),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hedge_positions")),
        sa.UniqueConstraint("open_intent_key", name=op.f("uq_hedge_positions_open_intent_key")),
    )
    op.create_index(
        "ix_hedge_positions_account_state", "hedge_positions", ["account", "state"], unique=False
    )
    op.create_table(
        "hedge_spend",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("hedge_id", sa.String(length=64), nullable=False),
        sa.Column("fill_ref", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hedge_spend")),
        sa.UniqueConstraint("fill_ref", name=op.f("uq_hedge_spend_fill_ref")),
    )
    op.create_index(
        "ix_hedge_spend_account_year_month",
        "hedge_spend",
        ["account", "year", "month"],
        unique=False,
    )
    op.create_table(
        "iv_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("symbol", sa.String(length=16), nullable=False),
        sa.Column("session_date", sa.Date(), nullable=False),
        sa.Column("atm_iv", Money(), nullable=False),
        sa.Column("vol_index", Money(), nullable=True),
        sa.Column("recorded_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iv_history")),
        sa.UniqueConstraint(
            "symbol", "session_date", name=op.f("uq_iv_history_symbol_session_date")
        ),
    )


def downgrade() -> None:
    op.drop_table("iv_history")
    op.drop_index("ix_hedge_spend_account_year_month", table_name="hedge_spend")
    op.drop_table("hedge_spend")
    op.drop_index("ix_hedge_positions_account_state", table_name="hedge_positions")
    op.drop_table("hedge_positions")
    op.drop_table("hedge_evaluations")
    op.drop_index("ix_hedge_cycles_account_at", table_name="hedge_cycles")
    op.drop_table("hedge_cycles")
    op.drop_table("hedge_control")
