"""The human-readable view of a score report (what ``csawm score`` prints without ``--json``).

It only formats the report dict of :func:`server.scoring.report.score_report`; every number shown is
the one in the JSON. Undefined values print as ``n/a``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

_MISSING = "n/a"


def _value(value: float | None, digits: int = 4) -> str:
    return _MISSING if value is None else f"{value:.{digits}f}"


def _interval(ci: list[float] | None, digits: int = 4) -> str:
    return _MISSING if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _p_value(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.4g}"


def _masking_table(data: Mapping[str, Any]) -> Table:
    masking = data["masking"]
    unit = masking["amae"]["unit"]
    digits = 1 if unit == "rank" else 4
    table = Table(title=f"Masking agreement ({data['label_layout']} layout, {data['n_images']} images)")
    for column in ("metric", "value", "95% CI", "unit"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    levels = masking["levels"]
    table.add_row(
        "Kendall tau-b",
        _value(masking["kendall_tau_b"]["value"]),
        _interval(masking["kendall_tau_b"]["ci95"]),
        "",
    )
    table.add_row(
        "AMAE", _value(masking["amae"]["value"], digits), _interval(masking["amae"]["ci95"], digits), unit
    )
    table.add_row(
        "Kendall tau-b (8 levels)",
        _value(levels["kendall_tau_b"]["value"]),
        _interval(levels["kendall_tau_b"]["ci95"]),
        "",
    )
    table.add_row(
        "AMAE (8 levels)", _value(levels["amae"]["value"]), _interval(levels["amae"]["ci95"]), "level"
    )
    for group, value in levels["group_amae"].items():
        table.add_row(f"  AMAE, GT levels {group}", _value(value), "", "level")
    for key, label in (("low_bin", "levels 1-2"), ("high_bin", "levels 7-8")):
        scores = levels.get(key)
        if isinstance(scores, Mapping):
            table.add_row(
                f"P / R / F1, {label}",
                " / ".join(_value(scores[name], 3) for name in ("precision", "recall", "f1")),
                "",
                "",
            )
    return table


def _confusion_table(data: Mapping[str, Any]) -> Table:
    table = Table(title="Confusion matrix (rows: ground-truth level, columns: predicted level)")
    table.add_column("GT", justify="right")
    for level in range(1, 9):
        table.add_column(str(level), justify="right")
    for level, row in enumerate(data["masking"]["levels"]["confusion_matrix"], start=1):
        table.add_row(str(level), *(str(count) for count in row))
    return table


def _experts_table(data: Mapping[str, Any]) -> Table:
    unit = data["masking"]["amae"]["unit"]
    table = Table(title="Expert reference rows (each expert against the ground truth)")
    table.add_column("expert")
    table.add_column("Kendall tau-b", justify="right")
    table.add_column(f"AMAE ({unit})", justify="right")
    for name, entry in data["experts"].items():
        table.add_row(name, _value(entry["kendall_tau_b"]), _value(entry["amae"], 1 if unit == "rank" else 4))
    return table


def _agreement_table(data: Mapping[str, Any]) -> Table | None:
    """Kendall tau-b of the model and of each expert (rows) against each expert's annotation."""
    model = data["masking"].get("per_expert")
    if not isinstance(model, Mapping):
        return None
    columns = list(model)
    table = Table(title="Kendall tau-b against each expert's own annotation (rows: who is scored)")
    table.add_column("")
    for name in columns:
        table.add_column(name, justify="right")
    table.add_row("model", *(_value(model[name]["kendall_tau_b"], 3) for name in columns))
    for expert, entry in data["experts"].items():
        others = entry.get("per_expert") or {}
        table.add_row(
            expert, *("-" if name == expert else _value(others[name]["kendall_tau_b"], 3) for name in columns)
        )
    return table


def _clinical_tables(data: Mapping[str, Any]) -> list[Table]:
    clinical = data["clinical"]
    where = f"{clinical['population']} population, {clinical['n']} images"
    auc_table = Table(title=f"Clinical association: AUC of the score ({where})")
    auc_table.add_column("endpoint")
    auc_table.add_column("positives", justify="right")
    auc_table.add_column("AUC", justify="right")
    auc_table.add_column("95% CI", justify="right")
    ratio_table = Table(
        title="Odds ratios vs the lowest score quartile Q1",
        caption="* Woolf interval with the Haldane +0.5 correction (a zero cell)",
    )
    for column in ("endpoint", "vs Q1", "OR", "Woolf 95% CI", "p (one-sided)", "bootstrap 95% CI"):
        ratio_table.add_column(column, justify="left" if column == "endpoint" else "right")
    for endpoint in ("interval_cancer", "large_invasive_cancer", "composite"):
        entry = clinical[endpoint]
        label = endpoint.replace("_", " ")
        rows = [(label, entry)] + [
            (f"  LIBRA {name.replace('_', ' ')}", reference)
            for name, reference in (entry.get("references") or {}).items()
        ]
        for row_label, row in rows:
            auc = row["auc"]
            auc_table.add_row(row_label, str(row["n_positive"]), _value(auc["value"]), _interval(auc["ci95"]))
            for quartile in ("Q2", "Q3", "Q4"):
                ratio = row["odds_ratios"][quartile]
                ratio_table.add_row(
                    row_label if quartile == "Q2" else "",
                    quartile,
                    _value(ratio["value"], 2),
                    _interval(ratio["ci95"], 2) + ("*" if ratio["haldane"] else ""),
                    _p_value(ratio["p_one_sided"]),
                    _interval(ratio["bootstrap_ci95"], 2) if quartile == "Q4" else "",
                )
    return [auc_table, ratio_table]


def render_report(data: Mapping[str, Any]) -> RenderableType:
    """All tables of the report, then the bootstrap settings and the warnings."""
    boot = data["bootstrap"]
    footer = Text(
        f"bootstrap: {boot['resamples']} paired patient-level resamples, seed {boot['seed']}, "
        f"{boot['degenerate']} degenerate; scorer version {data['scorer_version']}"
    )
    parts: list[RenderableType] = [
        _masking_table(data),
        _confusion_table(data),
        _experts_table(data),
        *([agreement] if (agreement := _agreement_table(data)) is not None else []),
        *_clinical_tables(data),
        footer,
    ]
    if data["warnings"]:
        parts.append(Text("warnings:", style="bold yellow"))
        parts.extend(Text(f"  - {warning}", style="yellow") for warning in data["warnings"])
    return Group(*parts)
