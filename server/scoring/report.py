"""The score report: every metric of docs/scoring.md in one JSON-ready dict, plus bootstrap replicates.

``score_report`` is the one function both the server and ``csawm score`` call, so a researcher's
offline score of the public test set is computed exactly as the server computes the private one.

Conventions
-----------
* Rows are taken in label-file order; predictions are aligned to it, so two submissions scored on the
  same labels with the same seed get the same resamples (paired replicates).
* A value that is undefined (constant predictions, a level group with no rows, an infinite odds
  ratio) is ``None`` (JSON ``null``) and the reason is added to ``warnings``; nothing is ever reported
  as a fake 0. A confidence interval that cannot be computed is ``None`` as a whole.
* The rank layout's 8-level view (``masking.levels``) sorts the floor-median GT ranks and the
  ``Final_score`` (ties broken by Filename) and cuts each with ``numpy.array_split`` into levels 1..8,
  as the annotation tool binned each expert's sort. The paper's code has no such view, so
  these numbers are not comparable to its public-test levels. In the level layout the view is the
  headline metrics again.
* Predicted levels of the level layout are ``Final_pred``; without it, ``Final_score`` cut into 8
  equal-count bins (with a warning).
* ``clinical.<endpoint>.odds_ratios.<Q>.ci95`` is the Woolf interval; Q4 additionally carries
  ``bootstrap_ci95``, the patient-level bootstrap interval docs/scoring.md asks for ("OR Q4").
* ``bootstrap.degenerate`` counts the resamples in which at least one bootstrapped statistic was
  undefined; each affected metric also gets a warning with its own count.
* Octile quartiles keep every tie block whole (:func:`server.scoring.clinical.octile_quartiles`):
  membership depends on the scores only, never on row order or file names; a warning names how many
  rows sit in tie blocks that straddle a cut. The bootstrap bins each resample by the same rule.
* ``clinical.<endpoint>.references.<variable>`` scores each LIBRA density column exactly as the
  model's ``Final_score`` (same population, same resamples): the paper's comparators, e.g. an
  interval-cancer OR Q4 of 2.10 for percent density on the 972 pooled images. Rows without a LIBRA
  value are left out of that variable (``n`` says how many remain), with a warning.
* ``masking.levels.low_bin`` / ``high_bin``: precision, recall and F1 of levels {1,2} / {7,8} of
  the level view (:func:`server.scoring.metrics.bin_scores`). In the level layout they are the
  authors' public-test numbers; in the rank layout they use the 8 equal-count bins of the ranks, a
  view the authors' code does not have (facts §9).
* ``masking.per_expert.Expert_k`` and ``experts.Expert_j.per_expert.Expert_k``: tau-b and AMAE of the
  model (of expert j) with expert k's own annotation as the ground truth
  (:mod:`server.scoring.experts`); together they are the notebook's rater-by-expert heatmap.
* ``strata.<name>`` and ``strata_differences.<a>_minus_<b>`` (scorer version 3): the headline
  tau-b in each stratum of the evaluated set (density quartiles, laterality, cancer outcome) with its
  ``n``, on the report's own resamples restricted to the stratum (:mod:`server.scoring.strata`); a
  stratum of fewer than ``min_stratum`` rows (``CSAWM_MIN_STRATUM``) is null with a ``reason``.
* The schema of the whole report is ``docs/report.schema.json``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike
from threadpoolctl import threadpool_limits

from server.scoring import clinical, experts, metrics, ranks, registry, strata, weighted
from server.scoring.bootstrap import DEFAULT_RESAMPLES, percentile_ci, resample_counts
from server.scoring.inputs import FloatArray, IntArray, tiebreak_codes
from server.scoring.labels import LabelLayout, LabelTable
from server.scoring.memo import TEST_SET_PARTS, content_digest
from server.scoring.metrics import MetricValue
from server.scoring.predictions import Predictions

#: Version of the report's definitions; a change of any reported number's meaning or rule bumps it.
#: "2" (issue 14): tie blocks stay whole in the octile quartiles (v1 broke ties by Filename), and
#: the report gains ``masking.levels.low_bin``/``high_bin``, ``masking.per_expert``,
#: ``experts.<Expert_j>.per_expert`` and ``clinical.<endpoint>.references``.
#: "3" (issue 21 item 3): the report gains ``strata`` and ``strata_differences``; every version-2
#: field keeps its meaning and value.
SCORER_VERSION = "3"

#: Report key -> LabelTable attribute of the LIBRA density comparators (``clinical.*.references``).
DENSITY_REFERENCES: dict[str, str] = {
    "percent_density": "libra_percent_density",
    "dense_area": "libra_dense_area",
    "breast_area": "libra_breast_area",
}

#: Report key -> LabelTable attribute of the clinical endpoints (declared in the registry).
ENDPOINTS: dict[str, str] = {endpoint.key: endpoint.column for endpoint in registry.ENDPOINTS}


class ScoringInputError(ValueError):
    """Label tables that cannot be scored together (wrong layout, overlapping file names)."""


@dataclass(frozen=True)
class ScoreReport:
    """The report JSON (``data``) and the per-resample values behind its intervals.

    Attributes
    ----------
    data : dict
        Exactly the report of docs/scoring.md plus ``"warnings": [str, ...]``; JSON-serialisable with
        ``allow_nan=False``.
    replicates : dict of str -> ndarray
        ``"kendall_tau_b"`` and ``"amae"`` (the headline masking metrics), one value per resample,
        NaN for a degenerate resample. Same seed + same rows => same resamples.
    """

    data: dict[str, Any]
    replicates: dict[str, np.ndarray]


class _Warnings:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        if message not in self.items:
            self.items.append(message)

    def extend(self, messages: Sequence[str]) -> None:
        for message in messages:
            self.add(message)


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass
class _Bootstrap:
    """The resample draws of one population and the degenerate-resample bookkeeping."""

    counts: FloatArray | None
    degenerate: np.ndarray

    @classmethod
    def draw(cls, n: int, resamples: int, seed: int, degenerate: np.ndarray | None = None) -> _Bootstrap:
        """The resamples of `n` rows; `degenerate` is shared with another population's when given."""
        counts = resample_counts(n, resamples, seed) if resamples else None
        return cls(counts, np.zeros(resamples, dtype=bool) if degenerate is None else degenerate)

    def estimate(
        self, path: str, point: MetricValue, replicates: FloatArray | None, notes: _Warnings
    ) -> dict[str, Any]:
        """``{"value", "ci95"}`` for a point value and its replicates; warnings for what is missing."""
        if not point.is_defined:
            notes.add(f"{path}: null, undefined ({point.reason})")
            return {"value": None, "ci95": None}
        return {"value": _number(point.value), "ci95": self.interval(path, replicates, notes)}

    def interval(self, path: str, replicates: FloatArray | None, notes: _Warnings) -> list[float] | None:
        """Percentile interval of the defined replicates; counts and reports degenerate resamples."""
        if replicates is None:
            return None
        bad = ~np.isfinite(replicates)
        self.degenerate |= bad
        if bad.any():
            notes.add(
                f"{path}: {int(bad.sum())} of {bad.size} bootstrap resamples were degenerate "
                "and are left out of the interval"
            )
        low, high = percentile_ci(replicates)
        if math.isnan(low):
            notes.add(f"{path}: no bootstrap interval (fewer than 2 resamples defined)")
            return None
        return [low, high]


