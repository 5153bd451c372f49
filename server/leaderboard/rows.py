"""The leaderboard's row model: one row of the masking board (`BoardRow`) and of the clinical view
(`ClinicalRow`), built once by `server.leaderboard.service` and read by attribute by the API, the
pages, the plots and the CSV and JSON downloads.

Each row has the two JSON forms the wire has always had: `BoardRow.to_json` is the API's row
(docs/api.md; numbers exactly as the report stored them) and `BoardRow.to_export_json` the
``/leaderboard.json`` download's (the API row's figures as the page draws them, without
``is_leader``, plus the page's columns: OR Q4 per endpoint, submission date, image digest, links).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from server.leaderboard.baseline_runs import RunGroup
from server.leaderboard.standing import Standing
from server.scoring.results import Association, Estimate, Interval, OddsRatio, StratumScore


def is_web_url(value: Any) -> bool:
    """Only http(s) URLs become links (a ``javascript:`` URL in a submission must stay text)."""
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def links_of(card: Mapping[str, Any] | None, url: str | None) -> tuple[tuple[str, str], ...]:
    """Paper and code links of a submission: the method card's ``paper_url``/``code_url``, its ``url``."""
    found: list[tuple[str, str]] = []
    card = card or {}
    for label, link in (("paper", card.get("paper_url")), ("code", card.get("code_url")), ("link", url)):
        if is_web_url(link) and link not in dict(found).values():
            found.append((label, str(link)))
    return tuple(found)


@dataclass(frozen=True)
class BoardRow:
    """One row of the masking board (docs/api.md). A Ladder row carries no report-derived column:
    they would give the exact score. Models are ranked among models (`rank` 1, 2, ...); an expert
    row is a reference band (`rank` None, its tau-b interval on the runs' resamples)."""

    rank: int | None
    kind: str  # submission, baseline or expert
    team: str | None
    name: str
    submission_id: int | None  # None for expert rows (whose API row has no such key)
    scorer_version: str | None
    kendall_tau_b: Estimate
    amae: Estimate
    amae_unit: str | None
    tied_with_leader: bool | None
    tie_reason: str | None
    is_leader: bool
    ladder: dict[str, Any] | None  # Ladder phases: the rounded displayed value, no exact score
    odds_ratios: Mapping[str, OddsRatio]  # OR Q4 by endpoint key, from the report's summary
    submitted_at: datetime | None
    image_digest: str | None
    links: tuple[tuple[str, str], ...]
    standing: Standing | None = None  # model rows: rank interval, tier, ... (None for experts)
    # the model's tau-b against each expert (``masking.per_expert`` of its summary; empty without);
    # read by the order by a reference radiologist (`server.leaderboard.ordering`), not a column
    per_expert: Mapping[str, float | None] = field(default_factory=dict)
    runs: RunGroup | None = None  # a reference model of several runs: mean ± SD, unranked
    strata: Mapping[str, StratumScore] | None = None  # from the report's summary; None: no figures
    strata_differences: Mapping[str, Estimate] | None = None

    @property
    def tau(self) -> Interval:
        return self.kendall_tau_b.shown

    def to_json(self) -> dict[str, Any]:
        """The API's row."""
        amae = self.amae.to_json()
        row: dict[str, Any] = {
            "rank": self.rank,
            "kind": self.kind,
            "team": self.team,
            "name": self.name,
            "scorer_version": self.scorer_version,
            "kendall_tau_b": self.kendall_tau_b.to_json(),
            "amae": {**amae, "unit": self.amae_unit} if self.amae_unit else amae,
            "tied_with_leader": self.tied_with_leader,
            "tie_reason": self.tie_reason,
            "is_leader": self.is_leader,
        }
        return self._tail(row)

    def to_export_json(self) -> dict[str, Any]:
        """The ``/leaderboard.json`` download's row."""
        amae = self.amae.shown.to_json()
        row: dict[str, Any] = {
            "rank": self.rank,
            "kind": self.kind,
            "team": self.team,
            "name": self.name,
            "kendall_tau_b": self.tau.to_json(),
            "amae": {**amae, "unit": self.amae_unit} if self.amae_unit else amae,
            "tied_with_leader": self.tied_with_leader,
            "tie_reason": self.tie_reason,
            "scorer_version": self.scorer_version,
            "odds_ratio_q4": {key: value.shown.to_json() for key, value in self.odds_ratios.items()},
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "image_digest": self.image_digest,
            "links": {label: url for label, url in self.links},
        }
        return self._tail(row)

    def to_strata_json(self) -> dict[str, Any]:
        """The API's row of ``view=strata``: the masking row plus the run's tau-b by stratum and
        the paired differences, as its report's summary shows them (density and laterality; the
        outcome strata are never on the public board); both null for a row without them (experts,
        Ladder rows, a run scored before scorer version 3, figures withheld)."""
        return {
            **self.to_json(),
            **{
                key: None if figures is None else {k: v.to_json() for k, v in figures.items()}
                for key, figures in (("strata", self.strata), ("strata_differences", self.strata_differences))
            },
        }

    def _tail(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.kind != "expert":
            row["submission_id"] = self.submission_id
        if self.standing is not None:
            row.update(self.standing.to_json())
        if self.ladder is not None:
            row["ladder"] = self.ladder
        if self.runs is not None:
            row.update(self.runs.to_json())
        return row


@dataclass(frozen=True)
class ClinicalRow:
    """One row of the clinical view: a model (ranked) or a LIBRA density comparator (kind
    ``density``, with its `variable`, no rank and no submission)."""

    rank: int | None
    kind: str
    name: str
    scorer_version: str | None
    population: str | None
    clinical: Mapping[str, Association]  # by endpoint key, in the registry's order
    team: str | None = None
    submission_id: int | None = None
    variable: str | None = None

    @property
    def auc(self) -> dict[str, Estimate]:
        return {key: entry.auc for key, entry in self.clinical.items()}

    @property
    def odds_ratios(self) -> dict[str, OddsRatio]:
        return {key: entry.odds_ratio_q4 for key, entry in self.clinical.items()}

    def to_json(self) -> dict[str, Any]:
        """The API's row (``view=clinical``)."""
        head: dict[str, Any] = {"rank": self.rank, "kind": self.kind, "team": self.team, "name": self.name}
        if self.kind == "density":
            head["variable"] = self.variable
        else:
            head["submission_id"] = self.submission_id
        return {
            **head,
            "scorer_version": self.scorer_version,
            "population": self.population,
            "clinical": {key: entry.to_json() for key, entry in self.clinical.items()},
        }


def withheld(rows: list[BoardRow], note: str | None) -> list[BoardRow]:
    """`rows` as a viewer sees them when `note` (`server.disclosure.disclose.board_figures_note`) says
    the rank figures are withheld: every model row's figures null with `note` as the reason, no
    per-expert figure and no strata, every expert band without its interval. `rows` itself when
    nothing is withheld."""
    if note is None:
        return rows
    return [
        replace(row, kendall_tau_b=Estimate(row.kendall_tau_b.value))
        if row.kind == "expert"
        else row  # a reference model of several runs: no rank figures to withhold
        if row.runs is not None
        else replace(row, standing=Standing(reason=note), per_expert={}, strata=None, strata_differences=None)
        for row in rows
    ]
