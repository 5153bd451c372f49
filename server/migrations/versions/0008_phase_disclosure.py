"""phases.disclosure: how much of a report a phase shows its submitters (issue 19)

Existing phases get the default of their test set: ``summary`` for a private phase, ``full`` for a
development (public) one.

Revision ID: 0008_phase_disclosure
Revises: 0007_team_holds
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_phase_disclosure"
down_revision: str | None = "0007_team_holds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DISCLOSURE = sa.Enum("full", "summary", name="disclosure", native_enum=False, length=10)


def upgrade() -> None:
    with op.batch_alter_table("phases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disclosure", DISCLOSURE, nullable=True))
    phases = sa.table("phases", sa.column("test_set", sa.String()), sa.column("disclosure", sa.String()))
    op.execute(
        phases.update().values(disclosure=sa.case((phases.c.test_set == "public", "full"), else_="summary"))
    )
    with op.batch_alter_table("phases", schema=None) as batch_op:
        batch_op.alter_column("disclosure", existing_type=DISCLOSURE, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("phases", schema=None) as batch_op:
        batch_op.drop_column("disclosure")
