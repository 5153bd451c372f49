"""Re-scoring stored runs under the current scorer and test set (``csawm admin rescore``, issue 14).

A scored run keeps its hidden predictions (`server.runs.store`, hash on the row), so a new scorer
version or a corrected test set can be applied to every run without running a model again. Each
re-score keeps the previous report (`SubmissionReport` history), updates the run's current one, and
is written to the audit log with the versions and digests before and after. Each run is scored on
its competition phase's test set (``evaluation.scored_on``: private, or public for a development
phase), as the worker scored it, its predictions read against the input its hidden stage was
given: the public images for a development run, or every image for one scored before issue 19
(its record's ``n_hidden_images`` says so). A re-score never changes or adds a Ladder step: the step
a run showed when it was first scored stands (`server.phases.ladder_steps`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from server.core import audit
from server.core.db import Database
from server.core.settings import Settings
from server.models import RunStatus, Submission
from server.phases.service import by_name as competition_phase
from server.runs import reports, scoring, store
from server.runs.scoring import Scorer, ScoringSet
from server.scoring.results import RunRecord


@dataclass
class Rescored:
    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # id -> why


def candidates(db: Database, ids: Iterable[int] | None) -> list[int]:
    """Succeeded runs with stored predictions: all of them, or those of `ids` (others are skipped)."""
    with db.transaction(write=False) as session:
        query = select(Submission.id).where(
            Submission.status == RunStatus.SUCCEEDED, Submission.predictions_sha256.is_not(None)
        )
        if ids is not None:
            query = query.where(Submission.id.in_(list(ids)))
        return list(session.scalars(query.order_by(Submission.id)))


def rescore(
    db: Database,
    settings: Settings,
    evaluation: ScoringSet,
    ids: Iterable[int] | None,
    *,
    actor: str,
    scorer: Scorer,
) -> Rescored:
    """Re-score `ids` (None: every candidate) one transaction per run; return what was done."""
    from server.scoring.predictions import PredictionsError

    wanted = None if ids is None else sorted(set(ids))
    todo = candidates(db, wanted)
    result = Rescored()
    for missing in sorted(set(wanted or ()) - set(todo)):
        result.skipped[missing] = "not a succeeded run with stored hidden predictions"
    for sub_id in todo:
        with db.transaction(write=False) as session:
            sha, phase, stored = session.execute(
                select(Submission.predictions_sha256, Submission.phase, Submission.reproducibility).where(
                    Submission.id == sub_id
                )
            ).one()
            test_set = competition_phase(session, settings, phase).test_set
        before = RunRecord.read(stored)
        try:
            scored = scoring.score_stored(
                settings.data_dir, evaluation, scorer, predictions_sha256=sha, test_set=test_set,
                record=before, resamples=settings.bootstrap_resamples, seed=settings.bootstrap_seed,
            )  # fmt: skip
        except (LookupError, store.PredictionsMissing, PredictionsError) as exc:  # LookupError: no public set
            result.skipped[sub_id] = str(exc)
            continue
        after = scored.record(before)
        detail = {
            "scorer_version": [before.scorer_version, after.scorer_version],
            "test_set_manifest_sha256": [before.test_set_manifest_sha256, after.test_set_manifest_sha256],
        }
        with db.transaction() as session:
            sub = session.get(Submission, sub_id)
            assert sub is not None
            reports.record(
                session, sub, scored.report, reason="rescored", run_record=after, predictions_sha256=sha
            )
            audit.record(
                session,
                actor=actor,
                action="rescore",
                target_type="submission",
                target_id=sub_id,
                detail=detail,
            )
        result.done.append(sub_id)
    return result
