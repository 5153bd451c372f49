"""Server-rendered SVG plots of the leaderboard and of one submission's report (matplotlib, Agg).

Each function takes plain report values and returns a `Plot`: the SVG text and an alt text that
states what the figure shows in words (with its numbers), so the pages stay readable without
images. Figures are built with the object API (`matplotlib.figure.Figure`), never pyplot, so no
global figure state is shared between requests; rcParams are global, so each figure is built and
saved under one lock with this module's settings. Text stays text in the SVG
(``svg.fonttype = none``) and ids derive from a fixed salt, so the same input gives the same bytes.
"""

from __future__ import annotations

import functools
import io
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import matplotlib.figure
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg

from server.core.text import visible

#: Marker and bar colours, from the palette of static/style.css (contrast on white checked in tests/web).
COLORS = {
    "submission": "#1f4e96",
    "baseline": "#8a4b00",
    "expert": "#4b5563",
    "this": "#1f4e96",
    "grid": "#d0d5dd",
    "text": "#1a1a1a",
}
KIND_MARKERS = {"submission": "o", "baseline": "s", "expert": "D"}
LEVEL_GROUPS = ("1-2", "3-4", "5-6", "7-8")
_RC: Any = {
    "svg.fonttype": "none",
    "svg.hashsalt": "csawm",
    "font.size": 9.0,
    "axes.edgecolor": "#555555",
    "text.usetex": False,
}
_lock = threading.Lock()
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Plot:
    """An SVG document and the alt text that describes it."""

    svg: str
    alt: str


@dataclass(frozen=True)
class TauPoint:
    """One leaderboard row for the tau-b plot."""

    label: str
    kind: str  # "submission" | "baseline" | "expert"
    value: float | None
    lo: float | None
    hi: float | None


@dataclass(frozen=True)
class OddsRatioPoint:
    """One model's odds ratio (Q4 vs Q1) for one endpoint."""

    model: str
    endpoint: str
    value: float | None
    lo: float | None
    hi: float | None


def _plain(text: str) -> str:
    r"""A name as literal text for a matplotlib label: every ``$`` escaped as ``\$``, and invisible
    or direction-changing characters written as visible escapes (`visible`, issue 19).

    Labels carry team and model names; mathtext starts only at an unescaped ``$``, so with every
    dollar escaped a name such as ``$\frac{1}{$`` is drawn as the characters it is instead of being
    parsed (which raises, or renders markup). Mathtext itself stays on, because the log axis writes
    its tick labels (``10^{-1}``) in it.
    """
    return visible(text).replace("$", r"\$")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _ci_text(lo: float | None, hi: float | None, digits: int = 3) -> str:
    return "" if lo is None or hi is None else f" (CI {_fmt(lo, digits)} to {_fmt(hi, digits)})"


