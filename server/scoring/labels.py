"""Strict readers for the CSAW-M label files (docs/scoring.md).

Three ``;``-separated layouts exist, told apart by their header alone:

========  ===========================  ====================================================
layout    file                         masking columns
========  ===========================  ====================================================
public    ``CSAW-M_test.csv``          ``Label`` (median level 1..8) and ``Expert_1..5``
                                       (each expert's level 1..8)
private   ``CSAW-M_test_private.csv``  ``Expert_1..5`` only: each expert's raw position in
                                       their full sort of a longer list (gaps, values above
                                       the row count)
train     ``CSAW-M_train.csv``         ``Label`` only (one expert's level 1..8)
========  ===========================  ====================================================

All three continue with the clinical flags (``If_cancer``, ``If_interval_cancer``,
``If_large_invasive_cancer``, ``If_composite``), the DICOM columns (laterality ``L``/``R``, window
centre and width, photometric interpretation) and the LIBRA density columns.

What the reader rejects (a :class:`LabelFileError` naming the file, the 1-based data row and the
column): an empty file, a header without rows, a wrong separator, missing / extra / misordered
columns, a layout other than the one asked for, a row with the wrong number of fields, an empty or
non-integer level, a level outside 1..8, a private position below 1, a private row with no expert at
all, duplicate or unsafe file names, 0/1 flags that are anything else, laterality other than
``L``/``R``, non-finite or out-of-range LIBRA values, and two consistency rules:

* ``If_composite`` must equal ``If_interval_cancer OR If_large_invasive_cancer`` (the paper's
  definition of the composite endpoint; the derived pooled counts 92 + 124 - 39 = 177 agree). This is
  an *error*, not a warning: the scorer reports ``If_composite`` as given, so a file that breaks the
  definition would silently publish a different endpoint under the composite's name.
* an interval or large invasive cancer must have ``If_cancer = 1``, and in the public layout
  ``Label`` must be the median of the five expert levels (how the authors define it).

Accepted: a UTF-8 byte-order mark, Windows (``\\r\\n``) line ends, blank lines, spaces around
values, integer levels written as floats (``"4.0"``, which pandas writes for a column holding NaN),
and an empty LIBRA or private expert cell (read as NaN).
"""

from __future__ import annotations

import csv
import enum
import functools
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

EXPERT_COLUMNS: tuple[str, ...] = tuple(f"Expert_{k}" for k in range(1, 6))
CLINICAL_COLUMNS: tuple[str, ...] = (
    "If_cancer",
    "If_interval_cancer",
    "If_large_invasive_cancer",
    "If_composite",
)
DICOM_COLUMNS: tuple[str, ...] = (
    "Dicom_image_laterality",
    "Dicom_window_center",
    "Dicom_window_width",
    "Dicom_photometric_interpretation",
)
LIBRA_COLUMNS: tuple[str, ...] = ("Libra_percent_density", "Libra_dense_area", "Libra_breast_area")
_TAIL: tuple[str, ...] = CLINICAL_COLUMNS + DICOM_COLUMNS + LIBRA_COLUMNS

N_LEVELS = 8
PHOTOMETRIC_VALUES: frozenset[str] = frozenset({"MONOCHROME1", "MONOCHROME2"})
DEFAULT_MAX_BYTES = 256 * 1024**2


class LabelLayout(enum.StrEnum):
    """Which of the three CSAW-M label files a table follows."""

    PUBLIC = "public"
    PRIVATE = "private"
    TRAIN = "train"


COLUMNS: dict[LabelLayout, tuple[str, ...]] = {
    LabelLayout.PUBLIC: ("Filename", "Label", *EXPERT_COLUMNS, *_TAIL),
    LabelLayout.PRIVATE: ("Filename", *EXPERT_COLUMNS, *_TAIL),
    LabelLayout.TRAIN: ("Filename", "Label", *_TAIL),
}
"""The exact header of each layout, in order."""

FILE_NAMES: dict[LabelLayout, str] = {
    LabelLayout.PUBLIC: "CSAW-M_test.csv",
    LabelLayout.PRIVATE: "CSAW-M_test_private.csv",
    LabelLayout.TRAIN: "CSAW-M_train.csv",
}
"""The file name each layout has under ``<root>/labels/`` in the CSAW-M release."""


