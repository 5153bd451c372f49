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
run is approved (`server.phases.ladder_steps`: rounded, moving only on a significant
improvement, decided once when each run was scored) instead of the exact scores: no CI, AMAE,
clinical metrics or tie test.
Without ``phase`` (a server with no phase rows) every submission counts, as before phases existed.

As it stood (``as_of``): the same rows built from the history (`server.leaderboard.history`): the
runs scored by then with the reports they had then, their review states then, the phase's reveal
and Ladder steps as they were.

Clinical view (``view="clinical"``): the same model rows in the same order, each with AUC and OR Q4
per endpoint, followed by the LIBRA density comparators as rows of kind ``density`` (no rank).

Other orders (`server.leaderboard.ordering`): each row keeps its report's agreement with each
expert (``per_expert``) for the order by a reference radiologist, and `build_board` makes the
stability table of its model rows; the tiers' level is `alpha` (``CSAWM_SIGNIFICANCE_ALPHA``).

Strata view (``view="strata"``): the masking rows, each model row with its report's tau-b by stratum
(`BoardRow.to_strata_json`); through the summary, so only the strata defined by the images.

The board is public, so it reads every report through its summary (`server.scoring.summary`): no
board column can show a figure that a ``summary`` phase withholds from the run's own team.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, false, func, select
from sqlalchemy.orm import Session, undefer

from server.leaderboard import history
from server.leaderboard.baseline_runs import BaselineRun, RunGroup, group_key
from server.leaderboard.ordering import Stability, board_stability
from server.leaderboard.references import DENSITY_NAMES, BoardReferences
from server.leaderboard.rows import BoardRow, ClinicalRow, links_of
from server.leaderboard.standing import Model, SignificanceMap, Standing, standings
from server.models import BaselineSeed, Phase, PhaseSelection, ReviewState, RunStatus, Submission, Team
from server.phases.ladder_steps import board_steps
from server.phases.service import PhaseView
from server.scoring.bootstrap import paired_difference_ci, percentile_ci
from server.scoring.ranking import DEFAULT_ALPHA
from server.scoring.registry import ENDPOINT_KEYS, LEADERBOARD_ORDER, ranking_key
from server.scoring.results import (
    Association,
    Estimate,
    ExpertScore,
    OddsRatio,
    PairingBasis,
    Report,
    RunRecord,
)

VISIBLE_BASELINE_STATES = (ReviewState.PENDING, ReviewState.APPROVED)
LADDER_TIE_REASON = "no tie test: a Ladder phase shows rounded values only"


@dataclass
class _Candidate:
    kind: str
    name: str
    metrics: dict[str, Estimate]
    team: str | None = None
    submission_id: int | None = None
    scorer_version: str | None = None
    replicates: np.ndarray | None = None
    basis: PairingBasis | None = None
    report: Report | None = None  # its summary: the board is public
    ladder: dict[str, Any] | None = None
    amae_unit: str | None = None
    submitted_at: datetime | None = None
    image_digest: str | None = None
    links: tuple[tuple[str, str], ...] = ()
    group: tuple[str, str, str] | None = None  # a baseline's reference model (`baseline_runs.group_key`)
    training_seed: int | None = None
    runs: RunGroup | None = None  # a row standing for several runs of one reference model

    @property
    def ranked(self) -> bool:
        """Models are ranked; experts and a reference model of several runs stand beside them."""
        return self.kind != "expert" and self.runs is None

    def sort_key(self) -> tuple[float, ...]:
        return ranking_key({name: self.metrics[name].value for name in LEADERBOARD_ORDER})


#: `version_key`'s one statement, built once: it runs on every leaderboard request, where building
#: and compiling three statements cost more than running them (the leaderboard benchmark's profile).
_VERSION = select(
    func.count(),
    func.max(Submission.updated_at),
    select(func.count()).select_from(Phase).scalar_subquery(),
    select(func.max(Phase.updated_at)).scalar_subquery(),
    select(func.count()).select_from(PhaseSelection).scalar_subquery(),
    select(func.max(PhaseSelection.id)).scalar_subquery(),
).where(Submission.status == RunStatus.SUCCEEDED)


