"""Building the leaderboard rows (docs/api.md).

Rows: approved submissions (best per team by default), baselines that are not hidden or
disqualified, and the five experts. The expert rows come from the test set itself
(:mod:`server.leaderboard.references`, so they are on the board before any run); without a readable
test set they fall back to the ``experts`` section of the newest scored report.

Order: the metric registry decides (:data:`server.scoring.registry.LEADERBOARD_ORDER`, today Kendall
tau-b, then AMAE, each in its registered direction); rows without a value go last.

Ties: a submission or baseline is `tied_with_leader` when the percentile CI of the paired bootstrap
difference ``tau_leader - tau_row`` contains 0. Replicates are paired only when both runs were scored
with the same scorer version, on the same test set (manifest digest), with the same bootstrap seed
and resample count, all read from the run's ``reproducibility`` record: then resample b is the same
patient sample in both. Otherwise `tied_with_leader` is ``null`` and `tie_reason` says why (so a v1
and a v2 run are never marked tied). The leader carries ``false`` (and ``is_leader: true``); expert
rows, which have no replicates, carry ``null``.

Phases (issue 15): with ``phase`` given, only that phase's submissions (baselines and experts are
on every private phase's board; a development phase scoring on the public set shows its own runs
only, since the baselines, experts and density rows are figures of the private set). A sealed
phase before its reveal shows no submission rows; after it, only the runs their teams selected. A
Ladder phase shows one row per team with the team's best stored Ladder step that moved and whose
run is approved (`server.leaderboard.ladder_steps`: rounded, moving only on a significant
improvement, decided once when each run was scored) instead of the exact scores: no CI, AMAE,
clinical metrics or tie test.
Without ``phase`` (a server with no phase rows) every submission counts, as before phases existed.

Clinical view (``view="clinical"``): the same model rows in the same order, each with AUC and OR Q4
per endpoint, followed by the LIBRA density comparators as rows of kind ``density`` (no rank).

The board is public, so it reads every report through its summary (`server.scoring.summary`): no
board column can show a figure that a ``summary`` phase withholds from the run's own team.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, false, func, select
from sqlalchemy.orm import Session, undefer

from server.leaderboard.references import DENSITY_NAMES, BoardReferences
from server.models import Phase, PhaseSelection, ReviewState, RunStatus, Submission, Team
from server.phases.service import PhaseView
from server.scoring.bootstrap import paired_difference_ci
from server.scoring.registry import LEADERBOARD_ORDER, ranking_key
from server.scoring.summary import summary_report

VISIBLE_BASELINE_STATES = (ReviewState.PENDING, ReviewState.APPROVED)
ENDPOINTS = ("interval_cancer", "large_invasive_cancer", "composite")
VIEWS = ("masking", "clinical")
LADDER_TIE_REASON = "no tie test: a Ladder phase shows rounded values only"


@dataclass(frozen=True)
class PairingBasis:
    """What makes two runs' bootstrap replicates paired (from the ``reproducibility`` record)."""

    scorer_version: str | None
    test_set: str | None
    seed: int | None
    resamples: int | None

    @classmethod
    def of(cls, record: dict[str, Any] | None) -> PairingBasis:
        record = record if isinstance(record, dict) else {}
        boot = record.get("bootstrap") if isinstance(record.get("bootstrap"), dict) else {}
        assert isinstance(boot, dict)

        def text(value: Any) -> str | None:
            return str(value) if isinstance(value, str) and value else None

        def integer(value: Any) -> int | None:
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return cls(
            text(record.get("scorer_version")),
            text(record.get("test_set_manifest_sha256")),
            integer(boot.get("seed")),
            integer(boot.get("resamples")),
        )

    def missing(self) -> list[str]:
        """The fields not recorded: a basis with any of them missing pairs with nothing."""
        return [name for name, value in vars(self).items() if value is None]

    def known(self) -> PairingBasis | None:
        """This basis when every field is recorded, else None (what the Ladder compares)."""
        return None if self.missing() else self

    def mismatch(self, leader: PairingBasis) -> str | None:
        """Why this run cannot be paired with the leader's, or None when it can."""
        for basis in (self, leader):
            missing = basis.missing()
            if missing:
                whose = "this run" if basis is self else "the leader"
                return f"no tie test: {whose} has no recorded {', '.join(missing)}"
        if self.scorer_version != leader.scorer_version:
            return (
                f"no tie test: scored with scorer version {self.scorer_version}, "
                f"the leader with {leader.scorer_version}"
            )
        if self.test_set != leader.test_set:
            return "no tie test: scored on a different test set than the leader (test-set digest differs)"
        if self.seed != leader.seed or self.resamples != leader.resamples:
            return (
                f"no tie test: bootstrap seed {self.seed} with {self.resamples} resamples, "
                f"the leader's seed {leader.seed} with {leader.resamples}"
            )
        return None


