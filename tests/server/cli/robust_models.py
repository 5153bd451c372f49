"""Models that pass a plain ``csawm check`` and fail on the hidden set only (``check --robust`` tests).

Runs inside the sandbox (python3 with numpy and Pillow from ``csawm-base/numpy``); the behaviour is
the image's CMD argument. Each predicts every image of /input/manifest.csv unless its fault strikes.
"""

import os
import sys

import numpy as np
from PIL import Image

IN, OUT = "/input", "/output"


def names():
    with open(os.path.join(IN, "manifest.csv")) as fh:
        rows = [line.strip() for line in fh if line.strip()]
    return rows[1:]


def predict(check=None):
    files = names()
    print("predicting", len(files), "images", flush=True)
    rows = []
    for i, name in enumerate(files):
        pixels = np.asarray(Image.open(os.path.join(IN, "images", name)), dtype=np.float64)
        if check is not None:
            check(i, name, pixels)
        rows.append(f"{name},{pixels.mean() / 32:.4f}\n")
    with open(os.path.join(OUT, "predictions.csv"), "w") as fh:
        fh.write("Filename,Final_score\n" + "".join(rows))


def past_400(i, name, pixels):
    """Keeps a fixed-size buffer of 400 images, as if the hidden set were no larger."""
    if i >= 400:
        raise IndexError(f"buffer of 400 images is full at {name}")


def white(i, name, pixels):
    """Normalises by the spread of the tissue below white: nothing is below white in an all-white image."""
    tissue = pixels[pixels < 240]
    if tissue.size == 0:
        raise ZeroDivisionError(f"no tissue below white in {name}")


BEHAVIOURS = {
    "good": lambda: predict(),
    "past_400": lambda: predict(past_400),
    "white": lambda: predict(white),
}

if __name__ == "__main__":
    BEHAVIOURS[sys.argv[1]]()
