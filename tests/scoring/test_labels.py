"""Label-file readers: the three layouts parse, every kind of bad file is refused with its location."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.scoring.labels import (
    COLUMNS,
    LabelFileError,
    LabelLayout,
    parse_labels,
    read_labels,
)

TAIL = "2047;4096;MONOCHROME2"
PUBLIC = (
    ";".join(COLUMNS[LabelLayout.PUBLIC])
    + "\n"
    + f"test_1.png;4;4;1;3;4;5;0;0;0;0;L;{TAIL};12.5;20.1;160.8\n"
    + f"test_2.png;6;5;6;7;8;4;1;1;0;1;R;{TAIL};30.0;45.0;150.0\n"
    + f"test_3.png;2;2;2;1;3;2;1;0;1;1;L;{TAIL};8.25;10.0;121.2\n"
)
PRIVATE = (
    ";".join(COLUMNS[LabelLayout.PRIVATE])
    + "\n"
    + f"private_1.png;12;40;3;494;7;1;1;1;1;R;{TAIL};22.0;30.0;136.4\n"
    + f"private_2.png;480;;2;17;;0;0;0;0;L;{TAIL};;;\n"
)
TRAIN = (
    ";".join(COLUMNS[LabelLayout.TRAIN])
    + "\n"
    + f"train_1.png;3;0;0;0;0;L;{TAIL};17.0;25.5;150.0\n"
    + f"train_2.png;8;1;0;0;0;R;{TAIL};40.0;80.0;200.0\n"
)


def write(tmp_path: Path, text: str, name: str = "labels.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def with_cell(text: str, row: int, column: str, value: str) -> str:
    """``text`` with the cell at 1-based data ``row`` and ``column`` replaced by ``value``."""
    lines = text.splitlines()
    header = lines[0].split(";")
    cells = lines[row].split(";")
    cells[header.index(column)] = value
    lines[row] = ";".join(cells)
    return "\n".join(lines) + "\n"


def refused(tmp_path: Path, text: str, *, layout: LabelLayout | None = None) -> LabelFileError:
    path = write(tmp_path, text)
    with pytest.raises(LabelFileError) as info:
        read_labels(path, layout=layout)
    assert str(path) in str(info.value)
    assert info.value.path == path
    return info.value


# --- the three layouts --------------------------------------------------------------------------


def test_public_layout_parses(tmp_path: Path) -> None:
    table = read_labels(write(tmp_path, PUBLIC))
    assert table.layout is LabelLayout.PUBLIC
    assert table.filenames == ("test_1.png", "test_2.png", "test_3.png")
    assert table.label is not None and table.label.tolist() == [4, 6, 2]
    assert table.label.dtype == np.int64
    assert table.experts is not None and table.experts.shape == (3, 5)
    assert table.experts[1].tolist() == [5, 6, 7, 8, 4]
    assert table.if_composite.tolist() == [0, 1, 1]
    assert table.laterality == ("L", "R", "L")
    assert table.libra_percent_density.tolist() == [12.5, 30.0, 8.25]
    assert len(table) == 3


def test_private_layout_parses_positions_gaps_and_empty_cells(tmp_path: Path) -> None:
    table = read_labels(write(tmp_path, PRIVATE), layout=LabelLayout.PRIVATE)
    assert table.layout is LabelLayout.PRIVATE
    assert table.label is None
    assert table.experts is not None
    assert table.experts[0].tolist() == [12, 40, 3, 494, 7]  # above the row count: allowed
    assert np.isnan(table.experts[1, 1]) and np.isnan(table.experts[1, 4])
    assert np.isnan(table.libra_breast_area[1])


def test_train_layout_parses(tmp_path: Path) -> None:
    table = read_labels(write(tmp_path, TRAIN))
    assert table.layout is LabelLayout.TRAIN
    assert table.experts is None
    assert table.label is not None and table.label.tolist() == [3, 8]


def test_synthetic_files_parse_in_their_layouts(synthetic_benchmark: Path) -> None:
    labels = synthetic_benchmark / "labels"
    public = read_labels(labels / "CSAW-M_test.csv", layout=LabelLayout.PUBLIC)
    private = read_labels(labels / "CSAW-M_test_private.csv", layout=LabelLayout.PRIVATE)
    train = read_labels(labels / "CSAW-M_train.csv", layout=LabelLayout.TRAIN)
    assert (len(public), len(private), len(train)) == (64, 60, 48)
    assert public.experts is not None and public.label is not None
    assert np.array_equal(np.median(public.experts, axis=1), public.label)


@pytest.mark.parametrize(
    ("text", "asked", "found"),
    [
        (PUBLIC, LabelLayout.PRIVATE, "public"),
        (PRIVATE, LabelLayout.PUBLIC, "private"),
        (TRAIN, LabelLayout.PUBLIC, "train"),
        (PUBLIC, LabelLayout.TRAIN, "public"),
    ],
)
def test_wrong_layout_for_the_one_asked(tmp_path: Path, text: str, asked: LabelLayout, found: str) -> None:
    error = refused(tmp_path, text, layout=asked)
    assert f"this is a {found}-layout file" in str(error)
    assert f"the {asked.value} layout" in str(error)


# --- accepted variations ------------------------------------------------------------------------


def test_bom_and_windows_line_ends_are_accepted(tmp_path: Path) -> None:
    plain = read_labels(write(tmp_path, PUBLIC, "plain.csv"))
    variant = read_labels(write(tmp_path, "\ufeff" + PUBLIC.replace("\n", "\r\n"), "bom.csv"))
    assert variant.filenames == plain.filenames
    assert variant.label is not None and plain.label is not None
    assert np.array_equal(variant.label, plain.label)
    assert variant.laterality == plain.laterality
    assert np.array_equal(variant.libra_breast_area, plain.libra_breast_area)


def test_integral_floats_and_blank_lines_are_accepted(tmp_path: Path) -> None:
    text = with_cell(PUBLIC, 1, "Label", "4.0").replace("\n", "\n\n", 1) + "\n\n"
    table = read_labels(write(tmp_path, text))
    assert table.label is not None and table.label.tolist() == [4, 6, 2]


# --- whole-file problems ------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    error = refused(tmp_path, "")
    assert "empty" in error.reason and error.row is None


def test_whitespace_only_file(tmp_path: Path) -> None:
    assert "empty" in refused(tmp_path, " \r\n\n").reason


def test_header_only(tmp_path: Path) -> None:
    error = refused(tmp_path, PUBLIC.splitlines()[0] + "\n")
    assert "no data rows" in error.reason


@pytest.mark.parametrize(("sep", "name"), [(",", "','"), ("\t", "a tab")])
def test_wrong_separator(tmp_path: Path, sep: str, name: str) -> None:
    error = refused(tmp_path, PUBLIC.replace(";", sep))
    assert name in error.reason and "';'" in error.reason
    assert "header" in str(error)


def test_rows_with_a_wrong_separator(tmp_path: Path) -> None:
    lines = PUBLIC.splitlines()
    lines[2] = lines[2].replace(";", ",")
    error = refused(tmp_path, "\n".join(lines) + "\n")
    assert error.row == 2 and "separated by ','" in error.reason


def test_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, PUBLIC.replace("test_1", "tést_1"), "latin.csv", encoding="latin-1")
    with pytest.raises(LabelFileError, match="not UTF-8"):
        read_labels(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabelFileError, match="cannot read"):
        read_labels(tmp_path / "absent.csv")


def test_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, PUBLIC)
    with pytest.raises(LabelFileError, match="more than the limit"):
        read_labels(path, max_bytes=100)


# --- header problems ----------------------------------------------------------------------------


def replace_header(text: str, header: list[str]) -> str:
    lines = text.splitlines()
    lines[0] = ";".join(header)
    return "\n".join(lines) + "\n"


def test_missing_column(tmp_path: Path) -> None:
    header = [c for c in COLUMNS[LabelLayout.PUBLIC] if c != "If_composite"]
    error = refused(tmp_path, replace_header(PUBLIC, header))
    assert error.column == "If_composite"
    assert "missing column" in error.reason and "public layout" in error.reason


def test_extra_column(tmp_path: Path) -> None:
    header = [*COLUMNS[LabelLayout.TRAIN], "Comment"]
    error = refused(tmp_path, replace_header(TRAIN, header))
    assert error.column == "Comment" and "unexpected column" in error.reason


def test_misordered_columns(tmp_path: Path) -> None:
    header = list(COLUMNS[LabelLayout.PRIVATE])
    header[1], header[2] = header[2], header[1]
    error = refused(tmp_path, replace_header(PRIVATE, header))
    assert error.column == "Expert_2"
    assert "out of order" in error.reason and "position 2 should be 'Expert_1'" in error.reason


def test_repeated_column(tmp_path: Path) -> None:
    header = list(COLUMNS[LabelLayout.TRAIN])
    header[-1] = "Libra_dense_area"
    assert "appears twice" in refused(tmp_path, replace_header(TRAIN, header)).reason


def test_misordered_columns_for_an_asked_layout(tmp_path: Path) -> None:
    header = list(COLUMNS[LabelLayout.PUBLIC])
    header[0], header[1] = header[1], header[0]
    error = refused(tmp_path, replace_header(PUBLIC, header), layout=LabelLayout.PUBLIC)
    assert error.column == "Label" and "public layout" in error.reason


# --- row problems -------------------------------------------------------------------------------


def test_row_with_too_few_fields(tmp_path: Path) -> None:
    lines = PUBLIC.splitlines()
    lines[2] = lines[2].rsplit(";", 1)[0]
    error = refused(tmp_path, "\n".join(lines) + "\n")
    assert (error.row, error.column) == (2, "Libra_breast_area")
    assert "17 fields" in error.reason


def test_row_with_too_many_fields(tmp_path: Path) -> None:
    lines = PUBLIC.splitlines()
    lines[3] += ";oops"
    error = refused(tmp_path, "\n".join(lines) + "\n")
    assert error.row == 3 and "'oops'" in error.reason


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (1, "Label", "3.5", "not an integer"),
        (1, "Label", "four", "not an integer"),
        (1, "Label", "", "empty value"),
        (2, "Label", "9", "outside 1..8"),
        (2, "Expert_3", "0", "outside 1..8"),
        (2, "Expert_3", "", "empty value"),
        (3, "If_cancer", "2", "not a 0/1 flag"),
        (3, "If_interval_cancer", "yes", "not a 0/1 flag"),
        (1, "Dicom_image_laterality", "left", "not a laterality"),
        (1, "Dicom_photometric_interpretation", "RGB", "not one of"),
        (1, "Dicom_window_width", "0", "must be positive"),
        (1, "Dicom_window_center", "centre", "not a number"),
        (1, "Libra_percent_density", "150", "outside [0.0, 100.0]"),
        (1, "Libra_dense_area", "-3", "outside"),
        (1, "Libra_breast_area", "inf", "not a finite number"),
        (1, "Libra_breast_area", "big", "not a number"),
        (2, "Filename", "../etc/passwd", "not a plain file name"),
        (2, "Filename", "", "empty file name"),
    ],
)
def test_bad_public_cell_names_row_and_column(
    tmp_path: Path, row: int, column: str, value: str, message: str
) -> None:
    error = refused(tmp_path, with_cell(PUBLIC, row, column, value))
    assert (error.row, error.column) == (row, column)
    assert message in error.reason
    assert f"row {row}" in str(error) and repr(column) in str(error)


def test_private_position_below_one(tmp_path: Path) -> None:
    error = refused(tmp_path, with_cell(PRIVATE, 2, "Expert_4", "0"))
    assert (error.row, error.column) == (2, "Expert_4") and "below 1" in error.reason


def test_private_non_integer_position(tmp_path: Path) -> None:
    error = refused(tmp_path, with_cell(PRIVATE, 1, "Expert_2", "40.5"))
    assert (error.row, error.column) == (1, "Expert_2")


def test_private_row_without_any_expert(tmp_path: Path) -> None:
    text = PRIVATE
    for column in ("Expert_1", "Expert_3", "Expert_4"):
        text = with_cell(text, 2, column, "")
    error = refused(tmp_path, text)
    assert error.row == 2 and "no expert position" in error.reason


def test_duplicate_filename_names_both_rows(tmp_path: Path) -> None:
    error = refused(tmp_path, with_cell(PUBLIC, 3, "Filename", "test_1.png"))
    assert (error.row, error.column) == (3, "Filename")
    assert "duplicate" in error.reason and "row 1" in error.reason


def test_composite_must_be_interval_or_large_invasive(tmp_path: Path) -> None:
    error = refused(tmp_path, with_cell(PUBLIC, 2, "If_composite", "0"))
    assert (error.row, error.column) == (2, "If_composite")
    assert "union" in error.reason
    error = refused(tmp_path, with_cell(PUBLIC, 1, "If_composite", "1"))
    assert (error.row, error.column) == (1, "If_composite")


def test_interval_cancer_needs_if_cancer(tmp_path: Path) -> None:
    error = refused(tmp_path, with_cell(PUBLIC, 2, "If_cancer", "0"))
    assert (error.row, error.column) == (2, "If_cancer")


def test_public_label_must_be_the_expert_median(tmp_path: Path) -> None:
    error = refused(tmp_path, with_cell(PUBLIC, 1, "Label", "5"))
    assert (error.row, error.column) == (1, "Label") and "median" in error.reason


def test_error_message_names_file_row_and_column(tmp_path: Path) -> None:
    error = refused(tmp_path, with_cell(TRAIN, 2, "Label", "0"))
    text = str(error)
    assert text.startswith(str(tmp_path / "labels.csv"))
    assert "row 2 (line 3)" in text and "column 'Label'" in text


def test_parse_labels_without_a_path() -> None:
    table = parse_labels(TRAIN.encode())
    assert table.path is None
    with pytest.raises(LabelFileError, match=r"^<labels>"):
        parse_labels(b"")


# --- LabelTable ---------------------------------------------------------------------------------


def test_subset_reorders_and_repeats(tmp_path: Path) -> None:
    table = read_labels(write(tmp_path, PUBLIC))
    sub = table.subset([2, 0, 0])
    assert sub.filenames == ("test_3.png", "test_1.png", "test_1.png")
    assert sub.label is not None and sub.label.tolist() == [2, 4, 4]
    assert sub.experts is not None and sub.experts.shape == (3, 5)
    assert sub.laterality == ("L", "L", "L")
    assert sub.layout is LabelLayout.PUBLIC
    assert len(table.subset(np.array([], dtype=np.int64))) == 0
    with pytest.raises(IndexError):
        table.subset([3])