@dataclass
class _Candidate:
    kind: str
    team: str | None
    name: str
    submission_id: int | None
    scorer_version: str | None
    metrics: dict[str, dict[str, Any]]
    replicates: np.ndarray | None
    basis: PairingBasis | None
    report: dict[str, Any] | None = None
    ladder: dict[str, Any] | None = None

    def sort_key(self) -> tuple[float, ...]:
        return ranking_key({name: self.metrics[name].get("value") for name in LEADERBOARD_ORDER})


def version_key(conn: Connection) -> tuple[int | str, ...]:
    """Changes whenever a scored submission is added, reviewed or otherwise updated, or a phase or a
    selection changes.

    Index-only queries (``ix_submissions_status_updated``) on a bare connection plus two on the small
    phase tables: the cheap check that lets a cached leaderboard be served without rebuilding it.
    """
    count, latest = conn.execute(
        select(func.count(), func.max(Submission.updated_at)).where(Submission.status == RunStatus.SUCCEEDED)
    ).one()
    phases, changed = conn.execute(select(func.count(), func.max(Phase.updated_at))).one()
    selections, newest = conn.execute(select(func.count(), func.max(PhaseSelection.id))).one()
    return int(count), str(latest), int(phases), str(changed), int(selections), int(newest or 0)


def _metric(report: dict[str, Any] | None, name: str) -> dict[str, Any]:
    masking = (report or {}).get("masking") or {}
    entry = masking.get(name) or {}
    out: dict[str, Any] = {"value": entry.get("value"), "ci95": entry.get("ci95")}
    if name == "amae" and "unit" in entry:
        out["unit"] = entry["unit"]
    return out


def _replicates(raw: bytes | None) -> np.ndarray | None:
    return np.frombuffer(raw, dtype=np.float64) if raw else None


def _scorer_version(sub: Submission) -> str | None:
    for record in (sub.reproducibility, sub.metrics):
        if isinstance(record, dict) and isinstance(record.get("scorer_version"), str):
            return str(record["scorer_version"])
    return None


def _development(phase: PhaseView) -> bool:
    """A development phase: scored on the public set, so no private-set reference rows."""
    return phase.test_set == "public"


def _models(session: Session, best_per_team: bool, phase: PhaseView) -> list[_Candidate]:
    query = (
        select(Submission, Team.name)
        .join(Team, Submission.team_id == Team.id)
        .options(undefer(Submission.metrics), undefer(Submission.tau_replicates))
        .where(
            Submission.status == RunStatus.SUCCEEDED,
            (Submission.review_state == ReviewState.APPROVED)
            | (Submission.baseline.is_(True) & Submission.review_state.in_(VISIBLE_BASELINE_STATES)),
        )
        .order_by(Submission.id)
    )
    own: ColumnElement[bool] = Submission.phase == phase.name
    if phase.sealed or phase.ladder_board:  # Ladder rows are added per team below
        own = false()
    elif phase.visibility == "sealed":  # revealed: the selected runs only
        own = own & Submission.id.in_(select(PhaseSelection.submission_id))
    query = query.where(own if _development(phase) else Submission.baseline.is_(True) | own)
    rows = session.execute(query).all()
    candidates = [
        _Candidate(
            kind="baseline" if sub.baseline else "submission",
            team=team,
            name=sub.name,
            submission_id=sub.id,
            scorer_version=_scorer_version(sub),
            metrics={name: _metric(sub.metrics, name) for name in LEADERBOARD_ORDER},
            replicates=_replicates(sub.tau_replicates),
            basis=PairingBasis.of(sub.reproducibility),
            report=summary_report(sub.metrics) if isinstance(sub.metrics, dict) else None,
        )
        for sub, team in rows
    ]
    if best_per_team:
        best: dict[str, _Candidate] = {}
        kept: list[_Candidate] = []
        for cand in candidates:
            if cand.kind == "baseline":
                kept.append(cand)
            elif cand.team not in best or cand.sort_key() < best[cand.team].sort_key():
                best[str(cand.team)] = cand
        candidates = kept + list(best.values())
    if phase.ladder_board:
        candidates += _ladder_rows(session, phase)
    candidates.sort(key=lambda c: (*c.sort_key(), c.kind != "submission", c.submission_id or 0, c.name))
    return candidates


