"""Trivial predictors (`server.benchmark.trivial`) and what they score on the synthetic set.

Issue 10, item 3c: on the first synthetic set a one-line global-brightness rule scored tau-b 0.751,
tied with the trained ResNet-34s, so CI could not tell a good model from a trivial one. The
generator now varies the grey level of fat per image (exposure, thickness, processing), so what
ranks masking is the dense tissue's contrast against the fat around it: a local property.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from server.benchmark.dataset import Benchmark
from server.benchmark.synth import LATENT_FILE, generate
from server.benchmark.trivial import breast_brightness, brightness_scores, private_tau, trivial_scores


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    root = tmp_path_factory.mktemp("trivial") / "synthetic"
    generate(root, seed=11, n_train=0, n_public=16, n_private=400, resolution=(32, 26), workers=1)
    return Benchmark.open(root)


def test_breast_brightness_is_the_mean_above_the_background() -> None:
    pixels = np.zeros((4, 4))
    pixels[0, :2] = [100, 200]
    pixels[1, 0] = 20  # the threshold itself is background
    assert breast_brightness(pixels) == 150.0
    assert breast_brightness(np.zeros((4, 4))) == 0.0


def test_private_tau_of_a_perfect_and_a_reversed_ranking(bench: Benchmark) -> None:
    latent = dict(line.split(";") for line in (bench.root / LATENT_FILE).read_text().splitlines()[1:])
    names = bench.read_private().filenames
    up = private_tau(bench, {n: float(latent[n]) for n in names})
    down = private_tau(bench, {n: -float(latent[n]) for n in names})
    assert up is not None and down is not None
    assert up > 0.8
    assert down == pytest.approx(-up)
    assert private_tau(bench, dict.fromkeys(names, 1.0)) is None  # constant: undefined, not 0


def test_global_brightness_ranks_masking_weakly_local_contrast_well_issue_10(bench: Benchmark) -> None:
    trivial = trivial_scores(bench)
    assert trivial.breast_brightness is not None and trivial.libra_percent_density is not None
    assert 0.1 < trivial.breast_brightness < 0.5
    assert 0.2 < trivial.libra_percent_density < 0.6

    def local_contrast(name: str) -> float:
        with Image.open(bench.private_images / name) as image:
            pixels = np.asarray(image, dtype=np.float64)
        detail = np.abs(pixels - ndimage.gaussian_filter(pixels, 2.0))
        return float(detail[pixels > 20].mean())

    names = bench.read_private().filenames
    local = private_tau(bench, {n: local_contrast(n) for n in names})
    assert local is not None and local > trivial.breast_brightness + 0.2


def test_brightness_scores_cover_every_private_image(bench: Benchmark) -> None:
    scores = brightness_scores(bench)
    assert set(scores) == set(bench.read_private().filenames)
    assert all(20.0 < value < 255.0 for value in scores.values())
