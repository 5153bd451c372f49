"""Read models for the web pages: what the pages show that the API services do not hand out whole.

The leaderboard order, visibility rules and tie tests stay in `server.leaderboard.service`; this
module only adds the columns a page needs (odds ratios, dates, digests, links) and the maintainer
overviews (queue counts, active runs, each team's previous best).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, undefer

from server.leaderboard import service as leaderboard
from server.leaderboard.references import DENSITY_NAMES, BoardReferences
from server.models import ACTIVE_STATUSES, ReviewState, RunStatus, Submission, Team
from server.phases.service import PhaseView
from server.scoring.summary import summary_report

#: Clinical endpoints of the report (docs/scoring.md) with the labels the pages use.
ENDPOINTS: dict[str, str] = {
    "interval_cancer": "Interval cancer",
    "large_invasive_cancer": "Large invasive cancer",
    "composite": "Composite",
}


@dataclass(frozen=True)
class Interval:
    """A value with its 95% confidence interval; any part may be unknown (None)."""

    value: float | None
    lo: float | None
    hi: float | None

    @classmethod
    def from_entry(cls, entry: Any) -> Interval:
        """Read ``{"value": v, "ci95": [lo, hi]}`` (missing or non-finite parts become None)."""
        if not isinstance(entry, dict):
            return cls(None, None, None)
        ci = entry.get("ci95")
        lo, hi = (ci[0], ci[1]) if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None)
        return cls(_finite(entry.get("value")), _finite(lo), _finite(hi))

    def to_json(self) -> dict[str, Any]:
        ci = [self.lo, self.hi] if self.lo is not None and self.hi is not None else None
        return {"value": self.value, "ci95": ci}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def odds_ratio_q4(report: dict[str, Any] | None, endpoint: str) -> Interval:
    """The Q4-vs-Q1 odds ratio of one clinical endpoint with its Woolf 95% CI."""
    clinical = (report or {}).get("clinical") or {}
    section = clinical.get(endpoint) or {}
    return Interval.from_entry((section.get("odds_ratios") or {}).get("Q4"))


@dataclass(frozen=True)
class BoardRow:
    """One leaderboard row as the page, the CSV and the JSON download show it."""

    rank: int
    kind: str
    team: str | None
    name: str
    submission_id: int | None
    tau: Interval
    amae: Interval
    amae_unit: str | None
    odds_ratios: dict[str, Interval]
    tied_with_leader: bool | None
    is_leader: bool
    submitted_at: datetime | None
    scorer_version: str | None
    tie_reason: str | None
    image_digest: str | None
    links: tuple[tuple[str, str], ...]
    ladder: dict[str, Any] | None = None  # Ladder phases: the rounded displayed value, no exact score

    def to_json(self) -> dict[str, Any]:
        """The API row (docs/api.md) plus the page's extra columns."""
        out: dict[str, Any] = {
            "rank": self.rank,
            "kind": self.kind,
            "team": self.team,
            "name": self.name,
            "kendall_tau_b": self.tau.to_json(),
            "amae": {**self.amae.to_json(), **({"unit": self.amae_unit} if self.amae_unit else {})},
            "tied_with_leader": self.tied_with_leader,
            "tie_reason": self.tie_reason,
            "scorer_version": self.scorer_version,
            "odds_ratio_q4": {key: value.to_json() for key, value in self.odds_ratios.items()},
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "image_digest": self.image_digest,
            "links": {label: url for label, url in self.links},
        }
        if self.kind != "expert":
            out["submission_id"] = self.submission_id
        if self.ladder is not None:
            out["ladder"] = self.ladder
        return out


def is_web_url(value: Any) -> bool:
    """Only http(s) URLs become links (a ``javascript:`` URL in a submission must stay text)."""
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def _links(sub: Submission) -> tuple[tuple[str, str], ...]:
    """Paper and code links of a submission: its ``url`` and the method card's ``paper_url``/``code_url``."""
    found: list[tuple[str, str]] = []
    card = sub.method_card or {}
    for label, url in (("paper", card.get("paper_url")), ("code", card.get("code_url")), ("link", sub.url)):
        if is_web_url(url) and url not in dict(found).values():
            found.append((label, str(url)))
    return tuple(found)


