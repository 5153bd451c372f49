"""The board ordered by a reference radiologist, grouped by tier, its stability table and the tiers'
level (issue 21 items 2, 4, 6): the API, the page, the CSV and ``csawm leaderboard``; withheld from
researchers and visitors in sealed and Ladder phases, shown to maintainers."""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
from fastapi.testclient import TestClient
from phasetest import leaked, make_phase, scored, surfaces, web
from sqlalchemy import select
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api
from srvtest.live import live_server
from typer.testing import CliRunner

from server.app import create_app
from server.cli.main import app as cli
from server.clock import iso, utcnow
from server.models import Role, Submission, Team

HOUR = timedelta(hours=1)
R = 400
ENDPOINTS = ("interval_cancer", "large_invasive_cancer", "composite")

# name: consensus tau-b, AMAE, AUC, tau-b against Expert_1..Expert_5 (None: a report without them)
BOARD: dict[str, tuple[float, float, float, tuple[float, ...] | None]] = {
    "a": (0.80, 31.0, 0.61, (0.70, 0.60, 0.50, 0.66, 0.71)),
    "b": (0.70, 30.0, 0.66, (0.66, 0.62, 0.72, 0.52, 0.64)),
    "c": (0.60, 35.0, 0.64, (0.62, 0.58, 0.72, 0.55, 0.61)),
    "d": (0.50, 36.0, 0.70, (0.51, 0.69, 0.90, 0.49, 0.52)),
    "old": (0.65, 33.0, 0.63, None),  # scored before scorer version 2
}
HAND_SORTED_BY_EXPERT_3 = [("d", 1), ("b", 2), ("c", 2), ("a", 4)]  # then "old" with a reason


def _reps(tau: float, seed: int, noise: float = 0.02) -> np.ndarray:
    return tau + np.random.default_rng(seed).normal(0, noise, R)


def _restate(api: Api, sub_id: int, amae: float, auc: float, taus: tuple[float, ...] | None) -> None:
    """The run's stored report with its AUCs and its agreement with each expert (none: scorer v1)."""
    with api.db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None and sub.metrics is not None
        metrics = copy.deepcopy(sub.metrics)
        for endpoint in ENDPOINTS:
            metrics["clinical"][endpoint]["auc"]["value"] = auc
        metrics["masking"].pop("per_expert", None)
        if taus is not None:
            metrics["masking"]["per_expert"] = {
                f"Expert_{k}": {"kendall_tau_b": tau, "amae": amae + k} for k, tau in enumerate(taus, 1)
            }
        sub.metrics = metrics


def _fill(api: Api, phase: str, board: dict[str, Any] = BOARD, *, baseline: bool = False) -> dict[str, int]:
    ids = {}
    for seed, (name, (tau, amae, auc, taus)) in enumerate(board.items()):
        team = f.team(api.db, f"team-{name}")
        ids[name] = scored(api, team, name, phase, tau, amae, _reps(tau, seed))
        _restate(api, ids[name], amae, auc, taus)
        if baseline:
            with api.db.transaction() as session:
                sub = session.get(Submission, ids[name])
                assert sub is not None
                sub.baseline = True
    return ids


def _settings(tmp_path: Path, sqlite_url: str, benchmark: Path, **values: Any) -> Any:
    return make_settings(tmp_path, sqlite_url, benchmark_dir=benchmark, bootstrap_resamples=R, **values)


@pytest.fixture
def board(tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path) -> Iterator[Api]:
    yield from open_api(_settings(tmp_path, sqlite_url, synthetic_benchmark))


def _models(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in body["rows"] if row["kind"] != "expert"]


