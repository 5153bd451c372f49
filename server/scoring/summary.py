"""The summary of a score report: what a researcher of a ``summary`` phase sees (issue 19).

A model chooses its ``Final_score``/``Final_pred`` on the hidden images, so every figure of its report
is a channel out of them. The full report's detail figures are wide ones: the 8x8 confusion matrix
of the level view, the 2x2 table behind every odds ratio, and anything computed on a subset of the
rows chosen by their outcome (a ground-truth level group, a cancer stratum). A model that knows the
labels of some images (the public ones, pooled into the clinical section) writes bits into where it
puts them, and the submitter reads them back from those counts (``benchmarks/bench_report_channels.
py`` measures how many).

The summary is an **allow-list**: the headline metrics, their confidence intervals and the figures
the public board derives from them, nothing else. `SHOWN` is that list, the one table every surface
(API, report history, pages, plots, exports, CLI) applies through
:func:`server.disclosure.disclose.RunDisclosure.report_of`:

* shown: ``scorer_version``, ``n_images``, ``label_layout``; ``masking.kendall_tau_b`` and
  ``masking.amae`` with their CIs; ``clinical.population`` and ``clinical.n``; per endpoint the AUC
  with its CI and OR Q4 (value, Woolf and bootstrap CIs, one-sided p), which the board's clinical view
  shows; the same two for each LIBRA density comparator (with its ``n``, rows with a value); each
  expert's tau-b and AMAE against the consensus (the board's expert rows; figures of the labels
  alone); the model's tau-b and AMAE against each expert (``masking.per_expert``: the board's order
  by a reference radiologist and its stability table; whole-set figures like the headline ones);
  the strata defined by the images alone, density quartiles and laterality (``strata.
  density_q*``, ``strata.laterality_*``, their ``n``, tau-b and CI or the reason for none, and the
  differences ``density_q<k>_minus_density_q1`` and ``laterality_L_minus_laterality_R``);
  ``bootstrap``; the ``warnings`` about shown fields or about no field.
* withheld: ``masking.levels`` whole (the confusion matrix, ``group_amae`` per ground-truth level
  group, the low/high bins' precision and recall, the level view's tau-b and AMAE),
  ``experts.*.per_expert``, every ``n_positive``, every 2x2 ``table`` and its
  ``haldane`` flag (which says a cell is zero), the odds ratios Q2 and Q3, the strata defined by an
  outcome (``strata.cancer``, ``strata.no_cancer``, ``strata_differences.cancer_minus_no_cancer``:
  their ``n`` alone is a count of positives), and every warning about a withheld field.

A version-1 report or a partial one keeps what it has of the list; unknown keys are never shown.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from server.scoring.report import DENSITY_REFERENCES, ENDPOINTS

#: ``True``: the value as it is; a dict: the listed keys of an object, each by its own rule.
Rule: TypeAlias = bool | dict[str, "Rule"]

_ESTIMATE: Rule = {"value": True, "ci95": True}
_OR_Q4: Rule = {"value": True, "ci95": True, "bootstrap_ci95": True, "p_one_sided": True}
_ASSOCIATION: dict[str, Rule] = {"auc": _ESTIMATE, "odds_ratios": {"Q4": _OR_Q4}}
#: A stratum's entry: ``kendall_tau_b`` is an estimate or null (then ``reason`` says why).
_STRATUM: Rule = {"n": True, "kendall_tau_b": _ESTIMATE, "reason": True}

#: The strata defined by the images alone (density, laterality), shown under ``summary``; the
#: outcome strata (``cancer``, ``no_cancer``) only in the full report.
IMAGE_STRATA = (*(f"density_q{q}" for q in (1, 2, 3, 4)), "laterality_L", "laterality_R")
#: Their paired differences (the highest density quartile may be q2 or q3 where edges coincide).
IMAGE_DIFFERENCES = (
    *(f"density_q{q}_minus_density_q1" for q in (2, 3, 4)),
    "laterality_L_minus_laterality_R",
)

SHOWN: dict[str, Rule] = {
    "scorer_version": True,
    "n_images": True,
    "label_layout": True,
    "masking": {
        "kendall_tau_b": _ESTIMATE,
        "amae": {"value": True, "ci95": True, "unit": True},
        "per_expert": {f"Expert_{k}": {"kendall_tau_b": True, "amae": True} for k in range(1, 6)},
    },
    "clinical": {
        "population": True,
        "n": True,
        **{
            endpoint: {
                **_ASSOCIATION,
                "references": {name: {"n": True, **_ASSOCIATION} for name in DENSITY_REFERENCES},
            }
            for endpoint in ENDPOINTS
        },
    },
    "experts": {f"Expert_{k}": {"kendall_tau_b": True, "amae": True} for k in range(1, 6)},
    "strata": {name: _STRATUM for name in IMAGE_STRATA},
    "strata_differences": {name: _ESTIMATE for name in IMAGE_DIFFERENCES},
    "bootstrap": {"resamples": True, "seed": True, "degenerate": True},
}

#: What marks a summary body (the full report has no such key).
SUMMARY = "summary"


def summary_report(report: dict[str, Any]) -> dict[str, Any]:
    """The summary of a full report JSON (module docstring); ``{"disclosure": "summary", ...}``.

    The input is not changed. Applying it to a summary gives the same summary.
    """
    out = _keep(report, SHOWN)
    assert isinstance(out, dict)
    warnings = report.get("warnings")
    if isinstance(warnings, list):
        out["warnings"] = [w for w in warnings if isinstance(w, str) and warning_shown(w)]
    return {"disclosure": SUMMARY, **out}


def _keep(value: Any, rule: Rule) -> Any:
    if rule is True:
        return value
    if not isinstance(value, dict) or not isinstance(rule, dict):
        return None
    return {key: _keep(value[key], sub) for key, sub in rule.items() if key in value}


def field_shown(path: str) -> bool:
    """Whether the dotted report path (``clinical.composite.odds_ratios.Q4.value``) is in `SHOWN`; a
    path into a shown value (``masking.amae.ci95.0``) is shown too."""
    rule: Rule = SHOWN
    for part in path.split("."):
        if rule is True:
            return True
        if not isinstance(rule, dict) or part not in rule:
            return False
        rule = rule[part]
    return True


def warning_shown(message: str) -> bool:
    """A scoring warning names its subject before the first ``": "``: a report path (kept when
    that field is shown, e.g. ``masking.kendall_tau_b: 3 of 2000 bootstrap resamples were
    degenerate``) or no field (``predictions: ...``, ``bootstrap: ...``, ``clinical references
    percent_density: ...``), which says nothing about a withheld figure and is kept."""
    subject = message.split(": ", 1)[0]
    if " " in subject or "." not in subject:
        return True
    return field_shown(subject)
