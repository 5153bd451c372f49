"""``csawm score``: score a predictions file offline, with the same code the server runs.

Researchers run it on the public test set; the numbers equal what the server would compute on the
same rows. Any bad input (predictions or label file) prints one line naming the file, row and
column to stderr and exits with code 2; nothing is printed to stdout in that case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from server.cli import fail
from server.scoring.bootstrap import DEFAULT_RESAMPLES
from server.scoring.labels import LabelFileError, LabelLayout, read_labels
from server.scoring.predictions import PredictionsError, read_predictions
from server.scoring.render import render_report
from server.scoring.report import ScoringInputError, score_report


def score(
    predictions: Annotated[
        Path, typer.Argument(help="predictions.csv: Filename;Final_score[;Final_pred][;Prob_bin_1..8]")
    ],
    labels: Annotated[
        Path,
        typer.Option("--labels", help="The evaluated label file: CSAW-M_test.csv or CSAW-M_test_private.csv"),
    ],
    public_labels: Annotated[
        Path | None,
        typer.Option(
            "--public-labels",
            help="CSAW-M_test.csv, to compute the clinical section on public + evaluated rows pooled",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report JSON")] = False,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="Bootstrap resamples (0: no intervals)")
    ] = DEFAULT_RESAMPLES,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap draws")] = 0,
) -> None:
    """Score PREDICTIONS against a CSAW-M label file (Kendall tau-b, AMAE, AUC, odds ratios)."""
    if bootstrap < 0:
        raise fail(f"--bootstrap must be 0 or more; got {bootstrap}")
    try:
        table = read_labels(labels)
        if table.layout == LabelLayout.TRAIN:
            raise fail(
                f"{labels}: this is a training-layout label file (CSAW-M_train.csv); "
                "--labels needs a test-set file (CSAW-M_test.csv or CSAW-M_test_private.csv)"
            )
        public = None if public_labels is None else read_labels(public_labels, layout=LabelLayout.PUBLIC)
        expected = (*table.filenames, *(public.filenames if public is not None else ()))
        rows = read_predictions(predictions, expected=expected)
        report = score_report(rows, table, public_labels=public, resamples=bootstrap, seed=seed)
    except (LabelFileError, PredictionsError, ScoringInputError) as exc:
        raise fail(str(exc)) from None
    if json_output:
        typer.echo(json.dumps(report.data, indent=2, allow_nan=False))
    else:
        Console().print(render_report(report.data))