def score_report(
    predictions: Predictions,
    labels: LabelTable,
    *,
    public_labels: LabelTable | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    min_stratum: int = strata.DEFAULT_MIN_STRATUM,
) -> ScoreReport:
    """Score one submission against a label table (docs/scoring.md).

    Parameters
    ----------
    predictions : Predictions
        Must hold a row for every row of `labels` (and of `public_labels` when given); other rows
        are ignored with a warning.
    labels : LabelTable
        The evaluated set: the private layout (rank-based masking metrics) or the public layout
        (level-based).
    public_labels : LabelTable, optional
        The public test set, public layout. When given, the clinical section is computed on the
        public and evaluated rows pooled (as in the paper, N = 972); otherwise on the evaluated rows.
    resamples : int
        Bootstrap resamples (0 disables the intervals).
    seed : int
        Seed of the resample draws; recorded in the report.
    min_stratum : int
        Strata of the evaluated set with fewer rows are suppressed (``CSAWM_MIN_STRATUM``).

    Raises
    ------
    ScoringInputError
        For a training-layout label file, a non-public `public_labels`, or overlapping file names.
    PredictionsError
        When a labelled row has no prediction.

    Notes
    -----
    Runs with one BLAS thread: the bootstrap's matrix products are small (about 500 x 2000), and on a
    shared 2-core machine OpenBLAS's default thread pool, spinning while other processes hold the
    cores, made the report twice as slow (``benchmarks/bench_scoring.py``).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _score_report(predictions, labels, public_labels, resamples, seed, min_stratum=min_stratum)


def _score_report(
    predictions: Predictions,
    labels: LabelTable,
    public_labels: LabelTable | None,
    resamples: int,
    seed: int,
    *,
    min_stratum: int = strata.DEFAULT_MIN_STRATUM,
    v2_parts: bool = True,
    v3_parts: bool = True,
) -> ScoreReport:
    """The report; ``v2_parts=False`` leaves out what scorer versions 2 and 3 added (references,
    bins, per-expert agreement, strata) and ``v3_parts=False`` what version 3 added (strata). They
    exist only so ``benchmarks/bench_scoring.py`` can time the older scopes in the same run; such
    output is not a valid report of any version."""
    _check_tables(labels, public_labels)
    if resamples < 0:
        raise ValueError(f"resamples must be non-negative; got {resamples}")

    notes = _Warnings()
    rows = predictions.align(labels.filenames)
    known = set(labels.filenames) | set(public_labels.filenames if public_labels is not None else ())
    ignored = sum(1 for name in predictions.filenames if name not in known)
    if ignored:
        notes.add(f"predictions: {ignored} row(s) for images not in the labels were ignored")
    if resamples == 0:
        notes.add("bootstrap: disabled (0 resamples), so no confidence intervals")

    n = len(labels)
    boot = _Bootstrap.draw(n, resamples, seed)
    codes = tiebreak_codes(labels.filenames, n)
    masking, replicates, headline = _masking(rows, labels, codes, boot, notes, v2_parts=v2_parts)
    expert_section, expert_notes = (
        _expert_rows(labels) if v2_parts else experts.expert_rows(labels, pairs=False)
    )
    notes.extend(expert_notes)

    if public_labels is not None:
        pooled_names = (*labels.filenames, *public_labels.filenames)
        clinical_tables: Sequence[LabelTable] = (labels, public_labels)
        score = predictions.align(pooled_names).final_score
        population = "pooled"
        pooled_boot = _Bootstrap.draw(len(pooled_names), resamples, seed, boot.degenerate)
    else:
        pooled_names = labels.filenames
        clinical_tables = (labels,)
        score = rows.final_score
        population = "evaluated"
        pooled_boot = boot
    clinical_section = _clinical(score, clinical_tables, pooled_boot, notes, seed=seed, references=v2_parts)
    clinical_section = {"population": population, "n": len(pooled_names), **clinical_section}

    data: dict[str, Any] = {
        "scorer_version": SCORER_VERSION,
        "n_images": n,
        "label_layout": "rank" if labels.layout == LabelLayout.PRIVATE else "level",
        "masking": masking,
        "clinical": clinical_section,
        "experts": expert_section,
    }
    if v2_parts and v3_parts:
        # The headline tau-b's ground truth and prediction in each stratum, on the report's resamples;
        # their degenerate resamples get a warning each but are not counted in bootstrap.degenerate.
        defined = strata.define_strata(labels)
        messages = list(defined.warnings)
        data["strata"], data["strata_differences"] = strata.score_strata(
            *headline, boot.counts, defined, min_size=min_stratum, warnings=messages
        )
        notes.extend(messages)
    data["bootstrap"] = {"resamples": resamples, "seed": seed, "degenerate": int(boot.degenerate.sum())}
    data["warnings"] = notes.items
    return ScoreReport(data=data, replicates=replicates)


def _check_tables(labels: LabelTable, public_labels: LabelTable | None) -> None:
    if labels.layout not in (LabelLayout.PUBLIC, LabelLayout.PRIVATE):
        raise ScoringInputError(
            f"labels must be a test-set file (public or private layout); got the {labels.layout} layout"
        )
    if public_labels is not None:
        if public_labels.layout != LabelLayout.PUBLIC:
            raise ScoringInputError(
                f"public labels must have the public layout; got the {public_labels.layout} layout"
            )
        shared = sorted(set(labels.filenames) & set(public_labels.filenames))
        if shared:
            raise ScoringInputError(
                f"labels and public labels share {len(shared)} file name(s), e.g. {shared[0]!r}; "
                "the pooled population must not count an image twice"
            )


def _masking(
    rows: Predictions,
    labels: LabelTable,
    codes: IntArray,
    boot: _Bootstrap,
    notes: _Warnings,
    *,
    v2_parts: bool = True,
) -> tuple[dict[str, Any], dict[str, np.ndarray], tuple[FloatArray, FloatArray]]:
    """The masking section: headline tau-b and AMAE, and the 8-level view; the replicates; the
    headline's (ground truth, prediction)."""
    if labels.layout == LabelLayout.PRIVATE:
        assert labels.experts is not None
        truth = ranks.median_rank_ground_truth(ranks.rerank_experts(labels.experts)).astype(np.float64)
        pred = ranks.average_ranks(rows.final_score)
        truth_levels = ranks.equal_count_levels(truth, codes)
        pred_levels = ranks.equal_count_levels(rows.final_score, codes)
        unit = "rank"
    else:
        assert labels.label is not None
        truth_levels = labels.label.astype(np.int64)
        if rows.final_pred is not None:
            pred_levels = rows.final_pred.astype(np.int64)
        else:
            pred_levels = ranks.equal_count_levels(rows.final_score, codes)
            notes.add(
                "masking: the predictions have no Final_pred; "
                "levels are Final_score cut into 8 equal-count bins"
            )
        truth = truth_levels.astype(np.float64)
        pred = pred_levels.astype(np.float64)
        unit = "level"

    counts = boot.counts
    tau_reps = None if counts is None else weighted.kendall_tau_b(pred, truth, counts)
    amae_reps = None if counts is None else weighted.amae(truth, pred, counts)
    tau = boot.estimate("masking.kendall_tau_b", metrics.kendall_tau_b(truth, pred), tau_reps, notes)
    error = boot.estimate("masking.amae", metrics.amae(truth, pred), amae_reps, notes)

    truth_lv = truth_levels.astype(np.float64)
    pred_lv = pred_levels.astype(np.float64)
    if unit == "level":
        level_tau_reps, level_amae_reps = tau_reps, amae_reps
    else:
        level_tau_reps = None if counts is None else weighted.kendall_tau_b(pred_lv, truth_lv, counts)
        level_amae_reps = None if counts is None else weighted.amae(truth_lv, pred_lv, counts)
    level_tau = boot.estimate(
        "masking.levels.kendall_tau_b", metrics.kendall_tau_b(truth_lv, pred_lv), level_tau_reps, notes
    )
    level_amae = boot.estimate("masking.levels.amae", metrics.amae(truth_lv, pred_lv), level_amae_reps, notes)
    groups = _values("masking.levels.group_amae", metrics.group_amae(truth_lv, pred_lv).items(), notes)

    levels_view = {
        "kendall_tau_b": level_tau,
        "amae": {**level_amae, "unit": "level"},
        "group_amae": groups,
        "confusion_matrix": metrics.confusion_matrix(truth_levels, pred_levels).tolist(),
    }
    masking = {"kendall_tau_b": tau, "amae": {**error, "unit": unit}}
    if not v2_parts:
        return {**masking, "levels": levels_view}, _replicates(tau_reps, amae_reps), (truth, pred)
    bins = {
        key: _values(f"masking.levels.{key}", metrics.bin_scores(truth_lv, pred_lv, levels).items(), notes)
        for key, levels in (("low_bin", metrics.LOW_BIN), ("high_bin", metrics.HIGH_BIN))
    }
    view = experts.ExpertView.of(labels)
    rater = rows.final_score if unit == "rank" else pred_lv
    agreement_notes: list[str] = []
    agreement = experts.per_expert(view, rater, "masking.per_expert", agreement_notes)
    notes.extend(agreement_notes)

    section = {**masking, "levels": {**levels_view, **bins}, "per_expert": agreement}
    return section, _replicates(tau_reps, amae_reps), (truth, pred)


