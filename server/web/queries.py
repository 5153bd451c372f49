"""Read models for the web pages: what the pages show that the API services do not hand out whole.

The board's rows (order, visibility, tie tests and the page's columns) are the leaderboard's own
(`server.leaderboard.rows`, served by `server.leaderboard.cache`); this module adds the report
page's readings of a report (odds ratios, density comparators, the agreement matrix) and the
maintainer overviews (queue counts, active runs, each team's previous best).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, undefer

from server.leaderboard import service as leaderboard
from server.leaderboard.references import DENSITY_NAMES
from server.models import ACTIVE_STATUSES, ReviewState, RunStatus, Submission, Team
from server.scoring import registry
from server.scoring.results import Estimate, Interval, Report, finite

#: Clinical endpoints of the report (declared in `server.scoring.registry`) with the pages' titles.
ENDPOINTS: dict[str, str] = {endpoint.key: endpoint.title for endpoint in registry.ENDPOINTS}


def _read(report: Report | Mapping[str, Any] | None) -> Report | None:
    """A page's report: read already, or the stored JSON (read by `Report.read`, the one reader)."""
    return report if isinstance(report, Report) or report is None else Report.read(report)


def odds_ratio_q4(report: Report | Mapping[str, Any] | None, endpoint: str) -> Interval:
    """The Q4-vs-Q1 odds ratio of one clinical endpoint with its Woolf 95% CI."""
    shown = _read(report)
    return (shown.clinical[endpoint].odds_ratio_q4 if shown else Estimate()).shown


def density_odds_ratios(
    report: Report | Mapping[str, Any] | None, endpoint: str
) -> list[tuple[str, Interval]]:
    """(label, OR Q4 with Woolf CI) of each LIBRA comparator a v2 report carries for an endpoint."""
    shown = _read(report)
    references = shown.clinical[endpoint].references if shown else {}
    return [
        (label, references[variable].odds_ratio_q4.shown)
        for variable, label in DENSITY_NAMES.items()
        if variable in references
    ]


def agreement_matrix(
    report: Report | Mapping[str, Any] | None,
) -> tuple[list[str], list[str], list[list[float | None]]]:
    """Rows (the model, then each expert), columns (each expert) and tau-b of row against column.

    From ``masking.per_expert`` (the model) and ``experts.<Expert_j>.per_expert`` (scorer version 2);
    a cell is None on the diagonal and where the report has no value. Empty lists for a v1 report.
    """
    shown = _read(report)
    if shown is None or not shown.per_expert:
        return [], [], []
    columns = sorted(shown.per_expert)
    rows = ["this model", *sorted(shown.experts)]
    matrix: list[list[float | None]] = [[finite(shown.per_expert[c]) for c in columns]]
    for name in sorted(shown.experts):
        per = shown.experts[name].per_expert
        matrix.append([None if c == name else finite(per.get(c)) for c in columns])
    return rows, columns, matrix


def baseline_reports(session: Session) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, name, report) of every scored baseline not hidden or disqualified, oldest first."""
    query = (
        select(Submission)
        .options(undefer(Submission.metrics))
        .where(
            Submission.baseline.is_(True),
            Submission.status == RunStatus.SUCCEEDED,
            Submission.review_state.in_(leaderboard.VISIBLE_BASELINE_STATES),
        )
        .order_by(Submission.id)
    )
    return [(s.id, s.name, s.metrics) for s in session.scalars(query) if s.metrics]


@dataclass(frozen=True)
class PreviousBest:
    submission_id: int
    tau: float | None
    amae: float | None


def previous_best(session: Session, team_id: int, exclude_id: int) -> PreviousBest | None:
    """The team's best approved submission other than `exclude_id` (tau-b first, then AMAE)."""
    query = (
        select(Submission.id, Submission.kendall_tau_b, Submission.amae)
        .where(
            Submission.team_id == team_id,
            Submission.id != exclude_id,
            Submission.status == RunStatus.SUCCEEDED,
            Submission.review_state == ReviewState.APPROVED,
            Submission.kendall_tau_b.is_not(None),
        )
        .order_by(Submission.kendall_tau_b.desc(), Submission.amae.asc(), Submission.id)
        .limit(1)
    )
    row = session.execute(query).first()
    return None if row is None else PreviousBest(int(row[0]), row[1], row[2])


def teams(session: Session) -> list[Team]:
    return list(session.scalars(select(Team).order_by(Team.name)))


def status_counts(session: Session) -> dict[str, int]:
    """Number of submissions in each run status (every status listed, zero included)."""
    counts = {status.value: 0 for status in RunStatus}
    for status, count in session.execute(select(Submission.status, func.count()).group_by(Submission.status)):
        counts[RunStatus(status).value] = int(count)
    return counts


def active_runs(session: Session) -> list[Submission]:
    """Runs still in the queue or on a worker, oldest first (with lease owner and heartbeat)."""
    query = select(Submission).where(Submission.status.in_(ACTIVE_STATUSES)).order_by(Submission.id)
    return list(session.scalars(query))


def approved_submissions(session: Session, limit: int = 50) -> list[Submission]:
    """Approved submissions (the ones on the public board or beaten by a better one), newest first."""
    query = (
        select(Submission)
        .where(Submission.review_state == ReviewState.APPROVED, Submission.baseline.is_(False))
        .order_by(Submission.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def failed_runs(session: Session, limit: int = 50) -> list[Submission]:
    """Runs that ended ``failed`` (a model fault or an exhausted ``infra_error``), newest first: the
    review console shows each with its phase, error code and full message."""
    query = (
        select(Submission)
        .where(Submission.status == RunStatus.FAILED)
        .order_by(Submission.finished_at.desc(), Submission.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