def test_the_board_ordered_by_an_expert_is_the_hand_sorted_list(board: Api) -> None:
    _fill(board, board.settings.phase)
    plain = board.client.get("/api/v1/leaderboard").json()
    body = board.client.get("/api/v1/leaderboard", params={"reference": "expert_3"}).json()
    assert body["reference"] == {"expert": "expert_3", "note": None}
    models = _models(body)
    placed = [(row["name"], row["by_reference"]["rank"]) for row in models[:4]]
    assert placed == HAND_SORTED_BY_EXPERT_3
    assert [row["by_reference"]["kendall_tau_b"] for row in models[:4]] == [0.90, 0.72, 0.72, 0.50]
    old = models[4]
    assert old["name"] == "old" and old["by_reference"]["rank"] is None
    assert "expert_3" in old["by_reference"]["reason"] and "re-score" in old["by_reference"]["reason"]
    assert [row["kind"] for row in body["rows"][5:]] == ["expert"] * 5  # the bands last, not ordered
    consensus = {row["name"]: row["rank"] for row in _models(plain)}
    assert {row["name"]: row["rank"] for row in models} == consensus  # `rank` stays the consensus rank
    assert [row["name"] for row in _models(plain)] == ["a", "b", "old", "c", "d"]

    page = board.client.get("/", params={"reference": "expert_3"}).text
    positions = [page.index(f"<td>team-{name}</td>") for name, _ in HAND_SORTED_BY_EXPERT_3]
    assert positions == sorted(positions) and page.index("<td>team-old</td>") > positions[-1]
    assert page.count('class="num by-reference"') == 10 and "τ-b vs expert 3" in page
    assert '<option value="expert_3" selected>' in page
    table = list(csv.DictReader(io.StringIO(board.client.get("/leaderboard.csv?reference=expert_3").text)))
    assert [(r["name"], r["reference_rank"]) for r in table[:5]] == [
        *((name, str(rank)) for name, rank in HAND_SORTED_BY_EXPERT_3),
        ("old", ""),
    ]
    assert table[0]["reference_kendall_tau_b"] == "0.9" and table[0]["rank"] == "5"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"reference": "expert_6"}, "reference"),
        ({"reference": "Expert 3"}, "reference"),
        ({"reference": "amae"}, "reference"),
        ({"group": "team"}, "group"),
        ({"view": "clinical", "reference": "expert_1"}, "view=clinical"),
    ],
)
def test_a_bad_reference_or_group_is_refused_with_422_in_the_apis_words(
    board: Api, params: dict[str, str], named: str
) -> None:
    answer = board.client.get("/api/v1/leaderboard", params=params)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error" and named in error["message"]
    if "view" not in params:
        page = board.client.get("/", params=params)
        assert page.status_code == 422 and named in page.text


def _scipy_tau(x: list[float], y: list[float]) -> float:
    return float(scipy.stats.kendalltau(x, y).statistic)


def test_the_stability_table_matches_scipy_on_a_small_board(board: Api) -> None:
    _fill(board, board.settings.phase)
    body = board.client.get("/api/v1/leaderboard").json()
    stability = body["stability"]
    assert stability["note"] is None and stability["rows"] == 5
    values = stability["kendall_tau_b"]
    with_experts = [entry for entry in BOARD.values() if entry[3] is not None]  # "old" has none
    for k in range(5):
        expected = _scipy_tau([e[0] for e in with_experts], [e[3][k] for e in with_experts if e[3]])
        assert values[f"expert_{k + 1}"] == pytest.approx(expected)
    assert values["amae"] == pytest.approx(
        _scipy_tau([e[0] for e in BOARD.values()], [-e[1] for e in BOARD.values()])
    )
    for endpoint in ENDPOINTS:
        expected = _scipy_tau([e[0] for e in BOARD.values()], [e[2] for e in BOARD.values()])
        assert values[f"auc_{endpoint}"] == pytest.approx(expected)
    page = board.client.get("/").text
    assert 'id="stability"' in page and page.count('class="num stability-value"') == len(values)
    assert f"{values['expert_3']:.2f}" in page


def test_group_by_tier_keeps_the_order_and_lists_each_tier(board: Api) -> None:
    _fill(board, board.settings.phase)
    plain = board.client.get("/api/v1/leaderboard").json()
    assert plain["groups"] is None and plain["alpha"] == 0.05
    for params in ({"group": "tier"}, {"group": "tier", "reference": "expert_3"}):
        body = board.client.get("/api/v1/leaderboard", params=params).json()
        rows, groups = body["rows"], body["groups"]
        if "reference" not in params:
            assert rows == plain["rows"]  # rows keep their order
        assert sorted(i for g in groups for i in g["rows"]) == list(range(len(rows)))
        tiers = [g["tier"] for g in groups]
        assert tiers[-1] is None and tiers[:-1] == sorted(set(tiers[:-1]))  # no tier (experts) last
        for group in groups:
            assert {rows[i].get("tier") for i in group["rows"]} == {group["tier"]}
        assert len(tiers) >= 3  # the noise of _reps separates some rows
    page = board.client.get("/", params={"group": "tier"}).text
    assert (
        page.count('class="tier-heading"') == len(groups) and "Tier 1</th>" in page and "No tier</th>" in page
    )


