"""The synthetic benchmark is learnable and realistic (issue 2, "Show").

Computed here with scipy directly, on a generated set of 400 public and 400 private rows at 32x26,
so these tests do not depend on the scoring module; ``test_synth_scoring.py`` repeats the headline
checks through ``server.scoring.report``.

Private ground truth as the authors' code builds it (evaluation facts §1.1): re-rank each expert's
raw positions within the evaluated rows (average method), GT = floor(median over experts).
Octile-paired quartiles (§1.7): sort by score (ties by file name), bins 1-7 of floor(N/8) rows,
bin 8 the remainder, Q1 = bins 1-2, Q4 = bins 7-8.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.stats import fisher_exact, kendalltau, rankdata

from server.benchmark.synth import Split, generate, simulate_labels
from server.scoring.labels import LabelTable, read_labels

N = 400


@pytest.fixture(scope="module")
def mid_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mid") / "synthetic"
    generate(root, seed=11, n_train=40, n_public=N, n_private=N, resolution=(32, 26), workers=1)
    return root


def latent(root: Path, table: LabelTable) -> np.ndarray:
    lines = (root / "synthetic" / "latent.csv").read_text().splitlines()[1:]
    values = {name: float(v) for name, v in (line.split(";") for line in lines)}
    return np.array([values[name] for name in table.filenames])


def private_gt(table: LabelTable) -> np.ndarray:
    return np.asarray(np.floor(np.median(expert_reranks(table), axis=1)), dtype=np.float64)


def expert_reranks(table: LabelTable) -> np.ndarray:
    assert table.experts is not None
    return np.column_stack([rankdata(table.experts[:, k], method="average") for k in range(5)])


def q4_vs_q1_table(score: np.ndarray, positive: np.ndarray, filenames: tuple[str, ...]) -> list[list[int]]:
    order = np.lexsort((np.array(filenames), score))
    n8 = len(score) // 8
    q1, q4 = order[: 2 * n8], order[6 * n8 :]
    a, c = int(positive[q4].sum()), int(positive[q1].sum())
    return [[a, len(q4) - a], [c, len(q1) - c]]


@pytest.fixture(scope="module")
def private(mid_benchmark: Path) -> LabelTable:
    return read_labels(mid_benchmark / "labels" / "CSAW-M_test_private.csv")


@pytest.fixture(scope="module")
def public(mid_benchmark: Path) -> LabelTable:
    return read_labels(mid_benchmark / "labels" / "CSAW-M_test.csv")


def test_oracle_latent_masking_ranks_the_private_gt(mid_benchmark: Path, private: LabelTable) -> None:
    tau = kendalltau(latent(mid_benchmark, private), private_gt(private), variant="b").statistic
    assert tau > 0.8


def test_oracle_latent_masking_ranks_the_public_label(mid_benchmark: Path, public: LabelTable) -> None:
    assert public.label is not None
    tau = kendalltau(latent(mid_benchmark, public), public.label, variant="b").statistic
    assert tau > 0.75  # levels have 8 values: heavy ties cap tau-b below the rank-GT value


def test_constant_prediction_is_undefined(private: LabelTable) -> None:
    tau = kendalltau(np.full(len(private), 0.5), private_gt(private), variant="b").statistic
    assert np.isnan(tau)  # tau-b divides by the square root of the predictions' untied pairs: 0


def test_random_predictions_score_about_zero(private: LabelTable) -> None:
    gt = private_gt(private)
    rng = np.random.default_rng(2024)
    taus = np.array([kendalltau(rng.random(len(gt)), gt, variant="b").statistic for _ in range(20)])
    assert np.all(np.abs(taus) < 0.15)
    assert abs(taus.mean()) < 0.03  # 20 draws: standard error about 0.0075


def test_interval_cancer_odds_ratio_q4_vs_q1_is_clearly_above_one(
    mid_benchmark: Path, private: LabelTable
) -> None:
    table = q4_vs_q1_table(latent(mid_benchmark, private), private.if_interval_cancer, private.filenames)
    (a, b), (c, d) = table
    odds_ratio = (a * d) / (b * c) if b * c else np.inf
    assert odds_ratio > 2.0
    assert fisher_exact(table, alternative="greater").pvalue < 0.01


def test_pooled_composite_odds_ratio_rises_with_masking(
    mid_benchmark: Path, private: LabelTable, public: LabelTable
) -> None:
    score = np.concatenate([latent(mid_benchmark, public), latent(mid_benchmark, private)])
    positive = np.concatenate([public.if_composite, private.if_composite])
    names = public.filenames + private.filenames
    table = q4_vs_q1_table(score, positive, names)
    assert fisher_exact(table, alternative="greater").pvalue < 0.01


def test_libra_density_tracks_masking_more_weakly_than_every_expert(
    mid_benchmark: Path, private: LabelTable
) -> None:
    m = latent(mid_benchmark, private)
    libra = kendalltau(private.libra_percent_density, m).statistic
    experts = [kendalltau(r, m).statistic for r in expert_reranks(private).T]
    assert 0.2 < libra < min(experts)
    dense_area = kendalltau(private.libra_dense_area, m).statistic
    breast_area = kendalltau(private.libra_breast_area, m).statistic
    assert dense_area < min(experts)
    assert breast_area < 0  # fattier breasts are larger: weakly protective, as in the paper


def test_experts_disagree_like_radiologists(private: LabelTable, public: LabelTable) -> None:
    """Between-expert tau-b: real 0.29-0.60 (private ranks) and 0.31-0.56 (public levels)."""
    assert public.experts is not None
    reranks = expert_reranks(private)
    for a, b in itertools.combinations(range(5), 2):
        assert 0.25 < kendalltau(reranks[:, a], reranks[:, b]).statistic < 0.75
        assert 0.25 < kendalltau(public.experts[:, a], public.experts[:, b]).statistic < 0.8
    gt = private_gt(private)
    vs_gt = [kendalltau(r, gt).statistic for r in reranks.T]
    assert min(vs_gt) < 0.66  # one clearly weaker expert, as the real Expert 3 (0.47 against 0.75)
    assert max(vs_gt) - min(vs_gt) > 0.08


def test_images_encode_masking_locally(mid_benchmark: Path, private: LabelTable) -> None:
    """The data are learnable from pixels, but not from the global grey level (issue 10, 3c): the
    dense tissue's local contrast against the fat ranks the latent well, mean breast brightness
    (the fat level varies per image) clearly less."""
    folder = mid_benchmark / "images" / "preprocessed" / "private"
    brightness, contrast = [], []
    for name in private.filenames:
        with Image.open(folder / name) as image:
            pixels = np.asarray(image, dtype=np.float64)
        breast = pixels > 20
        brightness.append(pixels[breast].mean())
        contrast.append(np.abs(pixels - ndimage.gaussian_filter(pixels, 2.0))[breast].mean())
    m = latent(mid_benchmark, private)
    assert kendalltau(contrast, m).statistic > 0.6
    assert kendalltau(contrast, private_gt(private)).statistic > 0.55
    assert kendalltau(brightness, m).statistic < kendalltau(contrast, m).statistic - 0.2


def test_both_lateralities_face_the_same_way(mid_benchmark: Path, private: LabelTable) -> None:
    """Preprocessed images are mirrored to one orientation: the chest wall (the one abrupt rise of the
    column profile from the black padding) is left of centre for L and R alike, and the breast
    centroid is centred, as the authors' preprocessing does."""
    folder = mid_benchmark / "images" / "preprocessed" / "private"
    seen = {"L": 0, "R": 0}
    for name, side in zip(private.filenames, private.laterality, strict=True):
        with Image.open(folder / name) as image:
            pixels = np.asarray(image, dtype=np.float64)
        profile = pixels.mean(axis=0)
        width = profile.shape[0]
        assert np.argmax(np.diff(profile)) < width // 2, (name, side)
        breast = np.clip(pixels - 20.0, 0.0, None).sum(axis=0)
        centroid = (breast * np.arange(width)).sum() / breast.sum()
        assert abs(centroid - (width - 1) / 2) < 0.15 * width, (name, side)
        seen[side] += 1
    assert seen["L"] > 100 and seen["R"] > 100


