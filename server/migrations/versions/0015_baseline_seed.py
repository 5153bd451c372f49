"""baseline seed: the training seed of a seeded baseline run (issue 21 item 7)

``csawm seed-baselines --runs N`` trains each reference model with seeds 1..N; ``baseline_seeds``
holds each such run's seed (a baseline built from given weights has none), so that the board can
list the runs of one reference model by seed. A table of its own rather than a submissions column:
only seeded baselines have one.

Revision ID: 0015_baseline_seed
Revises: 0014_snapshots
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_baseline_seed"
down_revision: str | None = "0014_snapshots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "baseline_seeds",
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("training_seed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("submission_id"),
    )


def downgrade() -> None:
    op.drop_table("baseline_seeds")