def version_key(conn: Connection) -> tuple[int | str, ...]:
    """Changes whenever a scored submission is added, reviewed or otherwise updated, or a phase or a
    selection changes.

    One round trip on a bare connection: an index-only count (``ix_submissions_status_updated``)
    and two on the small phase tables, the cheap check that lets a cached leaderboard be served
    without rebuilding it.
    """
    count, latest, phases, changed, selections, newest = conn.execute(_VERSION).one()
    return int(count), str(latest), int(phases), str(changed), int(selections or 0), int(newest or 0)


def _development(phase: PhaseView) -> bool:
    """A development phase: scored on the public set, so no private-set reference rows."""
    return phase.test_set == "public"


def _on_board(sub: Submission) -> bool:
    """The review rule of the query in `_models`, for runs rebuilt from the history."""
    return sub.review_state == ReviewState.APPROVED or (
        sub.baseline and sub.review_state in VISIBLE_BASELINE_STATES
    )


def _models(
    session: Session, best_per_team: bool, phase: PhaseView, as_of: datetime | None = None
) -> list[_Candidate]:
    if as_of is not None:
        phase = history.phase_at(phase, as_of)
    own: ColumnElement[bool] = Submission.phase == phase.name
    if phase.sealed or phase.ladder_board:  # Ladder rows are added per team below
        own = false()
    elif phase.visibility == "sealed":  # revealed: the selected runs only
        own = own & Submission.id.in_(select(PhaseSelection.submission_id))
    mine = own if _development(phase) else Submission.baseline.is_(True) | own
    if as_of is None:
        query = (
            select(Submission, Team.name)
            .join(Team, Submission.team_id == Team.id)
            .options(undefer(Submission.metrics), undefer(Submission.tau_replicates))
            .where(
                Submission.status == RunStatus.SUCCEEDED,
                (Submission.review_state == ReviewState.APPROVED)
                | (Submission.baseline.is_(True) & Submission.review_state.in_(VISIBLE_BASELINE_STATES)),
                mine,
            )
            .order_by(Submission.id)
        )
        found = [(sub, team) for sub, team in session.execute(query)]
    else:
        found = [(sub, team) for sub, team in history.scored_at(session, mine, as_of) if _on_board(sub)]
    seeds = _seeds(session, [sub.id for sub, _ in found if sub.baseline])
    candidates: list[_Candidate] = []
    for sub, team in found:
        report, record = Report.read_summary(sub.metrics), RunRecord.read(sub.reproducibility)
        candidates.append(
            _Candidate(
                kind="baseline" if sub.baseline else "submission",
                team=team,
                name=sub.name,
                submission_id=sub.id,
                scorer_version=record.scorer_version or (report.scorer_version if report else None),
                metrics={name: report.metric(name) if report else Estimate() for name in LEADERBOARD_ORDER},
                replicates=np.frombuffer(sub.tau_replicates, dtype=np.float64)
                if sub.tau_replicates
                else None,
                basis=record.pairing(),
                report=report,
                amae_unit=report.amae_unit if report else None,
                submitted_at=sub.created_at,
                image_digest=sub.image_digest,
                links=links_of(sub.method_card, sub.url),
                group=group_key(sub.name, sub.description, sub.phase) if sub.baseline else None,
                training_seed=seeds.get(sub.id),
            )
        )
    if best_per_team:
        best: dict[str | None, _Candidate] = {}
        for cand in candidates:
            if cand.kind != "baseline" and (
                cand.team not in best or cand.sort_key() < best[cand.team].sort_key()
            ):
                best[cand.team] = cand
        candidates = [c for c in candidates if c.kind == "baseline"] + list(best.values())
    if phase.ladder_board:
        candidates += _ladder_rows(session, phase, as_of)
    candidates.sort(key=lambda c: (*c.sort_key(), c.kind != "submission", c.submission_id or 0, c.name))
    return candidates


def _seeds(session: Session, ids: list[int]) -> dict[int, int]:
    """The training seeds of the seeded baselines among runs `ids` (`BaselineSeed`), one query."""
    query = select(BaselineSeed.submission_id, BaselineSeed.training_seed).where(
        BaselineSeed.submission_id.in_(ids)
    )
    return dict(session.execute(query).tuples().all()) if ids else {}


