"""ladder steps: each team's Ladder sequence, decided once per scored run and stored (issue 19)

Runs of Ladder phases scored before this revision get their steps here, per team in finishing order
(all scored runs, whatever their review state), with the rule of `server.scoring.ladder`.

Revision ID: 0006_ladder_steps
Revises: 0005_phases
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision: str = "0006_ladder_steps"
down_revision: str | None = "0005_phases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ladder_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=64), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("displayed", sa.Float(), nullable=True),
        sa.Column("moved", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=64), nullable=True),
        sa.Column("best_submission_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["best_submission_id"],
            ["submissions.id"],
            name=op.f("fk_ladder_steps_best_submission_id_submissions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_ladder_steps_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_ladder_steps_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ladder_steps")),
        sa.UniqueConstraint("phase", "team_id", "seq", name="uq_ladder_steps_phase_team_seq"),
        sa.UniqueConstraint("submission_id", name=op.f("uq_ladder_steps_submission_id")),
    )
    from server.phases import ladder_steps

    with Session(bind=op.get_bind(), join_transaction_mode="create_savepoint") as session:
        ladder_steps.decide_all(session)
        session.commit()


def downgrade() -> None:
    op.drop_table("ladder_steps")
