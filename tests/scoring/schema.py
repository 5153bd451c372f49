"""The report's JSON Schemas (``docs/report.schema.json``, ``docs/report-summary.schema.json``) as
test helpers.

Every scoring test that produces a report passes it through :func:`valid_report`, so the schema and
the report builder cannot drift apart (issue 10 item 5); a summary (issue 19) goes through
:func:`valid_summary`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

from server.scoring.report import ScoreReport, score_report

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"
SUMMARY_SCHEMA_PATH = SCHEMA_PATH.with_name("report-summary.schema.json")


@functools.cache
def _validator(path: Path = SCHEMA_PATH) -> jsonschema.Draft202012Validator:
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _valid(data: dict[str, Any], path: Path) -> dict[str, Any]:
    json.dumps(data, allow_nan=False)
    errors = sorted(_validator(path).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:20]]
        raise AssertionError(f"report does not match docs/{path.name}:\n" + "\n".join(lines))
    return data


def valid_report(data: dict[str, Any]) -> dict[str, Any]:
    """Return `data` unchanged after checking it against the schema (and that it is strict JSON).

    Raises ``AssertionError`` listing every violation with its JSON path.
    """
    return _valid(data, SCHEMA_PATH)


def valid_summary(data: dict[str, Any]) -> dict[str, Any]:
    """:func:`valid_report` for a summary body, against ``docs/report-summary.schema.json``."""
    return _valid(data, SUMMARY_SCHEMA_PATH)


def scored(*args: Any, **kwargs: Any) -> ScoreReport:
    """:func:`server.scoring.report.score_report`, with the report checked by :func:`valid_report`."""
    report = score_report(*args, **kwargs)
    valid_report(report.data)
    return report