def _exclusive(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a plot function under the module lock with this module's rc settings.

    rcParams are process-global; holding the lock while a figure is built and saved keeps one
    request's settings from leaking into another's figure.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _lock, rc_context(_RC):
            return fn(*args, **kwargs)

    return wrapper


def _points(
    ax: Any,
    rows: Sequence[tuple[int, float, float | None, float | None]],
    color: str,
    marker: str,
    *,
    positive_ci: bool = False,
) -> None:
    """Draw (y, value, lo, hi) rows in one colour: one `errorbar` call for those with a CI, one
    `plot` call for the rest (one call per row is 100x slower on a long leaderboard). A percentile
    CI need not contain its point estimate, so arm lengths are clipped at 0; on a log axis
    (`positive_ci`) a CI reaching 0 or below is not drawn."""

    with_ci: list[tuple[int, float, float, float]] = [
        (y, v, lo, hi)
        for y, v, lo, hi in rows
        if lo is not None and hi is not None and (lo > 0 or not positive_ci)
    ]
    drawn = {y for y, *_ in with_ci}
    bare = [(y, v) for y, v, _, _ in rows if y not in drawn]
    if with_ci:
        arms = [[max(v - lo, 0.0) for _, v, lo, _ in with_ci], [max(hi - v, 0.0) for _, v, _, hi in with_ci]]
        ys, values = [r[0] for r in with_ci], [r[1] for r in with_ci]
        ax.errorbar(values, ys, xerr=arms, fmt=marker, color=color, ecolor=color, capsize=3, markersize=5)
    if bare:
        xs, ys = [v for _, v in bare], [y for y, _ in bare]
        ax.plot(xs, ys, marker, linestyle="none", color=color, markersize=5)


def _render(fig: matplotlib.figure.Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buffer.getvalue()


def _figure(width: float, height: float) -> matplotlib.figure.Figure:
    fig = matplotlib.figure.Figure(figsize=(width, height), dpi=96)
    FigureCanvasAgg(fig)  # the Agg canvas: no display, no pyplot state
    return fig


def _interval_dots(
    points: Sequence[TauPoint], *, width: float, xlabel: str, empty: str, invert: bool = False
) -> tuple[str, list[TauPoint], list[str]]:
    """A dot per point with its 95% CI, the first at the top, marked by its kind: the SVG, the
    points drawn (finite values) and the labels of those left out (no value). `invert`: the
    x axis falls to the right (ranks: 1 is best)."""
    shown = [p for p in points if p.value is not None and math.isfinite(p.value)]
    missing = [p.label for p in points if p not in shown]
    fig = _figure(width, 0.9 + 0.32 * max(len(shown), 1))
    ax = fig.add_subplot()
    ordered = list(reversed(shown))  # the first at the top: y grows upwards
    for kind in dict.fromkeys(p.kind for p in ordered):
        color = COLORS.get(kind, COLORS["submission"])
        marker = KIND_MARKERS.get(kind, "o")
        rows = [(y, p) for y, p in enumerate(ordered) if p.kind == kind]
        _points(ax, [(y, p.value, p.lo, p.hi) for y, p in rows if p.value is not None], color, marker)
    ax.set_yticks(range(len(ordered)), [_plain(p.label) for p in ordered])
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", color=COLORS["grid"], linewidth=0.6)
    if invert:
        ax.invert_xaxis()
    if not shown:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    return _render(fig), shown, missing


@_exclusive
def tau_plot(points: Sequence[TauPoint]) -> Plot:
    """Kendall tau-b of every leaderboard row with its 95% CI, best at the top.

    Rows without a value are left out of the figure and named in the alt text.
    """
    svg, shown, missing = _interval_dots(
        points, width=7.0, xlabel="Kendall tau-b (higher is better), 95% CI", empty="no scored rows yet"
    )
    parts = [f"Kendall tau-b with 95% confidence intervals for {len(shown)} leaderboard rows, best first."]
    if shown:
        best = max(shown, key=lambda p: p.value if p.value is not None else -math.inf)
        worst = min(shown, key=lambda p: p.value if p.value is not None else math.inf)
        parts.append(
            f"Highest: {best.label} {_fmt(best.value)}{_ci_text(best.lo, best.hi)}; "
            f"lowest: {worst.label} {_fmt(worst.value)}{_ci_text(worst.lo, worst.hi)}."
        )
    if missing:
        parts.append("Not plotted (no value): " + ", ".join(missing) + ".")
    return Plot(svg=svg, alt=" ".join(parts))


@_exclusive
def confusion_heatmap(matrix: Sequence[Sequence[int]]) -> Plot:
    """The 8x8 confusion matrix of masking levels (rows: ground truth, columns: prediction)."""
    values = [[int(v) for v in row] for row in matrix]
    if len(values) != 8 or any(len(row) != 8 for row in values):
        raise ValueError(f"confusion matrix must be 8x8, got {len(values)} rows")
    fig = _figure(4.6, 4.0)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", origin="upper")
    peak = max(max(row) for row in values) or 1
    for i, row in enumerate(values):
        for j, count in enumerate(row):
            color = "white" if count > 0.6 * peak else COLORS["text"]
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color=color)
    levels = [str(k) for k in range(1, 9)]
    ax.set_xticks(range(8), levels)
    ax.set_yticks(range(8), levels)
    ax.set_xlabel("Predicted level")
    ax.set_ylabel("Ground-truth level")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Images")
    svg = _render(fig)
    total = sum(sum(row) for row in values)
    exact = sum(values[k][k] for k in range(8))
    within_one = sum(values[i][j] for i in range(8) for j in range(8) if abs(i - j) <= 1)
    alt = (
        f"Heatmap of the 8 by 8 confusion matrix of masking levels over {total} images "
        f"(rows ground truth, columns prediction): {exact} on the diagonal"
        + (f" ({100 * exact / total:.0f}%)" if total else "")
        + f", {within_one} within one level."
    )
    return Plot(svg=svg, alt=alt)


@_exclusive
def group_amae_bars(groups: dict[str, Any]) -> Plot:
    """AMAE per pair of masking levels (1-2, 3-4, 5-6, 7-8); undefined groups are marked, not zero."""
    values = [_finite_or_none(groups.get(key)) for key in LEVEL_GROUPS]
    fig = _figure(4.6, 2.8)
    ax = fig.add_subplot()
    bars = ax.bar(LEVEL_GROUPS, [v or 0.0 for v in values], color=COLORS["submission"], width=0.6)
    for bar, value in zip(bars, values, strict=True):
        label = _fmt(value, 2) if value is not None else "n/a"
        where = (bar.get_x() + bar.get_width() / 2, bar.get_height())
        ax.annotate(
            label, where, ha="center", va="bottom", xytext=(0, 2), textcoords="offset points", fontsize=8
        )
    ax.set_xlabel("Ground-truth level group")
    ax.set_ylabel("AMAE (levels, lower is better)")
    ax.grid(axis="y", color=COLORS["grid"], linewidth=0.6)
    ax.set_axisbelow(True)
    svg = _render(fig)
    described = "; ".join(
        f"levels {key}: {_fmt(value, 2)}" for key, value in zip(LEVEL_GROUPS, values, strict=True)
    )
    return Plot(svg=svg, alt=f"Bar chart of the averaged mean absolute error per level group: {described}.")


@_exclusive
def odds_ratio_forest(points: Sequence[OddsRatioPoint], endpoints: dict[str, str]) -> Plot:
    """Forest plot of the Q4-vs-Q1 odds ratios (log scale, 95% CI) per endpoint and model.

    `endpoints` maps report keys to labels, in display order. Odds ratios of 0 or undefined cannot be
    placed on a log axis; they are listed in the alt text instead.
    """
    models = list(dict.fromkeys(point.model for point in points))
    found = {(p.endpoint, p.model): p for p in reversed(points)}  # the first of a pair wins
    rows = [
        (f"{label}: {model}", found.get((key, model))) for key, label in endpoints.items() for model in models
    ]
    fig = _figure(7.0, 0.9 + 0.3 * max(len(rows), 1))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    skipped: list[str] = []
    by_model: dict[str, list[tuple[int, float, float | None, float | None]]] = {}
    palette = [COLORS["this"], COLORS["baseline"], COLORS["expert"], "#2f6f3e", "#7a2f6f"]
    for y, (label, entry) in enumerate(reversed(rows)):
        if entry is None or entry.value is None or entry.value <= 0:
            skipped.append(label)
            note = "not defined" if entry is None or entry.value is None else "zero"
            ax.text(
                0.01, y, note, transform=ax.get_yaxis_transform(), va="center", fontsize=8, color="#4b5563"
            )
            continue
        by_model.setdefault(entry.model, []).append((y, entry.value, entry.lo, entry.hi))
    for model, drawn in by_model.items():
        _points(ax, drawn, palette[models.index(model) % len(palette)], "o", positive_ci=True)
    ax.axvline(1.0, color="#555555", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(rows)), [_plain(label) for label, _ in reversed(rows)])
    ax.set_xlabel("Odds ratio, top vs bottom quartile of the masking score (log scale, 95% CI)")
    ax.grid(axis="x", color=COLORS["grid"], linewidth=0.6, which="both")
    svg = _render(fig)
    described = [
        f"{label} {_fmt(p.value, 2)}{_ci_text(p.lo, p.hi, 2)}"
        for label, p in rows
        if p is not None and p.value is not None and p.value > 0
    ]
    alt = (
        f"Forest plot of odds ratios, top against bottom quartile, for {len(models)} models on a log scale: "
        + ("; ".join(described) or "none defined")
        + "."
    )
    if skipped:
        alt += " Not plotted (zero or undefined): " + ", ".join(skipped) + "."
    return Plot(svg=svg, alt=alt)