def _replicates(tau: FloatArray | None, error: FloatArray | None) -> dict[str, np.ndarray]:
    empty = np.empty(0)
    return {"kendall_tau_b": empty if tau is None else tau, "amae": empty if error is None else error}


def _values(
    path: str, values: Iterable[tuple[str, MetricValue]], notes: _Warnings
) -> dict[str, float | None]:
    """``{name: value}``; null, with a warning, where a value is undefined."""
    entry: dict[str, float | None] = {}
    for name, value in values:
        if not value.is_defined:
            notes.add(f"{path}.{name}: null, undefined ({value.reason})")
        entry[name] = _number(value.value)
    return entry


def _clinical(
    score: FloatArray,
    tables: Sequence[LabelTable],
    boot: _Bootstrap,
    notes: _Warnings,
    *,
    seed: int,
    references: bool = True,
) -> dict[str, Any]:
    """AUC and quartile odds ratios of each endpoint over the given population, for the model's
    score and (``references``) for each LIBRA density column."""
    endpoints = _stacked(tables, ENDPOINTS, np.int64)
    model = _association(score, endpoints, boot, "clinical", "clinical.{endpoint}", notes)
    # The population's n is clinical.n, not repeated per endpoint.
    section = {key: {k: v for k, v in model[key].items() if k != "n"} for key in ENDPOINTS}
    if not references:
        return section
    for key, by_variable in _references(tables, boot, notes, seed=seed).items():
        section[key]["references"] = by_variable
    return section


