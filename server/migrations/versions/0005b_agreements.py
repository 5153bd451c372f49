"""data-use agreement acceptances (issue 15 item 5)

Revision ID: 0005_agreements
Revises: 0005_baseline_builds
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_agreements"
down_revision: str | None = "0005_baseline_builds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agreement_acceptances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_agreement_acceptances_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreement_acceptances")),
        sa.UniqueConstraint("user_id", "version", name="uq_agreement_acceptances_user_version"),
    )
    with op.batch_alter_table("agreement_acceptances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agreement_acceptances_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agreement_acceptances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agreement_acceptances_user_id"))
    op.drop_table("agreement_acceptances")
