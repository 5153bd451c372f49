"""The scoring step: a run's stored hidden predictions scored on a test set, the one way the worker's
``score`` stage and ``csawm admin rescore`` both do it.

A run is scored on the view of the evaluation set its phase's test set gives (`scored_on`: private,
or public for a development phase), its predictions read against the input its hidden stage was
given: every image for a run whose record says it was mounted all of them (``n_hidden_images``:
runs scored before issue 19), else the scored view's. The result carries the report and the
reproducibility fields the scoring decides (`Scored.record`); the caller stores both through
`server.runs.reports.record`, the one writer.

Each failure has its own exception, since the worker charges them differently: no public test set
(`LookupError`), predictions gone from the store (`store.PredictionsMissing`), predictions the
reader refuses (`PredictionsError`), the scorer failing on predictions it accepted (`ScorerFailed`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from server.runs import store
from server.scoring.report import SCORER_VERSION
from server.scoring.results import Bootstrap, RunRecord


class ScoringSet(Protocol):
    """What the step needs of `server.worker.evaluation.EvaluationSet`."""

    @property
    def hidden_filenames(self) -> tuple[str, ...]: ...
    @property
    def manifest_digest(self) -> str: ...
    @property
    def public_manifest_digest(self) -> str | None: ...
    def scored_on(self, test_set: str) -> Any: ...


#: (predictions, the scored view of the evaluation set, resamples, seed) -> a ScoreReport.
Scorer = Callable[[Any, Any, int, int], Any]


class ScorerFailed(Exception):
    """The scorer raised on predictions the reader accepted (ours, not the model's)."""


@dataclass(frozen=True)
class Scored:
    report: Any  # server.scoring.report.ScoreReport
    evaluation: Any  # the scored view (`ScoringSet.scored_on`)
    test_set: str
    resamples: int
    seed: int
    wall_s: float  # reading the predictions and scoring them

    def record(self, base: RunRecord) -> RunRecord:
        """`base` with the fields this scoring decides: the scorer version, the test set and its
        digests, the bootstrap's settings."""
        return base.rescored(
            test_set=self.test_set,
            test_set_manifest_sha256=self.evaluation.manifest_digest,
            public_manifest_sha256=self.evaluation.public_manifest_digest,
            scorer_version=SCORER_VERSION,
            bootstrap=Bootstrap(self.resamples, self.seed),
        )


def score_stored(
    data_dir: Path,
    evaluation: ScoringSet,
    scorer: Scorer,
    *,
    predictions_sha256: str | None,
    test_set: str,
    record: RunRecord,
    resamples: int,
    seed: int,
) -> Scored:
    """Score the stored predictions `predictions_sha256` of a run on `test_set` (module docstring)."""
    from server.scoring.predictions import read_predictions

    scored_on = evaluation.scored_on(test_set)  # LookupError: no public test set
    if predictions_sha256 is None:
        raise store.PredictionsMissing("no hidden predictions were stored")
    data = store.load(data_dir, predictions_sha256)
    mounted_all = record.n_hidden_images == len(evaluation.hidden_filenames)
    names = evaluation.hidden_filenames if mounted_all else scored_on.hidden_filenames
    started = time.monotonic()
    predictions = read_predictions(data, expected=names)
    try:
        report = scorer(predictions, scored_on, resamples, seed)
    except Exception as exc:
        raise ScorerFailed(
            f"the scorer failed on predictions {predictions_sha256}: {exc.__class__.__name__}: {exc}"
        ) from exc
    return Scored(report, scored_on, test_set, resamples, seed, round(time.monotonic() - started, 3))
