"""worker accounts: remote workers reach the server over its worker API only (issue 25)

Revision ID: 0013_worker_accounts
Revises: 0012_operations
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_worker_accounts"
down_revision: str | None = "0012_operations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("test_set_digest", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_worker_accounts_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_worker_accounts_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("worker_accounts")