def _references(
    tables: Sequence[LabelTable], boot: _Bootstrap, notes: _Warnings, *, seed: int
) -> dict[str, dict[str, Any]]:
    """``{endpoint: {variable: ...}}``: the density comparators of a population, from the memo when
    this test set and these resamples were seen before."""
    endpoints = _stacked(tables, ENDPOINTS, np.int64)
    columns = _stacked(tables, DENSITY_REFERENCES, np.float64)
    # The resamples are a function of (rows, resamples, seed): with the columns they fix the result.
    resamples = 0 if boot.counts is None else boot.counts.shape[1]
    memo_key = ("density", content_digest(*columns.values(), *endpoints.values()), resamples, seed)
    by_variable, reference_notes = TEST_SET_PARTS.get(
        memo_key, lambda: _density_references(columns, endpoints, boot.counts)
    )
    notes.extend(reference_notes)
    return {key: {name: per[key] for name, per in by_variable.items()} for key in ENDPOINTS}


def _stacked(tables: Sequence[LabelTable], attributes: dict[str, str], dtype: DTypeLike) -> dict[str, Any]:
    """``{key: column}`` of each LabelTable attribute, the tables' rows one after the other."""
    return {
        key: np.concatenate([np.asarray(getattr(table, attribute), dtype=dtype) for table in tables])
        for key, attribute in attributes.items()
    }


