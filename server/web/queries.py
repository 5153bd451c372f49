"""Read models for the web pages: what the pages show that the API services do not hand out whole.

The leaderboard order, visibility rules and tie tests stay in `server.leaderboard.service`; this
module only adds the columns a page needs (odds ratios, dates, digests, links) and the maintainer
overviews (queue counts, active runs, each team's previous best).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, undefer

from server.core.clock import utcnow
from server.core.principal import Principal
from server.leaderboard import service as leaderboard
from server.leaderboard.references import DENSITY_NAMES, BoardReferences
from server.models import ACTIVE_STATUSES, ApiToken, ReviewState, RunStatus, Submission, Team, User
from server.phases.service import PhaseView
from server.scoring import registry
from server.scoring.results import Estimate, Report, finite

#: Clinical endpoints of the report (declared in `server.scoring.registry`) with the pages' titles.
ENDPOINTS: dict[str, str] = {endpoint.key: endpoint.title for endpoint in registry.ENDPOINTS}


@dataclass(frozen=True)
class Interval:
    """A value with its 95% confidence interval; any part may be unknown (None)."""

    value: float | None
    lo: float | None
    hi: float | None

    @classmethod
    def of(cls, estimate: Estimate) -> Interval:
        """A report's estimate as a page draws it (non-finite parts become None)."""
        lo, hi = estimate.ci95 if estimate.ci95 is not None else (None, None)
        return cls(finite(estimate.value), finite(lo), finite(hi))

    def to_json(self) -> dict[str, Any]:
        ci = [self.lo, self.hi] if self.lo is not None and self.hi is not None else None
        return {"value": self.value, "ci95": ci}


def _read(report: Report | Mapping[str, Any] | None) -> Report | None:
    """A page's report: read already, or the stored JSON (read by `Report.read`, the one reader)."""
    return report if isinstance(report, Report) or report is None else Report.read(report)


def odds_ratio_q4(report: Report | Mapping[str, Any] | None, endpoint: str) -> Interval:
    """The Q4-vs-Q1 odds ratio of one clinical endpoint with its Woolf 95% CI."""
    shown = _read(report)
    return Interval.of(shown.clinical[endpoint].odds_ratio_q4 if shown else Estimate())


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
    ids = [row.submission_id for row in rows if row.submission_id is not None]
    subs: dict[int, Submission] = {}
    if ids:
        query = select(Submission).options(undefer(Submission.metrics)).where(Submission.id.in_(ids))
        subs = {s.id: s for s in session.scalars(query)}
    out: list[BoardRow] = []
    for row in rows:
        sub = subs.get(row.submission_id) if row.submission_id is not None else None
        report = Report.read_summary(sub.metrics) if sub is not None and row.ladder is None else None
        out.append(
            BoardRow(
                rank=row.rank,
                kind=row.kind,
                team=row.team,
                name=row.name,
                submission_id=sub.id if sub is not None else None,
                tau=Interval.of(row.kendall_tau_b),
                amae=Interval.of(row.amae),
                amae_unit=row.amae_unit,
                odds_ratios={key: odds_ratio_q4(report, key) for key in ENDPOINTS},
                tied_with_leader=row.tied_with_leader,
                is_leader=row.is_leader,
                submitted_at=sub.created_at if sub is not None else None,
                scorer_version=row.scorer_version,
                tie_reason=row.tie_reason,
                image_digest=sub.image_digest if sub is not None else None,
                links=_links(sub) if sub is not None else (),
                ladder=row.ladder,
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
        out.append(
            ClinicalRow(
                rank=row.rank,
                kind=row.kind,
                team=row.team,
                name=row.name,
                population=row.population,
                auc={key: Interval.of(entry.auc) for key, entry in row.clinical.items()},
                odds_ratios={key: Interval.of(entry.odds_ratio_q4) for key, entry in row.clinical.items()},
                p_values={
                    key: finite(entry.odds_ratio_q4.p_one_sided) for key, entry in row.clinical.items()
                },
            )
        )
    return out


def density_odds_ratios(
    report: Report | Mapping[str, Any] | None, endpoint: str
) -> list[tuple[str, Interval]]:
    """(label, OR Q4 with Woolf CI) of each LIBRA comparator a v2 report carries for an endpoint."""
    shown = _read(report)
    references = shown.clinical[endpoint].references if shown else {}
    return [
        (label, Interval.of(references[variable].odds_ratio_q4))
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


def principal_for_token_hash(session: Session, token_hash: str) -> Principal | None:
    """The user behind a web session's token hash; None when unknown, revoked or expired, or when
    the account is deactivated.

    Mirrors `server.accounts.service.authenticate`, which takes the plaintext token the session
    cookie deliberately does not hold.
    """
    row = session.execute(
        select(ApiToken, User, Team)
        .join(User, ApiToken.user_id == User.id)
        .outerjoin(Team, User.team_id == Team.id)
        .where(ApiToken.token_hash == token_hash)
    ).first()
    if row is None:
        return None
    token, user, team = row
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= utcnow()):
        return None
    if user.deactivated_at is not None:
        return None
    return Principal(
        user_id=user.id,
        email=user.email,
        role=user.role,
        team_id=team.id if team else None,
        team_name=team.name if team else None,
    )


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
