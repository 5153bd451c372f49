"""The board's other orders (issue 21 items 2 and 4): ordered by a reference radiologist, grouped
by tier, and the stability table.

* ``reference=expert_k``: the model rows ordered by their tau-b against expert k, read from each
  report's ``masking.per_expert`` (never computed again), higher first, competition ranks; rows
  without that figure (a report of scorer version 1, an undefined value, a Ladder row) follow in
  board order with a reason; the expert rows (reference bands) come last. Each row's ``rank`` stays
  the consensus rank; ``by_reference`` carries the rank and value under the reference.
* ``group=tier``: the rows keep their order; ``groups`` lists, tier by tier (1 first, rows without
  a tier last), the positions of the rows of that tier.
* stability: `server.scoring.stability.stability_table` over the board's model rows that have a
  report, the function ``csawm rank`` prints, so offline and board agree.

Visibility: wherever `board_figures_note` withholds the rank figures from the viewer (a sealed phase
before its reveal, a Ladder phase; maintainers always see them), the order by an expert and the
stability table are withheld too, each with the note, and the rows keep the board's order: an order
by an expert is a channel to the exact per-expert figures of those phases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server.core.errors import CsawmError
from server.leaderboard.rows import BoardRow
from server.scoring.ranking import competition_ranks
from server.scoring.results import Report
from server.scoring.stability import stability_table

EXPERTS = tuple(f"expert_{k}" for k in range(1, 6))
GROUPS = ("tier",)

NO_AGREEMENT = (
    "no tau-b against {expert} in its report (scored before scorer version 2, or undefined): re-score it"
)
LADDER_ROW = "a Ladder row shows a rounded value only"
EXPERT_ROW = "an expert row is a reference band, not ordered"


class InvalidBoardQuery(CsawmError):
    """A board query parameter outside its values (422, as the API's other validation errors)."""

    status_code = 422
    code = "validation_error"


def parse_reference(value: str | None) -> str | None:
    """``expert_1`` … ``expert_5`` (any case) or None; anything else is refused."""
    if value is None or value.lower() in ("", "consensus"):
        return None
    if value.lower() not in EXPERTS:
        raise InvalidBoardQuery(
            f"reference: {value!r} is not a reference radiologist; use one of {', '.join(EXPERTS)} "
            "(or leave it out for the consensus order)"
        )
    return value.lower()


def parse_group(value: str | None) -> str | None:
    """``tier`` or None; anything else is refused."""
    if not value:
        return None
    if value.lower() not in GROUPS:
        raise InvalidBoardQuery(f"group: {value!r} is not a grouping of the board; use group=tier")
    return value.lower()


def withheld_note(note: str) -> str:
    """Why the order by an expert and the stability table are not shown (`note`: the phase's)."""
    return f"{note}; the order by a reference radiologist and the stability table are withheld too"


@dataclass(frozen=True)
class Mark:
    """A row's place under the reference: its tau-b against the expert and its rank, or a reason."""

    value: float | None
    rank: int | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "kendall_tau_b": self.value, "reason": self.reason}


def by_expert(rows: Sequence[BoardRow], expert: str) -> tuple[list[BoardRow], list[Mark]]:
    """`rows` ordered by agreement with `expert` (module docstring), with each row's mark."""
    valued: list[tuple[BoardRow, float]] = []
    rest: list[tuple[BoardRow, Mark]] = []
    bands: list[tuple[BoardRow, Mark]] = []
    for row in rows:
        value = {key.lower(): tau for key, tau in row.per_expert.items()}.get(
            expert
        )  # as its report holds it
        if row.kind == "expert":
            bands.append((row, Mark(None, None, EXPERT_ROW)))
        elif row.ladder is not None:
            rest.append((row, Mark(None, None, LADDER_ROW)))
        elif value is None:
            rest.append((row, Mark(None, None, NO_AGREEMENT.format(expert=expert))))
        else:
            valued.append((row, value))
    valued.sort(key=lambda item: -item[1])  # stable: equal values keep the board's order
    ranks = [int(rank) for rank in competition_ranks([value for _, value in valued])] if valued else []
    placed = [(row, Mark(value, rank, None)) for (row, value), rank in zip(valued, ranks, strict=True)]
    ordered = placed + rest + bands
    return [row for row, _ in ordered], [mark for _, mark in ordered]


@dataclass(frozen=True)
class Group:
    """The positions (in the rows as shown) of one tier's rows; `tier` None: rows without a tier."""

    tier: int | None
    rows: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "rows": list(self.rows)}


def tier_groups(rows: Sequence[BoardRow]) -> list[Group]:
    """The rows grouped by tier, tier 1 first, rows without a tier (experts, unranked, withheld) last."""
    found: dict[int | None, list[int]] = {}
    for position, row in enumerate(rows):
        tier = row.standing.tier if row.standing is not None else None
        found.setdefault(tier, []).append(position)
    keys = sorted(t for t in found if t is not None) + ([None] if None in found else [])
    return [Group(tier, tuple(found[tier])) for tier in keys]


@dataclass(frozen=True)
class Stability:
    """The stability table of one board: Kendall tau-b of each order against the consensus order."""

    values: Mapping[str, float | None]
    rows: int  # model rows with a report: the rows both orders are read from

    def to_json(self, note: str | None = None) -> dict[str, Any]:
        if note is not None:
            return {"rows": None, "kendall_tau_b": None, "note": withheld_note(note)}
        return {"rows": self.rows, "kendall_tau_b": dict(self.values), "note": None}


def board_stability(reports: Sequence[Report]) -> Stability:
    """The stability table of the board's model rows (each row's report as the board reads it)."""
    return Stability(stability_table(reports), len(reports))


@dataclass(frozen=True)
class Arranged:
    """The rows as a viewer asked for them: maybe ordered by an expert, maybe grouped by tier."""

    rows: list[BoardRow]
    reference: str | None
    marks: list[Mark] | None  # one per row, with `reference`, where the order is shown
    groups: list[Group] | None
    note: str | None  # why the order by `reference` is withheld

    def extra_json(self) -> dict[str, Any]:
        """The response's ``reference`` and ``groups`` (each null when not asked for)."""
        reference = None if self.reference is None else {"expert": self.reference, "note": self.note}
        groups = [group.to_json() for group in self.groups] if self.groups is not None else None
        return {"reference": reference, "groups": groups}

    def rows_json(self) -> list[dict[str, Any]]:
        """The API's rows; with a shown reference each carries ``by_reference`` (`Mark`)."""
        if self.marks is None:
            return [row.to_json() for row in self.rows]
        pairs = zip(self.rows, self.marks, strict=True)
        return [{**row.to_json(), "by_reference": mark.to_json()} for row, mark in pairs]


def arrange(rows: list[BoardRow], *, reference: str | None, group: str | None, note: str | None) -> Arranged:
    """`rows` (as the viewer sees them, `withheld` applied) ordered by `reference` unless `note`
    (`board_figures_note`) withholds it, then grouped by tier when `group` is ``tier``."""
    marks: list[Mark] | None = None
    shown_note = None
    if reference is not None:
        if note is None:
            rows, marks = by_expert(rows, reference)
        else:
            shown_note = withheld_note(note)
    groups = tier_groups(rows) if group == "tier" else None
    return Arranged(rows, reference, marks, groups, shown_note)
