"""Where each model stands on the board beyond its point value (issue 21 items 0-2): rank interval,
median rank, ``p_first`` and tier per model row, the significance map, and each model's position
against every expert's band.

Which rows are ranked together: the models (submissions and baselines; expert rows are reference
bands, not ranked) whose replicates pair with the leader's, the tie test's rule (same scorer
version, test set, seed and resample count, `PairingBasis.mismatch`, and as many replicates). The
statistics are `server.scoring.ranking`'s, computed over those rows only; every other model row
gets null figures and a reason (re-score it, or a Ladder row which shows a rounded value only).

Expert bands: an expert's percentile interval of its tau-b against the consensus on the runs' own
resamples (`server.scoring.experts.consensus_replicates`). A model's interval is ``above`` a band
when its lower end lies above the band's upper end, ``below`` when its upper end lies below the
band's lower end, else ``inside`` (the intervals overlap).

Everything here is computed once per board version: `server.leaderboard.cache` keeps the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from server.scoring import ranking
from server.scoring.results import Interval, PairingBasis

NO_REPLICATES = "no rank figures: no stored bootstrap replicates (re-score it)"
LADDER_REASON = "no rank figures: a Ladder phase shows rounded values only"
LEADER_REASON = "no rank figures: the leader has no stored bootstrap replicates"


@dataclass(frozen=True)
class Standing:
    """One model row's rank figures; all None with `reason` where the row is not comparable."""

    rank_ci95: tuple[int, int] | None = None
    median_rank: float | None = None
    p_first: float | None = None
    tier: int | None = None
    reason: str | None = None
    versus_experts: Mapping[str, str] = field(default_factory=dict)  # Expert_k -> above/inside/below

    def to_json(self) -> dict[str, Any]:
        return {
            "rank_ci95": list(self.rank_ci95) if self.rank_ci95 is not None else None,
            "median_rank": self.median_rank,
            "p_first": self.p_first,
            "tier": self.tier,
            "rank_reason": self.reason,
            "versus_experts": dict(self.versus_experts),
        }


@dataclass(frozen=True)
class SignificanceMap:
    """The map of the ranked rows, in board order: ``p[i][j]`` (H0 "i is not better than j") and its
    Holm adjustment within column j; None on the diagonal."""

    submission_ids: tuple[int | None, ...]
    names: tuple[str, ...]
    p: np.ndarray
    p_holm: np.ndarray
    alpha: float
    resamples: int

    def top(self, count: int) -> dict[str, Any]:
        """The map of the first `count` rows as JSON (the tests of the others are left out)."""

        def cells(matrix: np.ndarray) -> list[list[float | None]]:
            part = matrix[:count, :count]
            return [[None if np.isnan(v) else float(v) for v in row] for row in part]

        return {
            "alpha": self.alpha,
            "resamples": self.resamples,
            "rows": len(self.names),
            "submission_ids": list(self.submission_ids[:count]),
            "names": list(self.names[:count]),
            "p": cells(self.p),
            "p_holm": cells(self.p_holm),
        }


@dataclass(frozen=True)
class Model:
    """What the standing needs of one model row (board order)."""

    submission_id: int | None
    name: str
    replicates: np.ndarray | None
    basis: PairingBasis | None
    ladder: bool
    tau: Interval


def versus(model: Interval, band: tuple[float, float] | None) -> str | None:
    """``above``, ``inside`` or ``below`` the expert's band; None without both intervals."""
    if band is None or model.lo is None or model.hi is None:
        return None
    if model.lo > band[1]:
        return "above"
    if model.hi < band[0]:
        return "below"
    return "inside"


def _reason(model: Model, leader: Model) -> str | None:
    """Why `model` cannot be ranked with the leader's basis, or None."""
    if model.ladder:
        return LADDER_REASON
    if model.replicates is None or model.replicates.size == 0:
        return NO_REPLICATES
    if model is leader:
        return None
    assert model.basis is not None and leader.basis is not None
    mismatch = model.basis.mismatch(leader.basis)
    if mismatch is not None:
        return mismatch.replace("no tie test", "no rank figures")
    assert leader.replicates is not None
    if model.replicates.shape != leader.replicates.shape:
        count, theirs = model.replicates.size, leader.replicates.size
        return f"no rank figures: {count} replicates against the leader's {theirs}"
    return None


def standings(
    models: Sequence[Model], bands: Mapping[str, tuple[float, float] | None], alpha: float
) -> tuple[list[Standing], SignificanceMap | None]:
    """Each model's standing (input order) and the map of the ranked rows (None when none is)."""
    if not models:
        return [], None
    leader = models[0]
    if (first := _reason(leader, leader)) is not None:
        reasons: list[str | None] = [
            LADDER_REASON if model.ladder else first if model is leader else LEADER_REASON for model in models
        ]
    else:
        reasons = [_reason(model, leader) for model in models]
    ranked = [k for k, reason in enumerate(reasons) if reason is None]
    figures: dict[int, Standing] = {}
    shown: SignificanceMap | None = None
    if ranked:
        matrix = np.vstack([np.asarray(models[k].replicates, dtype=np.float64) for k in ranked])
        if ranking.usable_resamples(matrix) == 0:
            reasons = [reason or "no rank figures: no resample defined for every row" for reason in reasons]
        else:
            summary = ranking.rank_summary(matrix)
            p = ranking.significance(matrix)
            p_holm = ranking.holm_by_column(p)
            tier = ranking.tiers(p_holm, alpha)
            for index, k in enumerate(ranked):
                figures[k] = Standing(
                    rank_ci95=(int(summary.rank_low[index]), int(summary.rank_high[index])),
                    median_rank=float(summary.median_rank[index]),
                    p_first=float(summary.p_first[index]),
                    tier=int(tier[index]),
                )
            ids, names = tuple(models[k].submission_id for k in ranked), tuple(models[k].name for k in ranked)
            shown = SignificanceMap(ids, names, p, p_holm, alpha, ranking.usable_resamples(matrix))
    out: list[Standing] = []
    for k, model in enumerate(models):
        marks = {name: mark for name, band in bands.items() if (mark := versus(model.tau, band)) is not None}
        out.append(
            replace(figures.get(k, Standing(reason=reasons[k])), versus_experts={} if model.ladder else marks)
        )
    return out, shown