def leaderboard_rows(
    session: Session, references: BoardReferences | None = None, phase: PhaseView | None = None
) -> list[BoardRow]:
    """The public leaderboard of `phase` (best submission per team, baselines, experts) with the
    page's columns. A Ladder row carries no report-derived column (they would give the exact score)."""
    rows = leaderboard.build(session, references=references, phase=phase)
    ids = [int(r["submission_id"]) for r in rows if r.get("submission_id") is not None]
    subs: dict[int, Submission] = {}
    if ids:
        query = select(Submission).options(undefer(Submission.metrics)).where(Submission.id.in_(ids))
        subs = {s.id: s for s in session.scalars(query)}
    out: list[BoardRow] = []
    for row in rows:
        sub = subs.get(int(row["submission_id"])) if row.get("submission_id") is not None else None
        report = sub.metrics if sub is not None and row.get("ladder") is None else None
        report = summary_report(report) if isinstance(report, dict) else None  # the board is public
        amae = row.get("amae") or {}
        out.append(
            BoardRow(
                rank=int(row["rank"]),
                kind=str(row["kind"]),
                team=row.get("team"),
                name=str(row["name"]),
                submission_id=sub.id if sub is not None else None,
                tau=Interval.from_entry(row.get("kendall_tau_b")),
                amae=Interval.from_entry(amae),
                amae_unit=amae.get("unit"),
                odds_ratios={key: odds_ratio_q4(report, key) for key in ENDPOINTS},
                tied_with_leader=row.get("tied_with_leader"),
                is_leader=bool(row.get("is_leader")),
                submitted_at=sub.created_at if sub is not None else None,
                scorer_version=row.get("scorer_version"),
                tie_reason=row.get("tie_reason"),
                image_digest=sub.image_digest if sub is not None else None,
                links=_links(sub) if sub is not None else (),
                ladder=row.get("ladder"),
            )
        )
    return out


@dataclass(frozen=True)
class ClinicalRow:
    """One row of the clinical view: a model, or a LIBRA density comparator (kind ``density``)."""

    rank: int | None
    kind: str
    team: str | None
    name: str
    population: str | None
    auc: dict[str, Interval]
    odds_ratios: dict[str, Interval]
    p_values: dict[str, float | None]


def clinical_rows(
    session: Session, references: BoardReferences | None = None, phase: PhaseView | None = None
) -> list[ClinicalRow]:
    """The leaderboard's clinical view (`server.leaderboard.service.build_clinical`) for the page."""
    out: list[ClinicalRow] = []
    for row in leaderboard.build_clinical(session, references=references, phase=phase):
        clinical = row.get("clinical") or {}
        out.append(
            ClinicalRow(
                rank=row.get("rank"),
                kind=str(row["kind"]),
                team=row.get("team"),
                name=str(row["name"]),
                population=row.get("population"),
                auc={key: Interval.from_entry((clinical.get(key) or {}).get("auc")) for key in ENDPOINTS},
                odds_ratios={
                    key: Interval.from_entry((clinical.get(key) or {}).get("odds_ratio_q4"))
                    for key in ENDPOINTS
                },
                p_values={
                    key: _finite(((clinical.get(key) or {}).get("odds_ratio_q4") or {}).get("p_one_sided"))
                    for key in ENDPOINTS
                },
            )
        )
    return out


def density_odds_ratios(report: dict[str, Any] | None, endpoint: str) -> list[tuple[str, Interval]]:
    """(label, OR Q4 with Woolf CI) of each LIBRA comparator a v2 report carries for an endpoint."""
    section = ((report or {}).get("clinical") or {}).get(endpoint) or {}
    references = section.get("references") or {}
    found: list[tuple[str, Interval]] = []
    for variable, label in DENSITY_NAMES.items():
        entry = references.get(variable)
        if isinstance(entry, dict):
            found.append((label, Interval.from_entry((entry.get("odds_ratios") or {}).get("Q4"))))
    return found


def agreement_matrix(report: dict[str, Any] | None) -> tuple[list[str], list[str], list[list[float | None]]]:
    """Rows (the model, then each expert), columns (each expert) and tau-b of row against column.

    From ``masking.per_expert`` (the model) and ``experts.<Expert_j>.per_expert`` (scorer version 2);
    a cell is None on the diagonal and where the report has no value. Empty lists for a v1 report.
    """
    report = report or {}
    model = (report.get("masking") or {}).get("per_expert")
    experts = report.get("experts") or {}
    if not isinstance(model, dict) or not model:
        return [], [], []
    columns = sorted(model)
    rows = ["this model", *sorted(experts)]
    matrix: list[list[float | None]] = [[_finite((model.get(c) or {}).get("kendall_tau_b")) for c in columns]]
    for name in sorted(experts):
        per = (experts.get(name) or {}).get("per_expert") or {}
        matrix.append(
            [None if c == name else _finite((per.get(c) or {}).get("kendall_tau_b")) for c in columns]
        )
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


def team_names(session: Session) -> dict[int, str]:
    return {int(i): str(n) for i, n in session.execute(select(Team.id, Team.name)).all()}


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
