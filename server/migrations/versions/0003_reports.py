"""submission reports: every scoring and re-scoring of a run

Revision ID: 0003_reports
Revises: 0002_run_policy
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_reports"
down_revision: str | None = "0002_run_policy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "submission_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("scorer_version", sa.String(length=20), nullable=False),
        sa.Column("test_set_sha256", sa.String(length=64), nullable=False),
        sa.Column("bootstrap_seed", sa.Integer(), nullable=False),
        sa.Column("bootstrap_resamples", sa.Integer(), nullable=False),
        sa.Column("predictions_sha256", sa.String(length=64), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_submission_reports_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_reports")),
    )
    with op.batch_alter_table("submission_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_submission_reports_submission_id"), ["submission_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("submission_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_reports_submission_id"))
    op.drop_table("submission_reports")