def _ladder_rows(session: Session, phase: PhaseView, as_of: datetime | None) -> list[_Candidate]:
    """One row per team of a Ladder phase: its best stored step that moved and whose run is approved."""
    steps = board_steps(session, phase.name, as_of=as_of)
    ids = [step.submission_id for step in steps]
    subs = {sub.id: sub for sub in session.scalars(select(Submission).where(Submission.id.in_(ids)))}
    return [
        _Candidate(
            kind="submission",
            team=step.team,
            name=step.name,
            submission_id=step.submission_id,
            metrics={"kendall_tau_b": Estimate(step.shown["displayed"]), "amae": Estimate()},
            ladder=step.shown,
            submitted_at=sub.created_at,
            image_digest=sub.image_digest,
            links=links_of(sub.method_card, sub.url),
        )
        for step in steps
        for sub in (subs[step.submission_id],)
    ]


@dataclass(frozen=True)
class Board:
    """One phase's masking board: its rows and the significance map of its ranked rows."""

    rows: list[BoardRow]
    significance: SignificanceMap | None
    stability: Stability | None = None  # of the model rows with a report (`server.leaderboard.ordering`)


def _bands(references: BoardReferences | None, development: bool) -> dict[str, tuple[float, float] | None]:
    """Each expert's 95% band: the percentile interval of its replicates on the runs' resamples."""
    if references is None or development:
        return {}
    cis = {
        name: percentile_ci(replicates) for name, replicates in sorted(references.expert_replicates.items())
    }
    return {name: ci if math.isfinite(ci[0]) and math.isfinite(ci[1]) else None for name, ci in cis.items()}


def build_board(
    session: Session,
    *,
    best_per_team: bool = True,
    references: BoardReferences | None = None,
    phase: PhaseView,
    alpha: float = DEFAULT_ALPHA,
    as_of: datetime | None = None,
) -> Board:
    """The masking leaderboard: models ranked among models in registry order, with tie marks and
    rank figures (`server.leaderboard.standing`), and the experts as reference bands (no rank); as it
    stood at `as_of`, when given."""
    candidates = _collapse_runs(_models(session, best_per_team, phase, as_of))
    bands = _bands(references, _development(phase))
    ranked = [c for c in candidates if c.ranked]
    models = [
        Model(
            c.submission_id,
            c.name,
            c.replicates,
            c.basis,
            c.ladder is not None,
            c.metrics["kendall_tau_b"].shown,
        )
        for c in ranked
    ]
    found, significance = standings(models, bands, alpha)
    stability = board_stability([c.report for c in ranked if c.report is not None and c.ladder is None])
    standing = {id(c): s for c, s in zip(ranked, found, strict=True)}
    source = None if _development(phase) else references.report() if references else _newest_report(session)
    experts: Mapping[str, ExpertScore] = source.experts if source else {}
    for expert, score in sorted(experts.items()):
        candidates.append(
            _Candidate(
                kind="expert",
                name=expert,
                scorer_version=source.scorer_version if source else None,
                metrics={
                    "kendall_tau_b": Estimate(score.kendall_tau_b, bands.get(expert)),
                    "amae": Estimate(score.amae),
                },
            )
        )
    candidates.sort(key=lambda c: (*c.sort_key(), c.kind != "submission", c.submission_id or 0, c.name))
    return Board(_with_ties(candidates, standing), significance, stability)


def _collapse_runs(candidates: list[_Candidate]) -> list[_Candidate]:
    """The baseline runs of one reference model (`baseline_runs.group_key`) as one row in place of
    its first run: the mean of each figure, the runs listed (`RunGroup`), no replicates to pair.
    A model with one run keeps its own row."""
    groups: dict[tuple[str, str, str], list[_Candidate]] = {}
    for cand in candidates:
        if cand.group is not None:
            groups.setdefault(cand.group, []).append(cand)
    out: list[_Candidate] = []
    for cand in candidates:
        members = groups.get(cand.group) if cand.group is not None else None
        if members is None or len(members) == 1:
            out.append(cand)
        elif cand is members[0]:
            out.append(_grouped(members))
    return out


def _grouped(members: list[_Candidate]) -> _Candidate:
    runs = RunGroup.of(
        [
            BaselineRun(
                submission_id=int(c.submission_id or 0),
                training_seed=c.training_seed,
                kendall_tau_b=c.metrics["kendall_tau_b"].value,
                amae=c.metrics["amae"].value,
                odds_ratio_q4={
                    key: c.report.clinical[key].odds_ratio_q4.value if c.report else None
                    for key in ENDPOINT_KEYS
                },
            )
            for c in members
        ],
        ENDPOINT_KEYS,
    )
    first = next(c for c in members if c.submission_id == runs.runs[0].submission_id)
    return replace(
        first,
        metrics={"kendall_tau_b": Estimate(runs.kendall_tau_b.mean), "amae": Estimate(runs.amae.mean)},
        replicates=None,
        basis=None,
        report=None,
        runs=runs,
    )


