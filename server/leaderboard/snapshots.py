"""Frozen boards (issue 22 item 5): a phase's board written once as JSON bytes, kept with their SHA-256.

A maintainer freezes one (``POST /api/v1/admin/snapshots``) and every reveal of a sealed phase
freezes the revealed board (`freeze_revealed`: the app's `server.phases.service.RevealHook`, and
``csawm admin reveal-phase``). The bytes never change: a paper cites
the snapshot's page (``/snapshots/{id}``) and anyone can check that ``GET /api/v1/snapshots/{id}``
still hashes to the digest it cites. They hold the board's API rows (best run per team, the masking
view, exactly as ``GET /api/v1/leaderboard`` gave them at that instant), the phase, the server's
scorer version, the test set's label digest, the bootstrap seed and resample count, and for each
run on the board the scorer version, test-set digest and bootstrap settings of the report it shows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.clock import iso, utcnow
from server.core.errors import NotFound
from server.core.settings import Settings
from server.leaderboard import service
from server.leaderboard.references import BoardReferences, ReferenceCache
from server.models import BoardSnapshot, SubmissionReport
from server.phases.service import PhaseView
from server.scoring.report import SCORER_VERSION

ADMIN = "admin"
REVEAL = "reveal"


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot as the API lists it (its bytes are read separately)."""

    id: int
    phase: str
    reason: str
    sha256: str
    created_at: datetime
    url: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phase": self.phase,
            "reason": self.reason,
            "sha256": self.sha256,
            "url": self.url,
            "created_at": iso(self.created_at),
        }


def freeze(
    session: Session,
    settings: Settings,
    phase: PhaseView,
    *,
    reason: str,
    actor: str,
    actor_user_id: int | None = None,
    references: BoardReferences | None = None,
) -> SnapshotInfo:
    """Freeze `phase`'s board now (`references`: the app's cached test-set rows; read from the
    settings when not given)."""
    if references is None:
        references = ReferenceCache().get(settings)
    now = utcnow()
    rows = service.build_board(
        session, best_per_team=True, references=references, phase=phase, alpha=settings.significance_alpha
    ).rows
    row = BoardSnapshot(
        phase=phase.name, reason=reason, actor=actor, actor_user_id=actor_user_id, sha256="", body=b"",
        created_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()  # its id goes into the bytes
    body = {
        "snapshot": row.id,
        "created_at": iso(now),
        "reason": reason,
        "phase": phase.to_json(now),
        "best_per_team": True,
        "scorer_version": SCORER_VERSION,
        "test_set": {"labels_sha256": references.labels_sha256 if references else None},
        "bootstrap": {"seed": settings.bootstrap_seed, "resamples": settings.bootstrap_resamples},
        "rows": [board_row.to_json() for board_row in rows],
        "reports": _reports(session, [r.submission_id for r in rows if r.submission_id is not None]),
    }
    row.body = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    row.sha256 = hashlib.sha256(row.body).hexdigest()
    session.flush()
    return _info(settings, row)


def freeze_revealed(
    session: Session, settings: Settings, phase: PhaseView, actor: str, actor_user_id: int | None
) -> SnapshotInfo:
    """The snapshot every reveal of a sealed phase makes, in the reveal's transaction."""
    return freeze(session, settings, phase, reason=REVEAL, actor=actor, actor_user_id=actor_user_id)


def _reports(session: Session, ids: list[int]) -> dict[str, dict[str, Any]]:
    """Per run on the board, how its current report was computed."""
    latest = (
        select(func.max(SubmissionReport.id))
        .where(SubmissionReport.submission_id.in_(ids))
        .group_by(SubmissionReport.submission_id)
    )
    found = session.scalars(select(SubmissionReport).where(SubmissionReport.id.in_(latest)))
    return {
        str(report.submission_id): {
            "scorer_version": report.scorer_version,
            "test_set_sha256": report.test_set_sha256,
            "bootstrap_seed": report.bootstrap_seed,
            "bootstrap_resamples": report.bootstrap_resamples,
        }
        for report in sorted(found, key=lambda r: r.submission_id)
    }


def listed(session: Session, settings: Settings) -> list[SnapshotInfo]:
    """Every snapshot, newest first."""
    found = session.scalars(select(BoardSnapshot).order_by(BoardSnapshot.id.desc()))
    return [_info(settings, row) for row in found]


def one(session: Session, settings: Settings, snapshot_id: int) -> tuple[SnapshotInfo, bytes]:
    """A snapshot and its frozen bytes (404 when unknown)."""
    row = session.get(BoardSnapshot, snapshot_id)
    if row is None:
        raise NotFound(f"snapshot {snapshot_id} not found")
    return _info(settings, row), row.body


def _info(settings: Settings, row: BoardSnapshot) -> SnapshotInfo:
    page = f"{settings.effective_public_url.rstrip('/')}/snapshots/{row.id}"  # its citable page
    return SnapshotInfo(row.id, row.phase, row.reason, row.sha256, row.created_at, page)