class LabelFileError(ValueError):
    """A label file that does not follow its CSAW-M layout.

    Attributes
    ----------
    path : Path or None
        The file (None when parsing bytes that came from no file).
    row : int or None
        1-based data row (the header is not counted; blank lines are not counted); None for errors
        about the whole file or its header.
    column : str or None
        The column concerned, when there is one.
    reason : str
        What was wrong, without the location.
    """

    def __init__(
        self,
        path: Path | None,
        reason: str,
        *,
        row: int | None = None,
        column: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = path
        self.row = row
        self.column = column
        self.line = line
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        where = [str(self.path) if self.path is not None else "<labels>"]
        if self.row is not None:
            where.append(f"row {self.row}" + (f" (line {self.line})" if self.line is not None else ""))
        elif self.line == 1:
            where.append("header")
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return ", ".join(where) + ": " + self.reason


@dataclass(frozen=True)
class LabelTable:
    """One parsed CSAW-M label file, column arrays in file order.

    ``label`` is set for the public and training layouts; ``experts`` (shape ``(n, 5)``) for the
    public layout (levels 1..8) and the private layout (raw sort positions, NaN for an empty cell).
    """

    path: Path | None
    layout: LabelLayout
    filenames: tuple[str, ...]
    label: np.ndarray | None
    experts: np.ndarray | None
    if_cancer: np.ndarray
    if_interval_cancer: np.ndarray
    if_large_invasive_cancer: np.ndarray
    if_composite: np.ndarray
    laterality: tuple[str, ...]
    libra_percent_density: np.ndarray
    libra_dense_area: np.ndarray
    libra_breast_area: np.ndarray

    def __len__(self) -> int:
        return len(self.filenames)

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelTable:
        """The rows at ``indices`` (in that order; repeats allowed, as a bootstrap needs)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {idx.shape}")
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"index out of range for a table of {len(self)} rows")
        picked: dict[
            str, Any
        ] = {  # every column: the tuples (file names, laterality) and the arrays that are set
            f.name: tuple(value[i] for i in idx) if isinstance(value, tuple) else value[idx]
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), tuple | np.ndarray)
        }
        return replace(self, **picked)


def read_labels(
    path: Path, *, layout: LabelLayout | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> LabelTable:
    """Read and validate a CSAW-M label file.

    Parameters
    ----------
    path : Path
        The ``;``-separated file.
    layout : LabelLayout, optional
        The layout the caller needs. None detects it from the header; a file of another layout is a
        :class:`LabelFileError` saying which layout it is.
    max_bytes : int
        Files larger than this are refused before reading (the real files are well under 2 MB).

    Raises
    ------
    LabelFileError
        Naming the file, row and column of the first problem found.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LabelFileError(path, f"file is {size} bytes, more than the limit of {max_bytes}")
        data = path.read_bytes()
    except OSError as exc:
        raise LabelFileError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    return parse_labels(data, path=path, layout=layout)


def parse_labels(data: bytes, *, path: Path | None = None, layout: LabelLayout | None = None) -> LabelTable:
    """Parse the bytes of a label file; ``path`` only names it in errors and on the table."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelFileError(path, f"not UTF-8 text (invalid byte at offset {exc.start})") from exc
    if not text.strip():
        raise LabelFileError(path, "file is empty")

    records = split_records(
        text, ";", lambda exc, line: LabelFileError(path, f"malformed CSV: {exc}", line=line)
    )
    header_line, header = records[0]
    detected = _detect_layout(header, path, wanted=layout, line=header_line)
    columns = COLUMNS[detected]
    body = records[1:]
    if not body:
        raise LabelFileError(path, "file has a header but no data rows")
    return _parse_rows(body, columns, detected, path)


def split_records(
    text: str, delimiter: str, malformed: Callable[[csv.Error, int], Exception]
) -> list[tuple[int, list[str]]]:
    """(line number, stripped cells) of each record, blank ones dropped (a line of separators only
    is blank); a malformed record raises ``malformed(error, line number)``. Also the predictions
    reader's."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            stripped = [c.strip() for c in cells]
            if any(stripped):
                records.append((reader.line_num, stripped))
    except csv.Error as exc:
        raise malformed(exc, reader.line_num) from exc
    return records


def _detect_layout(
    header: list[str], path: Path | None, *, wanted: LabelLayout | None, line: int
) -> LabelLayout:
    """Match the header against the three layouts; explain the difference when none matches."""
    if len(header) == 1:
        for sep, name in ((",", "','"), ("\t", "a tab")):
            if sep in header[0]:
                raise LabelFileError(
                    path,
                    f"the header is separated by {name}; CSAW-M label files are ';'-separated",
                    line=line,
                )
    for candidate, columns in COLUMNS.items():
        if tuple(header) == columns:
            if wanted is not None and candidate != wanted:
                raise LabelFileError(
                    path,
                    f"this is a {candidate.value}-layout file ({FILE_NAMES[candidate]}), "
                    f"but the {wanted.value} layout ({FILE_NAMES[wanted]}) was asked for",
                    line=line,
                )
            return candidate

    target = wanted if wanted is not None else _closest_layout(header)
    column, reason = _header_difference(header, COLUMNS[target])
    raise LabelFileError(
        path, f"header does not match the {target.value} layout: {reason}", column=column, line=line
    )


def _closest_layout(header: list[str]) -> LabelLayout:
    has_label = "Label" in header
    has_experts = any(c in header for c in EXPERT_COLUMNS)
    if has_experts:
        return LabelLayout.PUBLIC if has_label else LabelLayout.PRIVATE
    return LabelLayout.TRAIN


def _header_difference(header: list[str], expected: tuple[str, ...]) -> tuple[str | None, str]:
    """The first column that is missing, unexpected, repeated or out of place."""
    seen: set[str] = set()
    for name in header:
        if name in seen:
            return name, f"column {name!r} appears twice"
        seen.add(name)
    missing = [c for c in expected if c not in seen]
    if missing:
        return missing[0], f"missing column(s) {', '.join(repr(c) for c in missing)}"
    extra = [c for c in header if c not in expected]
    if extra:
        return extra[0], f"unexpected column(s) {', '.join(repr(c) for c in extra)}"
    for position, (found, want) in enumerate(zip(header, expected, strict=True), start=1):
        if found != want:
            return found, f"columns out of order: position {position} should be {want!r}, found {found!r}"
    return None, "unknown difference"  # pragma: no cover - the header would have matched


class _CellError(ValueError):
    """A bad cell; the row loop adds the location."""


def _int_cell(text: str) -> int:
    if text == "":
        raise _CellError("empty value, an integer is required")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise _CellError(f"{text!r} is not an integer") from None
    if not math.isfinite(value) or not value.is_integer():
        raise _CellError(f"{text!r} is not an integer")
    return int(value)


def _level_cell(text: str) -> int:
    value = _int_cell(text)
    if not 1 <= value <= N_LEVELS:
        raise _CellError(f"level {value} is outside 1..{N_LEVELS}")
    return value


def _position_cell(text: str) -> float:
    if text == "" or text.lower() == "nan":
        return math.nan
    value = _int_cell(text)
    if value < 1:
        raise _CellError(f"sort position {value} is below 1")
    return float(value)


def _flag_cell(text: str) -> int:
    try:
        value = _int_cell(text)
    except _CellError:
        raise _CellError(f"{text!r} is not a 0/1 flag") from None
    if value not in (0, 1):
        raise _CellError(f"{value} is not a 0/1 flag")
    return value


def _float_cell(text: str, *, low: float, high: float, unit: str) -> float:
    """A finite float in [low, high]; empty or 'nan' means missing (NaN)."""
    if text == "" or text.lower() == "nan":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise _CellError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise _CellError(f"{text!r} is not a finite number")
    if not low <= value <= high:
        raise _CellError(f"{value}{unit} is outside [{low}, {high}]")
    return value


def _filename_cell(text: str) -> str:
    if text == "":
        raise _CellError("empty file name")
    if "/" in text or "\\" in text or "\x00" in text or text in (".", ".."):
        raise _CellError(f"{text!r} is not a plain file name (no directories allowed)")
    return text


def _laterality_cell(text: str) -> str:
    if text not in ("L", "R"):
        raise _CellError(f"{text!r} is not a laterality ('L' or 'R')")
    return text


def _photometric_cell(text: str) -> str:
    if text not in PHOTOMETRIC_VALUES:
        raise _CellError(f"{text!r} is not one of {sorted(PHOTOMETRIC_VALUES)}")
    return text


def _window_cell(text: str) -> float:
    return _float_cell(text, low=-(2.0**31), high=2.0**31, unit="")


def _parse_rows(
    body: list[tuple[int, list[str]]],
    columns: tuple[str, ...],
    layout: LabelLayout,
    path: Path | None,
) -> LabelTable:
    n = len(body)
    n_columns = len(columns)
    filenames: list[str] = []
    first_row: dict[str, int] = {}
    label = np.zeros(n, dtype=np.int64)
    experts = np.full((n, len(EXPERT_COLUMNS)), np.nan)
    flags = {name: np.zeros(n, dtype=np.int64) for name in CLINICAL_COLUMNS}
    laterality: list[str] = []
    libra = {name: np.full(n, np.nan) for name in LIBRA_COLUMNS}
    position_of = {name: i for i, name in enumerate(columns)}

    for i, (line, cells) in enumerate(body):
        row = i + 1
        fail = functools.partial(LabelFileError, path, row=row, line=line)
        if len(cells) != n_columns:
            if len(cells) == 1 and ("," in cells[0] or "\t" in cells[0]):
                sep = "','" if "," in cells[0] else "a tab"
                raise fail(f"row is separated by {sep}; CSAW-M label files are ';'-separated")
            counted = f"row has {len(cells)} fields, the header has {n_columns}"
            if len(cells) < n_columns:
                missing = columns[len(cells)]
                raise fail(f"{counted} (nothing for {missing!r})", column=missing)
            raise fail(f"{counted} (unexpected value {cells[n_columns]!r} after {columns[-1]!r})")
        column = "Filename"
        try:
            name = _filename_cell(cells[0])
            if name in first_row:
                raise _CellError(f"duplicate file name {name!r} (first seen in row {first_row[name]})")
            first_row[name] = row
            filenames.append(name)
            if layout is not LabelLayout.PRIVATE:
                column = "Label"
                label[i] = _level_cell(cells[position_of["Label"]])
            if layout is not LabelLayout.TRAIN:
                for k, column in enumerate(EXPERT_COLUMNS):
                    text = cells[position_of[column]]
                    if layout is LabelLayout.PUBLIC:
                        experts[i, k] = _level_cell(text)
                    else:
                        experts[i, k] = _position_cell(text)
                if np.isnan(experts[i]).all():
                    column = EXPERT_COLUMNS[0]
                    raise _CellError("no expert position in this row (all Expert_k empty)")
            for column in CLINICAL_COLUMNS:
                flags[column][i] = _flag_cell(cells[position_of[column]])
            column = "Dicom_image_laterality"
            laterality.append(_laterality_cell(cells[position_of[column]]))
            column = "Dicom_window_center"
            _window_cell(cells[position_of[column]])
            column = "Dicom_window_width"
            if _window_cell(cells[position_of[column]]) <= 0:
                raise _CellError("window width must be positive")
            column = "Dicom_photometric_interpretation"
            _photometric_cell(cells[position_of[column]])
            column = "Libra_percent_density"
            libra[column][i] = _float_cell(cells[position_of[column]], low=0.0, high=100.0, unit=" %")
            for column in ("Libra_dense_area", "Libra_breast_area"):
                libra[column][i] = _float_cell(cells[position_of[column]], low=0.0, high=math.inf, unit="")
            _check_row_consistency(i, label, experts, flags, layout)
        except _CellError as exc:
            raise fail(
                str(exc), column=exc.column if isinstance(exc, _ConsistencyError) else column
            ) from None

    return LabelTable(
        path=path,
        layout=layout,
        filenames=tuple(filenames),
        label=None if layout is LabelLayout.PRIVATE else label,
        experts=None if layout is LabelLayout.TRAIN else experts,
        if_cancer=flags["If_cancer"],
        if_interval_cancer=flags["If_interval_cancer"],
        if_large_invasive_cancer=flags["If_large_invasive_cancer"],
        if_composite=flags["If_composite"],
        laterality=tuple(laterality),
        libra_percent_density=libra["Libra_percent_density"],
        libra_dense_area=libra["Libra_dense_area"],
        libra_breast_area=libra["Libra_breast_area"],
    )


def _check_row_consistency(
    i: int,
    label: np.ndarray,
    experts: np.ndarray,
    flags: dict[str, np.ndarray],
    layout: LabelLayout,
) -> None:
    """Cross-column rules of one row (composite = union, cancer flags, public Label = median)."""
    interval = flags["If_interval_cancer"][i]
    large = flags["If_large_invasive_cancer"][i]
    composite = flags["If_composite"][i]
    if composite != (interval | large):
        raise _ConsistencyError(
            "If_composite",
            f"If_composite is {composite} but If_interval_cancer OR If_large_invasive_cancer is "
            f"{interval | large} (the composite endpoint is defined as their union)",
        )
    if (interval or large) and not flags["If_cancer"][i]:
        raise _ConsistencyError(
            "If_cancer", "If_cancer is 0 but the row is an interval or large invasive cancer"
        )
    if layout is LabelLayout.PUBLIC:
        median = float(np.median(experts[i]))
        if label[i] != median:
            raise _ConsistencyError(
                "Label",
                f"Label {label[i]} is not the median {median:g} of the expert levels "
                f"{[int(v) for v in experts[i]]}",
            )


class _ConsistencyError(_CellError):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
