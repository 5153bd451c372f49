"""Storing a scored report on a run: the current one on the submission row, every one as history.

Used by the worker's scoring stage and by ``csawm admin rescore`` alike, so a re-score changes
exactly what the first scoring wrote: ``metrics`` (the report JSON), the two leaderboard keys, the
bootstrap replicates the leaderboard's tie marks pair, and one `SubmissionReport` row. The run's
current tau-b replicates belong to its latest report; when a re-score replaces them they move onto
the report they belonged to, so the board as it stood before (`server.leaderboard.history`) pairs them.

The first scoring (reason ``scored``) also decides the run's Ladder step in the same transaction
(`server.phases.ladder_steps`); a re-score never changes or adds one.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import Submission, SubmissionReport, SupersededReplicates
from server.phases import ladder_steps
from server.scoring.report import ScoreReport
from server.scoring.results import Report, RunRecord

SCORED = "scored"  # the reason of the first scoring, the one that decides the Ladder step


def record(
    session: Session,
    sub: Submission,
    report: ScoreReport,
    *,
    reason: str,
    run_record: RunRecord | None = None,
    test_set_sha256: str | None = None,
    seed: int | None = None,
    resamples: int | None = None,
    predictions_sha256: str | None = None,
) -> SubmissionReport:
    """Make `report` the run's current report, and `run_record` (when given) its reproducibility
    record. The history row's test-set digest, bootstrap settings and predictions digest are the
    record's, or the keywords' where given (tests that store a report on a hand-made run)."""
    data = report.data
    shown = Report.read(data)
    assert shown is not None
    _keep_replicates(session, sub)
    sub.metrics = data
    sub.kendall_tau_b = shown.kendall_tau_b.value
    sub.amae = shown.amae.value
    sub.tau_replicates = _pack(report.replicates.get("kendall_tau_b"))
    sub.amae_replicates = _pack(report.replicates.get("amae"))
    if run_record is not None:
        sub.reproducibility = run_record.to_json()  # before the Ladder step reads it
        boot = run_record.bootstrap
        test_set_sha256 = test_set_sha256 or run_record.test_set_manifest_sha256
        seed = seed if seed is not None else boot.seed if boot else None
        resamples = resamples if resamples is not None else boot.resamples if boot else None
        predictions_sha256 = predictions_sha256 or run_record.predictions_sha256
    if test_set_sha256 is None or seed is None or resamples is None:
        raise ValueError("a stored report needs its test set's digest and its bootstrap's seed and resamples")
    row = SubmissionReport(
        submission_id=sub.id,
        reason=reason,
        scorer_version=shown.scorer_version or "",
        test_set_sha256=test_set_sha256,
        bootstrap_seed=seed,
        bootstrap_resamples=resamples,
        predictions_sha256=predictions_sha256,
        metrics=data,
    )
    session.add(row)
    if reason == SCORED:
        ladder_steps.on_scored(session, sub)
    return row


def _keep_replicates(session: Session, sub: Submission) -> None:
    """Give the run's current replicates to its latest report row before a new report replaces them."""
    if sub.tau_replicates is None:
        return
    latest = session.scalar(
        select(SubmissionReport.id)
        .where(SubmissionReport.submission_id == sub.id)
        .order_by(SubmissionReport.id.desc())
        .limit(1)
    )
    if latest is not None:
        session.add(SupersededReplicates(report_id=latest, tau_replicates=sub.tau_replicates))


def _pack(values: np.ndarray | None) -> bytes | None:
    return None if values is None else np.asarray(values, dtype=np.float64).tobytes()