@_exclusive
def agreement_heatmap(
    raters: Sequence[str], experts: Sequence[str], matrix: Sequence[Sequence[float | None]]
) -> Plot:
    """Kendall tau-b of each rater (rows: the model, then each expert) against each expert's own
    annotation (columns); empty cells (an expert against themselves, or no value) are left blank."""
    if len(matrix) != len(raters) or any(len(row) != len(experts) for row in matrix):
        raise ValueError(f"agreement matrix must be {len(raters)} x {len(experts)}")
    values = [[math.nan if v is None or not math.isfinite(v) else float(v) for v in row] for row in matrix]
    fig = _figure(1.6 + 0.75 * len(experts), 1.0 + 0.45 * len(raters))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if math.isfinite(value):
                color = "white" if value > 0.6 else COLORS["text"]
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(experts)), [_plain(e.replace("_", " ")) for e in experts])
    ax.set_yticks(range(len(raters)), [_plain(r.replace("_", " ")) for r in raters])
    ax.set_xlabel("Against this expert's own annotation")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Kendall tau-b")
    svg = _render(fig)
    parts = []
    for rater, row in zip(raters, values, strict=True):
        cells = [
            f"{e.replace('_', ' ')} {v:.2f}" for e, v in zip(experts, row, strict=True) if math.isfinite(v)
        ]
        parts.append(f"{rater.replace('_', ' ')}: " + (", ".join(cells) or "no values"))
    alt = "Heatmap of Kendall tau-b against each expert's own annotation. " + "; ".join(parts) + "."
    return Plot(svg=svg, alt=alt)


