"""Several runs of one reference model as one board row (issue 21 item 7).

``csawm seed-baselines --runs N`` trains each reference model with N seeds, and the CSAW-M paper
reports such a model as the mean ± SD of its runs. The runs of one reference model are the scored
baselines with the same name, description (the training schedule) and phase (`group_key`); the
board shows them as one row whose figures are the runs' mean with the sample SD (``ddof=1``) and
the count, and lists the runs themselves with the row.

Such a row is a reference row beside the ranking, as the experts are (docs/scoring.md): a mean over
runs has no bootstrap replicates of its own to pair, so it takes no rank, tie test or rank figures,
and the ranked rows' tiers and significance map are those of the ranked rows alone. One run is a
ranked row as it always was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def group_key(name: str, description: str | None, phase: str) -> tuple[str, str, str]:
    """The runs of one reference model share their name, their description and their phase."""
    return name, description or "", phase


@dataclass(frozen=True)
class Spread:
    """One figure over a model's runs: the mean and the sample SD of the `n` runs with a value
    (`sd` None with fewer than two)."""

    mean: float | None
    sd: float | None
    n: int


def spread(values: Iterable[float | None]) -> Spread:
    found = [v for v in values if v is not None and math.isfinite(v)]
    if not found:
        return Spread(None, None, 0)
    sd = float(np.std(found, ddof=1)) if len(found) > 1 else None
    return Spread(float(np.mean(found)), sd, len(found))


@dataclass(frozen=True)
class BaselineRun:
    """One scored run of a reference model, as the board lists it under the model's row."""

    submission_id: int
    training_seed: int | None
    kendall_tau_b: float | None
    amae: float | None
    odds_ratio_q4: Mapping[str, float | None]  # by endpoint key

    def to_json(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "training_seed": self.training_seed,
            "kendall_tau_b": self.kendall_tau_b,
            "amae": self.amae,
            "odds_ratio_q4": dict(self.odds_ratio_q4),
        }


@dataclass(frozen=True)
class RunGroup:
    """The runs of one reference model (by training seed, then id) and their figures' spread."""

    runs: tuple[BaselineRun, ...]
    kendall_tau_b: Spread
    amae: Spread
    odds_ratio_q4: Mapping[str, Spread]

    @classmethod
    def of(cls, runs: Sequence[BaselineRun], endpoints: Sequence[str]) -> RunGroup:
        ordered = tuple(
            sorted(runs, key=lambda r: (r.training_seed is None, r.training_seed or 0, r.submission_id))
        )
        return cls(
            runs=ordered,
            kendall_tau_b=spread(r.kendall_tau_b for r in ordered),
            amae=spread(r.amae for r in ordered),
            odds_ratio_q4={key: spread(r.odds_ratio_q4.get(key) for r in ordered) for key in endpoints},
        )

    def to_json(self) -> dict[str, Any]:
        """The fields a row of several runs adds (docs/api.md): ``n_runs``, ``sd``, ``runs``."""
        return {
            "n_runs": len(self.runs),
            "sd": {
                "kendall_tau_b": self.kendall_tau_b.sd,
                "amae": self.amae.sd,
                "odds_ratio_q4": {key: value.sd for key, value in self.odds_ratio_q4.items()},
            },
            "runs": [run.to_json() for run in self.runs],
        }
