"""phase_rows: every competition phase is a row (issue 20); ``phases.opens_at`` may be null

A server without phase rows ran one implicit phase named ``CSAWM_PHASE``; submissions from before
phases carry names with no row. This data step makes them real, so that no reader needs a
"no phase" branch:

- every name the stored submissions use that has no row gets one: live, private test set, the
  disclosure default of a private set (``summary``), quotas null (the ``CSAWM_QUOTA_*`` settings,
  as before), closed: its window runs from its first submission to just after its last. Windows
  never overlap: a window that would meet an existing row or an earlier name's window is clipped
  to end where the other begins, and where nothing is left it shrinks to the empty window at the
  other's opening (never open, and it blocks no window that the other does not already block);
- on a server without phase rows, ``CSAWM_PHASE`` gets a row that is open now and open-ended,
  opening where the closed rows above end (null when there are none: open since always, as the
  implicit phase was). Creating a later phase closes an open-ended phase at the new opening
  (``server/phases/service.py``), so ``create-phase`` works as before.

The migration learns ``CSAWM_PHASE`` from ``config.attributes["csawm_phase"]``, which
``server.core.migrate.upgrade`` sets from the settings of the caller (``csawm db upgrade``, the
server's start); a bare ``alembic upgrade`` reads the ``CSAWM_PHASE`` environment variable.

Revision ID: 0010_phase_rows
Revises: 0009_user_active
Create Date: 2026-12-07
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from server.core.settings import Settings
from server.models.base import UTCDateTime

revision: str = "0010_phase_rows"
down_revision: str | None = "0009_user_active"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AFTER_LAST = timedelta(seconds=1)  # a closed row's window ends this long after its last submission


def _csawm_phase() -> str:
    given = context.config.attributes.get("csawm_phase")
    if isinstance(given, str):
        return given
    return os.environ.get("CSAWM_PHASE") or str(Settings.model_fields["phase"].default)


def _row(name: str, opens_at: datetime | None, closes_at: datetime | None, now: datetime) -> dict[str, Any]:
    return {
        "name": name, "test_set": "private", "opens_at": opens_at, "closes_at": closes_at,
        "quota_total": None, "quota_per_day": None, "quota_per_week": None, "visibility": "live",
        "ladder": False, "ladder_level": 0.05, "ladder_step": 0.01, "max_selected": 2,
        "disclosure": "summary", "revealed_at": None, "created_at": now, "updated_at": now,
    }  # fmt: skip


def _free_window(
    opens: datetime, closes: datetime, taken: list[tuple[datetime, datetime | None]]
) -> tuple[datetime, datetime]:
    """`opens`..`closes` clipped so that it overlaps no window in `taken`."""
    for other_opens, other_closes in sorted(taken, key=lambda window: window[0]):
        if other_opens <= opens and (other_closes is None or opens < other_closes):
            return other_opens, other_opens  # starts inside another window: the empty one at its opening
        if opens < other_opens < closes:
            closes = other_opens
    return opens, closes


def upgrade() -> None:
    with op.batch_alter_table("phases", schema=None) as batch_op:
        batch_op.alter_column("opens_at", existing_type=sa.DateTime(timezone=True), nullable=True)

    conn = op.get_bind()
    now = datetime.now(UTC)
    phases = sa.table(
        "phases", sa.column("name", sa.String()), sa.column("test_set", sa.String()),
        sa.column("opens_at", UTCDateTime()), sa.column("closes_at", UTCDateTime()),
        sa.column("quota_total", sa.Integer()), sa.column("quota_per_day", sa.Integer()),
        sa.column("quota_per_week", sa.Integer()), sa.column("visibility", sa.String()),
        sa.column("ladder", sa.Boolean()), sa.column("ladder_level", sa.Float()),
        sa.column("ladder_step", sa.Float()), sa.column("max_selected", sa.Integer()),
        sa.column("disclosure", sa.String()), sa.column("revealed_at", UTCDateTime()),
        sa.column("created_at", UTCDateTime()), sa.column("updated_at", UTCDateTime()),
    )  # fmt: skip
    submissions = sa.table(
        "submissions", sa.column("phase", sa.String()), sa.column("created_at", UTCDateTime())
    )
    had_rows = conn.execute(sa.select(sa.func.count()).select_from(phases)).scalar_one() > 0
    known = set(conn.scalars(sa.select(phases.c.name)))
    used = conn.execute(
        sa.select(
            submissions.c.phase, sa.func.min(submissions.c.created_at), sa.func.max(submissions.c.created_at)
        ).group_by(submissions.c.phase)
    ).all()
    current = None if had_rows else _csawm_phase()
    taken: list[tuple[datetime, datetime | None]] = [
        (opens, closes) for opens, closes in conn.execute(sa.select(phases.c.opens_at, phases.c.closes_at))
    ]
    new: list[dict[str, Any]] = []
    for name, first, last in sorted(used, key=lambda r: (r[1], r[0])):
        if name in known or name == current:
            continue
        opens, closes = _free_window(first, min(last + AFTER_LAST, now), taken)
        taken.append((opens, closes))
        new.append(_row(name, opens, closes, now))
    if current is not None:
        ends = [row["closes_at"] for row in new]
        new.append(_row(current, max(ends) if ends else None, None, now))
    if new:
        conn.execute(phases.insert(), new)


def downgrade() -> None:
    """The rows stay (they are data an older server reads as ordinary phases); a null opening
    becomes the earliest instant a window can hold."""
    phases = sa.table("phases", sa.column("opens_at", UTCDateTime()))
    earliest = datetime(1970, 1, 1, tzinfo=UTC)
    op.execute(phases.update().where(phases.c.opens_at.is_(None)).values(opens_at=earliest))
    with op.batch_alter_table("phases", schema=None) as batch_op:
        batch_op.alter_column("opens_at", existing_type=sa.DateTime(timezone=True), nullable=False)
