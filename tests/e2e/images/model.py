"""Trivial contract-v1 models for the end-to-end test (python3 standard library only).

python3 model.py constant      Final_score 0.5 for every image (tau-b undefined: null)
python3 model.py random SEED   Final_score drawn from random.Random(SEED) (tau-b near 0)
"""

import csv
import os
import random
import sys
from pathlib import Path

INPUT_DIR = Path(os.environ.get("CSAWM_INPUT_DIR", "/input"))
OUTPUT_DIR = Path(os.environ.get("CSAWM_OUTPUT_DIR", "/output"))


def main(argv: list[str]) -> int:
    with (INPUT_DIR / "manifest.csv").open(newline="") as handle:
        names = [row["Filename"] for row in csv.DictReader(handle)]
    if argv[:1] == ["constant"]:
        scores = [0.5] * len(names)
    elif argv[:1] == ["random"] and len(argv) == 2:
        rng = random.Random(int(argv[1]))
        scores = [rng.random() for _ in names]
    else:
        print(f"usage: model.py constant | random SEED (got {argv})", file=sys.stderr)
        return 2
    with (OUTPUT_DIR / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["Filename", "Final_score"])
        writer.writerows(zip(names, scores, strict=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