@_exclusive
def strata_dots(points: Sequence[TauPoint]) -> Plot:
    """Kendall tau-b of one run in each stratum of the test set with its paired 95% CI, in the
    report's order (top to bottom); a suppressed stratum (no value) is named in the alt text only."""
    xlabel = "Kendall tau-b in the stratum (higher is better), 95% CI"
    svg, shown, missing = _interval_dots(points, width=6.0, xlabel=xlabel, empty="no stratum with a value")
    parts = [f"Kendall tau-b with 95% confidence intervals in {len(shown)} strata of the test set."]
    parts += [f"{p.label}: {_fmt(p.value)}{_ci_text(p.lo, p.hi)}." for p in shown]
    if missing:
        parts.append("Not plotted (suppressed or undefined): " + ", ".join(missing) + ".")
    return Plot(svg=svg, alt=" ".join(parts))


def _finite_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class RankPoint:
    """One ranked row of the board: its median rank and 95% rank interval."""

    label: str
    median: float
    lo: int
    hi: int


@_exclusive
def rank_interval_plot(points: Sequence[RankPoint]) -> Plot:
    """Every ranked row's 95% rank interval and median rank (issue 21 item 2), best at the top."""
    dots = [TauPoint(p.label, "submission", p.median, float(p.lo), float(p.hi)) for p in points]
    xlabel = "Rank over the bootstrap resamples (1 = best): median and 95% interval"
    svg, _, _ = _interval_dots(dots, width=7.0, xlabel=xlabel, empty="no ranked rows", invert=True)
    parts = [f"Rank intervals of {len(points)} ranked rows, best first."]
    parts += [f"{p.label}: median {p.median:g}, 95% {p.lo}-{p.hi}" for p in points[:20]]
    return Plot(svg=svg, alt=" ".join(parts))


@_exclusive
def significance_heatmap(
    names: Sequence[str], p_holm: Sequence[Sequence[float | None]], alpha: float
) -> Plot:
    """The Holm-adjusted significance map of the top rows: cell (i, j) dark where row i is
    significantly better than row j (``p_holm[i][j] < alpha``)."""
    values = [[math.nan if v is None else float(v) for v in row] for row in p_holm]
    fig = _figure(1.8 + 0.42 * len(names), 1.2 + 0.36 * len(names))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues_r", vmin=0.0, vmax=1.0, aspect="auto")
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if math.isfinite(value) and value < alpha:
                ax.text(j, i, "*", ha="center", va="center", fontsize=9, color="white")
    labels = [_plain(n) for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=90)
    ax.set_yticks(range(len(names)), labels)
    ax.set_xlabel("j")
    ax.set_ylabel("i: significantly better than j (*)")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Holm-adjusted p")
    svg = _render(fig)
    better = sum(1 for row in values for v in row if math.isfinite(v) and v < alpha)
    alt = (
        f"Significance map of the top {len(names)} ranked rows: {better} ordered pairs where the row "
        f"is significantly better than the column (Holm-adjusted paired bootstrap p < {alpha:g})."
    )
    return Plot(svg=svg, alt=alt)
