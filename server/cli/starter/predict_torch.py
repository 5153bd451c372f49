"""Starter PyTorch model, container contract v1: predictions for every image of the manifest.

The image starts this file with no arguments. It reads ``/input/manifest.csv`` (one column
``Filename``) and the PNGs in ``/input/images/``, and writes ``/output/predictions.csv`` in the
CSAW-M authors' inference format::

    Filename;Prob_bin_1;...;Prob_bin_8;Final_pred;Final_score

``Prob_bin_k`` = softmax probability of masking level k, ``Final_pred`` = the most probable level,
``Final_score`` = the expected level sum_k k * p_k (higher = more masking; the leaderboard ranks by
it). Replace `Net` with your network and put its trained ``state_dict`` at ``weights/model.pt``
(``torch.save(net.state_dict(), "weights/model.pt")``); without it the network is untrained, which
is enough for ``csawm check`` but scores nothing. Uses the GPU when torch sees one.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

INPUT_DIR = Path(os.environ.get("CSAWM_INPUT_DIR", "/input"))
OUTPUT_DIR = Path(os.environ.get("CSAWM_OUTPUT_DIR", "/output"))
WEIGHTS = Path(os.environ.get("CSAWM_WEIGHTS", Path(__file__).resolve().parent / "weights" / "model.pt"))
N_LEVELS = 8
INPUT_SIZE = (160, 128)  # (height, width) the network sees; the real CSAW-M images are 632x512
BATCH_SIZE = 16


class Net(torch.nn.Module):
    """A small CNN: three strided convolutions, global average pooling, 8 logits (one per level)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        channels = 1
        for width in (16, 32, 64):
            layers += [torch.nn.Conv2d(channels, width, 3, stride=2, padding=1), torch.nn.ReLU()]
            channels = width
        self.features = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(channels, N_LEVELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def read_manifest(path: Path) -> list[str]:
    """The file names listed under the header ``Filename``."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [row["Filename"].strip() for row in csv.DictReader(handle) if row.get("Filename")]


def load_image(path: Path) -> torch.Tensor:
    """One grey image as a 1xHxW float tensor in [-1, 1] at `INPUT_SIZE`."""
    image = Image.open(path).convert("L").resize((INPUT_SIZE[1], INPUT_SIZE[0]), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(pixels).unsqueeze(0)


def load_net(device: torch.device) -> Net:
    torch.manual_seed(0)  # the untrained network is the same on every run
    net = Net()
    if WEIGHTS.is_file():
        net.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    else:
        print(f"warning: no trained weights at {WEIGHTS}; the network is untrained", file=sys.stderr)
    return net.to(device).eval()


def main() -> int:
    started = time.monotonic()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = load_net(device)
    names = read_manifest(INPUT_DIR / "manifest.csv")
    levels = torch.arange(1, N_LEVELS + 1, dtype=torch.float64)
    header = ["Filename", *[f"Prob_bin_{k}" for k in range(1, N_LEVELS + 1)], "Final_pred", "Final_score"]
    with (OUTPUT_DIR / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(header)
        with torch.inference_mode():
            for start in range(0, len(names), BATCH_SIZE):
                batch = names[start : start + BATCH_SIZE]
                images = torch.stack([load_image(INPUT_DIR / "images" / name) for name in batch])
                probs = torch.softmax(net(images.to(device)).double(), dim=1).cpu()
                for name, p in zip(batch, probs, strict=True):
                    score = float((p * levels).sum())
                    pred = int(p.argmax()) + 1
                    writer.writerow([name, *(f"{v:.6f}" for v in p.tolist()), pred, f"{score:.6f}"])
    # A summary is fine; never print per-image results (the logs of the hidden run are withheld).
    print(f"predicted {len(names)} images on {device} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
