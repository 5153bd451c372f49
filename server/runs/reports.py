"""Storing a scored report on a run: the current one on the submission row, every one as history.

Used by the worker's scoring phase and by ``csawm admin rescore`` alike, so a re-score changes
exactly what the first scoring wrote: ``metrics`` (the report JSON), the two leaderboard keys, the
bootstrap replicates the leaderboard's tie marks pair, and one `SubmissionReport` row.

The first scoring (reason ``scored``) also decides the run's Ladder step in the same transaction
(`server.leaderboard.ladder_steps`); a re-score never changes or adds one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from server.leaderboard import ladder_steps
from server.models import Submission, SubmissionReport

SCORED = "scored"  # the reason of the first scoring, the one that decides the Ladder step


def record(
    session: Session,
    sub: Submission,
    report: Any,
    *,
    reason: str,
    test_set_sha256: str,
    seed: int,
    resamples: int,
    predictions_sha256: str | None,
) -> SubmissionReport:
    """Make `report` (``.data``: the report JSON, ``.replicates``: arrays) the run's current report."""
    data = report.data
    masking = data.get("masking", {})
    sub.metrics = data
    sub.kendall_tau_b = _value(masking.get("kendall_tau_b"))
    sub.amae = _value(masking.get("amae"))
    sub.tau_replicates = _pack(report.replicates.get("kendall_tau_b"))
    sub.amae_replicates = _pack(report.replicates.get("amae"))
    row = SubmissionReport(
        submission_id=sub.id,
        reason=reason,
        scorer_version=str(data.get("scorer_version", "")),
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


def _value(entry: Any) -> float | None:
    value = entry.get("value") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _pack(values: Any) -> bytes | None:
    return None if values is None else np.asarray(values, dtype=np.float64).tobytes()
