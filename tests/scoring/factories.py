"""Factories of label tables, predictions and files for the scoring tests.

Tables are built with the LabelTable dataclass constructor (the reader is tested by its owner);
``write_labels`` serialises one in the exact CSAW-M column layout for the CLI tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from server.scoring import clinical
from server.scoring.labels import COLUMNS, LabelLayout, LabelTable
from server.scoring.predictions import Predictions


def _endpoints(rng: np.random.Generator, latent: np.ndarray) -> dict[str, np.ndarray]:
    """Interval / large invasive cancers whose risk rises with masking; composite = their union."""
    risk = 1 / (1 + np.exp(-(1.2 * latent - 1.8)))
    interval = (rng.random(latent.size) < risk).astype(np.int64)
    large = (rng.random(latent.size) < 0.7 * risk).astype(np.int64)
    composite = interval | large
    cancer = composite | (rng.random(latent.size) < 0.2).astype(np.int64)
    return {
        "if_cancer": cancer,
        "if_interval_cancer": interval,
        "if_large_invasive_cancer": large,
        "if_composite": composite,
    }


def _table(
    layout: LabelLayout,
    names: Sequence[str],
    label: np.ndarray | None,
    experts: np.ndarray | None,
    endpoints: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> LabelTable:
    n = len(names)
    return LabelTable(
        path=None,
        layout=layout,
        filenames=tuple(names),
        label=label,
        experts=experts,
        laterality=tuple(rng.choice(["L", "R"], size=n).tolist()),
        libra_percent_density=np.round(rng.uniform(5, 40, size=n), 3),
        libra_dense_area=np.round(rng.uniform(5, 60, size=n), 3),
        libra_breast_area=np.round(rng.uniform(50, 200, size=n), 3),
        **endpoints,
    )


def private_labels(
    n: int = 120, *, seed: int = 0, noise: float = 0.6, prefix: str = "private"
) -> tuple[LabelTable, np.ndarray]:
    """A private-layout table (raw sort positions with gaps, values above n) and its latent masking."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    columns = []
    for _ in range(5):
        order = np.argsort(np.argsort(latent + rng.normal(scale=noise, size=n)))
        gaps = np.cumsum(rng.integers(1, 3, size=n))  # positions in a longer list
        columns.append(gaps[order].astype(np.float64))
    names = [f"{prefix}_{i + 1}.png" for i in range(n)]
    table = _table(LabelLayout.PRIVATE, names, None, np.column_stack(columns), _endpoints(rng, latent), rng)
    return table, latent


def public_labels(
    n: int = 96, *, seed: int = 1, noise: float = 0.6, prefix: str = "test"
) -> tuple[LabelTable, np.ndarray]:
    """A public-layout table: each expert's sort cut into 8 equal bins, Label = median level."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    levels = np.empty((n, 5))
    for k in range(5):
        order = np.argsort(latent + rng.normal(scale=noise, size=n), kind="stable")
        for level, chunk in enumerate(np.array_split(order, 8), start=1):
            levels[chunk, k] = level
    label = np.median(levels, axis=1).astype(np.int64)
    names = [f"{prefix}_{i + 1}.png" for i in range(n)]
    table = _table(LabelLayout.PUBLIC, names, label, levels, _endpoints(rng, latent), rng)
    return table, latent


def predictions(names: Sequence[str], score: np.ndarray, final_pred: np.ndarray | None = None) -> Predictions:
    return Predictions(tuple(names), np.asarray(score, dtype=np.float64), final_pred, None)


def quartile_odds_ratios(endpoint: ArrayLike, score: ArrayLike) -> dict[str, clinical.OddsRatio]:
    """Odds ratios of Q2, Q3 and Q4 against Q1 of the score's octile quartiles, as the report's."""
    return clinical.odds_ratios_of(endpoint, clinical.octile_quartiles(score))


def _cell(value: object) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def write_labels(table: LabelTable, path: Path) -> Path:
    """Write `table` as a ';'-separated CSAW-M label file of its layout."""
    columns = COLUMNS[table.layout]
    lines = [";".join(columns)]
    for i, name in enumerate(table.filenames):
        values: dict[str, object] = {
            "Filename": name,
            "If_cancer": int(table.if_cancer[i]),
            "If_interval_cancer": int(table.if_interval_cancer[i]),
            "If_large_invasive_cancer": int(table.if_large_invasive_cancer[i]),
            "If_composite": int(table.if_composite[i]),
            "Dicom_image_laterality": table.laterality[i],
            "Dicom_window_center": 2047,
            "Dicom_window_width": 4096,
            "Dicom_photometric_interpretation": "MONOCHROME2",
            "Libra_percent_density": float(table.libra_percent_density[i]),
            "Libra_dense_area": float(table.libra_dense_area[i]),
            "Libra_breast_area": float(table.libra_breast_area[i]),
        }
        if table.label is not None:
            values["Label"] = int(table.label[i])
        if table.experts is not None:
            for k in range(5):
                values[f"Expert_{k + 1}"] = float(table.experts[i, k])
        lines.append(";".join(_cell(values[column]) for column in columns))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_predictions(
    path: Path, names: Sequence[str], score: np.ndarray, final_pred: np.ndarray | None = None
) -> Path:
    header = "Filename;Final_score" + (";Final_pred" if final_pred is not None else "")
    lines = [header]
    for i, name in enumerate(names):
        row = f"{name};{float(score[i])!r}"
        if final_pred is not None:
            row += f";{int(final_pred[i])}"
        lines.append(row)
    path.write_text("\n".join(lines) + "\n")
    return path
