"""The predictions reader: the contract format and every bad input of issue 2 "Bad input"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.scoring.predictions import PredictionsError, read_predictions

NAMES = ("a.png", "b.png", "c.png")
PROBS = ";".join(f"Prob_bin_{k}" for k in range(1, 9))


def _error(data: bytes, **kwargs: object) -> PredictionsError:
    with pytest.raises(PredictionsError) as info:
        read_predictions(data, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_reads_the_authors_format_with_probabilities() -> None:
    row = ";".join(["0.1"] * 2 + ["0.0"] * 5 + ["0.8"])
    data = f"Filename;{PROBS};Final_pred;Final_score\na.png;{row};8;0.9\nb.png;{row};1;0.2\n".encode()
    result = read_predictions(data)
    assert result.filenames == ("a.png", "b.png")
    np.testing.assert_array_equal(result.final_score, [0.9, 0.2])
    assert result.final_pred is not None and result.final_pred.tolist() == [8, 1]
    assert result.probs is not None and result.probs.shape == (2, 8)


def test_comma_separator_bom_crlf_quotes_blank_lines_and_spaces_are_accepted() -> None:
    data = '\ufeffFilename,Final_score,Final_pred\r\n"a.png", 0.5 ,4.0\r\n\r\nb.png,-1e3,2\r\n'.encode()
    result = read_predictions(data)
    assert result.filenames == ("a.png", "b.png")
    np.testing.assert_array_equal(result.final_score, [0.5, -1000.0])
    assert result.final_pred is not None and result.final_pred.tolist() == [4, 2]
    assert result.probs is None


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("Filename;Final_score;My_note", "My_note"),
        ("Filename;Final_score;", ""),
        ("Label;Filename;Final_score", "Label"),
    ],
)
def test_columns_the_contract_does_not_define_are_refused(header: str, column: str) -> None:
    """Issue 19: an ignored column is a channel the model controls (a nonce steering the file's hash)."""
    cells = ";".join("a.png" if c == "Filename" else "0.5" for c in header.split(";"))
    error = _error(f"{header}\n{cells}\n".encode())
    assert error.column == column and error.line == 1
    assert "not defined by the contract" in str(error)


def test_expected_names_in_any_order_and_align() -> None:
    result = read_predictions(b"Filename;Final_score\nc.png;3\na.png;1\nb.png;2\n", expected=NAMES)
    aligned = result.align(NAMES)
    assert aligned.filenames == NAMES and aligned.final_score.tolist() == [1.0, 2.0, 3.0]


def test_align_names_a_missing_row() -> None:
    result = read_predictions(b"Filename;Final_score\na.png;1\n")
    with pytest.raises(PredictionsError, match=r"no prediction row for 'b\.png'") as info:
        result.align(["a.png", "b.png"])
    assert info.value.column == "Filename"


@pytest.mark.parametrize(
    ("data", "row", "column", "message"),
    [
        (
            b"Filename;Final_score\na.png;0.1\nb.png;0.2\na.png;0.3\n",
            3,
            "Filename",
            "duplicate file name 'a.png'",
        ),
        (b"Filename;Final_score\na.png;0.1\nx.png;0.2\n", 2, "Filename", "'x.png' is not an image"),
        (b"Filename;Final_score\na.png;0.1\n;0.2\n", 2, "Filename", "empty file name"),
        (b"Filename;Final_score\na.png;nan\n", 1, "Final_score", "'nan' is not a finite number"),
        (b"Filename;Final_score\na.png;0.1\nb.png;inf\n", 2, "Final_score", "'inf' is not a finite number"),
        (b"Filename;Final_score\na.png;-Infinity\n", 1, "Final_score", "not a finite number"),
        (b"Filename;Final_score\na.png;high\n", 1, "Final_score", "'high' is not a number"),
        (b"Filename;Final_score\na.png;\n", 1, "Final_score", "empty value"),
        (b"Filename;Final_score;Final_pred\na.png;0.1;0\n", 1, "Final_pred", "level 0 is outside 1..8"),
        (b"Filename;Final_score;Final_pred\na.png;0.1;9\n", 1, "Final_pred", "level 9 is outside 1..8"),
        (
            b"Filename;Final_score;Final_pred\na.png;0.1;2.5\n",
            1,
            "Final_pred",
            "'2.5' is not an integer level",
        ),
        (b"Filename;Final_score;Final_pred\na.png;0.1;two\n", 1, "Final_pred", "'two' is not a number"),
        (b"Filename;Final_score\na.png;0.1;7\n", 1, None, "the row has 3 fields, the header has 2"),
    ],
)
def test_bad_rows_name_row_and_column(data: bytes, row: int, column: str | None, message: str) -> None:
    error = _error(data, expected=NAMES)
    assert error.row == row
    assert error.column == column
    assert message in str(error)
    assert f"row {row}" in str(error)


def test_probabilities_out_of_range_or_not_summing_to_one() -> None:
    bad_value = ";".join(["1.2", "-0.2"] + ["0"] * 6)
    error = _error(f"Filename;{PROBS};Final_score\na.png;{bad_value};0.1\n".encode())
    assert error.row == 1 and error.column == "Prob_bin_1" and "outside [0, 1]" in str(error)
    short = ";".join(["0.1"] * 8)
    error = _error(f"Filename;{PROBS};Final_score\na.png;{short};0.1\n".encode())
    assert error.row == 1 and "sum to 0.8, not 1" in str(error)
    within = ";".join(["0.125"] * 7 + ["0.1255"])  # 1.0005: inside the 1e-3 tolerance
    assert read_predictions(f"Filename;{PROBS};Final_score\na.png;{within};0.1\n".encode()).probs is not None


def test_some_probability_columns_only_is_an_error() -> None:
    error = _error(b"Filename;Prob_bin_1;Final_score\na.png;1;0.1\n")
    assert error.column == "Prob_bin_2" and "all eight or not at all" in str(error)


def test_missing_rows_for_expected_images_are_named() -> None:
    error = _error(b"Filename;Final_score\na.png;0.1\n", expected=NAMES)
    assert error.column == "Filename" and "no row for test image 'b.png' (and 1 more)" in str(error)


@pytest.mark.parametrize(
    ("data", "column", "message"),
    [
        (b"Filename;Score\na.png;0.1\n", "Final_score", "missing required column 'Final_score'"),
        (b"Name;Final_score\na.png;0.1\n", "Filename", "missing required column 'Filename'"),
        (b"Filename\na.png\n", "Final_score", "missing required column 'Final_score'"),
        (b"Filename;Final_score;Final_score\na.png;1;2\n", "Final_score", "appears twice"),
    ],
)
def test_bad_headers_name_the_column(data: bytes, column: str, message: str) -> None:
    error = _error(data)
    assert error.column == column and error.row is None and message in str(error)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\n \r\n", "the file is empty"),
        (b"Filename;Final_score\n", "header but no data rows"),
        (b"Filename;Final_score\r\n\r\n", "header but no data rows"),
        (b"Filename\tFinal_score\na.png\t0.1\n", "separated by a tab; use ';' or ','"),
        (b"Filename|Final_score\na.png|0.1\n", "separated by '|'"),
        (b"Filename;Final_score\n\xff\xfea.png;1\n", "not UTF-8 text"),
    ],
)
def test_bad_files(data: bytes, message: str) -> None:
    assert message in str(_error(data))


def test_a_huge_file_is_refused_by_size_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "predictions.csv"
    with path.open("wb") as handle:
        handle.truncate(1024**3)  # a sparse 1 GB file

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", no_open)
    with pytest.raises(PredictionsError, match="1073741824 bytes, more than the limit of 67108864"):
        read_predictions(path)


def test_oversized_bytes_are_refused() -> None:
    with pytest.raises(PredictionsError, match="more than the limit of 10"):
        read_predictions(b"Filename;Final_score\na.png;1\n", max_bytes=10)


def test_a_missing_file_is_a_predictions_error(tmp_path: Path) -> None:
    with pytest.raises(PredictionsError, match="cannot read the file"):
        read_predictions(tmp_path / "nope.csv")


def test_error_message_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b"Filename;Final_score\na.png;x\n")
    with pytest.raises(PredictionsError) as info:
        read_predictions(path)
    assert str(info.value) == f"{path}, row 1 (line 2), column 'Final_score': 'x' is not a number"