def _ladder_rows(session: Session, phase: PhaseView) -> list[_Candidate]:
    """One row per team of a Ladder phase: its best stored step that moved and whose run is approved."""
    from server.leaderboard.ladder_steps import board_steps

    return [
        _Candidate(
            kind="submission",
            team=step.team,
            name=step.name,
            submission_id=step.submission_id,
            scorer_version=None,
            metrics={
                "kendall_tau_b": {"value": step.shown["displayed"], "ci95": None},
                "amae": {"value": None, "ci95": None},
            },
            replicates=None,
            basis=None,
            ladder=step.shown,
        )
        for step in board_steps(session, phase.name)
    ]


def build(
    session: Session,
    *,
    best_per_team: bool = True,
    references: BoardReferences | None = None,
    phase: PhaseView,
) -> list[dict[str, Any]]:
    """The masking leaderboard: models and experts in registry order, with tie marks."""
    candidates = _models(session, best_per_team, phase)
    version: str | None
    if _development(phase):
        experts, version = {}, None
    elif references is not None:
        experts, version = references.experts, references.scorer_version
    else:
        experts, version = _latest_experts(session)
    for expert, values in sorted(experts.items()):
        if not isinstance(values, dict):
            continue
        candidates.append(
            _Candidate(
                kind="expert",
                team=None,
                name=expert,
                submission_id=None,
                scorer_version=version,
                metrics={
                    "kendall_tau_b": {"value": values.get("kendall_tau_b"), "ci95": None},
                    "amae": {"value": values.get("amae"), "ci95": None},
                },
                replicates=None,
                basis=None,
            )
        )
    candidates.sort(key=lambda c: (*c.sort_key(), c.kind != "submission", c.submission_id or 0, c.name))
    return _with_ties(candidates)


def build_clinical(
    session: Session,
    *,
    best_per_team: bool = True,
    references: BoardReferences | None = None,
    phase: PhaseView,
) -> list[dict[str, Any]]:
    """The clinical view: model rows (board order) with AUC and OR Q4 per endpoint, then density rows.

    Density rows come from the test set (`references`); without it, from the newest scored report
    that has them (scorer version 2).
    """
    rows: list[dict[str, Any]] = []
    for rank, cand in enumerate(_models(session, best_per_team, phase), start=1):
        clinical = (cand.report or {}).get("clinical") or {}
        rows.append(
            {
                "rank": rank,
                "kind": cand.kind,
                "team": cand.team,
                "name": cand.name,
                "submission_id": cand.submission_id,
                "scorer_version": cand.scorer_version,
                "population": clinical.get("population"),
                "clinical": {key: _association(clinical.get(key)) for key in ENDPOINTS},
            }
        )
    version: str | None
    if _development(phase):
        return rows
    if references is not None:
        clinical_refs, version = references.clinical, references.scorer_version
    else:
        clinical_refs, version = _latest_clinical_references(session)
    for variable, label in DENSITY_NAMES.items():
        per_endpoint = {
            key: _association(((clinical_refs.get(key) or {}).get("references") or {}).get(variable))
            for key in ENDPOINTS
        }
        if all(entry["auc"]["value"] is None for entry in per_endpoint.values()):
            continue
        rows.append(
            {
                "rank": None,
                "kind": "density",
                "team": None,
                "name": label,
                "variable": variable,
                "scorer_version": version,
                "population": clinical_refs.get("population"),
                "clinical": per_endpoint,
            }
        )
    return rows