def test_the_tiers_level_is_a_setting_and_the_board_says_which(
    tmp_path: Path, synthetic_benchmark: Path
) -> None:
    """Two models where "better" has p = 0.1: one tier at the default 0.05, two at 0.2."""
    base = np.random.default_rng(0).normal(0.6, 0.02, R)
    better = base + np.where(np.arange(R) < R // 10, -0.01, 0.03)
    tiers = {}
    for alpha in (0.05, 0.2):
        home = tmp_path / str(alpha)
        url = f"sqlite:///{home / 'state' / 'csawm.db'}"
        extra = {} if alpha == 0.05 else {"significance_alpha": alpha}  # 0.05: the default
        for api in open_api(_settings(home, url, synthetic_benchmark, **extra)):
            phase = api.settings.phase
            scored(api, f.team(api.db, f"t1-{alpha}"), f"top-{alpha}", phase, 0.62, 30.0, better)
            scored(api, f.team(api.db, f"t2-{alpha}"), f"next-{alpha}", phase, 0.60, 30.0, base)
            body = api.client.get("/api/v1/leaderboard").json()
            assert body["alpha"] == alpha
            assert api.client.get("/api/v1/leaderboard/significance").json()["alpha"] == alpha
            tiers[alpha] = [row["tier"] for row in _models(body) if row["name"].endswith(str(alpha))]
            assert f"α = {alpha}" in api.client.get("/").text
            # the board as it stood (API, page, download) is tiered at the same level
            at = {"as_of": iso(utcnow())}
            stood = api.client.get("/api/v1/leaderboard", params=at).json()
            assert stood["alpha"] == alpha
            assert [row["tier"] for row in _models(stood) if row["name"].endswith(str(alpha))] == tiers[alpha]
            assert f"α = {alpha}" in api.client.get("/", params=at).text
            download = api.client.get("/leaderboard.json", params=at).json()
            assert [r["tier"] for r in download["rows"] if r["name"].endswith(str(alpha))] == tiers[alpha]
    assert tiers == {0.05: [1, 1], 0.2: [1, 2]}


# -- visibility (item 6) -----------------------------------------------------------------------------

MINE = (0.734512, 0.612384, 0.598731, 0.643157, 0.701846)  # the team's own run's per-expert tau-b


@pytest.mark.parametrize("kind", ["sealed", "ladder"])
def test_sealed_and_ladder_phases_withhold_the_reference_order_stability_and_per_expert_figures(
    board: Api, kind: str
) -> None:
    """The attacker reads every surface as a researcher and as a visitor, with and without
    ``reference`` and ``group``: no order by an expert, no stability table, none of its run's
    per-expert figures; the maintainer sees them (so the check can fail)."""
    values = {"visibility": "sealed"} if kind == "sealed" else {"ladder": True}
    make_phase(board, "round", -HOUR, HOUR, **values)
    _fill(board, "round", {k: v for k, v in BOARD.items() if k in ("a", "b", "d")}, baseline=True)
    alice = f.member_token(board.db, "alpha", "a@x.org")
    with board.db.transaction(write=False) as session:
        team = session.scalars(select(Team.id).where(Team.name == "alpha")).one()
    mine = scored(board, team, "mine", "round", 0.7, 30.0, _reps(0.7, 7))
    _restate(board, mine, 30.0, 0.66, MINE)
    numbers = tuple(str(v) for v in MINE)
    maud = f.user(board.db, "m@x.org", role=Role.MAINTAINER)
    everywhere = surfaces(board, mine, "round")
    ordered = {"reference": "expert_3", "group": "tier", "phase": "round"}

    def read(token: str | None) -> dict[str, str]:
        headers = f.auth(token) if token else {}
        texts = {name: get(token) for name, get in everywhere.items()}
        texts["api-ordered"] = board.client.get("/api/v1/leaderboard", params=ordered, headers=headers).text
        texts["page-ordered"] = web(board, token).get("/", params=ordered).text
        texts["csv-ordered"] = web(board, token).get("/leaderboard.csv", params=ordered).text
        return texts

    for viewer in (alice, None):
        seen = read(viewer)
        for surface, text in seen.items():
            assert leaked(text, numbers) == [], (viewer, surface)
        body = json.loads(seen["api-ordered"])
        assert body["reference"]["expert"] == "expert_3" and "withheld" in body["reference"]["note"]
        assert not any("by_reference" in row for row in body["rows"])
        assert body["stability"]["kendall_tau_b"] is None and "withheld" in body["stability"]["note"]
        plain = json.loads(board.client.get("/api/v1/leaderboard", params={"phase": "round"}).text)
        assert [r["name"] for r in body["rows"]] == [r["name"] for r in plain["rows"]]  # board order
        assert "by-reference" not in seen["page-ordered"] and 'id="stability"' not in seen["page-ordered"]
        assert "reference_rank" not in seen["csv-ordered"]
    staff = read(maud)
    body = json.loads(staff["api-ordered"])
    assert body["reference"]["note"] is None and body["stability"]["kendall_tau_b"] is not None
    assert [r["name"] for r in _models(body) if r["by_reference"]["rank"] is not None][:3] == ["d", "b", "a"]
    assert leaked(staff["submission"], numbers)  # the maintainer sees the run's own
    assert "by-reference" in staff["page-ordered"] and 'id="stability"' in staff["page-ordered"]
    assert "reference_rank" in staff["csv-ordered"]


def test_a_summary_phase_shows_the_run_its_own_per_expert_figures(board: Api) -> None:
    """Per-expert figures are shown under ``summary`` (the default of a private live phase)."""
    alice = f.member_token(board.db, "alpha", "a@x.org")
    with board.db.transaction(write=False) as session:
        team = session.scalars(select(Team.id).where(Team.name == "alpha")).one()
    mine = scored(board, team, "mine", board.settings.phase, 0.7, 30.0, _reps(0.7, 7))
    _restate(board, mine, 30.0, 0.66, MINE)
    text = board.client.get(f"/api/v1/submissions/{mine}", headers=f.auth(alice)).text
    assert '"disclosure":"summary"' in text and leaked(text, tuple(str(v) for v in MINE))
    ordered = board.client.get("/api/v1/leaderboard", params={"reference": "expert_1"}).json()
    assert _models(ordered)[0]["by_reference"]["kendall_tau_b"] == MINE[0]


# -- csawm leaderboard -------------------------------------------------------------------------------


def test_csawm_leaderboard_sends_the_token_and_orders_and_groups(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """A maintainer's CSAWM_TOKEN shows the order by an expert in a Ladder phase; without a token the
    command prints the note and the consensus order."""
    app = create_app(_settings(tmp_path, sqlite_url, synthetic_benchmark), migrate_on_start=True)
    with live_server(app) as url:
        api = Api(client=TestClient(app), settings=app.state.csawm.settings)
        make_phase(api, "round", -HOUR, HOUR, ladder=True)
        _fill(api, "round", {k: v for k, v in BOARD.items() if k in ("a", "b", "d")}, baseline=True)
        maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        args = ["leaderboard", "--reference", "expert_3", "--group", "tier"]

        def run(token: str | None, *extra: str) -> tuple[int, str]:
            env = {"CSAWM_SERVER_URL": url, **({"CSAWM_TOKEN": token} if token else {})}
            result = CliRunner().invoke(cli, [*args, *extra], env=env)
            return result.exit_code, result.stdout + result.stderr

        code, out = run(maud)
        assert code == 0, out
        assert "tau-b vs expert_3" in out and "0.900 (#1)" in out and "tier 1" in out
        assert "stability (Kendall tau-b" in out
        code, out = run(None)
        assert code == 0, out
        assert "order: consensus" in out and "withheld" in out and "tau-b vs" not in out
        assert "0.900" not in out
        code, out = run(maud, "--json")
        assert json.loads(out)["reference"] == {"expert": "expert_3", "note": None}
        code, out = run(None, "--reference", "expert_9")
        assert code == 2 and "expert_9" in out and "422" in out
