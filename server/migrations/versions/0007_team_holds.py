"""team holds: a team's queued runs wait for a maintainer (issue 19)

Revision ID: 0007_team_holds
Revises: 0006_ladder_steps
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_team_holds"
down_revision: str | None = "0006_ladder_steps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "team_holds",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("held_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_team_holds_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_team_holds")),
    )


def downgrade() -> None:
    op.drop_table("team_holds")
