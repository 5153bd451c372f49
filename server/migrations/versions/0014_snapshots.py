"""snapshots: frozen boards, and each stored report's own bootstrap replicates (issue 22 item 5)

``board_snapshots`` keeps the exact JSON bytes of a frozen board and their SHA-256.
``superseded_replicates`` keeps the Kendall tau-b replicates of a report once a re-score supersedes
it (a run's current replicates stay on the submission), so a board rebuilt as it stood before a
re-score pairs the replicates the runs had then; reports superseded before this revision have none.

Revision ID: 0014_snapshots
Revises: 0013_worker_accounts
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_snapshots"
down_revision: str | None = "0013_worker_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "board_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["actor_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "superseded_replicates",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("tau_replicates", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["report_id"], ["submission_reports.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("report_id"),
    )


def downgrade() -> None:
    op.drop_table("superseded_replicates")
    op.drop_table("board_snapshots")
