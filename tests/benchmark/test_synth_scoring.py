"""The synthetic benchmark through the real scorer (server.scoring.report), as the server sees it.

The same claims as ``test_synth_statistics.py`` (which computes them with scipy directly): the
latent oracle ranks the private GT with tau-b > 0.8, a constant prediction gives ``null`` and a
warning, a random one about 0, and the interval-cancer OR Q4 vs Q1 of the oracle is clearly above 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from server.benchmark.dataset import Benchmark
from server.benchmark.synth import generate
from server.scoring.labels import LabelTable
from server.scoring.predictions import read_predictions
from server.scoring.report import score_report
from tests.scoring.schema import valid_report


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    root = tmp_path_factory.mktemp("scored") / "synthetic"
    generate(root, seed=11, n_train=0, n_public=400, n_private=400, resolution=(16, 16), workers=1)
    return Benchmark.open(root)


def latent(bench: Benchmark) -> dict[str, float]:
    lines = (bench.root / "synthetic" / "latent.csv").read_text().splitlines()[1:]
    return {name: float(v) for name, v in (line.split(";") for line in lines)}


def report(table: LabelTable, scores: np.ndarray, public: LabelTable | None = None) -> dict[str, Any]:
    names = table.filenames + (public.filenames if public is not None else ())
    rows = "".join(f"{name};{float(score)!r}\n" for name, score in zip(names, scores, strict=True))
    text = "Filename;Final_score\n" + rows
    predictions = read_predictions(text.encode(), expected=names)
    return valid_report(score_report(predictions, table, public_labels=public, resamples=0).data)


def test_oracle_scores_above_0_8_and_a_high_interval_odds_ratio(bench: Benchmark) -> None:
    private = bench.read_private()
    public = bench.read_public()
    assert public is not None
    truth = latent(bench)
    scores = np.array([truth[n] for n in private.filenames + public.filenames])
    data = report(private, scores, public)
    assert data["masking"]["kendall_tau_b"]["value"] > 0.8
    assert data["clinical"]["population"] == "pooled"
    assert data["clinical"]["interval_cancer"]["odds_ratios"]["Q4"]["value"] > 2.0
    assert data["clinical"]["interval_cancer"]["odds_ratios"]["Q4"]["p_one_sided"] < 0.01


def test_constant_is_null_with_a_warning_and_random_is_about_zero(bench: Benchmark) -> None:
    private = bench.read_private()
    constant = report(private, np.full(len(private), 0.5))
    assert constant["masking"]["kendall_tau_b"]["value"] is None
    assert constant["warnings"]
    rng = np.random.default_rng(7)
    taus = [report(private, rng.random(len(private)))["masking"]["kendall_tau_b"]["value"] for _ in range(5)]
    assert all(abs(t) < 0.15 for t in taus)
    assert abs(float(np.mean(taus))) < 0.06
