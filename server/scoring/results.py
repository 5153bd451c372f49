"""Typed, frozen views of what scoring stores: the score report and the run's reproducibility record.

Both are stored as JSON (``submissions.metrics`` and ``submission_reports.metrics``;
``submissions.reproducibility``) and are read here, once, into these models: the leaderboard, the
pages, the exports, the Ladder, the review flags and re-scoring read attributes, never string keys.
The readers are lenient on purpose: a stored report may be of scorer version 1, a summary
(`server.scoring.summary`) or partial, and a record may predate a field; what is missing or not of
its type reads as None (an empty mapping for a section), never as a fake value.

The report's JSON itself (``Report.data``) stays the wire form of the report endpoints: it is what
`docs/report.schema.json` describes, and a reader never rebuilds it from the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from server.scoring.registry import ENDPOINTS
from server.scoring.summary import summary_report

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _section(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def _number(value: Any) -> float | None:
    """A JSON number exactly as stored (an int stays an int, a non-finite float stays one, so the
    wire does not change), else None. Pages that draw a number use `finite`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def finite(value: float | None) -> float | None:
    """`value` as a float when it is a finite number, else None (what a page can draw)."""
    return float(value) if value is not None and math.isfinite(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Interval:
    """An estimate as a page, a plot or the CSV draws it: only finite numbers, any part None."""

    value: float | None
    lo: float | None
    hi: float | None

    def to_json(self) -> dict[str, Any]:
        ci = [self.lo, self.hi] if self.lo is not None and self.hi is not None else None
        return {"value": self.value, "ci95": ci}


@dataclass(frozen=True)
class Estimate:
    """A value with its 95% interval, as stored; ``ci95`` is None unless both ends are numbers."""

    value: float | None = None
    ci95: tuple[float, float] | None = None

    @property
    def shown(self) -> Interval:
        """This estimate as a page draws it (non-finite parts become None)."""
        lo, hi = self.ci95 if self.ci95 is not None else (None, None)
        return Interval(finite(self.value), finite(lo), finite(hi))

    @classmethod
    def read(cls, entry: Any) -> Estimate:
        """``{"value": v, "ci95": [lo, hi]}`` of a report."""
        entry = _section(entry)
        return cls(_number(entry.get("value")), _interval(entry.get("ci95")))

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": list(self.ci95) if self.ci95 is not None else None}


def _interval(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    lo, hi = _number(value[0]), _number(value[1])
    return None if lo is None or hi is None else (lo, hi)


@dataclass(frozen=True)
class OddsRatio(Estimate):
    """A quartile-vs-Q1 odds ratio with its Woolf interval and one-sided p-value; ``haldane`` (a zero
    cell, +0.5 correction) and, for Q4, the bootstrap interval as stored (None when missing)."""

    p_one_sided: float | None = None
    haldane: bool | None = None
    bootstrap_ci95: tuple[float, float] | None = None

    @classmethod
    def read(cls, entry: Any) -> OddsRatio:
        entry = _section(entry)
        haldane = entry.get("haldane")
        return cls(
            _number(entry.get("value")),
            _interval(entry.get("ci95")),
            _number(entry.get("p_one_sided")),
            haldane if isinstance(haldane, bool) else None,
            _interval(entry.get("bootstrap_ci95")),
        )

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "p_one_sided": self.p_one_sided}


@dataclass(frozen=True)
class Association:
    """One continuous score against one clinical endpoint: AUC and OR Q4."""

    auc: Estimate = Estimate()
    odds_ratio_q4: OddsRatio = OddsRatio()
    n_positive: int | None = None
    odds_ratios: Mapping[str, OddsRatio] = field(default_factory=lambda: _EMPTY)  # Q2..Q4, as stored

    @classmethod
    def read(cls, entry: Any) -> Association:
        """``{"n_positive": n, "auc": {...}, "odds_ratios": {"Q4": {...}, ...}, ...}`` of a report."""
        entry = _section(entry)
        ratios = _section(entry.get("odds_ratios"))
        return cls(
            auc=Estimate.read(entry.get("auc")),
            odds_ratio_q4=OddsRatio.read(ratios.get("Q4")),
            n_positive=_integer(entry.get("n_positive")),
            odds_ratios=MappingProxyType(
                {q: OddsRatio.read(v) for q, v in ratios.items() if isinstance(v, Mapping)}
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {"auc": self.auc.to_json(), "odds_ratio_q4": self.odds_ratio_q4.to_json()}


@dataclass(frozen=True)
class EndpointResult(Association):
    """The model's association with one endpoint and, by LIBRA variable, the density comparators'
    (scorer version 2; only the variables the report has)."""

    references: Mapping[str, Association] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def read(cls, entry: Any) -> EndpointResult:
        refs = _section(_section(entry).get("references"))
        found = {name: Association.read(value) for name, value in refs.items() if isinstance(value, Mapping)}
        return cls(**vars(Association.read(entry)), references=MappingProxyType(found))


@dataclass(frozen=True)
class ExpertScore:
    """One expert against the consensus, and (v2) against each other expert by tau-b."""

    kendall_tau_b: float | None
    amae: float | None
    per_expert: Mapping[str, float | None] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def read(cls, entry: Any) -> ExpertScore:
        entry = _section(entry)
        return cls(
            _number(entry.get("kendall_tau_b")), _number(entry.get("amae")), _taus(entry.get("per_expert"))
        )


def _expert_scores(section: Any) -> Mapping[str, ExpertScore]:
    """``{Expert_k: {"kendall_tau_b": t, "amae": a, ...}}`` of an ``experts`` or ``per_expert`` section."""
    return MappingProxyType(
        {k: ExpertScore.read(v) for k, v in _section(section).items() if isinstance(v, Mapping)}
    )


@dataclass(frozen=True)
class BinScores:
    """Precision, recall and F1 of a level bin as a yes/no call (scorer version 2)."""

    precision: float | None
    recall: float | None
    f1: float | None

    @classmethod
    def read(cls, entry: Any) -> BinScores | None:
        if not isinstance(entry, Mapping):
            return None
        return cls(*(_number(entry.get(key)) for key in ("precision", "recall", "f1")))


@dataclass(frozen=True)
class Levels:
    """The 8-level view of the masking section; what a report (a summary) lacks is None or empty."""

    kendall_tau_b: Estimate = Estimate()
    amae: Estimate = Estimate()
    group_amae: Mapping[str, float | None] = field(default_factory=lambda: _EMPTY)
    confusion_matrix: tuple[tuple[int, ...], ...] | None = None  # rows: ground truth, columns: predicted
    low_bin: BinScores | None = None
    high_bin: BinScores | None = None
    present: bool = False  # a non-empty section (a summary has none)

    @classmethod
    def read(cls, entry: Any) -> Levels:
        entry = _section(entry)
        return cls(
            Estimate.read(entry.get("kendall_tau_b")),
            Estimate.read(entry.get("amae")),
            MappingProxyType({k: _number(v) for k, v in _section(entry.get("group_amae")).items()}),
            _matrix(entry.get("confusion_matrix")),
            BinScores.read(entry.get("low_bin")),
            BinScores.read(entry.get("high_bin")),
            bool(entry),
        )


def _matrix(value: Any) -> tuple[tuple[int, ...], ...] | None:
    """A matrix of counts as stored; None unless every cell is an integer."""
    if not isinstance(value, list | tuple) or not value:
        return None
    if not all(isinstance(row, list | tuple) and all(_integer(c) is not None for c in row) for row in value):
        return None
    return tuple(tuple(row) for row in value)


@dataclass(frozen=True)
class ReportBootstrap:
    """The report's bootstrap settings and its count of degenerate resamples."""

    resamples: int | None = None
    seed: int | None = None
    degenerate: int | None = None

    @classmethod
    def read(cls, entry: Any) -> ReportBootstrap:
        return cls(*(_integer(_section(entry).get(key)) for key in ("resamples", "seed", "degenerate")))


def _taus(section: Any) -> Mapping[str, float | None]:
    """``{Expert_k: tau-b}`` of a ``per_expert`` section."""
    return MappingProxyType(
        {k: _number(_section(v).get("kendall_tau_b")) for k, v in _section(section).items()}
    )


@dataclass(frozen=True)
class StratumScore:
    """One stratum of a report (scorer version 3): its rows and tau-b, or why it has none."""

    n: int | None
    kendall_tau_b: Estimate | None  # None: suppressed or undefined (`reason` says which)
    reason: str | None = None

    @classmethod
    def read(cls, entry: Any) -> StratumScore:
        entry = _section(entry)
        tau = entry.get("kendall_tau_b")
        return cls(
            _integer(entry.get("n")),
            Estimate.read(tau) if isinstance(tau, Mapping) else None,
            _text(entry.get("reason")),
        )

    def to_json(self) -> dict[str, Any]:
        """The report's entry: ``{"n", "kendall_tau_b"}``, plus ``reason`` when tau-b is null."""
        entry: dict[str, Any] = {
            "n": self.n,
            "kendall_tau_b": None if self.kendall_tau_b is None else self.kendall_tau_b.to_json(),
        }
        if self.reason is not None:
            entry["reason"] = self.reason
        return entry


@dataclass(frozen=True)
class Report:
    """A stored score report, read (module docstring).

    ``clinical`` holds every registered endpoint (`server.scoring.registry.ENDPOINTS`), empty
    results where the report has none; ``experts`` and ``per_expert`` what the report has.
    """

    data: Mapping[str, Any]  # the stored JSON, as written (the report endpoints' body)
    has_masking: bool  # a non-empty masking section (what the CLI shows the headline figures of)
    scorer_version: str | None
    kendall_tau_b: Estimate
    amae: Estimate
    amae_unit: str | None
    population: str | None
    clinical: Mapping[str, EndpointResult]
    experts: Mapping[str, ExpertScore]
    per_expert: Mapping[str, float | None]  # the model's tau-b against each expert (v2)
    n_images: int | None = None
    label_layout: str | None = None
    levels: Levels = Levels()
    clinical_n: int | None = None
    model_per_expert: Mapping[str, ExpertScore] = field(default_factory=lambda: _EMPTY)  # tau-b, AMAE
    bootstrap: ReportBootstrap | None = None  # None where the report has no bootstrap section
    warnings: tuple[str, ...] = ()
    has_clinical: bool = False  # a non-empty clinical section
    disclosure: str | None = None  # "summary" for a summary (`server.scoring.summary`), else None
    strata: Mapping[str, StratumScore] = field(default_factory=lambda: _EMPTY)  # v3, what is shown
    strata_differences: Mapping[str, Estimate] = field(default_factory=lambda: _EMPTY)  # "<a>_minus_<b>"

    @classmethod
    def read(cls, stored: Any) -> Report | None:
        """The one reader of a stored report JSON; None for anything that is not an object."""
        if not isinstance(stored, Mapping):
            return None
        masking = _section(stored.get("masking"))
        clinical = _section(stored.get("clinical"))
        amae = _section(masking.get("amae"))
        return cls(
            data=stored,
            has_masking=bool(masking),
            scorer_version=_text(stored.get("scorer_version")),
            kendall_tau_b=Estimate.read(masking.get("kendall_tau_b")),
            amae=Estimate.read(amae),
            amae_unit=amae["unit"] if isinstance(amae.get("unit"), str) else None,
            population=clinical["population"] if isinstance(clinical.get("population"), str) else None,
            clinical=MappingProxyType({e.key: EndpointResult.read(clinical.get(e.key)) for e in ENDPOINTS}),
            experts=_expert_scores(stored.get("experts")),
            per_expert=_taus(masking.get("per_expert")),
            n_images=_integer(stored.get("n_images")),
            label_layout=_text(stored.get("label_layout")),
            levels=Levels.read(masking.get("levels")),
            clinical_n=_integer(clinical.get("n")),
            model_per_expert=_expert_scores(masking.get("per_expert")),
            bootstrap=ReportBootstrap.read(boot) if (boot := _section(stored.get("bootstrap"))) else None,
            warnings=tuple(w for w in _list(stored.get("warnings")) if isinstance(w, str)),
            has_clinical=bool(clinical),
            disclosure=_text(stored.get("disclosure")),
            strata=MappingProxyType(
                {k: StratumScore.read(v) for k, v in _section(stored.get("strata")).items()}
            ),
            strata_differences=MappingProxyType(
                {k: Estimate.read(v) for k, v in _section(stored.get("strata_differences")).items()}
            ),
        )

    @classmethod
    def read_summary(cls, stored: Any) -> Report | None:
        """A stored report as a ``summary`` phase and the public board show it
        (`server.scoring.summary`); None for anything that is not an object."""
        return cls.read(summary_report(dict(stored))) if isinstance(stored, Mapping) else None

    def metric(self, name: str) -> Estimate:
        """A headline masking metric of the registry's leaderboard order, by name."""
        estimate: Estimate = getattr(self, name)
        return estimate


@dataclass(frozen=True)
class Bootstrap:
    resamples: int | None
    seed: int | None

    def to_json(self) -> dict[str, Any]:
        """Both settings; a part an older record did not have stays out."""
        return {k: v for k, v in (("resamples", self.resamples), ("seed", self.seed)) if v is not None}


_UNSET: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RunRecord:
    """The reproducibility record of a scored run (``submissions.reproducibility``, docs/api.md).

    Written whole by the scoring step (`server.runs.scoring`), changed by a re-score
    (:meth:`rescored`), read by the tie test and the Ladder (:meth:`pairing`) and by re-scoring
    (``test_set``, ``n_hidden_images``). `present` is the keys the stored JSON has: `to_json` writes
    those (plus any key it did not know, kept as is), so reading and writing back an older or partial
    record changes only what was changed.
    """

    image_digest: str | None = None
    test_set: str | None = None
    test_set_manifest_sha256: str | None = None
    public_manifest_sha256: str | None = None
    predictions_sha256: str | None = None
    scorer_version: str | None = None
    runner_backend: str | None = None
    host: str | None = None
    worker: str | None = None
    attempt: int | None = None
    retries: int | None = None
    durations_s: Mapping[str, Any] | None = None
    peak_memory_bytes: Mapping[str, Any] | None = None
    bootstrap: Bootstrap | None = None
    preflight_source: str | None = None
    n_hidden_images: int | None = None
    n_private_images: int | None = None
    present: frozenset[str] = field(default=_UNSET, compare=False)
    unknown: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    def __post_init__(self) -> None:
        if self.present is _UNSET:  # built whole (not read): every field is written
            object.__setattr__(self, "present", frozenset(_RECORD_KEYS))

    @classmethod
    def read(cls, stored: Any) -> RunRecord:
        """The one reader of a stored record; an empty record for None or a non-object. A value not
        of its field's type is kept as an unknown key (written back as it was, read as missing)."""
        stored = _section(stored)
        values: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        for name, raw in stored.items():
            value = _record_value(name, raw)
            if value is None and raw is not None:
                unknown[name] = raw
            else:
                values[name] = value
        return cls(**values, present=frozenset(values), unknown=MappingProxyType(unknown))

    def rescored(self, **changes: Any) -> RunRecord:
        """This record with `changes` (field names) applied and written."""
        return replace(self, **changes, present=self.present | frozenset(changes))

    def to_json(self) -> dict[str, Any]:
        out = {name: _record_json(getattr(self, name)) for name in _RECORD_KEYS if name in self.present}
        return {**out, **self.unknown}

    def pairing(self) -> PairingBasis:
        """What makes this run's bootstrap replicates paired with another's."""
        boot = self.bootstrap or Bootstrap(None, None)
        return PairingBasis(
            _text(self.scorer_version), _text(self.test_set_manifest_sha256), boot.seed, boot.resamples
        )


_RECORD_KEYS: tuple[str, ...] = tuple(
    f.name for f in fields(RunRecord) if f.name not in ("present", "unknown")
)
_RECORD_INTEGERS = frozenset({"attempt", "retries", "n_hidden_images", "n_private_images"})
_RECORD_MAPPINGS = frozenset({"durations_s", "peak_memory_bytes"})


def _record_json(value: Any) -> Any:
    if isinstance(value, Bootstrap):
        return value.to_json()
    return dict(value) if isinstance(value, Mapping) else value


def _record_value(name: str, raw: Any) -> Any:
    """A stored record's value read as its field's type; None when it is not of it (or unknown)."""
    if name not in _RECORD_KEYS:
        return None
    if name == "bootstrap":
        if not isinstance(raw, Mapping):
            return None
        return Bootstrap(_integer(raw.get("resamples")), _integer(raw.get("seed")))
    if name in _RECORD_INTEGERS:
        return _integer(raw)
    if name in _RECORD_MAPPINGS:
        return MappingProxyType(dict(raw)) if isinstance(raw, Mapping) else None
    return raw if isinstance(raw, str) else None


@dataclass(frozen=True)
class PairingBasis:
    """What makes two runs' bootstrap replicates paired (from the reproducibility record): resample b
    is the same patient sample in both only with the same scorer version, test set (manifest digest),
    seed and resample count."""

    scorer_version: str | None
    test_set: str | None
    seed: int | None
    resamples: int | None

    @classmethod
    def of(cls, record: Any) -> PairingBasis:
        """The basis of a stored record (JSON) or of a read one."""
        return (record if isinstance(record, RunRecord) else RunRecord.read(record)).pairing()

    def missing(self) -> list[str]:
        """The fields not recorded: a basis with any of them missing pairs with nothing."""
        return [name for name, value in vars(self).items() if value is None]

    def known(self) -> PairingBasis | None:
        """This basis when every field is recorded, else None (what the Ladder compares)."""
        return None if self.missing() else self

    def mismatch(self, leader: PairingBasis) -> str | None:
        """Why this run cannot be paired with the leader's, or None when it can."""
        for basis in (self, leader):
            missing = basis.missing()
            if missing:
                whose = "this run" if basis is self else "the leader"
                return f"no tie test: {whose} has no recorded {', '.join(missing)}"
        if self.scorer_version != leader.scorer_version:
            return (
                f"no tie test: scored with scorer version {self.scorer_version}, "
                f"the leader with {leader.scorer_version}"
            )
        if self.test_set != leader.test_set:
            return "no tie test: scored on a different test set than the leader (test-set digest differs)"
        if self.seed != leader.seed or self.resamples != leader.resamples:
            return (
                f"no tie test: bootstrap seed {self.seed} with {self.resamples} resamples, "
                f"the leader's seed {leader.seed} with {leader.resamples}"
            )
        return None
