"""The report's v2 parts on the pages: density rows in the forest plot and the clinical table, the
agreement heatmap, and plot labels that stay text whatever a name holds (issue 14)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from server.web import plots, queries

HOSTILE = ["$\\frac{1}{$", "$x^2$", "a_b_c", "\\mathrm{x}", "$$", "<script>"]


def _texts(plot: plots.Plot) -> str:
    root = ET.fromstring(plot.svg)
    return " ".join("".join(el.itertext()) for el in root.iter() if el.tag.endswith("text"))


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_drawn_as_plain_text_in_every_plot(name: str) -> None:
    tau = plots.tau_plot([plots.TauPoint(name, "submission", 0.7, 0.65, 0.75)])
    assert name in _texts(tau)
    forest = plots.odds_ratio_forest(
        [plots.OddsRatioPoint(name, "composite", 2.0, 1.2, 3.1)], {"composite": "Composite"}
    )
    assert f"Composite: {name}" in _texts(forest)
    assert "mathdefault" not in _texts(forest)  # the log axis' own tick labels still render as math
    heat = plots.agreement_heatmap([name], ["Expert_1"], [[0.5]])
    assert name.replace("_", " ") in _texts(heat)


def test_agreement_heatmap_values_blanks_and_alt() -> None:
    plot = plots.agreement_heatmap(
        ["this model", "Expert_1"], ["Expert_1", "Expert_2"], [[0.61, 0.72], [None, 0.55]]
    )
    texts = _texts(plot)
    assert "0.61" in texts and "0.72" in texts and "0.55" in texts
    assert plot.alt == (
        "Heatmap of Kendall tau-b against each expert's own annotation. "
        "this model: Expert 1 0.61, Expert 2 0.72; Expert 1: Expert 2 0.55."
    )
    with pytest.raises(ValueError, match="2 x 2"):
        plots.agreement_heatmap(["a", "b"], ["x", "y"], [[0.1, 0.2]])


def _report() -> dict:
    per = {f"Expert_{k}": {"kendall_tau_b": 0.5 + k / 100, "amae": 40.0} for k in range(1, 6)}
    ratio = {
        "value": 2.1,
        "ci95": [1.3, 3.4],
        "p_one_sided": 0.01,
        "table": [[1, 2], [3, 4]],
        "haldane": False,
    }
    return {
        "masking": {"per_expert": per},
        "experts": {
            name: {
                "kendall_tau_b": 0.7,
                "amae": 30.0,
                "per_expert": {o: {"kendall_tau_b": 0.4, "amae": 50.0} for o in per if o != name},
            }
            for name in per
        },
        "clinical": {
            "interval_cancer": {"references": {"percent_density": {"odds_ratios": {"Q4": ratio}}}},
        },
    }


def test_agreement_matrix_reads_model_and_expert_rows_from_the_report() -> None:
    raters, experts, matrix = queries.agreement_matrix(_report())
    assert raters == ["this model", *(f"Expert_{k}" for k in range(1, 6))]
    assert experts == [f"Expert_{k}" for k in range(1, 6)]
    assert matrix[0] == [0.51, 0.52, 0.53, 0.54, 0.55]
    assert matrix[1] == [None, 0.4, 0.4, 0.4, 0.4]
    assert queries.agreement_matrix({"masking": {}}) == ([], [], [])  # a v1 report has none


def test_density_odds_ratios_come_from_the_reports_references() -> None:
    found = queries.density_odds_ratios(_report(), "interval_cancer")
    assert found == [("LIBRA percent density", queries.Interval(2.1, 1.3, 3.4))]
    assert queries.density_odds_ratios(_report(), "composite") == []
