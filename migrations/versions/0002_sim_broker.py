"""Simulated broker: accounts, positions, orders, fills, activities

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 12:14:27.781229
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from alchemiser.store.types import Money, UtcDateTime

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sim_accounts",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("cash", Money(), nullable=False),
        sa.Column("realized_pnl", Money(), nullable=False),
        sa.Column("processed_until", UtcDateTime(timezone=True), nullable=False),
        sa.Column("seeded_from", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_sim_accounts")),
    )
    op.create_table(
        "sim_activities",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("activity_type", sa.String(length=8), nullable=False),
        sa.Column("occurred_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("qty", Money(), nullable=False),
        sa.Column("price", Money(), nullable=True),
        sa.Column("side", sa.String(length=8), nullable=True),
        sa.Column("order_id", sa.String(length=36), nullable=True),
        sa.Column("net_amount", Money(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["sim_accounts.account_id"],
            name=op.f("fk_sim_activities_account_id_sim_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sim_activities")),
    )
    op.create_index(
        "ix_sim_activities_account_at",
        "sim_activities",
        ["account_id", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "sim_orders",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("client_order_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("order_class", sa.String(length=8), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("time_in_force", sa.String(length=8), nullable=False),
        sa.Column("qty", Money(), nullable=False),
        sa.Column("filled_qty", Money(), nullable=False),
        sa.Column("filled_avg_price", Money(), nullable=True),
        sa.Column("limit_price", Money(), nullable=True),
        sa.Column("symbol", sa.String(length=32), nullable=True),
        sa.Column("side", sa.String(length=8), nullable=True),
        sa.Column("position_intent", sa.String(length=16), nullable=True),
        sa.Column(
            "legs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("submitted_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_matched_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["sim_accounts.account_id"],
            name=op.f("fk_sim_orders_account_id_sim_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sim_orders")),
        sa.UniqueConstraint(
            "account_id", "client_order_id", name=op.f("uq_sim_orders_account_id_client_order_id")
        ),
    )
    op.create_index(
        "ix_sim_orders_account_status", "sim_orders", ["account_id", "status"], unique=False
    )
    op.create_table(
        "sim_positions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("asset_class", sa.String(length=16), nullable=False),
        sa.Column("qty", Money(), nullable=False),
        sa.Column("avg_entry_price", Money(), nullable=False),
        sa.Column("multiplier", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["sim_accounts.account_id"],
            name=op.f("fk_sim_positions_account_id_sim_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sim_positions")),
        sa.UniqueConstraint(
            "account_id", "symbol", name=op.f("uq_sim_positions_account_id_symbol")
        ),
    )
    op.create_table(
        "sim_fills",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("qty", Money(), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("fee", Money(), nullable=False),
        sa.Column("realized_pnl", Money(), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["sim_accounts.account_id"],
            name=op.f("fk_sim_fills_account_id_sim_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["sim_orders.id"], name=op.f("fk_sim_fills_order_id_sim_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sim_fills")),
    )
    op.create_index("ix_sim_fills_account_at", "sim_fills", ["account_id", "at"], unique=False)
    op.create_index("ix_sim_fills_order_id", "sim_fills", ["order_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sim_fills_order_id", table_name="sim_fills")
    op.drop_index("ix_sim_fills_account_at", table_name="sim_fills")
    op.drop_table("sim_fills")
    op.drop_table("sim_positions")
    op.drop_index("ix_sim_orders_account_status", table_name="sim_orders")
    op.drop_table("sim_orders")
    op.drop_index("ix_sim_activities_account_at", table_name="sim_activities")
    op.drop_table("sim_activities")
    op.drop_table("sim_accounts")
