"""``csawm score`` on the generated synthetic CSAW-M files (the session fixture of tests/conftest.py).

The statistical claims on a larger synthetic set live in tests/benchmark/test_synth_scoring.py; here
the point is the whole offline path a researcher takes: real label files of both layouts, a
predictions file, the CLI, the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from server.cli.main import app
from server.scoring.labels import read_labels

from .factories import write_predictions

runner = CliRunner()


def _latent(root: Path) -> dict[str, float]:
    lines = (root / "synthetic" / "latent.csv").read_text().splitlines()[1:]
    return {name: float(value) for name, value in (line.split(";") for line in lines)}


def _score(args: list[str]) -> dict:
    result = runner.invoke(app, ["score", *args, "--json", "--bootstrap", "200"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_oracle_constant_and_random_on_the_private_set(synthetic_benchmark: Path, tmp_path: Path) -> None:
    private_path = synthetic_benchmark / "labels" / "CSAW-M_test_private.csv"
    public_path = synthetic_benchmark / "labels" / "CSAW-M_test.csv"
    private, public = read_labels(private_path), read_labels(public_path)
    latent = _latent(synthetic_benchmark)
    names = (*private.filenames, *public.filenames)
    oracle = write_predictions(tmp_path / "oracle.csv", names, np.array([latent[n] for n in names]))
    data = _score([str(oracle), "--labels", str(private_path), "--public-labels", str(public_path)])
    assert data["label_layout"] == "rank" and data["n_images"] == len(private)
    assert data["masking"]["kendall_tau_b"]["value"] > 0.8
    low, high = data["masking"]["kendall_tau_b"]["ci95"]
    assert low < data["masking"]["kendall_tau_b"]["value"] < high
    assert data["clinical"]["population"] == "pooled" and data["clinical"]["n"] == len(names)

    constant = write_predictions(tmp_path / "constant.csv", private.filenames, np.full(len(private), 0.5))
    data = _score([str(constant), "--labels", str(private_path)])
    assert data["masking"]["kendall_tau_b"]["value"] is None
    assert "masking.kendall_tau_b: null, undefined (the predictions are constant)" in data["warnings"]

    noise = np.random.default_rng(0).random(len(private))
    random = write_predictions(tmp_path / "random.csv", private.filenames, noise)
    assert (
        abs(_score([str(random), "--labels", str(private_path)])["masking"]["kendall_tau_b"]["value"]) < 0.3
    )


def test_public_set_scored_in_levels_with_final_pred(synthetic_benchmark: Path, tmp_path: Path) -> None:
    public_path = synthetic_benchmark / "labels" / "CSAW-M_test.csv"
    public = read_labels(public_path)
    assert public.label is not None
    latent = _latent(synthetic_benchmark)
    score = np.array([latent[n] for n in public.filenames])
    # A model that predicts the GT level itself is perfect in levels.
    perfect = write_predictions(tmp_path / "perfect.csv", public.filenames, score, public.label)
    data = _score([str(perfect), "--labels", str(public_path)])
    assert data["label_layout"] == "level"
    assert data["masking"]["kendall_tau_b"]["value"] == 1.0
    assert data["masking"]["amae"] == {"value": 0.0, "ci95": [0.0, 0.0], "unit": "level"}
    assert np.trace(np.array(data["masking"]["levels"]["confusion_matrix"])) == len(public)
