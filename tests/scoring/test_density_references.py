"""The LIBRA density comparators of every clinical endpoint (issue 14 item 2).

``clinical.<endpoint>.references.<variable>`` scores a LIBRA column exactly as the model's score.
Provenance of the structure checked on the synthetic set: the paper's table (facts §4.3) has the
models' interval-cancer OR Q4 (3.26, 3.17) above percent density's (2.10), which is above 1, and
breast area below chance (AUC 0.446, OR Q4 0.60).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.benchmark.dataset import Benchmark
from server.benchmark.synth import generate
from server.scoring.clinical import roc_auc
from server.scoring.memo import TEST_SET_PARTS

from .factories import predictions, private_labels, public_labels, quartile_odds_ratios
from .schema import scored


def test_references_equal_the_clinical_functions_on_each_libra_column() -> None:
    private, private_latent = private_labels(120)
    public, public_latent = public_labels(96)
    names = (*private.filenames, *public.filenames)
    data = scored(
        predictions(names, np.r_[private_latent, public_latent]), private, public_labels=public, resamples=40
    ).data
    endpoint = np.r_[private.if_interval_cancer, public.if_interval_cancer]
    for name in ("percent_density", "dense_area", "breast_area"):
        values = np.r_[getattr(private, f"libra_{name}"), getattr(public, f"libra_{name}")]
        entry = data["clinical"]["interval_cancer"]["references"][name]
        assert entry["n"] == 216 and entry["n_positive"] == int(endpoint.sum())
        assert entry["auc"]["value"] == pytest.approx(roc_auc(endpoint, values).value)
        assert entry["auc"]["ci95"] is not None
        for quartile, expected in quartile_odds_ratios(endpoint, values).items():
            ratio = entry["odds_ratios"][quartile]
            assert ratio["table"] == [list(expected.table[0]), list(expected.table[1])]
            assert ratio["value"] == pytest.approx(expected.value)
            assert ratio["p_one_sided"] == pytest.approx(expected.p_one_sided)
        assert entry["odds_ratios"]["Q4"]["bootstrap_ci95"] is not None


def test_rows_without_a_libra_value_are_left_out_of_that_comparator() -> None:
    labels, latent = private_labels(64)
    density = labels.libra_percent_density.copy()
    density[[0, 5, 9]] = np.nan
    labels = type(labels)(**{**labels.__dict__, "libra_percent_density": density})
    data = scored(predictions(labels.filenames, latent), labels, resamples=20).data
    entry = data["clinical"]["composite"]["references"]["percent_density"]
    present = ~np.isnan(density)
    assert entry["n"] == 61
    assert entry["auc"]["value"] == pytest.approx(
        roc_auc(labels.if_composite[present], density[present]).value
    )
    assert data["clinical"]["composite"]["references"]["dense_area"]["n"] == 64
    assert (
        "clinical references percent_density: 3 row(s) without a LIBRA value are left out of that "
        "comparator (61 remain)"
    ) in data["warnings"]


def test_references_are_computed_once_per_test_set_and_seed_and_copied_out() -> None:
    labels, latent = private_labels(48, seed=9)
    TEST_SET_PARTS.clear()
    first = scored(predictions(labels.filenames, latent), labels, resamples=30, seed=2).data
    first["clinical"]["interval_cancer"]["references"]["dense_area"]["n"] = -1  # a caller's edit
    second = scored(predictions(labels.filenames, -latent), labels, resamples=30, seed=2).data
    assert second["clinical"]["interval_cancer"]["references"]["dense_area"]["n"] == 48
    other_seed = scored(predictions(labels.filenames, latent), labels, resamples=30, seed=3).data
    assert (
        other_seed["clinical"]["interval_cancer"]["references"]["dense_area"]["auc"]["ci95"]
        != second["clinical"]["interval_cancer"]["references"]["dense_area"]["auc"]["ci95"]
    )
    edited = labels.libra_dense_area.copy()
    edited[0] += 1000.0
    changed = type(labels)(**{**labels.__dict__, "libra_dense_area": edited})
    third = scored(predictions(labels.filenames, latent), changed, resamples=30, seed=2).data
    assert (
        third["clinical"]["interval_cancer"]["references"]["dense_area"]["odds_ratios"]["Q4"]["table"]
        != second["clinical"]["interval_cancer"]["references"]["dense_area"]["odds_ratios"]["Q4"]["table"]
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    root: Path = tmp_path_factory.mktemp("density") / "synthetic"
    generate(root, seed=11, n_train=0, n_public=400, n_private=400, resolution=(16, 16), workers=1)
    return Benchmark.open(root)


def test_density_rows_reproduce_the_papers_structure_on_the_synthetic_set(synthetic: Benchmark) -> None:
    private, public = synthetic.read_private(), synthetic.read_public()
    assert public is not None
    lines = (synthetic.root / "synthetic" / "latent.csv").read_text().splitlines()[1:]
    latent = {name: float(value) for name, value in (line.split(";") for line in lines)}
    names = (*private.filenames, *public.filenames)
    data = scored(
        predictions(names, np.array([latent[n] for n in names])), private, public_labels=public, resamples=0
    ).data
    interval = data["clinical"]["interval_cancer"]
    refs = interval["references"]
    model_q4 = interval["odds_ratios"]["Q4"]["value"]
    density_q4 = refs["percent_density"]["odds_ratios"]["Q4"]["value"]
    assert model_q4 > density_q4 > 1.0
    assert refs["percent_density"]["auc"]["value"] > 0.5 > refs["breast_area"]["auc"]["value"]
    assert refs["breast_area"]["odds_ratios"]["Q4"]["value"] < 1.0
