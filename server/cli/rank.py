"""``csawm rank``: rank prediction files offline with the board's statistics (issue 21 item 5).

Each file is scored by :func:`server.scoring.report.score_report` on the same resamples (same label
file, ``--bootstrap`` and ``--seed``), so the replicates are paired; the rankings, the significance
map, the tiers and the stability table come from :mod:`server.scoring.ranking` and
:mod:`server.scoring.stability`, the code the board uses, and the strata are each file's report's
own (``strata``, :mod:`server.scoring.strata`). Rows are named by file stem. Bad input (a file
missing rows or holding rows of another test set, two files with the same stem, a file whose tau-b
is undefined) prints one line naming the file (and row) to stderr and exits 2; nothing goes to
stdout. Warnings (degenerate resamples, merged density quartiles) go to stderr.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from server.cli import fail
from server.scoring import ranking
from server.scoring.bootstrap import DEFAULT_RESAMPLES
from server.scoring.labels import LabelFileError, LabelLayout, LabelTable, read_labels
from server.scoring.predictions import PredictionsError, read_predictions
from server.scoring.report import ScoringInputError, score_report
from server.scoring.results import Report
from server.scoring.stability import stability_table


@dataclass(frozen=True)
class _Scored:
    name: str
    report: Report
    tau: float  # the report's Kendall tau-b, defined (`_score_files` refuses a file without it)
    replicates: np.ndarray
    strata: dict[str, dict[str, Any]]
    differences: dict[str, dict[str, Any]]


def _score_files(
    files: list[Path], table: LabelTable, public: LabelTable | None, resamples: int, seed: int
) -> tuple[list[_Scored], list[str]]:
    """Score every file on the same resamples; raises typer.Exit(2) on the first bad one."""
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise fail(
                f"{stems[path.stem]} and {path}: two files with the same stem {path.stem!r} "
                "(rows are named by file stem)"
            )
        stems[path.stem] = path
    expected = (*table.filenames, *(public.filenames if public is not None else ()))
    warnings: list[str] = []
    scored: list[_Scored] = []
    for path in files:
        try:
            rows = read_predictions(path, expected=expected)
            report = score_report(rows, table, public_labels=public, resamples=resamples, seed=seed)
        except (PredictionsError, ScoringInputError) as exc:
            raise fail(str(exc)) from None
        read = Report.read(report.data)
        assert read is not None  # score_report writes an object
        tau = read.kendall_tau_b.value
        if tau is None:
            raise fail(
                f"{path}: Kendall tau-b is undefined (e.g. a constant Final_score); it cannot be ranked"
            )
        for message in read.warnings:
            if message.startswith("strata: "):  # of the label file: the same for every file, said once
                if message not in warnings:
                    warnings.append(message)
            elif message.startswith(("masking.kendall_tau_b", "strata.")):
                warnings.append(f"{path.stem}: {message}")
        replicates, strata = report.replicates["kendall_tau_b"], report.data["strata"]
        scored.append(_Scored(path.stem, read, tau, replicates, strata, report.data["strata_differences"]))
    return scored, warnings


def _nullable(matrix: np.ndarray) -> list[list[float | None]]:
    return [[None if math.isnan(v) else float(v) for v in row] for row in matrix]


def ranking_result(scored: list[_Scored], *, alpha: float, resamples: int, seed: int) -> dict[str, Any]:
    """The JSON of ``csawm rank --json`` (docs/cli.md), rows in rank order."""
    scored = sorted(scored, key=lambda s: (-s.tau, s.name))
    points = [s.tau for s in scored]
    replicates = np.vstack([s.replicates for s in scored])
    summary = ranking.rank_summary(replicates)
    p = ranking.significance(replicates)
    p_holm = ranking.holm_by_column(p)
    tiers = ranking.tiers(p_holm, alpha)
    ranks = ranking.competition_ranks(points)
    rows = [
        {
            "name": item.name,
            "rank": int(ranks[k]),
            "rank_ci95": [int(summary.rank_low[k]), int(summary.rank_high[k])],
            "median_rank": float(summary.median_rank[k]),
            "p_first": float(summary.p_first[k]),
            "tier": int(tiers[k]),
            "kendall_tau_b": item.report.kendall_tau_b.to_json(),
            "by_expert": {name.lower(): tau for name, tau in item.report.per_expert.items()},
            "strata": item.strata,
            "strata_differences": item.differences,
        }
        for k, item in enumerate(scored)
    ]
    return {
        "alpha": alpha,
        "resamples": resamples,
        "seed": seed,
        "rows": rows,
        "significance": {"names": [s.name for s in scored], "p": _nullable(p), "p_holm": _nullable(p_holm)},
        "stability": stability_table([s.report for s in scored]),
    }


def _render(result: dict[str, Any]) -> Table:
    table = Table(
        title=f"Ranking ({result['resamples']} resamples, seed {result['seed']}, alpha {result['alpha']})"
    )
    for column in ("rank", "tier", "name", "tau-b", "95% CI", "rank 95% CI", "median rank", "p_first"):
        table.add_column(column)
    for row in result["rows"]:
        tau = row["kendall_tau_b"]
        ci = "-" if tau["ci95"] is None else f"[{tau['ci95'][0]:.3f}, {tau['ci95'][1]:.3f}]"
        low, high = row["rank_ci95"]
        table.add_row(
            str(row["rank"]), str(row["tier"]), row["name"], f"{tau['value']:.3f}", ci,
            f"[{low}, {high}]", f"{row['median_rank']:g}", f"{row['p_first']:.3f}",
        )  # fmt: skip
    stability = ", ".join(
        f"{name} {'-' if value is None else f'{value:.2f}'}" for name, value in result["stability"].items()
    )
    table.caption = f"Stability (Kendall tau-b of the order against the consensus order): {stability}"
    return table


def rank(
    pred: Annotated[list[Path], typer.Argument(help="Prediction files; each row is named by its file stem")],
    labels: Annotated[
        Path,
        typer.Option("--labels", help="The evaluated label file: CSAW-M_test.csv or CSAW-M_test_private.csv"),
    ],
    public_labels: Annotated[
        Path | None,
        typer.Option("--public-labels", help="CSAW-M_test.csv, for the pooled clinical section (as score)"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the ranking JSON")] = False,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="Bootstrap resamples (at least 1)")
    ] = DEFAULT_RESAMPLES,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap draws")] = 0,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Level of the tier tests (Holm)")
    ] = ranking.DEFAULT_ALPHA,
) -> None:
    """Rank PRED files as the board would: rank intervals, p_first, tiers, strata, stability."""
    if bootstrap < 1:
        raise fail(f"--bootstrap must be at least 1 (rankings need resamples); got {bootstrap}")
    if not 0 < alpha < 1:
        raise fail(f"--alpha must lie strictly between 0 and 1; got {alpha}")
    try:
        table = read_labels(labels)
        if table.layout == LabelLayout.TRAIN:
            raise fail(f"{labels}: a training-layout label file; --labels needs a test-set file")
        public = None if public_labels is None else read_labels(public_labels, layout=LabelLayout.PUBLIC)
    except LabelFileError as exc:
        raise fail(str(exc)) from None
    scored, warnings = _score_files(pred, table, public, bootstrap, seed)
    usable = ranking.usable_resamples(np.vstack([s.replicates for s in scored]))
    if usable < bootstrap:
        warnings.append(
            f"{bootstrap - usable} of {bootstrap} resamples are undefined for some file "
            "and are left out of the ranking statistics"
        )
    try:
        result = ranking_result(scored, alpha=alpha, resamples=bootstrap, seed=seed)
    except ValueError as exc:  # no resample defined for every row
        raise fail(str(exc)) from None
    for message in warnings:
        typer.echo(f"warning: {message}", err=True)
    if json_output:
        typer.echo(json.dumps(result, indent=2, allow_nan=False))
    else:
        Console().print(_render(result))
