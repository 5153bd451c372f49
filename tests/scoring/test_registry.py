"""Invariances every registered metric must satisfy (server/scoring/registry.py).

In the manner of scikit-learn's metrics/tests/test_common.py: the properties are checked for each
entry of METRICS, one per metric of the registry's DIRECTIONS (checked below), so a new metric is
tested the moment it is registered.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from server.scoring import clinical, metrics
from server.scoring.metrics import MetricValue
from server.scoring.registry import DIRECTIONS, Direction, sort_key

from .factories import quartile_odds_ratios

N = 400


class Reference(enum.StrEnum):
    """What a metric compares the prediction with."""

    ORDINAL = "ordinal"  # masking ground truth (levels or ranks); the prediction is a level or score
    BINARY = "binary"  # a 0/1 clinical endpoint; the prediction is the continuous score


#: ``compute(reference, prediction, keys)``; keys (file names) break ties where a metric bins rows.
Compute = Callable[[np.ndarray, np.ndarray, Sequence[str]], MetricValue]


@dataclass(frozen=True)
class MetricSpec:
    """One reported metric: its registered name and direction, and how the tests compute it."""

    name: str
    reference: Reference
    compute: Compute

    @property
    def direction(self) -> Direction:
        return DIRECTIONS[self.name]

    def sort_key(self, value: float) -> float:
        return sort_key(self.name, value)


def _odds_ratio_q4(reference: np.ndarray, prediction: np.ndarray, keys: Sequence[str]) -> MetricValue:
    result = quartile_odds_ratios(reference, prediction)["Q4"]
    if result.reason is not None:
        return MetricValue.undefined(result.reason)
    return MetricValue(result.value)


METRICS: Mapping[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("kendall_tau_b", Reference.ORDINAL, lambda r, p, keys: metrics.kendall_tau_b(r, p)),
        MetricSpec("amae", Reference.ORDINAL, lambda r, p, keys: metrics.amae(r, p)),
        MetricSpec("auc", Reference.BINARY, lambda r, p, keys: clinical.roc_auc(r, p)),
        MetricSpec("odds_ratio_q4", Reference.BINARY, _odds_ratio_q4),
        MetricSpec(
            "low_bin_f1", Reference.ORDINAL, lambda r, p, keys: metrics.bin_scores(r, p, metrics.LOW_BIN).f1
        ),
        MetricSpec(
            "high_bin_f1", Reference.ORDINAL, lambda r, p, keys: metrics.bin_scores(r, p, metrics.HIGH_BIN).f1
        ),
    )
}


def test_every_registered_metric_is_tested_here() -> None:
    assert set(METRICS) == set(DIRECTIONS)


def _is_better(spec: MetricSpec, a: float, b: float) -> bool:
    """Whether value `a` is strictly better than `b` (NaN is never better)."""
    return spec.sort_key(a) < spec.sort_key(b)


def _case(spec: MetricSpec, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A realistic (reference, prediction, keys) triple for the metric's kind of reference."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=N)
    keys = [f"img_{i:04d}.png" for i in range(N)]
    if spec.reference is Reference.ORDINAL:
        truth = np.digitize(latent, np.quantile(latent, np.linspace(0, 1, 9)[1:-1])) + 1.0
        return truth, np.clip(truth + rng.integers(-2, 3, size=N), 1, 8).astype(float), keys
    endpoint = (rng.random(N) < 1 / (1 + np.exp(-(1.5 * latent - 1.5)))).astype(float)
    return endpoint, latent + rng.normal(scale=1.0, size=N), keys


def _oracle_and_worse(spec: MetricSpec) -> tuple[np.ndarray, list[np.ndarray]]:
    """The reference, an oracle prediction and worse predictions, for one metric."""
    rng = np.random.default_rng(1)
    if spec.reference is Reference.ORDINAL:
        truth, noisy, _ = _case(spec)
        return truth, [truth, noisy, rng.integers(1, 9, size=N).astype(float)]
    # The endpoint is drawn from a latent risk; the oracle knows the risk, the others less of it.
    latent = rng.normal(size=N * 5)
    endpoint = (rng.random(latent.size) < 1 / (1 + np.exp(-(1.5 * latent - 1.5)))).astype(float)
    return endpoint, [latent, latent + rng.normal(scale=1.5, size=latent.size), rng.normal(size=latent.size)]


DEGENERATE = {
    # metric name -> (reference, prediction) on which the metric is undefined
    "kendall_tau_b": ([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]),
    "amae": ([], []),
    "auc": ([0.0] * 10, list(np.arange(10.0))),
    "odds_ratio_q4": ([0.0] * 16, list(np.arange(16.0))),
    "low_bin_f1": ([3.0, 4.0, 5.0], [4.0, 5.0, 6.0]),
    "high_bin_f1": ([3.0, 4.0, 5.0], [4.0, 5.0, 6.0]),
}


@pytest.fixture(params=sorted(METRICS))
def spec(request: pytest.FixtureRequest) -> MetricSpec:
    return METRICS[request.param]


def test_every_metric_has_a_direction_and_a_degenerate_case(spec: MetricSpec) -> None:
    assert spec.direction in (Direction.HIGHER, Direction.LOWER)
    assert spec.name in DEGENERATE


def test_directions_of_the_headline_metrics() -> None:
    assert METRICS["kendall_tau_b"].direction is Direction.HIGHER
    assert METRICS["amae"].direction is Direction.LOWER


def test_row_order_does_not_change_the_value(spec: MetricSpec) -> None:
    reference, prediction, keys = _case(spec)
    order = np.random.default_rng(5).permutation(N)
    before = spec.compute(reference, prediction, keys)
    after = spec.compute(reference[order], prediction[order], [keys[i] for i in order])
    assert before.is_defined
    assert after.value == pytest.approx(before.value, rel=1e-12)


def test_oracle_scores_best(spec: MetricSpec) -> None:
    reference, (oracle, *others) = _oracle_and_worse(spec)
    keys = [f"k{i}" for i in range(reference.size)]
    best = spec.compute(reference, oracle, keys)
    assert best.is_defined
    for other in others:
        value = spec.compute(reference, other, keys)
        assert _is_better(spec, best.value, value.value), (spec.name, best.value, value.value)


def test_degenerate_input_is_nan_with_a_reason_never_zero(spec: MetricSpec) -> None:
    reference, prediction = DEGENERATE[spec.name]
    keys = [f"k{i}" for i in range(len(reference))]
    result = spec.compute(np.asarray(reference), np.asarray(prediction), keys)
    assert math.isnan(result.value)
    assert result.reason


def test_tau_of_x_with_itself_and_its_negation() -> None:
    tau = METRICS["kendall_tau_b"]
    x = np.random.default_rng(0).integers(1, 9, size=50).astype(float)
    keys = [str(i) for i in range(50)]
    assert tau.compute(x, x, keys).value == pytest.approx(1.0)
    assert tau.compute(x, -x, keys).value == pytest.approx(-1.0)


def test_is_better_and_sort_key_follow_the_direction() -> None:
    tau, error = METRICS["kendall_tau_b"], METRICS["amae"]
    assert _is_better(tau, 0.8, 0.7) and not _is_better(tau, 0.7, 0.8)
    assert _is_better(error, 0.7, 0.8) and not _is_better(error, 0.8, 0.7)
    assert _is_better(tau, 0.1, math.nan) and not _is_better(tau, math.nan, 0.1)
    assert sorted([0.5, math.nan, 0.9], key=tau.sort_key)[:2] == [0.9, 0.5]
    assert sorted([0.5, math.nan, 0.9], key=error.sort_key)[:2] == [0.5, 0.9]
