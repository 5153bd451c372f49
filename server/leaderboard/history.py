"""Boards as they stood (issue 22 item 5): what `server.leaderboard.service` needs to build the board
of an earlier instant `at` from the stored history instead of the current rows.

The same rows come out (`server.leaderboard.rows`); only their sources change:

- a run is on the board only if it had been scored by `at`, with the report it had then: its latest
  `SubmissionReport` created at or before `at` (a re-score after `at` changes nothing), with that
  report's scorer version, test-set digest, bootstrap settings and tau-b replicates (the run's own
  for its latest report, `SupersededReplicates` for an earlier one; one superseded before
  ``0014_snapshots`` kept none, so it gets no tie test);
- its review state is the one the audit trail gives for `at` (``review_*`` entries, each with its
  ``from`` and ``to``): the ``to`` of its last entry at or before `at`, else the ``from`` of its
  first later entry, else (never reviewed) its current state. So a run approved after `at` is not on
  the board, one disqualified after `at` still is;
- a sealed phase revealed after `at` reads as not yet revealed (no submission rows), and a revealed
  one ranks its selected runs: selections cannot change once a sealed phase closes, and it is
  revealed only after it closed, so the selections of a revealed phase are those it had at its
  reveal (each select and unselect is in the audit log as well: `server.phases.selection`);
- a Ladder phase shows the stored steps decided at or before `at` whose runs were approved at `at`.

The expert and density rows come from the configured test set, as on the live board.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, undefer

from server.clock import iso, utcnow
from server.core.errors import BadRequest, NotFound
from server.models import ReviewState, RunStatus, Submission, SubmissionReport, SupersededReplicates, Team
from server.phases.history_reviews import review_states_at
from server.phases.service import PhaseView


def parse(session: Session, raw: str, now: datetime | None = None) -> datetime:
    """The instant of ``?as_of=``: an ISO 8601 timestamp with a time zone, not in the future and not
    before the first run (400 or 404 with the reason otherwise)."""
    now = now or utcnow()
    text = raw.strip()
    try:
        at = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise BadRequest(
            f"as_of={raw!r} is not an ISO 8601 timestamp; give one with a time zone, "
            "e.g. 2026-12-07T12:00:00Z"
        ) from None
    if at.tzinfo is None:
        raise BadRequest(f"as_of={raw!r} has no time zone; add one, e.g. {text}Z for UTC")
    at = at.astimezone(UTC)
    if at > now:
        raise BadRequest(f"as_of={iso(at)} is in the future (now: {iso(now)}); a board has no future")
    first = session.scalar(select(func.min(Submission.created_at)))
    if first is None or at < first:
        since = f"the first run was submitted at {iso(first)}" if first else "no run was ever submitted"
        raise NotFound(f"no board existed at {iso(at)}: {since}")
    return at


def phase_at(phase: PhaseView, at: datetime) -> PhaseView:
    """`phase` as it was at `at`: a reveal after `at` had not happened yet."""
    if phase.revealed_at is not None and phase.revealed_at > at:
        return dataclasses.replace(phase, revealed_at=None)
    return phase


def scored_at(session: Session, where: ColumnElement[bool], at: datetime) -> list[tuple[Submission, str]]:
    """Each run matching `where` that had been scored by `at`, as it stood then, with its team's name.

    The runs are transient copies (never added to the session): the report, reproducibility record,
    replicates and review state are those of `at`, everything else the run's own.
    """
    newest = select(SubmissionReport.submission_id, func.max(SubmissionReport.id).label("report_id"))
    upto = newest.where(SubmissionReport.created_at <= at).group_by(SubmissionReport.submission_id).subquery()
    latest = newest.group_by(SubmissionReport.submission_id).subquery()
    found = session.execute(
        select(
            Submission, Team.name, SubmissionReport, latest.c.report_id, SupersededReplicates.tau_replicates
        )
        .join(upto, upto.c.submission_id == Submission.id)
        .join(SubmissionReport, SubmissionReport.id == upto.c.report_id)
        .join(latest, latest.c.submission_id == Submission.id)
        .join(Team, Submission.team_id == Team.id)
        .outerjoin(SupersededReplicates, SupersededReplicates.report_id == SubmissionReport.id)
        .options(undefer(SubmissionReport.metrics), undefer(Submission.tau_replicates))
        .where(where)
        .order_by(Submission.id)
    ).all()
    states = review_states_at(session, ((row[0].id, row[0].review_state) for row in found), at)
    out: list[tuple[Submission, str]] = []
    for sub, team, report, latest_id, superseded in found:
        current = report.id == latest_id  # the run's current record and replicates are its latest report's
        replicates = sub.tau_replicates if current else superseded
        record = sub.reproducibility if current else _record_of(sub, report)
        out.append((_as_it_stood(sub, report, record, replicates, states[sub.id]), str(team)))
    return out


def _record_of(sub: Submission, report: SubmissionReport) -> dict[str, Any]:
    """The reproducibility record of a superseded report: the run's, with the report's own scorer
    version, test set and bootstrap (what pairs its replicates)."""
    return {
        **(sub.reproducibility or {}),
        "scorer_version": report.scorer_version,
        "test_set_manifest_sha256": report.test_set_sha256,
        "bootstrap": {"seed": report.bootstrap_seed, "resamples": report.bootstrap_resamples},
    }


def _as_it_stood(
    sub: Submission,
    report: SubmissionReport,
    record: dict[str, Any] | None,
    replicates: bytes | None,
    review: ReviewState,
) -> Submission:
    return Submission(
        id=sub.id, team_id=sub.team_id, name=sub.name, phase=sub.phase, baseline=sub.baseline,
        description=sub.description,
        image_digest=sub.image_digest, url=sub.url, method_card=sub.method_card, created_at=sub.created_at,
        status=RunStatus.SUCCEEDED, metrics=report.metrics, reproducibility=record,
        tau_replicates=replicates, review_state=review,
    )  # fmt: skip