def build_clinical(
    session: Session,
    *,
    best_per_team: bool = True,
    references: BoardReferences | None = None,
    phase: PhaseView,
    as_of: datetime | None = None,
) -> list[ClinicalRow]:
    """The clinical view: model rows (board order) with AUC and OR Q4 per endpoint, then density rows.

    Density rows come from the test set (`references`); without it, from the newest scored report
    that has them (scorer version 2).
    """
    rows: list[ClinicalRow] = []
    for rank, cand in enumerate(_models(session, best_per_team, phase, as_of), start=1):
        report = cand.report
        rows.append(
            ClinicalRow(
                rank=rank,
                kind=cand.kind,
                team=cand.team,
                name=cand.name,
                submission_id=cand.submission_id,
                scorer_version=cand.scorer_version,
                population=report.population if report else None,
                clinical={key: report.clinical[key] if report else Association() for key in ENDPOINT_KEYS},
            )
        )
    source = None if _development(phase) else references.report() if references else _newest_report(session)
    if source is None:
        return rows
    for variable, label in DENSITY_NAMES.items():
        per_endpoint = {
            key: source.clinical[key].references.get(variable, Association()) for key in ENDPOINT_KEYS
        }
        if all(entry.auc.value is None for entry in per_endpoint.values()):
            continue
        rows.append(
            ClinicalRow(
                rank=None,
                kind="density",
                name=label,
                variable=variable,
                scorer_version=source.scorer_version,
                population=source.population,
                clinical=per_endpoint,
            )
        )
    return rows


def _newest_report(session: Session) -> Report | None:
    """Fallback without a test set: the newest scored run's report of any review state (its experts
    and density comparators depend on the labels only, not on the submission), as the board shows it."""
    stored = session.scalar(
        select(Submission.metrics)
        .where(Submission.status == RunStatus.SUCCEEDED, Submission.metrics.is_not(None))
        .order_by(Submission.finished_at.desc(), Submission.id.desc())
        .limit(1)
    )
    return Report.read_summary(stored)


def _with_ties(candidates: list[_Candidate], standing: Mapping[int, Standing]) -> list[BoardRow]:
    """Rows with their marks: models ranked 1, 2, ... among models; experts and reference models of
    several runs unranked (None)."""
    leader = next((c for c in candidates if c.ranked), None)
    out: list[BoardRow] = []
    rank = 0
    for cand in candidates:
        tied, reason = _tie(cand, leader)
        strata = cand.report if cand.report and cand.report.strata else None
        if cand.ranked:
            rank += 1
        out.append(
            BoardRow(
                rank=rank if cand.ranked else None,
                standing=standing.get(id(cand)),
                kind=cand.kind,
                team=cand.team,
                name=cand.name,
                scorer_version=cand.scorer_version,
                kendall_tau_b=cand.metrics["kendall_tau_b"],
                amae=cand.metrics["amae"],
                amae_unit=cand.amae_unit,
                tied_with_leader=tied,
                tie_reason=reason,
                is_leader=cand is leader,
                submission_id=None if cand.kind == "expert" else cand.submission_id,
                ladder=cand.ladder,
                odds_ratios={
                    key: cand.report.clinical[key].odds_ratio_q4
                    if cand.report
                    else OddsRatio(cand.runs.odds_ratio_q4[key].mean if cand.runs else None)
                    for key in ENDPOINT_KEYS
                },
                submitted_at=cand.submitted_at,
                image_digest=cand.image_digest,
                links=cand.links,
                per_expert=cand.report.per_expert if cand.report is not None else {},
                runs=cand.runs,
                strata=strata.strata if strata else None,
                strata_differences=strata.strata_differences if strata else None,
            )
        )
    return out


def _tie(cand: _Candidate, leader: _Candidate | None) -> tuple[bool | None, str | None]:
    """(tied_with_leader, tie_reason) of one row."""
    if cand.kind == "expert":
        return None, "expert rows are reference bands, not ranked"
    if cand.runs is not None:
        return None, f"the mean of {len(cand.runs.runs)} runs: a reference row beside the ranking"
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
