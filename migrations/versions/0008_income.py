"""Income: short option positions, wheel cycles, events, screen runs, candidates, approvals

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 14:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from alchemiser.store.types import JsonMap, Money, UtcDateTime

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "income_positions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("underlying", sa.String(length=16), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("strike", Money(), nullable=False),
        sa.Column("expiry", sa.Date(), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("contracts_opened", sa.Integer(), nullable=False),
        sa.Column("credit", Money(), nullable=False),
        sa.Column("credit_per_share", Money(), nullable=False),
        sa.Column("entry_iv", Money(), nullable=True),
        sa.Column("opened_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("close_reason", sa.String(length=32), nullable=True),
        sa.Column("closed_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("close_cost", Money(), nullable=False),
        sa.Column("realized_pnl", Money(), nullable=True),
        sa.Column("wheel_id", sa.String(length=64), nullable=True),
        sa.Column("open_intent_key", sa.String(length=255), nullable=False),
        sa.Column("close_intent_key", sa.String(length=255), nullable=True),
        sa.Column("rolled_from", sa.String(length=64), nullable=True),
        sa.Column("rolled_to", sa.String(length=64), nullable=True),
        sa.Column("candidate_id", BIG_ID, nullable=True),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_income_positions")),
        sa.UniqueConstraint("open_intent_key", name=op.f("uq_income_positions_open_intent_key")),
    )
    op.create_index(
        "ix_income_positions_account_state", "income_positions", ["account", "state"], unique=False
    )
    op.create_table(
        "income_wheels",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("underlying", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("shares", sa.Integer(), nullable=False),
        sa.Column("cost_basis", Money(), nullable=False),
        sa.Column("premium", Money(), nullable=False),
        sa.Column("put_position_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("realized_pnl", Money(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_income_wheels")),
        sa.UniqueConstraint("put_position_id", name=op.f("uq_income_wheels_put_position_id")),
    )
    op.create_index(
        "ix_income_wheels_account_state", "income_wheels", ["account", "state"], unique=False
    )
    op.create_table(
        "income_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("position_id", sa.String(length=64), nullable=True),
        sa.Column("wheel_id", sa.String(length=64), nullable=True),
        sa.Column("realized_pnl", Money(), nullable=True),
        sa.Column("ref", sa.String(length=160), nullable=False),
        sa.Column("details", JsonMap, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_income_events")),
        sa.UniqueConstraint("ref", name=op.f("uq_income_events_ref")),
    )
    op.create_index("ix_income_events_account_at", "income_events", ["account", "at"], unique=False)
    op.create_table(
        "income_screen_runs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("session_date", sa.Date(), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("summary", JsonMap, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_income_screen_runs")),
    )
    op.create_index(
        "ix_income_screen_runs_account_at", "income_screen_runs", ["account", "at"], unique=False
    )
    op.create_table(
        "income_candidates",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("underlying", sa.String(length=16), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("bid", Money(), nullable=False),
        sa.Column("mid", Money(), nullable=False),
        sa.Column("total_score", Money(), nullable=False),
        sa.Column("decision", sa.String(length=24), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("details", JsonMap, nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_income_candidates")),
    )
    op.create_index("ix_income_candidates_run_id", "income_candidates", ["run_id"], unique=False)
    op.create_table(
        "income_approvals",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("candidate_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("underlying", sa.String(length=16), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("min_credit", Money(), nullable=False),
        sa.Column("score", Money(), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("intent_key", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_income_approvals")),
        sa.UniqueConstraint("candidate_id", name=op.f("uq_income_approvals_candidate_id")),
        sa.UniqueConstraint("intent_key", name=op.f("uq_income_approvals_intent_key")),
    )
    op.create_index(
        "ix_income_approvals_account_state", "income_approvals", ["account", "state"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_income_approvals_account_state", table_name="income_approvals")
    op.drop_table("income_approvals")
    op.drop_index("ix_income_candidates_run_id", table_name="income_candidates")
    op.drop_table("income_candidates")
    op.drop_index("ix_income_screen_runs_account_at", table_name="income_screen_runs")
    op.drop_table("income_screen_runs")
    op.drop_index("ix_income_events_account_at", table_name="income_events")
    op.drop_table("income_events")
    op.drop_index("ix_income_wheels_account_state", table_name="income_wheels")
    op.drop_table("income_wheels")
    op.drop_index("ix_income_positions_account_state", table_name="income_positions")
    op.drop_table("income_positions")
