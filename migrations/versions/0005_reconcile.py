"""Reconciliation: the persisted trading state and adopted external option positions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from alchemiser.store.types import Money, UtcDateTime

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "trading_state",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("since", UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_reconciled_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.String(length=64), nullable=True),
        sa.Column("accepted_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_trading_state")),
    )
    op.create_table(
        "external_positions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("qty", Money(), nullable=False),
        sa.Column("first_seen", UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", UtcDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_positions")),
        sa.UniqueConstraint("account", "symbol", name=op.f("uq_external_positions_account_symbol")),
    )


def downgrade() -> None:
    op.drop_table("external_positions")
    op.drop_table("trading_state")
