"""Orders: intents (idempotent by key) and broker orders (one row per submission attempt)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from alchemiser.store.types import Money, UtcDateTime

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_MAP = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "order_intents",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("intent_key", sa.String(length=255), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("related_ids", JSON_MAP, nullable=False),
        sa.Column("legs", JSON_MAP, nullable=False),
        sa.Column("target_qty", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("filled_qty", sa.Integer(), nullable=False),
        sa.Column("avg_fill_price", Money(), nullable=True),
        sa.Column("cost", Money(), nullable=False),
        sa.Column("reference_mid", Money(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_intents")),
        sa.UniqueConstraint("intent_key", name=op.f("uq_order_intents_intent_key")),
    )
    op.create_index(
        "ix_order_intents_account_status", "order_intents", ["account", "status"], unique=False
    )
    op.create_table(
        "broker_orders",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("intent_id", BIG_ID, nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("broker_order_id", sa.String(length=64), nullable=True),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("limit_price", Money(), nullable=False),
        sa.Column("quote_mid", Money(), nullable=True),
        sa.Column("at_max_slippage", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("filled_qty", sa.Integer(), nullable=False),
        sa.Column("filled_avg_price", Money(), nullable=True),
        sa.Column("cost", Money(), nullable=False),
        sa.Column("written_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("reject_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["intent_id"],
            ["order_intents.id"],
            name=op.f("fk_broker_orders_intent_id_order_intents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broker_orders")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_broker_orders_client_order_id")),
        sa.UniqueConstraint("intent_id", "step", name=op.f("uq_broker_orders_intent_id_step")),
    )


def downgrade() -> None:
    op.drop_table("broker_orders")
    op.drop_index("ix_order_intents_account_status", table_name="order_intents")
    op.drop_table("order_intents")
