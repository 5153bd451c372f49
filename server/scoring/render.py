"""The human-readable view of a score report (what ``csawm score`` prints without ``--json``).

It only formats the report of :func:`server.scoring.report.score_report`, read into the typed
`server.scoring.results.Report`; every number shown is the one in the JSON. Undefined (or missing)
values print as ``n/a``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from server.scoring.notes import readable
from server.scoring.registry import ENDPOINTS
from server.scoring.results import Association, Estimate, ExpertScore, OddsRatio, Report, ReportBootstrap

_MISSING = "n/a"


def _value(value: float | None, digits: int = 4) -> str:
    return _MISSING if value is None else f"{value:.{digits}f}"


def _interval(ci: Sequence[float] | None, digits: int = 4) -> str:
    return _MISSING if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _table(title: str, *columns: str, caption: str | None = None) -> Table:
    """A table whose first column is left-aligned and the others right-aligned (the numbers)."""
    table = Table(title=title, caption=caption)
    for i, column in enumerate(columns):
        table.add_column(column, justify="right" if i else "left")
    return table


def _row(table: Table, label: str, estimate: Estimate, unit: str, digits: int = 4) -> None:
    table.add_row(label, _value(estimate.value, digits), _interval(estimate.ci95, digits), unit)


def _masking_table(report: Report) -> Table:
    unit = report.amae_unit or ""
    digits = 1 if unit == "rank" else 4
    title = f"Masking agreement ({report.label_layout} layout, {report.n_images} images)"
    table = _table(title, "metric", "value", "95% CI", "unit")
    levels = report.levels
    _row(table, "Kendall tau-b", report.kendall_tau_b, "")
    _row(table, "AMAE", report.amae, unit, digits)
    _row(table, "Kendall tau-b (8 levels)", levels.kendall_tau_b, "")
    _row(table, "AMAE (8 levels)", levels.amae, "level")
    for group, value in levels.group_amae.items():
        table.add_row(f"  AMAE, GT levels {group}", _value(value), "", "level")
    for scores, label in ((levels.low_bin, "levels 1-2"), (levels.high_bin, "levels 7-8")):
        if scores is not None:
            table.add_row(
                f"P / R / F1, {label}",
                " / ".join(_value(v, 3) for v in (scores.precision, scores.recall, scores.f1)),
                "",
                "",
            )
    return table


def _confusion_table(report: Report) -> Table:
    table = Table(title="Confusion matrix (rows: ground-truth level, columns: predicted level)")
    table.add_column("GT", justify="right")
    for level in range(1, 9):
        table.add_column(str(level), justify="right")
    for level, row in enumerate(report.levels.confusion_matrix or (), start=1):
        table.add_row(str(level), *(str(count) for count in row))
    return table


def _experts_table(report: Report) -> Table:
    unit = report.amae_unit
    title = "Expert reference rows (each expert against the ground truth)"
    table = _table(title, "expert", "Kendall tau-b", f"AMAE ({unit})")
    for name, entry in report.experts.items():
        table.add_row(name, _value(entry.kendall_tau_b), _value(entry.amae, 1 if unit == "rank" else 4))
    return table


def _agreement_table(report: Report) -> Table | None:
    """Kendall tau-b of the model and of each expert (rows) against each expert's annotation."""
    model: Mapping[str, ExpertScore] = report.model_per_expert
    if not model:
        return None
    columns = list(model)
    table = _table("Kendall tau-b against each expert's own annotation (rows: who is scored)", "", *columns)
    table.add_row("model", *(_value(model[name].kendall_tau_b, 3) for name in columns))
    for expert, entry in report.experts.items():
        table.add_row(
            expert,
            *("-" if name == expert else _value(entry.per_expert.get(name), 3) for name in columns),
        )
    return table


def _clinical_tables(report: Report) -> list[Table]:
    where = f"{report.population} population, {report.clinical_n} images"
    auc_table = _table(
        f"Clinical association: AUC of the score ({where})", "endpoint", "positives", "AUC", "95% CI"
    )
    ratio_table = _table(
        "Odds ratios vs the lowest score quartile Q1",
        *("endpoint", "vs Q1", "OR", "Woolf 95% CI", "p (one-sided)", "bootstrap 95% CI"),
        caption="* Woolf interval with the Haldane +0.5 correction (a zero cell)",
    )
    for endpoint in ENDPOINTS:
        entry = report.clinical[endpoint.key]
        label = endpoint.key.replace("_", " ")
        rows: list[tuple[str, Association]] = [(label, entry)] + [
            (f"  LIBRA {name.replace('_', ' ')}", reference) for name, reference in entry.references.items()
        ]
        for row_label, row in rows:
            auc = row.auc
            n_positive = _MISSING if row.n_positive is None else str(row.n_positive)
            auc_table.add_row(row_label, n_positive, _value(auc.value), _interval(auc.ci95))
            for quartile in ("Q2", "Q3", "Q4"):
                ratio = row.odds_ratios.get(quartile, OddsRatio())
                ratio_table.add_row(
                    row_label if quartile == "Q2" else "",
                    quartile,
                    _value(ratio.value, 2),
                    _interval(ratio.ci95, 2) + ("*" if ratio.haldane else ""),
                    _MISSING if ratio.p_one_sided is None else f"{ratio.p_one_sided:.4g}",
                    _interval(ratio.bootstrap_ci95, 2) if quartile == "Q4" else "",
                )
    return [auc_table, ratio_table]


def render_report(data: Mapping[str, Any] | Report) -> RenderableType:
    """All tables of the report (its JSON, or read), then the bootstrap settings and the warnings."""
    report = data if isinstance(data, Report) else Report.read(data)
    if report is None:
        raise TypeError("a score report is a JSON object")
    boot = report.bootstrap or ReportBootstrap()
    footer = Text(
        f"bootstrap: {boot.resamples} paired patient-level resamples, seed {boot.seed}, "
        f"{boot.degenerate} degenerate; scorer version {report.scorer_version}"
    )
    parts: list[RenderableType] = [
        _masking_table(report),
        _confusion_table(report),
        _experts_table(report),
        *([agreement] if (agreement := _agreement_table(report)) is not None else []),
        *_clinical_tables(report),
        footer,
    ]
    if report.warnings:
        parts.append(Text("notes:", style="bold yellow"))  # in words, as the report page shows them
        parts.extend(Text(f"  - {readable(warning).text}", style="yellow") for warning in report.warnings)
    return Group(*parts)
