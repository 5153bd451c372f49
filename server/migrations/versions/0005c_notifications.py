"""notifications: team webhooks, the outbox, delivery attempts (issue 15 item 6)

Revision ID: 0005_notifications
Revises: 0005_agreements
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_notifications"
down_revision: str | None = "0005_agreements"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "team_webhooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_team_webhooks_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_webhooks")),
    )
    with op.batch_alter_table("team_webhooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_team_webhooks_team_id"), ["team_id"], unique=False)

    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("webhook", "email", name="channel", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("webhook_id", sa.Integer(), nullable=True),
        sa.Column("target", sa.String(length=2000), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_notification_deliveries_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["team_webhooks.id"],
            name=op.f("fk_notification_deliveries_webhook_id_team_webhooks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
    )
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notification_deliveries_due", ["delivered_at", "dead_at", "next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_notification_deliveries_team_id"), ["team_id"], unique=False)

    op.create_table(
        "notification_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["notification_deliveries.id"],
            name=op.f("fk_notification_attempts_delivery_id_notification_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_attempts")),
    )
    with op.batch_alter_table("notification_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_attempts_delivery_id"), ["delivery_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notification_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_attempts_delivery_id"))

    op.drop_table("notification_attempts")
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_deliveries_team_id"))
        batch_op.drop_index("ix_notification_deliveries_due")

    op.drop_table("notification_deliveries")
    with op.batch_alter_table("team_webhooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_team_webhooks_team_id"))

    op.drop_table("team_webhooks")
