"""``csawm score`` end to end on real files (server/cli/score.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from server.cli.main import app
from server.scoring.labels import read_labels
from server.scoring.predictions import read_predictions
from server.scoring.report import score_report

from .factories import private_labels, public_labels, write_labels, write_predictions
from .schema import scored, valid_report

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    private, private_latent = private_labels(64)
    public, public_latent = public_labels(48)
    rng = np.random.default_rng(0)
    names = (*private.filenames, *public.filenames)
    score = np.concatenate([private_latent, public_latent]) + rng.normal(scale=0.5, size=112)
    return {
        "private": write_labels(private, tmp_path / "CSAW-M_test_private.csv"),
        "public": write_labels(public, tmp_path / "CSAW-M_test.csv"),
        "predictions": write_predictions(tmp_path / "predictions.csv", names[:64], score[:64]),
        "pooled_predictions": write_predictions(tmp_path / "pooled.csv", names, score),
    }


def test_json_output_equals_the_library_report(files: dict[str, Path]) -> None:
    result = runner.invoke(
        app,
        [
            "score",
            str(files["predictions"]),
            "--labels",
            str(files["private"]),
            "--json",
            "--bootstrap",
            "100",
        ],
    )
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    labels = read_labels(files["private"])
    expected = scored(read_predictions(files["predictions"]), labels, resamples=100, seed=0).data
    assert valid_report(printed) == json.loads(json.dumps(expected))
    # A stored predictions file, read expecting every labelled image, is re-scored the same.
    rows = read_predictions(files["predictions"], expected=labels.filenames)
    assert score_report(rows, labels, resamples=100, seed=0).data == expected
    assert printed["bootstrap"] == {
        "resamples": 100,
        "seed": 0,
        "degenerate": printed["bootstrap"]["degenerate"],
    }


def test_public_labels_give_the_pooled_clinical_section(files: dict[str, Path]) -> None:
    args = ["score", str(files["pooled_predictions"]), "--labels", str(files["private"])]
    args += ["--public-labels", str(files["public"]), "--json", "--bootstrap", "50", "--seed", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    data = valid_report(json.loads(result.stdout))
    assert data["clinical"]["population"] == "pooled" and data["clinical"]["n"] == 112
    assert data["bootstrap"]["seed"] == 3 and data["n_images"] == 64


def test_human_table(files: dict[str, Path]) -> None:
    result = runner.invoke(
        app, ["score", str(files["predictions"]), "--labels", str(files["private"]), "--bootstrap", "50"]
    )
    assert result.exit_code == 0, result.stderr
    for text in (
        "Masking agreement (rank layout, 64 images)",
        "Kendall tau-b",
        "Expert_5",
        "interval cancer",
        "LIBRA percent density",
        "P / R / F1, levels 1-2",
        "against each expert's own annotation",
    ):
        assert text in result.stdout


def _fails(args: list[str]) -> str:
    result = runner.invoke(app, ["score", *args])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bad_predictions_row_is_one_line_naming_row_and_column(
    files: dict[str, Path], tmp_path: Path
) -> None:
    text = files["predictions"].read_text().splitlines()
    name = text[3].split(";")[0]
    text[3] = f"{name};nan"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(text) + "\n")
    line = _fails([str(bad), "--labels", str(files["private"])])
    assert line == f"error: {bad}, row 3 (line 4), column 'Final_score': 'nan' is not a finite number"


def test_predictions_missing_a_labelled_image(files: dict[str, Path], tmp_path: Path) -> None:
    text = files["predictions"].read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(text[:-1]) + "\n")
    line = _fails([str(short), "--labels", str(files["private"])])
    assert "column 'Filename'" in line and "no row for test image 'private_64.png'" in line


def test_pooled_run_needs_the_public_rows(files: dict[str, Path]) -> None:
    line = _fails(
        [
            str(files["predictions"]),
            "--labels",
            str(files["private"]),
            "--public-labels",
            str(files["public"]),
        ]
    )
    assert "no row for test image 'test_1.png'" in line


def test_label_file_of_the_wrong_layout(files: dict[str, Path]) -> None:
    line = _fails(
        [
            str(files["pooled_predictions"]),
            "--labels",
            str(files["private"]),
            "--public-labels",
            str(files["private"]),
        ]
    )
    assert "private-layout file" in line and "public layout" in line


def test_training_labels_are_refused(files: dict[str, Path], tmp_path: Path) -> None:
    public = read_labels(files["public"])
    train = tmp_path / "CSAW-M_train.csv"
    lines = files["public"].read_text().splitlines()
    header = lines[0].split(";")
    drop = [i for i, column in enumerate(header) if column.startswith("Expert_")]
    rows = [";".join(c for i, c in enumerate(line.split(";")) if i not in drop) for line in lines]
    train.write_text("\n".join(rows) + "\n")
    names = public.filenames
    predictions = write_predictions(tmp_path / "p.csv", names, np.arange(len(names), dtype=float))
    line = _fails([str(predictions), "--labels", str(train)])
    assert "training-layout label file" in line


def test_missing_and_empty_files(files: dict[str, Path], tmp_path: Path) -> None:
    assert "cannot read the file" in _fails([str(tmp_path / "nope.csv"), "--labels", str(files["private"])])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "the file is empty" in _fails([str(empty), "--labels", str(files["private"])])
    assert "cannot read the file" in _fails([str(files["predictions"]), "--labels", str(tmp_path / "x.csv")])


def test_negative_bootstrap_is_a_usage_error(files: dict[str, Path]) -> None:
    line = _fails([str(files["predictions"]), "--labels", str(files["private"]), "--bootstrap", "-1"])
    assert line == "error: --bootstrap must be 0 or more; got -1"
