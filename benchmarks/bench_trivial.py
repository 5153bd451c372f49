"""How far below the trained models a trivial predictor scores on the synthetic set (issue 10, 3c).

    .venv/bin/python benchmarks/bench_trivial.py [--resolution 64x52] [--seed 0]
        [--benchmark DIR] [--predictions NAME=PREDICTIONS.csv ...]

Generates the demo's synthetic benchmark (497 public, 475 private images, no training split) in a
temp dir, or takes ``--benchmark DIR`` (e.g. ``.csawm/benchmark`` after ``make demo``), and prints
the private-set Kendall tau-b, through the server's scorer, of

* the latent masking the labels were simulated from (the ceiling: what a perfect model gets),
* breast brightness, ``mean(x[x > 20])`` (`server.benchmark.trivial`),
* ``Libra_percent_density`` from the label file,
* each ``--predictions`` file (e.g. a reference model's ``predictions.csv``; the demo's trained
  baselines' tau-b is on its leaderboard and in ``benchmarks/bench_demo.py``'s output).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from server.benchmark.dataset import Benchmark
from server.benchmark.synth import LATENT_FILE, generate, parse_resolution
from server.benchmark.trivial import private_tau, trivial_scores
from server.scoring.predictions import read_predictions


def latent_scores(root: Path) -> dict[str, float]:
    lines = (root / LATENT_FILE).read_text().splitlines()[1:]
    return {name: float(value) for name, value in (line.split(";") for line in lines)}


def report(benchmark: Benchmark, predictions: list[str]) -> None:
    trivial = trivial_scores(benchmark)
    rows = [
        ("latent masking (ceiling)", private_tau(benchmark, latent_scores(benchmark.root))),
        ("breast brightness mean(x[x > 20])", trivial.breast_brightness),
        ("Libra_percent_density", trivial.libra_percent_density),
    ]
    names = benchmark.read_private().filenames
    for item in predictions:
        label, _, path = item.partition("=")
        parsed = read_predictions(Path(path), expected=None)
        scores = dict(zip(parsed.filenames, (float(s) for s in parsed.final_score), strict=True))
        rows.append((label, private_tau(benchmark, {n: scores[n] for n in names})))
    for label, tau in rows:
        print(f"{label:<40} tau-b {'undefined' if tau is None else f'{tau:.4f}'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--benchmark", type=Path, default=None, help="an existing dataset root")
    parser.add_argument("--resolution", default="64x52", help="HxW of a generated set (the demo's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of a generated set (the demo's)")
    parser.add_argument("--predictions", action="append", default=[], help="NAME=predictions.csv")
    args = parser.parse_args()
    if args.benchmark is not None:
        report(Benchmark.open(args.benchmark), args.predictions)
        return
    with tempfile.TemporaryDirectory(prefix="csawm-bench-trivial-") as tmp:
        root = Path(tmp) / "benchmark"
        generate(
            root,
            seed=args.seed,
            n_train=0,
            n_public=497,
            n_private=475,
            resolution=parse_resolution(args.resolution),
            workers=1,
        )
        print(f"synthetic benchmark: seed {args.seed}, {args.resolution}, 475 private images")
        report(Benchmark.open(root), args.predictions)


if __name__ == "__main__":
    main()
