"""run policy: resume phase, retries, stored hidden predictions, maintainer-only details, runtime,
worker heartbeats

Revision ID: 0002_run_policy
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_run_policy"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_detail", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("hidden_log_tail", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("resume_status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("predictions_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("runtime", sa.JSON(), nullable=True))
    with op.batch_alter_table("run_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail", sa.Text(), nullable=True))
    op.create_table(
        "worker_heartbeats",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
    with op.batch_alter_table("run_events", schema=None) as batch_op:
        batch_op.drop_column("detail")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        for column in (
            "runtime",
            "predictions_sha256",
            "retry_at",
            "resume_status",
            "retries",
            "hidden_log_tail",
            "error_detail",
        ):
            batch_op.drop_column(column)
