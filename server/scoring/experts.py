"""Agreement with the five radiologists: each expert against the consensus, and raters pairwise.

Two views, both as the CSAW-M authors' notebook shows them (facts §4.1-4.2, §9):

* **consensus rows** (report ``experts``, v1): each expert's own annotation scored like a model
  against the ground truth (the median level, or the floor-median re-rank). Optimistic by
  construction, since each expert is one of the raters behind the median. They depend on the label
  file alone, so the leaderboard computes them from the test set before any run (:func:`expert_rows`).
* **per-expert agreement** (v2): a rater (the model, or another expert) scored against one expert's
  own annotation: Kendall's tau-b and AMAE with that expert as the ground truth. Rank layout: the
  expert's positions re-ranked within the evaluated rows are the ground truth and the rater's values
  are average-ranked on the same rows, so AMAE is in rank units; level layout: levels 1..8.

Rows where the expert (or the rater) has no value are left out of that pair, with a warning; the
private file may have empty expert cells (facts §9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from server.scoring import metrics, ranks, weighted
from server.scoring.inputs import FloatArray
from server.scoring.labels import LabelLayout, LabelTable
from server.scoring.metrics import MetricValue


@dataclass(frozen=True)
class ExpertView:
    """The experts' annotations of one label table in scoring units.

    Attributes
    ----------
    names : tuple of str
        ``Expert_1`` .. ``Expert_5``.
    annotations : ndarray, shape (n, k)
        Rank layout: each expert's positions re-ranked within the rows (average ranks, NaN for an
        empty cell); level layout: each expert's level 1..8.
    truth : ndarray, shape (n,)
        The consensus: floor-median re-rank, or ``Label`` (the median level).
    rank_layout : bool
    """

    names: tuple[str, ...]
    annotations: FloatArray
    truth: FloatArray
    rank_layout: bool

    @classmethod
    def of(cls, labels: LabelTable) -> ExpertView:
        if labels.experts is None or labels.layout not in (LabelLayout.PUBLIC, LabelLayout.PRIVATE):
            raise ValueError(f"expert annotations need a test-set label file; got the {labels.layout} layout")
        names = tuple(f"Expert_{k + 1}" for k in range(labels.experts.shape[1]))
        if labels.layout == LabelLayout.PRIVATE:
            reranked = ranks.rerank_experts(labels.experts)
            truth = ranks.median_rank_ground_truth(reranked).astype(np.float64)
            return cls(names, reranked, truth, True)
        assert labels.label is not None
        return cls(names, labels.experts.astype(np.float64), labels.label.astype(np.float64), False)


@dataclass(frozen=True)
class Agreement:
    """Tau-b and AMAE of one rater against one reference, and how many rows were left out."""

    kendall_tau_b: MetricValue
    amae: MetricValue
    n_left_out: int


def agreement(reference: FloatArray, rater: FloatArray, *, rank_layout: bool) -> Agreement:
    """Score `rater` against `reference` on the rows where both have a value.

    In the rank layout the rater's values (a score, or raw sort positions) are average-ranked on
    those rows, so AMAE is in rank units; `reference` is used as given (already in its units).

    Examples
    --------
    Expert re-ranks 1..4 against a score that swaps the top two: tau-b = (5 - 1)/6; AMAE = 2/4.

    >>> result = agreement(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.1, 0.2, 0.9, 0.5]), rank_layout=True)
    >>> round(result.kendall_tau_b.value, 6), result.amae.value
    (0.666667, 0.5)
    """
    rows = ~(np.isnan(reference) | np.isnan(rater))
    truth = reference[rows]
    pred = ranks.average_ranks(rater[rows]) if rank_layout else rater[rows]
    return Agreement(
        metrics.kendall_tau_b(truth, pred), metrics.amae(truth, pred), int(rows.size - rows.sum())
    )


def _entry(result: Agreement, path: str, warnings: list[str]) -> dict[str, float | None]:
    entry: dict[str, float | None] = {}
    for metric, value in (("kendall_tau_b", result.kendall_tau_b), ("amae", result.amae)):
        if not value.is_defined:
            warnings.append(f"{path}.{metric}: null, undefined ({value.reason})")
        entry[metric] = value.value if value.is_defined and np.isfinite(value.value) else None
    return entry


def per_expert(
    view: ExpertView, rater: FloatArray, path: str, warnings: list[str], *, skip: str | None = None
) -> dict[str, dict[str, float | None]]:
    """``{Expert_k: {"kendall_tau_b", "amae"}}`` of `rater` against every expert but `skip`."""
    section: dict[str, dict[str, float | None]] = {}
    for k, name in enumerate(view.names):
        if name == skip:
            continue
        result = agreement(view.annotations[:, k], rater, rank_layout=view.rank_layout)
        if result.n_left_out:
            warnings.append(
                f"{path}.{name}: {result.n_left_out} row(s) without a value left out of the comparison"
            )
        section[name] = _entry(result, f"{path}.{name}", warnings)
    return section


def expert_rows(labels: LabelTable, *, pairs: bool = True) -> tuple[dict[str, dict[str, object]], list[str]]:
    """The report's ``experts`` section and its warnings, from the label table alone.

    ``experts.Expert_j`` = ``{"kendall_tau_b", "amae"}`` of expert j against the consensus (v1) and
    ``"per_expert": {Expert_k: {"kendall_tau_b", "amae"}}`` of expert j against every other expert k
    (v2; rater j's values ranked on the rows both filled, as :func:`agreement`); ``pairs=False``
    leaves ``per_expert`` out (the version-1 section).
    """
    view = ExpertView.of(labels)
    raw = labels.experts
    assert raw is not None
    warnings: list[str] = []
    section: dict[str, dict[str, object]] = {}
    taus: dict[tuple[int, int], MetricValue] = {}
    for j, name in enumerate(view.names):
        column = view.annotations[:, j]
        present = ~np.isnan(column)
        if not present.all():
            warnings.append(
                f"experts.{name}: {int((~present).sum())} row(s) without a position; "
                f"scored on the other {int(present.sum())}"
            )
        # Against the consensus the expert's own re-ranks are the prediction (not ranked again), as in v1.
        consensus = agreement(view.truth, column, rank_layout=False)
        entry: dict[str, object] = dict(_entry(consensus, f"experts.{name}", warnings))
        if pairs:
            entry["per_expert"] = {
                other: _entry(_between(view, raw, j, k, taus), f"experts.{name}.per_expert.{other}", warnings)
                for k, other in enumerate(view.names)
                if k != j
            }
        section[name] = entry
    return section, warnings


def _between(
    view: ExpertView, raw: np.ndarray, j: int, k: int, taus: dict[tuple[int, int], MetricValue]
) -> Agreement:
    """Expert j (rater) against expert k (reference). Tau-b is symmetric in the pair (ranking the
    rows both filled is a monotone map of either column), so each pair's tau-b is computed once."""
    reference, rater = view.annotations[:, k], raw[:, j].astype(np.float64)
    rows = ~(np.isnan(reference) | np.isnan(rater))
    truth = reference[rows]
    if rows.all():  # expert j's re-ranks on every row are already in view.annotations
        pred = view.annotations[:, j]
    else:
        pred = ranks.average_ranks(rater[rows]) if view.rank_layout else rater[rows]
    pair = (min(j, k), max(j, k))
    if pair not in taus:
        taus[pair] = metrics.kendall_tau_b(truth, pred)
    return Agreement(taus[pair], metrics.amae(truth, pred), int(rows.size - rows.sum()))


def consensus_replicates(labels: LabelTable, counts: FloatArray) -> dict[str, FloatArray]:
    """``{Expert_k: replicates}``: each expert's tau-b against the consensus in every resample.

    `counts` is the runs' own resample matrix (:func:`server.scoring.bootstrap.resample_counts` of
    the evaluated rows, seed and resample count), so an expert's replicates are paired with every
    run's on that basis and its percentile interval is the expert's band on the board (issue 21
    item 0). Rows where the expert has no position are left out, as in :func:`expert_rows`.
    """
    view = ExpertView.of(labels)
    found: dict[str, FloatArray] = {}
    for j, name in enumerate(view.names):
        column = view.annotations[:, j]
        present = ~np.isnan(column)
        found[name] = weighted.kendall_tau_b(column[present], view.truth[present], counts[present])
    return found