def _expert_rows(labels: LabelTable) -> tuple[dict[str, dict[str, object]], list[str]]:
    """The ``experts`` section and its warnings, from the memo when these labels were seen before."""
    key = ("experts", labels.layout.value, content_digest(labels.experts, labels.label))
    return TEST_SET_PARTS.get(key, lambda: experts.expert_rows(labels))


def _density_references(
    columns: dict[str, FloatArray], endpoints: dict[str, IntArray], counts: FloatArray | None
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``{variable: {endpoint: {"n", "n_positive", "auc", "odds_ratios"}}}`` and the warnings.

    Each LIBRA column is scored exactly as a model's score, on the rows that have a value, with the
    same resamples restricted to those rows. Their degenerate resamples are warned about but not
    added to ``bootstrap.degenerate``, which counts the model's statistics (as in v1).
    """
    notes = _Warnings()
    result: dict[str, dict[str, Any]] = {}
    for name, values in columns.items():
        present = ~np.isnan(values)
        missing = int(values.size - present.sum())
        if missing:
            notes.add(
                f"clinical references {name}: {missing} row(s) without a LIBRA value are left out "
                f"of that comparator ({int(present.sum())} remain)"
            )
        boot = _Bootstrap(
            counts=None if counts is None else counts[present],
            degenerate=np.zeros(0 if counts is None else counts.shape[1], dtype=bool),
        )
        subset = {key: endpoint[present] for key, endpoint in endpoints.items()}
        result[name] = _association(
            values[present],
            subset,
            boot,
            f"clinical references {name}",
            f"clinical.{{endpoint}}.references.{name}",
            notes,
        )
    return result, notes.items


def _association(
    score: FloatArray,
    endpoints: dict[str, IntArray],
    boot: _Bootstrap,
    label: str,
    path_template: str,
    notes: _Warnings,
) -> dict[str, dict[str, Any]]:
    """``{endpoint: {"n", "n_positive", "auc", "odds_ratios"}}`` of one continuous score."""
    straddling = clinical.straddling_rows(score)
    if straddling:
        notes.add(
            f"{label}: {straddling} row(s) sit in blocks of tied scores that straddle a quartile cut; "
            "each block is kept whole in the quartile its midpoint falls in, so the quartiles are not "
            "of equal size"
        )
    draws = None if boot.counts is None else weighted.association(score, boot.counts, endpoints)
    quartiles = clinical.octile_quartiles(score)
    section: dict[str, dict[str, Any]] = {}
    for key, endpoint in endpoints.items():
        path = path_template.format(endpoint=key)
        auc_reps = None if draws is None else draws[key].auc
        auc = boot.estimate(f"{path}.auc", clinical.roc_auc(endpoint, score), auc_reps, notes)
        ratios: dict[str, Any] = {}
        for quartile, result in clinical.odds_ratios_of(endpoint, quartiles).items():
            if result.reason is not None:
                notes.add(f"{path}.odds_ratios.{quartile}: null, {result.reason}")
            low, high = result.ci_low, result.ci_high
            entry: dict[str, Any] = {
                "value": _number(result.value),
                "ci95": None if math.isnan(low) else [low, high],
                "p_one_sided": _number(result.p_one_sided),
                "table": [list(result.table[0]), list(result.table[1])],
                "haldane": result.haldane,
            }
            if quartile == "Q4":
                reps = None if draws is None else draws[key].odds_ratio
                defined = result.reason is None
                entry["bootstrap_ci95"] = (
                    boot.interval(f"{path}.odds_ratios.Q4", reps, notes) if defined else None
                )
            ratios[quartile] = entry
        section[key] = {
            "n": int(endpoint.size),
            "n_positive": int(endpoint.sum()),
            "auc": auc,
            "odds_ratios": ratios,
        }
    return section


def references_of_test_set(
    labels: LabelTable,
    *,
    public_labels: LabelTable | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """The parts of a report that depend on the test set alone, before any submission.

    ``{"scorer_version", "experts", "clinical": {"population", "n", <endpoint>: {"references":
    {...}}}, "warnings"}``: the experts' rows (``experts`` of the report) and the LIBRA density
    comparators (``clinical.<endpoint>.references``), exactly as :func:`score_report` would give them
    for any submission on the same labels, resamples and seed (the same memo serves both).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        _check_tables(labels, public_labels)
        tables: Sequence[LabelTable] = (labels,) if public_labels is None else (labels, public_labels)
        n = sum(len(table) for table in tables)
        notes = _Warnings()
        expert_section, expert_notes = _expert_rows(labels)
        notes.extend(expert_notes)
        boot = _Bootstrap.draw(n, resamples, seed)
        references = _references(tables, boot, notes, seed=seed)
        clinical_section = {
            "population": "pooled" if public_labels is not None else "evaluated",
            "n": n,
            **{key: {"references": per} for key, per in references.items()},
        }
        return {
            "scorer_version": SCORER_VERSION,
            "experts": expert_section,
            "clinical": clinical_section,
            "warnings": notes.items,
        }
