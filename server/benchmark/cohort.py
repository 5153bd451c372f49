"""The synthetic women behind a synthetic CSAW-M split: latent masking and everything it drives.

Each woman contributes one image. Her latent masking potential ``m`` (0 = fatty, nothing hides a
tumour; 1 = extremely dense, heterogeneous tissue) is drawn from Beta(1.5, 1.5). From it:

* **Image features** (rendered by :mod:`server.benchmark.images`):
  dense (fibroglandular) fraction ``d = clip(0.04 + 0.50 m + 0.06 u, 0.02, 0.75)`` and dense-tissue
  contrast ``c = clip(0.20 + 0.55 m + 0.05 v, 0.08, 0.9)``, with ``u, v ~ N(0, 1)`` anatomical
  variation unrelated to masking; breast area ``A`` (cm²) with ``log A = log 150 - 0.6 (m - 0.5)
  + 0.3 z`` (fattier breasts tend to be larger, which is why breast area is weakly *protective* in
  the paper's LIBRA rows).
* **LIBRA-like density** (what an automated density tool would measure from the image):
  percent density ``100 (0.5 d exp(0.5 e) + 0.02 e')`` clipped to [1, 95] (median about 14 %,
  95th percentile about 40 %, like the real 7-40 %), breast area ``A exp(0.05 e'')``,
  dense area = percent density x breast area / 100. The measurement noise ``e`` makes these
  correlate with ``m`` clearly more weakly than the simulated radiologists do (Kendall tau about
  0.45 against 0.55-0.7 for single experts), as in the paper (LIBRA percent density interval-cancer
  OR Q4 2.10 against 3.2 for the models; about 2.5 here against 4.9 for the latent itself).
* **Clinical endpoints**. Cancer status is drawn with ``logit P = a_s + 1.0 (m - 0.5)``, where the
  split intercept ``a_s`` is solved so the expected share of cancers matches the split's target
  (the private set is a cancer-enriched case-control sample). Among cancers, interval cancer has
  ``logit P = b + 2.2 (m - 0.5)`` (a masked cancer is missed at screening and surfaces as an interval
  cancer) and, independently, large invasive cancer ``logit P = b' + 1.0 (m - 0.5)`` (masked tumours
  grow larger before detection). Intercepts are solved so that 30.4 % of cancers are interval and
  40.9 % large invasive, the shares of the real pooled test set (92 and 124 of its 31 + 272 = 303
  cancers; drawn independently they overlap in about 38, close to the 39 derived there). The
  composite endpoint is their union by construction. Split targets: 629 / 9,523 training, 31 / 497
  public and 272 / 475 private images are cancers, so the pooled test set has about 9.5 % interval,
  12.8 % large invasive and 18 % composite positives, as the real one (92, 124, 177 of 972).
* **Laterality** ``L``/``R`` with probability 1/2 each (see :mod:`server.benchmark.images` for what
  it means for the preprocessed pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

MASKING_BETA = (1.5, 1.5)
BREAST_AREA_CM2 = 150.0

INTERVAL_SHARE_OF_CANCERS = 92 / 303
LARGE_INVASIVE_SHARE_OF_CANCERS = 124 / 303
CANCER_SLOPE = 1.0
INTERVAL_SLOPE = 2.2
LARGE_INVASIVE_SLOPE = 1.0


@dataclass(frozen=True)
class SplitPrevalence:
    """Share of cancer cases in a split (the real splits differ by design)."""

    cancer: float


TRAIN_PREVALENCE = SplitPrevalence(cancer=629 / 9523)
"""629 cancer cases among 9,523 training images (the paper's flowchart; unverified)."""
PUBLIC_PREVALENCE = SplitPrevalence(cancer=31 / 497)
"""31 cases among the 497 public test images (the paper's flowchart; unverified)."""
PRIVATE_PREVALENCE = SplitPrevalence(cancer=272 / 475)
"""272 cases and 203 controls in the private test set (the paper's flowchart; unverified)."""


@dataclass(frozen=True)
class Cohort:
    """Per-woman synthetic ground truth; every array has one entry per image, in file order."""

    masking: np.ndarray
    dense_fraction: np.ndarray
    contrast: np.ndarray
    breast_area_cm2: np.ndarray
    density_deviation: np.ndarray
    laterality: tuple[str, ...]
    if_cancer: np.ndarray
    if_interval_cancer: np.ndarray
    if_large_invasive_cancer: np.ndarray
    if_composite: np.ndarray
    libra_percent_density: np.ndarray
    libra_dense_area: np.ndarray
    libra_breast_area: np.ndarray

    def __len__(self) -> int:
        return int(self.masking.shape[0])


def draw_masking(rng: np.random.Generator, n: int) -> np.ndarray:
    """Latent masking potentials in (0, 1)."""
    return rng.beta(*MASKING_BETA, size=n)


def draw_cohort(rng: np.random.Generator, n: int, prevalence: SplitPrevalence) -> Cohort:
    """Draw ``n`` women: latent masking, image features, LIBRA columns, endpoints, laterality."""
    m = draw_masking(rng, n)
    u = rng.standard_normal(n)
    v = rng.standard_normal(n)
    z = rng.standard_normal(n)
    dense_fraction = np.clip(0.04 + 0.50 * m + 0.06 * u, 0.02, 0.75)
    contrast = np.clip(0.20 + 0.55 * m + 0.05 * v, 0.08, 0.9)
    area = BREAST_AREA_CM2 * np.exp(-0.6 * (m - 0.5) + 0.3 * z)

    libra_pd = 100.0 * (
        0.5 * dense_fraction * np.exp(0.5 * rng.standard_normal(n)) + 0.02 * rng.standard_normal(n)
    )
    libra_pd = np.clip(libra_pd, 1.0, 95.0)
    libra_area = area * np.exp(0.05 * rng.standard_normal(n))
    libra_dense = libra_pd * libra_area / 100.0

    centred = m - 0.5
    cancer = _bernoulli(rng, centred, CANCER_SLOPE, prevalence.cancer)
    interval = np.zeros(n, dtype=np.int64)
    large = np.zeros(n, dtype=np.int64)
    cases = np.flatnonzero(cancer)
    interval[cases] = _bernoulli(rng, centred[cases], INTERVAL_SLOPE, INTERVAL_SHARE_OF_CANCERS)
    large[cases] = _bernoulli(rng, centred[cases], LARGE_INVASIVE_SLOPE, LARGE_INVASIVE_SHARE_OF_CANCERS)
    laterality = tuple(np.where(rng.random(n) < 0.5, "L", "R").tolist())

    return Cohort(
        masking=m,
        dense_fraction=dense_fraction,
        contrast=contrast,
        breast_area_cm2=area,
        density_deviation=u,
        laterality=laterality,
        if_cancer=cancer,
        if_interval_cancer=interval,
        if_large_invasive_cancer=large,
        if_composite=interval | large,
        libra_percent_density=libra_pd,
        libra_dense_area=libra_dense,
        libra_breast_area=libra_area,
    )


def _bernoulli(rng: np.random.Generator, x: np.ndarray, slope: float, share: float) -> np.ndarray:
    """0/1 draws with ``logit P = a + slope x``, ``a`` solved so that ``mean(P) = share``."""
    if x.size == 0:
        return np.zeros(0, dtype=np.int64)
    intercept = solve_intercept(x, slope, share)
    p = np.asarray(expit(intercept + slope * x), dtype=np.float64)
    draws: np.ndarray = (rng.random(x.size) < p).astype(np.int64)
    return draws


def solve_intercept(x: np.ndarray, slope: float, share: float) -> float:
    """The ``a`` with ``mean(expit(a + slope x)) = share``, by bisection (the mean is increasing in a).

    >>> round(solve_intercept(np.zeros(3), 1.0, 0.5), 6)
    0.0
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share}")
    low, high = -50.0, 50.0
    for _ in range(100):
        mid = 0.5 * (low + high)
        if float(np.mean(expit(mid + slope * x))) < share:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)
