"""operations: the maintenance pause, compute budgets per phase and their alerts (issue 22)

Revision ID: 0012_operations
Revises: 0011_registrations
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_operations"
down_revision: str | None = "0011_registrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operations_pause",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("intake", sa.Boolean(), nullable=False),
        sa.Column("runs", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(length=254), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations_pause")),
    )
    op.create_table(
        "compute_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=64), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("used_s", sa.Integer(), nullable=False),
        sa.Column("budget_s", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_compute_alerts_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compute_alerts")),
        sa.UniqueConstraint("team_id", "phase", "percent", name="uq_compute_alerts_team_phase"),
    )
    with op.batch_alter_table("phases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("compute_budget_s", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("phases", schema=None) as batch_op:
        batch_op.drop_column("compute_budget_s")
    op.drop_table("compute_alerts")
    op.drop_table("operations_pause")
