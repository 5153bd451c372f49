"""Container entrypoint: predictions for every image in the manifest (model container contract v1).

Reads ``/input/manifest.csv`` (one column ``Filename``) and ``/input/images/<Filename>``, writes
``/output/predictions.csv`` in the CSAW-M authors' inference format::

    Filename;Prob_bin_1;...;Prob_bin_8;Final_pred;Final_score

with the authors' rules (``reference_models.rules``): one-hot = argmax and expectation / 7;
multi-hot = raw-threshold scan for the class, running-max monotone heads for probabilities and score.
Batched; uses the GPU when torch sees one. Exit 0 on success, 1 on any failure (message on stderr).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from reference_models.data import ImageDataset, eval_transform
from reference_models.model import load_trained
from reference_models.rules import N_LEVELS, ModelKind, Outputs, outputs_for
from reference_models.runtime import configure_threads, pick_device

INPUT_DIR = Path(os.environ.get("CSAWM_INPUT_DIR", "/input"))
OUTPUT_DIR = Path(os.environ.get("CSAWM_OUTPUT_DIR", "/output"))
WEIGHTS_DIR = Path(os.environ.get("CSAWM_WEIGHTS_DIR", "/opt/csawm/weights"))
IMAGES_DIR = INPUT_DIR / "images"
MANIFEST = INPUT_DIR / "manifest.csv"
PREDICTIONS = OUTPUT_DIR / "predictions.csv"
BATCH_SIZE = int(os.environ.get("CSAWM_BATCH_SIZE", "16"))

HEADER = ["Filename", *[f"Prob_bin_{i}" for i in range(1, N_LEVELS + 1)], "Final_pred", "Final_score"]


def read_manifest(path: Path) -> list[str]:
    """File names from a one-column CSV with header ``Filename``; ValueError on a bad file."""
    if not path.is_file():
        raise ValueError(f"manifest not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if not rows or [cell.strip() for cell in rows[0]] != ["Filename"]:
        raise ValueError(f"{path}: expected a header row 'Filename', got {rows[0] if rows else 'nothing'}")
    names = [row[0].strip() for row in rows[1:]]
    seen: set[str] = set()
    for row_number, name in enumerate(names, start=1):
        if not name or "/" in name or name in {".", ".."}:
            raise ValueError(f"{path}: row {row_number}: bad file name {name!r}")
        if name in seen:
            raise ValueError(f"{path}: row {row_number}: duplicate file name {name!r}")
        seen.add(name)
    if not names:
        raise ValueError(f"{path}: no images listed")
    return names


def read_weights_config(weights_dir: Path) -> tuple[ModelKind, tuple[int, int]]:
    """Model kind and (height, width) from ``config.json`` written by ``reference_models.train``."""
    path = weights_dir / "config.json"
    if not path.is_file():
        raise ValueError(f"weights config not found: {path}")
    try:
        record = json.loads(path.read_text())
        kind = ModelKind.parse(str(record["kind"]))
        height, width = (int(v) for v in record["resolution"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: needs 'kind' and 'resolution' [height, width]: {exc}") from exc
    return kind, (height, width)


def predict(
    images_dir: Path,
    filenames: Sequence[str],
    weights_dir: Path,
    *,
    batch_size: int = BATCH_SIZE,
    device: str | None = None,
    log: bool = True,
) -> Outputs:
    """Run the model in `weights_dir` on `filenames` (in that order) and apply the score rules."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    kind, resolution = read_weights_config(weights_dir)
    torch_device = pick_device(device)
    if torch_device.type == "cpu":
        configure_threads()
    model = load_trained(kind, weights_dir / "model.pt").to(torch_device).eval()
    dataset = ImageDataset(images_dir, filenames, range(len(filenames)), resolution, eval_transform())
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    logits = np.zeros((len(filenames), kind.n_outputs), dtype=np.float64)
    started = time.monotonic()
    done = 0
    with torch.inference_mode():
        for images, indices in loader:
            batch_logits = model(images.to(torch_device)).float().cpu().numpy()
            logits[indices.numpy()] = batch_logits
            done += len(indices)
            if log:
                print(
                    f"predicted {done}/{len(filenames)} images ({time.monotonic() - started:.1f}s)",
                    flush=True,
                )
    return outputs_for(kind, logits)


def write_predictions(path: Path, filenames: Sequence[str], outputs: Outputs) -> None:
    """Write the authors' CSV (``;``-separated) atomically: a temporary file renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\n")
        writer.writerow(HEADER)
        for i, name in enumerate(filenames):
            probs = [f"{p:.8f}" for p in outputs.probs[i]]
            writer.writerow([name, *probs, int(outputs.pred[i]), f"{outputs.score[i]:.10f}"])
    tmp.replace(path)


def main() -> int:
    try:
        filenames = read_manifest(MANIFEST)
        outputs = predict(IMAGES_DIR, filenames, WEIGHTS_DIR)
        write_predictions(PREDICTIONS, filenames, outputs)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {PREDICTIONS} ({len(filenames)} rows)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
