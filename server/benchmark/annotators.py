"""Five simulated radiologists who sort synthetic mammograms as the CSAW-M annotation tool had them do.

How the real labels arose (``MoeinSorkhei/CSAW-M_Annotation_Tool``; evaluation facts §2.3): each
expert fully sorted the test images by pairwise comparison ("Which image is harder to be certain
there is no tumor?"). The public sort was cut into 8 equal-count bins with ``numpy.array_split``
(level 1 = least masking), and the public ``Label`` is the median of the five levels. The private
images were sorted in a longer list (images dropped from the dataset later left gaps and positions
above the row count) and never binned, so ``Expert_k`` in the private file is the raw position.
Training images were placed into one expert's bins by comparison with a representative drawn at
random from each bin.

Simulation. Expert ``k`` looking at image ``i`` perceives

    p_ik = m_i ** warp_k + density_bias_k * 0.06 * u_i + noise_k * e_ik,    e_ik ~ N(0, 1)

where ``m`` is the latent masking and ``u`` the woman's dense-tissue deviation unrelated to
masking (:mod:`server.benchmark.cohort`): ``warp`` bends the expert's scale (matters only together
with noise), ``density_bias`` is how much the expert is swayed by the amount of dense tissue beyond
what it says about masking, ``noise`` their inconsistency. A full sort orders images by one look at
each (an exact comparison sort of noisy perceptions). When placing training images an expert takes
a fresh look, shifted by their ``train_shift`` (a systematic lean towards higher or lower levels),
and the image gets the level of the bin whose representative is nearest (cuts at the midpoints
between consecutive representatives).

The constants below give between-expert tau-b of about 0.45-0.65 on the public levels and private
ranks (real: 0.29-0.60), the weakest expert clearly worse than the others (as the real Expert 3),
and a floor-median-of-re-ranks ground truth that the latent masking ranks with tau-b above 0.8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_EXPERTS = 5
SLIP_SIZE = 0.3
"""Standard deviation of a slip: an image misplaced by a wrong early comparison in a binary
insertion, which moves it far, unlike the everyday inconsistency ``noise``."""
N_LEVELS = 8
EXTRA_SORTED_SHARE = 19 / 475
"""Extra images in each expert's private sort, dropped afterwards (the real file has positions up to
about 494 for 475 rows)."""


@dataclass(frozen=True)
class Expert:
    """One simulated radiologist (see the module docstring for the perception formula)."""

    name: str
    noise: float
    slip_rate: float
    warp: float
    density_bias: float
    train_shift: float


EXPERTS: tuple[Expert, ...] = (
    Expert("Expert_1", noise=0.080, slip_rate=0.22, warp=1.00, density_bias=0.3, train_shift=0.00),
    Expert("Expert_2", noise=0.075, slip_rate=0.20, warp=0.90, density_bias=0.2, train_shift=0.02),
    Expert("Expert_3", noise=0.140, slip_rate=0.40, warp=1.25, density_bias=1.5, train_shift=-0.04),
    Expert("Expert_4", noise=0.100, slip_rate=0.32, warp=0.80, density_bias=-0.8, train_shift=0.05),
    Expert("Expert_5", noise=0.090, slip_rate=0.30, warp=1.10, density_bias=1.0, train_shift=-0.02),
)


def perceive(
    expert: Expert,
    masking: np.ndarray,
    density_deviation: np.ndarray,
    rng: np.random.Generator,
    *,
    shift: float = 0.0,
) -> np.ndarray:
    """One look by ``expert`` at each image: the perceived masking ``p_ik`` (module docstring)."""
    n = masking.shape[0]
    noise = expert.noise * rng.standard_normal(n)
    slips = np.where(rng.random(n) < expert.slip_rate, SLIP_SIZE * rng.standard_normal(n), 0.0)
    return masking**expert.warp + expert.density_bias * 0.06 * density_deviation + noise + slips + shift


def sort_positions(perceived: np.ndarray) -> np.ndarray:
    """1-based position of each image in an ascending sort of ``perceived`` (1 = least masking)."""
    order = np.argsort(perceived, kind="stable")
    positions = np.empty(perceived.shape[0], dtype=np.int64)
    positions[order] = np.arange(1, perceived.shape[0] + 1)
    return positions


def level_of_position(n: int) -> np.ndarray:
    """Level (1..8) of each 1-based position ``1..n`` when a sorted list of ``n`` is cut like
    ``numpy.array_split(sorted_list, 8)``: equal counts, the first ``n % 8`` bins one larger.

    >>> level_of_position(10).tolist()
    [1, 1, 2, 2, 3, 4, 5, 6, 7, 8]
    """
    sizes = [len(chunk) for chunk in np.array_split(np.arange(n), N_LEVELS)]
    return np.repeat(np.arange(1, N_LEVELS + 1), sizes)


def levels_from_positions(positions: np.ndarray) -> np.ndarray:
    """Levels of images whose positions ``1..n`` form a full sort of exactly these ``n`` images."""
    levels: np.ndarray = level_of_position(positions.shape[0])[positions - 1]
    return levels


def private_positions(perceived: np.ndarray, perceived_extra: np.ndarray) -> np.ndarray:
    """Positions of the evaluated images in a sort that also held ``perceived_extra`` images.

    The extra images are dropped afterwards, so the returned positions have gaps and can exceed
    ``len(perceived)``, as in the real ``CSAW-M_test_private.csv``.
    """
    n = perceived.shape[0]
    positions = sort_positions(np.concatenate([perceived, perceived_extra]))
    return positions[:n]


def place_in_bins(
    perceived_train: np.ndarray,
    perceived_public: np.ndarray,
    public_levels: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Level of each training image by comparison with one random representative per public bin.

    For every training image a representative is drawn from each of the expert's 8 bins; the image
    takes the level of the nearest representative (in the expert's perception), i.e. the cut
    between bins ``b`` and ``b + 1`` is the midpoint of their representatives.
    """
    n_train = perceived_train.shape[0]
    reps = np.empty((n_train, N_LEVELS))
    for level in range(1, N_LEVELS + 1):
        members = perceived_public[public_levels == level]
        if members.size == 0:
            raise ValueError(f"bin {level} of the public sort is empty; need at least 8 public images")
        reps[:, level - 1] = members[rng.integers(0, members.size, size=n_train)]
    reps.sort(axis=1)  # already ordered up to equal perceptions; keeps the cuts monotone
    cuts = 0.5 * (reps[:, :-1] + reps[:, 1:])
    levels: np.ndarray = 1 + (perceived_train[:, None] > cuts).sum(axis=1).astype(np.int64)
    return levels
