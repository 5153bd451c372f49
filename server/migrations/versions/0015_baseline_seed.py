"""baseline seed: the training seed of a seeded baseline (issue 21 item 7)

``csawm seed-baselines --runs N`` trains each reference model with seeds 1..N; each run records its
seed in ``submissions.training_seed`` (null for a researcher's run and for a baseline built from
given weights), so that the board can list the runs of one reference model by seed.

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
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("training_seed", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("training_seed")
