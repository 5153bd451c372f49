"""Starter model, container contract v1: one ``Final_score`` per image of ``/input/manifest.csv``.

The image starts this file with no arguments. It reads the manifest (one column ``Filename``) and
the PNGs in ``/input/images/``, and writes ``/output/predictions.csv`` with the columns
``Filename;Final_score`` (higher = more masking). Replace `score_image` with your model; keep the
rest. The base image has Debian's numpy and Pillow; nothing can be installed or downloaded when the
model runs (no network), so bake anything else into the image.

The placeholder score is the mean brightness of the breast tissue (pixels above the dark
background): dense, bright tissue masks cancer more often. It is a toy, not a model.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

INPUT_DIR = Path(os.environ.get("CSAWM_INPUT_DIR", "/input"))
OUTPUT_DIR = Path(os.environ.get("CSAWM_OUTPUT_DIR", "/output"))
BACKGROUND = 10  # grey levels at or below this are the background around the breast


def read_manifest(path: Path) -> list[str]:
    """The file names listed under the header ``Filename``."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [row["Filename"].strip() for row in csv.DictReader(handle) if row.get("Filename")]


def score_image(path: Path) -> float:
    """Masking score of one image: higher = more masking. Replace this with your model."""
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    tissue = pixels[pixels > BACKGROUND]
    return float(tissue.mean()) / 255.0 if tissue.size else 0.0


def main() -> int:
    started = time.monotonic()
    names = read_manifest(INPUT_DIR / "manifest.csv")
    rows = [(name, score_image(INPUT_DIR / "images" / name)) for name in names]
    with (OUTPUT_DIR / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["Filename", "Final_score"])
        writer.writerows((name, f"{score:.6f}") for name, score in rows)
    # A summary is fine; never print per-image results (the logs of the hidden run are withheld).
    print(f"scored {len(rows)} images in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
