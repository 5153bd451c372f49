"""Throughput of the synthetic CSAW-M generator (``csawm synth``).

Measures, in one run on this machine:

1. label simulation for the default sizes (9,523 / 497 / 475 women, five experts);
2. end-to-end images/s at the default 632x512 through ``generate`` with one worker process and with
   the automatic worker count, on ``--images`` images;
3. the split of one image's cost between rendering (numpy) and PNG encoding (zlib level 1), with
   PNG encoding as the in-run baseline: the floor any generator writing these files pays;
4. with ``--full``, the whole default dataset (10,495 images at 632x512).

Usage: ``.venv/bin/python benchmarks/bench_synth.py [--images 600] [--full]``
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from server.benchmark.images import PNG_COMPRESS_LEVEL, Anatomy, ImageRenderer
from server.benchmark.synth import DEFAULT_RESOLUTION, generate, simulate_labels


def timed_generate(root: Path, n_images: int, workers: int | None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of this process (meaningful with one worker), workers used."""
    started, cpu_started = time.perf_counter(), time.process_time()
    summary = generate(
        root, seed=1, n_train=n_images - 16, n_public=8, n_private=8, workers=workers, force=True
    )
    return time.perf_counter() - started, time.process_time() - cpu_started, summary.workers


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=600, help="images for the throughput runs")
    parser.add_argument("--full", action="store_true", help="also generate the full default dataset")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}  resolution: {DEFAULT_RESOLUTION[0]}x{DEFAULT_RESOLUTION[1]}")

    started = time.perf_counter()
    simulate_labels(seed=1, n_train=9523, n_public=497, n_private=475)
    print(f"label simulation, default sizes: {time.perf_counter() - started:.2f} s")

    renderer = ImageRenderer(*DEFAULT_RESOLUTION)
    rng = np.random.default_rng(0)
    n_split = 100
    images = []
    started = time.process_time()
    for i in range(n_split):
        m = (i + 0.5) / n_split
        images.append(renderer.render(Anatomy(0.04 + 0.5 * m, 0.2 + 0.55 * m, 150.0), rng))
    render_s = (time.process_time() - started) / n_split
    started = time.process_time()
    for image in images:
        Image.fromarray(image, mode="L").save(io.BytesIO(), format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    png_s = (time.process_time() - started) / n_split
    print(
        f"CPU per image: render {render_s * 1e3:.1f} ms, PNG encode (baseline) {png_s * 1e3:.1f} ms; "
        f"render/PNG = {render_s / png_s:.2f}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        serial_s, serial_cpu, _ = timed_generate(root, args.images, workers=1)
        print(
            f"generate {args.images} images, 1 worker: {serial_s:.1f} s = {args.images / serial_s:.0f} "
            f"images/s wall, {args.images / serial_cpu:.0f} images per CPU-second"
        )
        auto_s, _, n_workers = timed_generate(root, args.images, workers=None if args.images >= 1000 else 2)
        print(
            f"generate {args.images} images, {n_workers} workers: {auto_s:.1f} s = "
            f"{args.images / auto_s:.0f} images/s (speed-up {serial_s / auto_s:.2f}x)"
        )
        if args.full:
            started = time.perf_counter()
            summary = generate(root, seed=1, force=True)
            full_s = time.perf_counter() - started
            total = sum(c["images"] for c in summary.counts.values())
            print(
                f"full default dataset: {total} images in {full_s:.0f} s = {total / full_s:.0f} images/s "
                f"({summary.workers} workers)"
            )


if __name__ == "__main__":
    main()
