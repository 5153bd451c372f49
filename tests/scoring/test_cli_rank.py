"""``csawm rank`` end to end on the generated synthetic CSAW-M files (server/cli/rank.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from typer.testing import CliRunner, Result

from server.cli.main import app
from server.scoring import ranking, ranks
from server.scoring.labels import read_labels
from server.scoring.predictions import read_predictions
from server.scoring.report import score_report

from .factories import write_predictions

runner = CliRunner()
RESAMPLES = 300


def _latent(root: Path) -> dict[str, float]:
    lines = (root / "synthetic" / "latent.csv").read_text().splitlines()[1:]
    return {name: float(value) for name, value in (line.split(";") for line in lines)}


@pytest.fixture
def board(synthetic_benchmark: Path, tmp_path: Path) -> dict[str, Path]:
    """An oracle, a noisy model, the same noisy model under another name, and a random one."""
    labels = synthetic_benchmark / "labels" / "CSAW-M_test_private.csv"
    names = read_labels(labels).filenames
    latent = np.array([_latent(synthetic_benchmark)[n] for n in names])
    rng = np.random.default_rng(11)
    noisy = latent + rng.normal(scale=0.5, size=latent.size)
    return {
        "labels": labels,
        "oracle": write_predictions(tmp_path / "oracle.csv", names, latent),
        "noisy": write_predictions(tmp_path / "noisy.csv", names, noisy),
        "noisy_copy": write_predictions(tmp_path / "noisy_copy.csv", names, noisy),
        "random": write_predictions(tmp_path / "random.csv", names, rng.random(latent.size)),
    }


def _rank(*args: str) -> Result:
    return runner.invoke(app, ["rank", *args])


def test_json_ranks_as_the_definitions_say(board: dict[str, Path]) -> None:
    files = [str(board[k]) for k in ("random", "noisy", "oracle", "noisy_copy")]
    result = _rank(
        *files, "--labels", str(board["labels"]), "--json", "--bootstrap", str(RESAMPLES), "--seed", "5"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"alpha", "resamples", "seed", "rows", "significance", "stability"}
    assert (data["alpha"], data["resamples"], data["seed"]) == (0.05, RESAMPLES, 5)
    rows = {row["name"]: row for row in data["rows"]}
    assert [row["name"] for row in data["rows"]] == ["oracle", "noisy", "noisy_copy", "random"]
    assert data["significance"]["names"] == ["oracle", "noisy", "noisy_copy", "random"]

    oracle, noisy, copy, rand = rows["oracle"], rows["noisy"], rows["noisy_copy"], rows["random"]
    assert (oracle["rank"], oracle["rank_ci95"], oracle["p_first"], oracle["tier"]) == (1, [1, 1], 1.0, 1)
    # Equal tau-b: equal competition rank, one tier, every resample a tie between the two.
    assert noisy["rank"] == copy["rank"] == 2 and noisy["tier"] == copy["tier"]
    assert data["significance"]["p_holm"][1][2] == data["significance"]["p_holm"][2][1] == 1.0
    assert rand["rank"] == 4 and rand["p_first"] == 0.0 and rand["tier"] == 4
    assert data["significance"]["p"][0][0] is None
    assert sum(row["p_first"] for row in data["rows"]) == pytest.approx(1.0)

    # The same numbers as the library on the report's own replicates (the board's path).
    table = read_labels(board["labels"])
    reports = [score_report(read_predictions(board[n]), table, resamples=RESAMPLES, seed=5) for n in rows]
    replicates = np.vstack([r.replicates["kendall_tau_b"] for r in reports])
    np.testing.assert_allclose(
        np.array(data["significance"]["p"], dtype=float), ranking.significance(replicates), equal_nan=True
    )
    for report, name in zip(reports, rows, strict=True):
        assert rows[name]["kendall_tau_b"] == report.data["masking"]["kendall_tau_b"]
        per_expert = report.data["masking"]["per_expert"]
        assert rows[name]["by_expert"] == {k.lower(): v["kendall_tau_b"] for k, v in per_expert.items()}

    # Per-expert tau-b against scipy on the rows each expert rated; stability against scipy on the rows.
    assert table.experts is not None
    reranked = ranks.rerank_experts(table.experts)
    for name in rows:
        score = read_predictions(board[name]).align(table.filenames).final_score
        for k in range(reranked.shape[1]):
            rated = ~np.isnan(reranked[:, k])
            expected = scipy.stats.kendalltau(reranked[rated, k], score[rated]).statistic
            assert rows[name]["by_expert"][f"expert_{k + 1}"] == pytest.approx(expected)
    consensus = [row["kendall_tau_b"]["value"] for row in data["rows"]]
    by_expert_1 = [row["by_expert"]["expert_1"] for row in data["rows"]]
    assert data["stability"]["expert_1"] == pytest.approx(
        scipy.stats.kendalltau(consensus, by_expert_1).statistic
    )

    # 60 rows: density quartiles of 15 are suppressed (minimum 30), with the reason.
    assert oracle["strata"]["density_q1"]["kendall_tau_b"] is None
    assert "fewer than the minimum of 30" in oracle["strata"]["density_q1"]["reason"]
    assert set(oracle["strata"]) >= {"laterality_L", "laterality_R", "cancer", "no_cancer"}
    assert set(data["stability"]) == {
        *(f"expert_{k}" for k in range(1, 6)),
        "amae",
        "auc_interval_cancer",
        "auc_large_invasive_cancer",
        "auc_composite",
    }


def test_human_table_names_every_row(board: dict[str, Path]) -> None:
    result = _rank(
        str(board["oracle"]), str(board["random"]), "--labels", str(board["labels"]), "--bootstrap", "50"
    )
    assert result.exit_code == 0, result.stderr
    assert "oracle" in result.stdout and "random" in result.stdout and "Stability" in result.stdout


def _fails(args: list[str], *needles: str) -> None:
    result = _rank(*args)
    assert result.exit_code == 2, result.stdout
    assert result.stdout == ""
    for needle in needles:
        assert needle in result.stderr


def test_a_file_missing_a_row_exits_2_naming_file_and_image(board: dict[str, Path], tmp_path: Path) -> None:
    lines = board["noisy"].read_text().splitlines()
    missing = tmp_path / "missing.csv"
    missing.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    image = lines[1].split(";")[0]
    _fails([str(board["oracle"]), str(missing), "--labels", str(board["labels"])], str(missing), repr(image))


def test_a_row_of_another_test_set_exits_2_naming_file_and_row(
    board: dict[str, Path], tmp_path: Path
) -> None:
    lines = board["noisy"].read_text().splitlines()
    other = tmp_path / "other.csv"
    other.write_text("\n".join([lines[0], lines[1], "public_999.png;0.5", *lines[3:]]) + "\n")
    _fails(
        [str(board["oracle"]), str(other), "--labels", str(board["labels"])],
        str(other),
        "row 2",
        "public_999.png",
    )


def test_two_files_with_the_same_stem_exit_2_naming_both(board: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    twin = Path(shutil.copy(board["noisy"], tmp_path / "elsewhere" / "oracle.csv"))
    _fails(
        [str(board["oracle"]), str(twin), "--labels", str(board["labels"])], str(board["oracle"]), str(twin)
    )


@pytest.mark.parametrize(("option", "value"), [("--bootstrap", "0"), ("--alpha", "1.5")])
def test_bad_options_exit_2(board: dict[str, Path], option: str, value: str) -> None:
    _fails([str(board["oracle"]), "--labels", str(board["labels"]), option, value], option)


def test_a_constant_file_cannot_be_ranked(board: dict[str, Path], tmp_path: Path) -> None:
    names = read_labels(board["labels"]).filenames
    constant = write_predictions(tmp_path / "constant.csv", names, np.full(len(names), 0.5))
    _fails(
        [str(board["oracle"]), str(constant), "--labels", str(board["labels"])], str(constant), "undefined"
    )


def test_resamples_undefined_for_one_file_are_left_out_with_a_warning(
    board: dict[str, Path], tmp_path: Path
) -> None:
    names = read_labels(board["labels"]).filenames
    # One row differs: a resample that misses it sees constant predictions (about 36% of them).
    score = np.zeros(len(names))
    score[0] = 1.0
    nearly = write_predictions(tmp_path / "nearly_constant.csv", names, score)
    args = [
        str(board["oracle"]),
        str(nearly),
        "--labels",
        str(board["labels"]),
        "--json",
        "--bootstrap",
        "200",
    ]
    result = _rank(*args)
    assert result.exit_code == 0, result.stderr
    assert "resamples are undefined for some file and are left out" in result.stderr
    data = json.loads(result.stdout)
    assert [row["name"] for row in data["rows"]] == ["oracle", "nearly_constant"]
    assert data["rows"][0]["p_first"] == 1.0
