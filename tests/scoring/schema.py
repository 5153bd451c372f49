"""The report's JSON Schema (``docs/report.schema.json``) as a test helper.

Every scoring test that produces a report passes it through :func:`valid_report`, so the schema and
the report builder cannot drift apart (issue 10 item 5).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

from server.scoring.report import ScoreReport, score_report

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def valid_report(data: dict[str, Any]) -> dict[str, Any]:
    """Return `data` unchanged after checking it against the schema (and that it is strict JSON).

    Raises ``AssertionError`` listing every violation with its JSON path.
    """
    json.dumps(data, allow_nan=False)
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:20]]
        raise AssertionError("report does not match docs/report.schema.json:\n" + "\n".join(lines))
    return data


def scored(*args: Any, **kwargs: Any) -> ScoreReport:
    """:func:`server.scoring.report.score_report`, with the report checked by :func:`valid_report`."""
    report = score_report(*args, **kwargs)
    valid_report(report.data)
    return report
