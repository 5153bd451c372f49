"""registrations: self-registration with approval, its rate counters; account mail in the outbox (issue 22)

``notification_deliveries.team_id`` becomes nullable: a registration's mail goes to one address
that belongs to no team yet.

Revision ID: 0011_registrations
Revises: 0010_phase_rows
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_registrations"
down_revision: str | None = "0010_phase_rows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("affiliation", sa.String(300), nullable=False),
        sa.Column("orcid", sa.String(19), nullable=True),
        sa.Column(
            "team_action",
            sa.Enum("create", "join", name="teamaction", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("team_name", sa.String(100), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "unverified",
                "verified",
                "awaiting_team",
                "approved",
                "rejected",
                name="registrationstate",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(254), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("verify_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("verify_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("welcome_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("welcome_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_registrations_email", "registrations", ["email"])
    op.create_index("ix_registrations_state", "registrations", ["state"])
    op.create_table(
        "rate_counters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.UniqueConstraint("key", "window_start", name="uq_rate_counters_key_window"),
    )
    op.create_index("ix_rate_counters_window_start", "rate_counters", ["window_start"])
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.alter_column("team_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM notification_deliveries WHERE team_id IS NULL")
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.alter_column("team_id", existing_type=sa.Integer(), nullable=False)
    op.drop_index("ix_rate_counters_window_start", table_name="rate_counters")
    op.drop_table("rate_counters")
    op.drop_index("ix_registrations_state", table_name="registrations")
    op.drop_index("ix_registrations_email", table_name="registrations")
    op.drop_table("registrations")
