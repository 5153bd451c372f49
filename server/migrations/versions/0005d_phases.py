"""phases: windows, quotas, sealed rounds, selections (issue 15)

Revision ID: 0005_phases
Revises: 0005_notifications
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_phases"
down_revision: str | None = "0005_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "phases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "test_set",
            sa.Enum("private", "public", name="testset", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quota_total", sa.Integer(), nullable=True),
        sa.Column("quota_per_day", sa.Integer(), nullable=True),
        sa.Column("quota_per_week", sa.Integer(), nullable=True),
        sa.Column(
            "visibility",
            sa.Enum("live", "sealed", name="visibility", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("ladder", sa.Boolean(), nullable=False),
        sa.Column("ladder_level", sa.Float(), nullable=False),
        sa.Column("ladder_step", sa.Float(), nullable=False),
        sa.Column("max_selected", sa.Integer(), nullable=False),
        sa.Column("revealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phases")),
        sa.UniqueConstraint("name", name=op.f("uq_phases_name")),
    )
    op.create_table(
        "phase_selections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phase_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["phase_id"], ["phases.id"], name=op.f("fk_phase_selections_phase_id_phases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_phase_selections_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_phase_selections_team_id_teams"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_phase_selections_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phase_selections")),
        sa.UniqueConstraint("submission_id", name=op.f("uq_phase_selections_submission_id")),
    )
    with op.batch_alter_table("phase_selections", schema=None) as batch_op:
        batch_op.create_index("ix_phase_selections_phase_team", ["phase_id", "team_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("phase_selections", schema=None) as batch_op:
        batch_op.drop_index("ix_phase_selections_phase_team")

    op.drop_table("phase_selections")
    op.drop_table("phases")