def _association(entry: Any) -> dict[str, Any]:
    """``{"auc": {value, ci95}, "odds_ratio_q4": {value, ci95, p_one_sided}}`` of a report entry."""
    entry = entry if isinstance(entry, dict) else {}
    auc = entry.get("auc") if isinstance(entry.get("auc"), dict) else {}
    q4 = ((entry.get("odds_ratios") or {}).get("Q4")) or {}
    assert isinstance(auc, dict) and isinstance(q4, dict)
    return {
        "auc": {"value": auc.get("value"), "ci95": auc.get("ci95")},
        "odds_ratio_q4": {
            "value": q4.get("value"),
            "ci95": q4.get("ci95"),
            "p_one_sided": q4.get("p_one_sided"),
        },
    }


def _newest_report(session: Session) -> dict[str, Any] | None:
    report = session.scalar(
        select(Submission.metrics)
        .where(Submission.status == RunStatus.SUCCEEDED, Submission.metrics.is_not(None))
        .order_by(Submission.finished_at.desc(), Submission.id.desc())
        .limit(1)
    )
    return summary_report(report) if isinstance(report, dict) else None


def _latest_experts(session: Session) -> tuple[dict[str, Any], str | None]:
    """Fallback without a test set: the experts of the newest scored run of any review state (they
    depend on the labels only, not on the submission)."""
    report = _newest_report(session) or {}
    experts = report.get("experts")
    version = report.get("scorer_version")
    return (experts if isinstance(experts, dict) else {}), (version if isinstance(version, str) else None)


def _latest_clinical_references(session: Session) -> tuple[dict[str, Any], str | None]:
    report = _newest_report(session) or {}
    clinical = report.get("clinical")
    version = report.get("scorer_version")
    return (clinical if isinstance(clinical, dict) else {}), (version if isinstance(version, str) else None)


def _with_ties(candidates: list[_Candidate]) -> list[dict[str, Any]]:
    leader = next((c for c in candidates if c.kind != "expert"), None)
    out: list[dict[str, Any]] = []
    for rank, cand in enumerate(candidates, start=1):
        tied, reason = _tie(cand, leader)
        row: dict[str, Any] = {
            "rank": rank,
            "kind": cand.kind,
            "team": cand.team,
            "name": cand.name,
            "scorer_version": cand.scorer_version,
            "kendall_tau_b": cand.metrics["kendall_tau_b"],
            "amae": cand.metrics["amae"],
            "tied_with_leader": tied,
            "tie_reason": reason,
            "is_leader": cand is leader,
        }
        if cand.kind != "expert":
            row["submission_id"] = cand.submission_id
        if cand.ladder is not None:
            row["ladder"] = cand.ladder
        out.append(row)
    return out


def _tie(cand: _Candidate, leader: _Candidate | None) -> tuple[bool | None, str | None]:
    """(tied_with_leader, tie_reason) of one row."""
    if cand.kind == "expert":
        return None, "expert rows have no bootstrap replicates"
    if leader is None or cand is leader:
        return False, None
    if cand.ladder is not None or leader.ladder is not None:
        return None, LADDER_TIE_REASON
    assert cand.basis is not None and leader.basis is not None
    mismatch = cand.basis.mismatch(leader.basis)
    if mismatch is not None:
        return None, mismatch
    a, b = leader.replicates, cand.replicates
    if a is None or b is None or a.size == 0 or b.size == 0:
        return None, "no tie test: no stored bootstrap replicates"
    if a.shape != b.shape:
        return None, f"no tie test: {b.size} replicates against the leader's {a.size}"
    lo, hi = paired_difference_ci(a, b)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None, "no tie test: too few defined paired resamples"
    return bool(lo <= 0.0 <= hi), None
