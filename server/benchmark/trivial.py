"""Trivial predictors of masking, the floor a trained model has to clear on a benchmark.

A benchmark tells models apart only if what a one-line rule can read off an image scores clearly
below a trained model (issue 10, item 3c). Two such rules:

* **breast brightness**: the mean grey level of the pixels brighter than ``BREAST_THRESHOLD``
  (the breast: the background of a preprocessed CSAW-M image is black),
  ``score = mean(x[x > 20])``; more dense tissue is brighter and masks more;
* **LIBRA percent density**: the ``Libra_percent_density`` column of the label file itself, the
  automated density measure the CSAW-M authors compare their models with.

Both are scored with the server's own scorer (`server.scoring.report.score_report`) against the
private labels, so the numbers are the ones a submission making these predictions would get.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from server.benchmark.dataset import Benchmark
from server.scoring.predictions import read_predictions
from server.scoring.report import score_report
from server.scoring.results import Report

BREAST_THRESHOLD = 20
"""Grey level above which a pixel counts as breast (background 0..~10 after the noise)."""


def breast_brightness(pixels: np.ndarray) -> float:
    """Mean grey level of the breast pixels (``> BREAST_THRESHOLD``); 0.0 for an all-dark image."""
    breast = pixels[pixels > BREAST_THRESHOLD]
    return float(breast.mean()) if breast.size else 0.0


@dataclass(frozen=True)
class TrivialScores:
    """Private-set Kendall tau-b of each trivial predictor (None when undefined)."""

    breast_brightness: float | None
    libra_percent_density: float | None


def private_tau(benchmark: Benchmark, scores: dict[str, float]) -> float | None:
    """tau-b of `scores` (file name -> Final_score) on the private set, as the server scores it."""
    labels = benchmark.read_private()
    rows = "".join(f"{name};{scores[name]!r}\n" for name in labels.filenames)
    predictions = read_predictions(("Filename;Final_score\n" + rows).encode(), expected=labels.filenames)
    report = Report.read(score_report(predictions, labels, resamples=0).data)
    value = report.kendall_tau_b.value if report else None
    return None if value is None else float(value)


def brightness_scores(benchmark: Benchmark) -> dict[str, float]:
    """Breast brightness of every private image."""
    scores = {}
    for name in benchmark.read_private().filenames:
        with Image.open(benchmark.private_images / name) as image:
            scores[name] = breast_brightness(np.asarray(image.convert("L"), dtype=np.float64))
    return scores


def trivial_scores(benchmark: Benchmark) -> TrivialScores:
    """Both trivial predictors scored on the benchmark's private set."""
    labels = benchmark.read_private()
    density = dict(zip(labels.filenames, (float(v) for v in labels.libra_percent_density), strict=True))
    return TrivialScores(
        breast_brightness=private_tau(benchmark, brightness_scores(benchmark)),
        libra_percent_density=private_tau(benchmark, density),
    )
