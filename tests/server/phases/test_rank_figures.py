"""Rank figures on the board (issue 21 items 0-2, 6): models ranked among models, expert bands, rank
interval, median rank, ``p_first``, tier, the significance map; null with a reason for a row on
another pairing basis; withheld from researchers and visitors in sealed and Ladder phases."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from phasetest import make_phase, scored, web
from sqlalchemy import select
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api

from server.leaderboard.standing import Model, standings, versus
from server.models import Role, Submission, Team
from server.scoring.results import Interval, PairingBasis

HOUR = timedelta(hours=1)
R = 400
FIGURES = ("rank_ci95", "median_rank", "p_first", "tier")


def _reps(tau: float, noise: float, seed: int) -> np.ndarray:
    return tau + np.random.default_rng(seed).normal(0, noise, R)


def _naive(matrix: np.ndarray) -> dict[str, Any]:
    """The rules of docs/scoring.md "Rankings" as plain loops (independent of server.scoring.ranking)."""
    k, r = matrix.shape
    ranks = np.array(
        [[1 + sum(matrix[i, b] > matrix[j, b] for i in range(k)) for b in range(r)] for j in range(k)]
    )
    p_first = np.zeros(k)
    for b in range(r):
        best = [j for j in range(k) if matrix[j, b] == matrix[:, b].max()]
        for j in best:
            p_first[j] += 1 / len(best) / r
    p = np.array(
        [[np.nan if i == j else np.mean(matrix[i] - matrix[j] <= 0) for j in range(k)] for i in range(k)]
    )
    tiers = []
    for j in range(k):
        family = sorted((p[i, j], i) for i in range(k) if i != j)
        m, running, better = len(family), 0.0, 0
        for step, (value, _) in enumerate(family):
            running = max(running, min(1.0, (m - step) * value))
            better += running < 0.05
        tiers.append(1 + better)
    return {
        "rank_ci95": [
            [int(np.floor(np.percentile(row, 2.5))), int(np.ceil(np.percentile(row, 97.5)))] for row in ranks
        ],
        "median_rank": [float(np.median(row)) for row in ranks],
        "p_first": list(p_first),
        "tier": tiers,
    }


def _basis(seed: int = 0) -> PairingBasis:
    return PairingBasis("2", "a" * 64, seed, R)


def test_standings_match_the_plain_loops_and_the_known_answers() -> None:
    """A dominant model: rank interval [1, 1], p_first 1, tier 1; two copies of one model: one tier,
    Holm p 1 between them; a random model: last tier, p_first 0."""
    shift = np.random.default_rng(1).normal(0, 0.03, R)
    twin = 0.6 + shift + np.random.default_rng(2).normal(0, 0.01, R)
    rows = {
        "dominant": 0.9 + shift,
        "twin-a": twin,
        "twin-b": twin.copy(),
        "random": 0.0 + np.random.default_rng(3).normal(0, 0.04, R),
    }
    models = [
        Model(None, name, reps, _basis(), False, Interval(None, None, None)) for name, reps in rows.items()
    ]
    found, significance = standings(models, {}, 0.05)
    expected = _naive(np.vstack(list(rows.values())))
    for k, standing in enumerate(found):
        assert list(standing.rank_ci95 or ()) == expected["rank_ci95"][k]
        assert standing.median_rank == expected["median_rank"][k]
        assert standing.p_first == pytest.approx(expected["p_first"][k])
        assert standing.tier == expected["tier"][k]
    assert [s.tier for s in found] == [1, 2, 2, 4]
    assert found[0].rank_ci95 == (1, 1) and found[0].p_first == 1.0
    assert found[3].p_first == 0.0 and found[3].rank_ci95 == (4, 4)
    assert sum(s.p_first or 0 for s in found) == pytest.approx(1.0)
    assert significance is not None
    assert significance.p_holm[1, 2] == 1.0 and significance.p_holm[2, 1] == 1.0


def test_a_row_on_another_basis_gets_null_figures_and_a_reason() -> None:
    lead = Model(1, "lead", _reps(0.7, 0.02, 1), _basis(), False, Interval(0.7, 0.66, 0.74))
    other = Model(2, "other", _reps(0.6, 0.02, 2), _basis(seed=1), False, Interval(0.6, 0.56, 0.64))
    none = Model(3, "none", None, _basis(), False, Interval(0.5, None, None))
    found, significance = standings([lead, other, none], {}, 0.05)
    assert found[0].tier == 1 and found[0].rank_ci95 == (1, 1)
    assert found[1].tier is None and found[1].reason is not None and "seed 1" in found[1].reason
    assert found[1].reason.startswith("no rank figures")
    assert found[2].tier is None and found[2].reason is not None and "replicates" in found[2].reason
    assert significance is not None and significance.names == ("lead",)


def test_each_model_lies_above_inside_or_below_each_expert_band() -> None:
    assert versus(Interval(0.8, 0.75, 0.85), (0.6, 0.7)) == "above"
    assert versus(Interval(0.5, 0.45, 0.55), (0.6, 0.7)) == "below"
    assert versus(Interval(0.65, 0.55, 0.62), (0.6, 0.7)) == "inside"
    assert versus(Interval(0.65, None, None), (0.6, 0.7)) is None


# -- the board ---------------------------------------------------------------------------------------


@pytest.fixture
def board(tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path) -> Iterator[Api]:
    settings = make_settings(
        tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=R, significance_top=2
    )
    yield from open_api(settings)


def _team(api: Api, name: str) -> int:
    return f.team(api.db, name)


def _baseline(api: Api, name: str, phase: str, tau: float, seed: int) -> int:
    sub_id = scored(api, _team(api, f"ref-{name}"), name, phase, tau, 30.0, _reps(tau, 0.03, seed))
    with api.db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.baseline = True
    return sub_id


def test_the_board_ranks_models_among_models_with_figures_and_bands(board: Api) -> None:
    shift = np.random.default_rng(5).normal(0, 0.02, R)
    mid = 0.55 + shift + np.random.default_rng(1).normal(0, 0.01, R)
    reps = {
        "top": 0.95 + shift + np.random.default_rng(0).normal(0, 0.01, R),
        "mid-a": mid,
        "mid-b": mid.copy(),  # the same ranking as mid-a on every resample
        "low": 0.2 + shift + np.random.default_rng(3).normal(0, 0.01, R),
    }
    ids = {
        name: scored(
            board, _team(board, name), name, board.settings.phase, float(values.mean()), 30.0, values
        )
        for name, values in reps.items()
    }
    top = ids["top"]
    other = scored(
        board, _team(board, "other"), "other-seed", board.settings.phase, 0.5, 30.0, _reps(0.5, 0.02, 9),
        bootstrap={"resamples": R, "seed": 3},
    )  # fmt: skip
    rows = board.client.get("/api/v1/leaderboard").json()["rows"]
    models = [r for r in rows if r["kind"] != "expert"]
    bands = [r for r in rows if r["kind"] == "expert"]
    assert [r["rank"] for r in models] == [1, 2, 3, 4, 5] and all(r["rank"] is None for r in bands)
    assert len(bands) == 5 and all(r["kendall_tau_b"]["ci95"] is not None for r in bands)
    by_name = {r["name"]: r for r in models}
    assert by_name["top"]["rank_ci95"] == [1, 1] and by_name["top"]["p_first"] == 1.0
    assert by_name["mid-a"]["tier"] == by_name["mid-b"]["tier"] == 2
    assert by_name["low"]["tier"] == 4 and by_name["low"]["p_first"] == 0.0
    assert all(by_name["top"]["versus_experts"][b["name"]] == "above" for b in bands)
    assert all(by_name["low"]["versus_experts"][b["name"]] == "below" for b in bands)
    odd = by_name["other-seed"]
    assert odd["submission_id"] == other and all(odd[key] is None for key in FIGURES)
    assert "seed 3" in odd["rank_reason"]

    shown = board.client.get("/api/v1/leaderboard/significance").json()
    assert shown["note"] is None and shown["map"]["names"] == ["top", "mid-a"]  # bounded: top 2
    assert shown["map"]["rows"] == 4 and shown["map"]["p"][0][0] is None
    assert shown["map"]["p"][0][1] == 0.0 and shown["map"]["p"][1][0] == 1.0
    again = board.client.get("/api/v1/leaderboard/significance", params={"top": 50}).json()
    assert len(again["map"]["names"]) == 2  # CSAWM_SIGNIFICANCE_TOP bounds any request

    page = board.client.get("/").text
    assert page.count('class="tier"') == 4 and "leaderboard-significance.svg" in page
    maud = f.user(board.db, "m@x.org", role=Role.MAINTAINER)
    report = web(board, maud).get(f"/submissions/{top}").text
    assert 'id="standing-heading"' in report and 'tier\n  <span class="tier">1</span>' in report
    for name in ("ranks", "significance"):
        plot = board.client.get(f"/plots/leaderboard-{name}.svg")
        assert plot.status_code == 200 and plot.text.lstrip().startswith("<?xml")
    table = list(csv.DictReader(io.StringIO(board.client.get("/leaderboard.csv").text)))
    assert {r["name"]: r["tier"] for r in table if r["kind"] != "expert"}["low"] == "4"


# -- visibility (item 6) -----------------------------------------------------------------------------


def _figures_in(text: str) -> list[str]:
    """Every rank figure, expert band or map a response shows (JSON, CSV or page)."""
    found: list[str] = []
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        if body.get("map") is not None:
            found.append("significance map")
        for row in body.get("rows") or []:
            if any(row.get(key) is not None for key in FIGURES) or row.get("versus_experts"):
                found.append(f"rank figures of {row['name']}")
            if row.get("kind") == "expert" and row["kendall_tau_b"].get("ci95") is not None:
                found.append(f"band of {row['name']}")
        return found
    if text.startswith("rank,kind"):
        for row in csv.DictReader(io.StringIO(text)):
            if any(row[key] for key in ("tier", "rank_ci_low", "rank_ci_high", "median_rank", "p_first")):
                found.append(f"csv figures of {row['name']}")
            if row["kind"] == "expert" and row["kendall_tau_b_ci_low"]:
                found.append(f"csv band of {row['name']}")
        return found
    if text.startswith("plot "):
        return [part for part in text.split("plot ")[1:] if not part.strip().endswith("404")]
    markers = (
        'class="tier"',
        'class="rank-ci"',
        "p-first",
        "above 1",
        "inside 1",
        "below 1",
        "leaderboard-ranks.svg",
    )
    for marker in markers:
        if marker in text:
            found.append(f"page {marker}")
    return found


@pytest.mark.parametrize("kind", ["sealed", "ladder"])
def test_sealed_and_ladder_phases_withhold_every_rank_figure_from_researchers(board: Api, kind: str) -> None:
    """The attacker reads every board surface as a researcher and as a visitor: no rank interval,
    tier, p_first, map, expert comparison or band; the maintainer sees them (so the check can fail)."""
    values = {"visibility": "sealed"} if kind == "sealed" else {"ladder": True}
    make_phase(board, "round", -HOUR, HOUR, **values)
    for k, tau in enumerate((0.8, 0.6, 0.4)):
        _baseline(board, f"b{k}", "round", tau, k)
    alice = f.member_token(board.db, "alpha", "a@x.org")
    with board.db.transaction(write=False) as session:
        team = session.scalars(select(Team.id).where(Team.name == "alpha")).one()
    mine = scored(board, team, "mine", "round", 0.7, 30.0, _reps(0.7, 0.02, 7))
    maud = f.user(board.db, "m@x.org", role=Role.MAINTAINER)

    def read(token: str | None) -> dict[str, str]:
        headers = f.auth(token) if token else {}
        browser = web(board, token)
        return {
            "api": board.client.get("/api/v1/leaderboard", headers=headers).text,
            "api-all": board.client.get("/api/v1/leaderboard?best_per_team=false", headers=headers).text,
            "map": board.client.get("/api/v1/leaderboard/significance", headers=headers).text,
            "page": browser.get("/").text,
            "csv": browser.get("/leaderboard.csv").text,
            "json": browser.get("/leaderboard.json").text,
            "report": browser.get(f"/submissions/{mine}").text,
            "plots": " ".join(
                f"plot {name} {browser.get(f'/plots/leaderboard-{name}.svg').status_code}"
                for name in ("ranks", "significance")
            ),
        }

    for viewer in (alice, None):
        for surface, text in read(viewer).items():
            assert _figures_in(text) == [], (viewer, surface)
    seen = read(maud)
    for surface in ("api", "map", "page", "csv", "json", "plots"):
        assert _figures_in(seen[surface]), surface
