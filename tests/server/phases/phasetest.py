"""Helpers of the phase tests: phases and scored runs written through the real services and models."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from srvtest.app import Api

from server.core.clock import utcnow
from server.models import ReviewState, RunStatus, Submission, SubmissionReport
from server.phases import service as phases

RESAMPLES = 400


def make_phase(api: Api, name: str, opens: timedelta, closes: timedelta | None, **values: Any) -> None:
    """A phase whose window is relative to now (negative: in the past)."""
    now = utcnow()
    with api.db.transaction() as session:
        phases.create(
            session,
            {"name": name, "opens_at": now + opens, "closes_at": now + closes if closes is not None else None,
             **values},
            actor="test",
        )  # fmt: skip


def report(tau: float, amae: float, auc: float = 0.681234) -> dict[str, Any]:
    endpoint = {
        "auc": {"value": auc, "ci95": [auc - 0.0412, auc + 0.0412]},
        "odds_ratios": {"Q4": {"value": 3.618254, "ci95": [1.512345, 8.712349], "p_one_sided": 0.004219}},
    }
    return {
        "scorer_version": "2",
        "masking": {
            "kendall_tau_b": {"value": tau, "ci95": [tau - 0.0381, tau + 0.0381]},
            "amae": {"value": amae, "ci95": [amae - 2.1, amae + 2.1], "unit": "rank"},
            "levels": {
                "kendall_tau_b": {"value": tau - 0.01, "ci95": None},
                "confusion_matrix": [[5, 1], [2, 7]],
                "group_amae": {"1": amae, "2": amae + 1},
            },
        },
        "clinical": {
            "population": "evaluated", "interval_cancer": endpoint, "large_invasive_cancer": endpoint,
            "composite": endpoint,
        },
        "experts": {f"Expert_{k}": {"kendall_tau_b": 0.6 + k / 100, "amae": 40.0 + k} for k in range(1, 6)},
    }  # fmt: skip


def scored(
    api: Api,
    team_id: int,
    name: str,
    phase: str,
    tau: float,
    amae: float,
    reps: np.ndarray | None = None,
    *,
    review: ReviewState = ReviewState.APPROVED,
    finished: datetime | None = None,
    status: RunStatus = RunStatus.SUCCEEDED,
) -> int:
    """A scored run of `phase` with its report history, as the worker leaves it."""
    reps = reps if reps is not None else tau + np.random.default_rng(0).normal(0, 0.02, RESAMPLES)
    record = {
        "scorer_version": "2",
        "test_set_manifest_sha256": "a" * 64,
        "bootstrap": {"resamples": int(reps.size), "seed": 0},
    }
    with api.db.transaction() as session:
        sub = Submission(
            team_id=team_id, name=name, phase=phase, image_digest=f"sha256:{name}", status=status,
            metrics=report(tau, amae) if status == RunStatus.SUCCEEDED else None,
            kendall_tau_b=tau if status == RunStatus.SUCCEEDED else None,
            amae=amae if status == RunStatus.SUCCEEDED else None,
            tau_replicates=reps.astype(np.float64).tobytes(), review_state=review, reproducibility=record,
            finished_at=finished or utcnow(),
        )  # fmt: skip
        session.add(sub)
        session.flush()
        if status == RunStatus.SUCCEEDED:
            session.add(
                SubmissionReport(
                    submission_id=sub.id, reason="scored", scorer_version="2", test_set_sha256="a" * 64,
                    bootstrap_seed=0, bootstrap_resamples=int(reps.size), metrics=report(tau, amae),
                )
            )  # fmt: skip
        return sub.id
