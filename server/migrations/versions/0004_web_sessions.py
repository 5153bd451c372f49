"""web session revocations (issue 12: logout ends the session on the server)

Revision ID: 0004_web_sessions
Revises: 0003_reports
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_web_sessions"
down_revision: str | None = "0003_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_session_revocations",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_web_session_revocations")),
    )
    with op.batch_alter_table("web_session_revocations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_web_session_revocations_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("web_session_revocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_session_revocations_expires_at"))
    op.drop_table("web_session_revocations")
