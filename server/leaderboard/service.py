"""Building the leaderboard rows (docs/api.md).

Rows: approved submissions (best per team by default), baselines that are not hidden or
disqualified, and the five experts of the report's ``experts`` section (their agreement with the
consensus on the same images, taken from the newest scored run).

Order: Kendall tau-b descending, then AMAE ascending; rows without a tau-b go last.

Ties: a submission or baseline is `tied_with_leader` when the percentile CI of the paired bootstrap
difference ``tau_leader - tau_row`` contains 0 (every run uses the same seed on the same rows, so
resample b is the same patient sample in both runs). The leader itself carries ``false`` (and
``is_leader: true``); expert rows, which have no replicates, carry ``null``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, undefer

from server.models import ReviewState, RunStatus, Submission, Team

VISIBLE_BASELINE_STATES = (ReviewState.PENDING, ReviewState.APPROVED)


@dataclass
class _Candidate:
    kind: str
    team: str | None
    name: str
    submission_id: int | None
    tau: dict[str, Any]
    amae: dict[str, Any]
    replicates: np.ndarray | None

    def sort_key(self) -> tuple[float, float]:
        tau = self.tau.get("value")
        amae = self.amae.get("value")
        return (
            -tau if isinstance(tau, int | float) and math.isfinite(tau) else math.inf,
            amae if isinstance(amae, int | float) and math.isfinite(amae) else math.inf,
        )


def version_key(conn: Connection) -> tuple[int, str]:
    """Changes whenever a scored submission is added, reviewed or otherwise updated.

    One index-only query (``ix_submissions_status_updated``) on a bare connection: the cheap check
    that lets a cached leaderboard be served without rebuilding it.
    """
    count, latest = conn.execute(
        select(func.count(), func.max(Submission.updated_at)).where(Submission.status == RunStatus.SUCCEEDED)
    ).one()
    return int(count), str(latest)


def _metric(report: dict[str, Any] | None, name: str) -> dict[str, Any]:
    masking = (report or {}).get("masking") or {}
    entry = masking.get(name) or {}
    out: dict[str, Any] = {"value": entry.get("value"), "ci95": entry.get("ci95")}
    if name == "amae" and "unit" in entry:
        out["unit"] = entry["unit"]
    return out


def _replicates(raw: bytes | None) -> np.ndarray | None:
    return np.frombuffer(raw, dtype=np.float64) if raw else None


def build(session: Session, *, best_per_team: bool = True) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Submission, Team.name)
        .join(Team, Submission.team_id == Team.id)
        .options(undefer(Submission.metrics), undefer(Submission.tau_replicates))
        .where(
            Submission.status == RunStatus.SUCCEEDED,
            (Submission.review_state == ReviewState.APPROVED)
            | (Submission.baseline.is_(True) & Submission.review_state.in_(VISIBLE_BASELINE_STATES)),
        )
        .order_by(Submission.id)
    ).all()
    candidates: list[_Candidate] = []
    for sub, team in rows:
        candidates.append(
            _Candidate(
                kind="baseline" if sub.baseline else "submission",
                team=team,
                name=sub.name,
                submission_id=sub.id,
                tau=_metric(sub.metrics, "kendall_tau_b"),
                amae=_metric(sub.metrics, "amae"),
                replicates=_replicates(sub.tau_replicates),
            )
        )
    if best_per_team:
        best: dict[str, _Candidate] = {}
        kept: list[_Candidate] = []
        for cand in candidates:
            if cand.kind == "baseline":
                kept.append(cand)
            elif cand.team not in best or cand.sort_key() < best[cand.team].sort_key():
                best[str(cand.team)] = cand
        candidates = kept + list(best.values())
    experts = _latest_experts(session)
    for expert, values in sorted(experts.items()):
        candidates.append(
            _Candidate(
                kind="expert",
                team=None,
                name=expert,
                submission_id=None,
                tau={"value": values.get("kendall_tau_b"), "ci95": None},
                amae={"value": values.get("amae"), "ci95": None},
                replicates=None,
            )
        )
    candidates.sort(key=lambda c: (*c.sort_key(), c.kind != "submission", c.submission_id or 0, c.name))
    return _with_ties(candidates)


def _paired(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Replicates are comparable when both exist with the same resample count (same seed by design)."""
    return a is not None and b is not None and a.shape == b.shape and a.size > 0


def _latest_experts(session: Session) -> dict[str, Any]:
    """The experts' agreement with the consensus, from the newest scored run of any review state:
    it depends on the labels only, not on the submission."""
    report = session.scalar(
        select(Submission.metrics)
        .where(Submission.status == RunStatus.SUCCEEDED, Submission.metrics.is_not(None))
        .order_by(Submission.finished_at.desc(), Submission.id.desc())
        .limit(1)
    )
    experts = (report or {}).get("experts") if isinstance(report, dict) else None
    return experts if isinstance(experts, dict) else {}


def _with_ties(candidates: list[_Candidate]) -> list[dict[str, Any]]:
    from server.scoring.bootstrap import paired_difference_ci

    leader = next((c for c in candidates if c.kind != "expert"), None)
    lead_reps = leader.replicates if leader is not None else None
    out: list[dict[str, Any]] = []
    for rank, cand in enumerate(candidates, start=1):
        tied: bool | None = False
        if cand.kind == "expert":
            tied = None
        elif cand is not leader and _paired(lead_reps, cand.replicates):
            assert lead_reps is not None and cand.replicates is not None
            lo, hi = paired_difference_ci(lead_reps, cand.replicates)
            tied = bool(math.isfinite(lo) and math.isfinite(hi) and lo <= 0.0 <= hi)
        row: dict[str, Any] = {
            "rank": rank,
            "kind": cand.kind,
            "team": cand.team,
            "name": cand.name,
            "kendall_tau_b": cand.tau,
            "amae": cand.amae,
            "tied_with_leader": tied,
            "is_leader": cand is leader,
        }
        if cand.kind != "expert":
            row["submission_id"] = cand.submission_id
        out.append(row)
    return out
