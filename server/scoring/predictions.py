"""Reader of a model's ``predictions.csv`` (model container contract v1, docs/contract.md).

The file is the CSAW-M authors' own inference output, so their code's files are accepted as is:
separator ``;`` or ``,`` (told from the header line); a header row; ``Filename`` (required, each test
image exactly once), ``Final_score`` (required, finite, higher = more masking), ``Final_pred``
(optional, integer 1..8; ``4.0`` is accepted as 4), ``Prob_bin_1``..``Prob_bin_8`` (optional, all
eight or none, each in [0, 1], summing to 1 +- 1e-3). The authors' code writes exactly
``Filename;Prob_bin_1;...;Prob_bin_8;Final_pred;Final_score``, so these are all the columns there
are: **any other column is refused** (issue 19). A column the reader ignored would still be bytes the
model chose, carried along with the hidden run's predictions (a nonce that steers their hash).

Accepted: a UTF-8 byte-order mark (Excel writes one), Windows line ends, blank lines (a line of
separators only counts as blank), spaces around values and quoted fields. Everything else that is
wrong raises :class:`PredictionsError` naming the row and column of the first problem; a file larger
than ``max_bytes`` is refused before it is read.

The rule the worker relies on: **whatever the bytes, `read_predictions` raises nothing but
`PredictionsError`** — a file the model wrote is its own fault (``output_invalid``), never an
infrastructure fault to retry and refund. Every problem is caught where it is understood, with its
row and column; a last guard turns anything the parser did not foresee into a `PredictionsError`
(``unforeseen=True``) so the rule holds by construction, and the property test
(``tests/scoring/test_predictions_fuzz.py``) checks over arbitrary bytes that the guard is never
needed.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.scoring.labels import split_records

PROB_COLUMNS: tuple[str, ...] = tuple(f"Prob_bin_{k}" for k in range(1, 9))
#: Every column the contract defines; any other is refused.
CONTRACT_COLUMNS: tuple[str, ...] = ("Filename", "Final_score", "Final_pred", *PROB_COLUMNS)
#: The columns as an error names them, so a wrong header is fixed in one go.
EXPECTED_COLUMNS = (
    "the columns are Filename and Final_score (required), Final_pred and Prob_bin_1..Prob_bin_8 "
    "(optional), separated by ';'; names are case-sensitive"
)


def _case_hint(header: list[str], required: str) -> str:
    """Where the header has `required` in another case (``final_score``): say that case matters."""
    near = next((name for name in header if name.strip().lower() == required.lower()), None)
    return "" if near is None else f"; {near!r} is not {required!r}"


PROB_SUM_TOLERANCE = 1e-3
N_LEVELS = 8
DEFAULT_MAX_BYTES = 64 * 1024**2
_LINE_END = re.compile(r"\r\n|\r|\n")  # the line ends the csv module knows (not str.splitlines')

log = logging.getLogger("csawm.scoring")


class PredictionsError(ValueError):
    """A predictions file that breaks the contract.

    Attributes
    ----------
    row : int or None
        1-based data row (header and blank lines not counted); None for whole-file problems.
    column : str or None
        The column concerned, when there is one.
    reason : str
        What was wrong, without the location. ``str(error)`` gives location and reason.
    unforeseen : bool
        True when the reader's last guard caught an exception the parser did not foresee (a bug of
        the reader; the file is still refused as the model's fault).
    """

    def __init__(
        self,
        reason: str,
        *,
        row: int | None = None,
        column: str | None = None,
        line: int | None = None,
        source: str = "predictions",
        unforeseen: bool = False,
    ) -> None:
        self.unforeseen = unforeseen
        self.row = row
        self.column = column
        self.line = line
        self.reason = reason
        self.source = source
        where = [source]
        if row is not None:
            where.append(f"row {row}" + (f" (line {line})" if line is not None else ""))
        elif line == 1:
            where.append("header")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(", ".join(where) + ": " + reason)


@dataclass(frozen=True)
class Predictions:
    """One model's predictions, one entry per image, in file order.

    Attributes
    ----------
    filenames : tuple of str
    final_score : ndarray of float64
        Finite continuous masking scores.
    final_pred : ndarray of int64 or None
        Predicted levels 1..8, when the file has ``Final_pred``.
    probs : ndarray of float64, shape (n, 8), or None
        ``Prob_bin_1..8``, when the file has them.
    """

    filenames: tuple[str, ...]
    final_score: np.ndarray
    final_pred: np.ndarray | None
    probs: np.ndarray | None

    def __len__(self) -> int:
        return len(self.filenames)

    def align(self, filenames: Sequence[str]) -> Predictions:
        """These predictions reordered to `filenames` (rows not listed are dropped).

        Raises
        ------
        PredictionsError
            Naming the first file name that has no prediction row.
        """
        position = {name: i for i, name in enumerate(self.filenames)}
        missing = [name for name in filenames if name not in position]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise PredictionsError(
                f"no prediction row for {missing[0]!r}{more}; every test image needs exactly one row",
                column="Filename",
            )
        index = np.fromiter((position[name] for name in filenames), dtype=np.int64, count=len(filenames))
        return Predictions(
            filenames=tuple(filenames),
            final_score=self.final_score[index],
            final_pred=None if self.final_pred is None else self.final_pred[index],
            probs=None if self.probs is None else self.probs[index],
        )


def read_predictions(
    source: bytes | Path,
    *,
    expected: Sequence[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Predictions:
    """Read and validate a predictions file.

    Parameters
    ----------
    source : bytes or Path
        The file's bytes, or its path (its size is checked before anything is read).
    expected : sequence of str, optional
        The test set's file names (the manifest). When given, every one must have exactly one row
        and no other name may appear.
    max_bytes : int
        Larger input is refused unread.

    Raises
    ------
    PredictionsError
        Naming the row and column of the first problem; the only exception raised, whatever the input.
    """
    label = "predictions" if isinstance(source, bytes) else str(source)
    try:
        data = _read_bounded(source, max_bytes, label)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PredictionsError(
                f"not UTF-8 text (invalid byte at offset {exc.start})", source=label
            ) from None
        if not text.strip():
            raise PredictionsError("the file is empty", source=label)
        return _Parser(text, label).parse(expected)
    except PredictionsError:
        raise
    except Exception as exc:  # the last guard: see the module docstring
        log.error("predictions reader: unforeseen %s on %s", exc.__class__.__name__, label, exc_info=True)
        raise PredictionsError(
            "the file could not be parsed as the contract's CSV", source=label, unforeseen=True
        ) from None


def _read_bounded(source: bytes | Path, max_bytes: int, label: str) -> bytes:
    if isinstance(source, bytes):
        if len(source) > max_bytes:
            raise PredictionsError(f"{len(source)} bytes, more than the limit of {max_bytes}", source=label)
        return source
    path = Path(source)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise PredictionsError(
                f"the file is {size} bytes, more than the limit of {max_bytes}", source=label
            )
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise PredictionsError(f"cannot read the file: {exc.strerror or exc}", source=label) from None
    if len(data) > max_bytes:
        raise PredictionsError(f"the file is more than the limit of {max_bytes} bytes", source=label)
    return data


class _Parser:
    """One pass over the text; raises on the first problem with its row, line and column."""

    def __init__(self, text: str, label: str) -> None:
        self.text = text
        self.label = label

    def error(
        self, reason: str, *, row: int | None = None, column: str | None = None, line: int | None = None
    ) -> PredictionsError:
        return PredictionsError(reason, row=row, column=column, line=line, source=self.label)

    def parse(self, expected: Sequence[str] | None) -> Predictions:
        first_line = next((line for line in _LINE_END.split(self.text) if line.strip()), "")
        delimiter = self._delimiter(first_line)
        records = split_records(
            self.text, delimiter, lambda exc, line: self.error(f"malformed CSV at line {line}: {exc}")
        )
        if not records:
            raise self.error(
                f"no header row: every line is empty or holds only {delimiter!r} separators", line=1
            )
        header_line, header = records[0]
        columns = self._columns(header, header_line)
        body = records[1:]
        if not body:
            raise self.error("the file has a header but no data rows")

        n = len(body)
        filenames: list[str] = []
        first_row: dict[str, int] = {}
        allowed = None if expected is None else set(expected)
        scores = np.empty(n)
        preds = np.empty(n, dtype=np.int64) if "Final_pred" in columns else None
        probs = np.empty((n, N_LEVELS)) if PROB_COLUMNS[0] in columns else None
        for i, (line, cells) in enumerate(body):
            row = i + 1
            fail = functools.partial(self.error, row=row, line=line)
            if len(cells) != len(header):
                raise fail(f"the row has {len(cells)} fields, the header has {len(header)}")
            name = cells[columns["Filename"]]
            if name == "":
                raise fail("empty file name", column="Filename")
            if name in first_row:
                raise fail(
                    f"duplicate file name {name!r} (first in row {first_row[name]})", column="Filename"
                )
            if allowed is not None and name not in allowed:
                raise fail(f"{name!r} is not an image of this test set", column="Filename")
            first_row[name] = row
            filenames.append(name)
            scores[i] = self._finite(cells[columns["Final_score"]], row, "Final_score", line)
            if preds is not None:
                preds[i] = self._level(cells[columns["Final_pred"]], row, line)
            if probs is not None:
                for k, column in enumerate(PROB_COLUMNS):
                    value = self._finite(cells[columns[column]], row, column, line)
                    if not 0.0 <= value <= 1.0:
                        raise fail(f"probability {value!r} is outside [0, 1]", column=column)
                    probs[i, k] = value
                total = float(probs[i].sum())
                if abs(total - 1.0) > PROB_SUM_TOLERANCE:
                    raise fail(
                        f"Prob_bin_1..Prob_bin_8 sum to {total:.6g}, not 1 "
                        f"(tolerance {PROB_SUM_TOLERANCE:g})",
                        column="Prob_bin_1..Prob_bin_8",
                    )
        if expected is not None:
            missing = [name for name in expected if name not in first_row]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise self.error(f"no row for test image {missing[0]!r}{more}", column="Filename")
        return Predictions(tuple(filenames), scores, preds, probs)

    def _delimiter(self, header: str) -> str:
        if ";" in header:
            return ";"
        if "," in header:
            return ","
        found = next((name for sep, name in (("\t", "a tab"), ("|", "'|'")) if sep in header), None)
        if found is not None:
            raise self.error(f"the header is separated by {found}; use ';' or ','", line=1)
        if header.strip().strip('"') == "Filename":
            raise self.error("missing required column 'Final_score'", column="Final_score", line=1)
        raise self.error(
            f"the header {header[:80]!r} has no ';' or ',' separator; expected at least Filename;Final_score",
            line=1,
        )

    def _columns(self, header: list[str], line: int) -> dict[str, int]:
        columns: dict[str, int] = {}
        for position, name in enumerate(header):
            if name in columns:
                raise self.error(f"column {name!r} appears twice", column=name, line=line)
            columns[name] = position
        for required in ("Filename", "Final_score"):
            if required not in columns:
                raise self.error(
                    f"missing required column {required!r} (header: {';'.join(header)[:120]}"
                    f"{_case_hint(header, required)}); {EXPECTED_COLUMNS}",
                    column=required,
                    line=line,
                )
        undefined = next((name for name in header if name not in CONTRACT_COLUMNS), None)
        if undefined is not None:
            what = (
                "an empty column name (a trailing separator?)" if undefined == "" else f"column {undefined!r}"
            )
            raise self.error(
                f"{what} is not defined by the contract; {EXPECTED_COLUMNS}, and no others",
                column=undefined,
                line=line,
            )
        present = [c for c in PROB_COLUMNS if c in columns]
        if present and len(present) != len(PROB_COLUMNS):
            absent = [c for c in PROB_COLUMNS if c not in columns]
            raise self.error(
                f"Prob_bin columns must come all eight or not at all; missing {', '.join(absent)}",
                column=absent[0],
                line=line,
            )
        return columns

    def _finite(self, text: str, row: int, column: str, line: int) -> float:
        fail = functools.partial(self.error, row=row, column=column, line=line)
        if text == "":
            raise fail("empty value, a number is required")
        try:
            value = float(text)
        except ValueError:
            raise fail(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise fail(f"{text!r} is not a finite number")
        return value

    def _level(self, text: str, row: int, line: int) -> int:
        value = self._finite(text, row, "Final_pred", line)
        fail = functools.partial(self.error, row=row, column="Final_pred", line=line)
        if not value.is_integer():
            raise fail(f"{text!r} is not an integer level")
        if not 1 <= value <= N_LEVELS:
            raise fail(f"level {int(value)} is outside 1..{N_LEVELS} (levels are 1-based)")
        return int(value)
