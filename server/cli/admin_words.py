"""What `csawm admin` prints, in sentences and tables (issue 23 item 8).

A maintainer reads "created phase dev-ladder (live, Ladder board, opens 2027-03-01 00:00 UTC, …)",
not the phase's fields as ``name=…, stored=True``; a program passes ``--json`` and reads the same
data as JSON on stdout. The sentences go to stderr, as every confirmation of `csawm admin` does, so
stdout stays for the data a script captures (tokens, ``--json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import typer

from server.core.settings import Settings
from server.phases.service import PhaseView


def stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "–"


def phase_sentence(view: PhaseView) -> str:
    """``NAME (live, Ladder board, opens …, closes …; private test set, …)``."""
    kind = "sealed final round" if view.visibility == "sealed" else "live"
    if view.visibility == "sealed":
        kind += f", revealed {stamp(view.revealed_at)}" if view.revealed_at else ", not revealed"
    board = "exact board"
    if view.ladder:
        board = f"Ladder board (level {view.ladder_level:g}, step {view.ladder_step:g})"
    opens = f"opens {stamp(view.opens_at)}" if view.opens_at else "open from the start"
    closes = f"closes {stamp(view.closes_at)}" if view.closes_at else "open-ended"
    report = "the full report" if view.disclosure == "full" else "the summary report"
    facts = [f"{view.test_set} test set", f"researchers see {report}", _phase_quota(view)]
    if view.visibility == "sealed":
        facts.append(f"up to {view.max_selected} selected runs per team")
    if view.compute_budget_s is not None:
        facts.append(f"compute budget {view.compute_budget_s // 60} min per team")
    return f"{view.name} ({kind}, {board}, {opens}, {closes}; {'; '.join(facts)})"


def _phase_quota(view: PhaseView) -> str:
    parts = [
        f"{value} {label}" if value is not None else f"the server's default {label}"
        for value, label in (
            (view.quota_total, "in the phase"),
            (view.quota_per_day, "a day"),
            (view.quota_per_week, "a week"),
        )
    ]
    return "submissions per team: " + ", ".join(parts)


def quota_sentence(team: str, overrides: dict[str, int | None], settings: Settings) -> str:
    """``quota of team T: 5 a day, 5 a week (server default), …``."""
    defaults = {
        "per_day": settings.quota_per_day,
        "per_week": settings.quota_per_week,
        "total": settings.quota_total,
        "active": settings.quota_active,
    }
    labels = {"per_day": "a day", "per_week": "a week", "total": "per phase", "active": "active at once"}
    parts = [
        f"{defaults[key]} {label} (server default)"
        if overrides.get(key) is None
        else f"{overrides[key]} {label}"
        for key, label in labels.items()
    ]
    return f"quota of team {team}: {', '.join(parts)}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, the header first; the last column is not padded."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