def test_endpoint_prevalence_like_the_real_pooled_test_set() -> None:
    """Real pooled 972 images: 92 interval (9.5 %), 124 large invasive (12.8 %), 177 composite (18.2 %)."""
    labels = simulate_labels(seed=0, n_train=0, n_public=497, n_private=475)
    pooled = [labels.splits[s].cohort for s in (Split.TEST, Split.PRIVATE)]
    n = sum(len(c) for c in pooled)
    interval = sum(int(c.if_interval_cancer.sum()) for c in pooled) / n
    large = sum(int(c.if_large_invasive_cancer.sum()) for c in pooled) / n
    composite = sum(int(c.if_composite.sum()) for c in pooled) / n
    cancer = sum(int(c.if_cancer.sum()) for c in pooled) / n
    assert 0.065 < interval < 0.125
    assert 0.095 < large < 0.16
    assert 0.145 < composite < 0.22
    assert 0.25 < cancer < 0.37  # 31 + 272 of 972
    for c in pooled:
        assert np.array_equal(c.if_composite, c.if_interval_cancer | c.if_large_invasive_cancer)
        assert np.all(c.if_cancer >= c.if_composite)


def test_training_labels_follow_one_expert_bins() -> None:
    """Each training label is one expert's placement: it agrees with the latent about as well as a
    single expert's public levels do, and every level occurs."""
    labels = simulate_labels(seed=4, n_train=2000, n_public=497, n_private=16)
    train, public = labels.splits[Split.TRAIN], labels.splits[Split.TEST]
    assert train.label is not None and public.experts is not None and train.annotator is not None
    counts = np.bincount(train.label, minlength=9)[1:]
    assert np.all(counts > 0.05 * len(train))
    tau_train = kendalltau(train.label, train.cohort.masking).statistic
    m = public.cohort.masking
    tau_expert = np.mean([kendalltau(public.experts[:, k], m).statistic for k in range(5)])
    assert abs(tau_train - tau_expert) < 0.1
    assert set(train.annotator.tolist()) == {0, 1, 2, 3, 4}
