"""The SVG plots: well-formed, deterministic, described by their alt text, honest about gaps."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from server.web import plots

from .a11y import contrast_ratio

SVG = "{http://www.w3.org/2000/svg}svg"
MATRIX = [[5 if i == j else (1 if abs(i - j) == 1 else 0) for j in range(8)] for i in range(8)]


def _root(plot: plots.Plot) -> ET.Element:
    root = ET.fromstring(plot.svg.encode())
    assert root.tag == SVG
    return root


def _texts(plot: plots.Plot) -> str:
    return " ".join(t.text or "" for t in _root(plot).iter("{http://www.w3.org/2000/svg}text"))


def test_confusion_heatmap_counts_and_alt() -> None:
    plot = plots.confusion_heatmap(MATRIX)
    # 8 diagonal cells of 5 and 14 off-by-one cells of 1: 54 images, 40 exact, all within one level
    assert "over 54 images" in plot.alt and "40 on the diagonal (74%)" in plot.alt
    assert "54 within one level" in plot.alt
    assert "Predicted level" in _texts(plot)
    assert plots.confusion_heatmap(MATRIX).svg == plot.svg  # deterministic bytes
    with pytest.raises(ValueError, match="8x8"):
        plots.confusion_heatmap(MATRIX[:7])


def test_group_amae_marks_undefined_groups_instead_of_zero() -> None:
    plot = plots.group_amae_bars({"1-2": 0.5, "3-4": None, "5-6": 1.25, "7-8": 2.0})
    assert "levels 3-4: undefined" in plot.alt and "levels 5-6: 1.25" in plot.alt
    labels = _texts(plot)
    assert "n/a" in labels and "0.00" not in labels


def test_tau_plot_describes_best_and_missing_rows() -> None:
    points = [
        plots.TauPoint("Alpha / a", "submission", 0.70, 0.62, 0.77),
        plots.TauPoint("baseline b", "baseline", 0.73, 0.66, 0.79),
        plots.TauPoint("Expert 1", "expert", 0.65, None, None),
        plots.TauPoint("Gamma / broken", "submission", None, None, None),
    ]
    plot = plots.tau_plot(points)
    assert "for 3 leaderboard rows" in plot.alt
    assert "Highest: baseline b 0.730 (CI 0.660 to 0.790)" in plot.alt
    assert "lowest: Expert 1 0.650." in plot.alt and "Not plotted (no value): Gamma / broken." in plot.alt
    assert "Gamma / broken" not in _texts(plot)
    # a percentile CI may exclude its point estimate: drawn with a zero-length arm, not an error
    skewed = plots.tau_plot([plots.TauPoint("skewed", "submission", 0.50, 0.52, 0.60)])
    assert "skewed 0.500 (CI 0.520 to 0.600)" in skewed.alt
    empty = plots.tau_plot([])
    assert "for 0 leaderboard rows" in empty.alt and "no scored rows yet" in _texts(empty)


def test_forest_plot_lists_ratios_it_cannot_place_on_a_log_axis() -> None:
    endpoints = {"interval_cancer": "Interval cancer", "composite": "Composite"}
    points = [
        plots.OddsRatioPoint("this", "interval_cancer", 3.2, 1.1, 9.0),
        plots.OddsRatioPoint("this", "composite", 0.0, None, None),
        plots.OddsRatioPoint("baseline", "interval_cancer", None, None, None),
        plots.OddsRatioPoint("baseline", "composite", 2.5, 0.9, 7.1),
    ]
    plot = plots.odds_ratio_forest(points, endpoints)
    assert "for 2 models" in plot.alt
    assert "Interval cancer: this 3.20 (CI 1.10 to 9.00)" in plot.alt
    assert "Composite: baseline 2.50 (CI 0.90 to 7.10)" in plot.alt
    assert "Not plotted (zero or undefined): Composite: this, Interval cancer: baseline." in plot.alt
    texts = _texts(plot)
    assert "not defined" in texts and "zero" in texts


def test_plot_colours_stand_out_on_white() -> None:
    # WCAG 1.4.11: graphical objects need 3:1 against their background
    for name in ("submission", "baseline", "expert", "this"):
        assert contrast_ratio(plots.COLORS[name], "#ffffff") >= 3.0, name
