"""The Ladder on the board: a run that is not significantly better leaves the team's displayed score
unchanged (and says so), a clearly better one moves it; researchers and visitors see only the
rounded displayed value, never the exact numbers; maintainers see exact values."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from phasetest import RESAMPLES, leaked, make_phase, scored, surfaces, web
from srvtest import factories as f
from srvtest.app import Api

from server.clock import utcnow
from server.models import Role, Team
from server.scoring.ladder import NOT_SIGNIFICANT

HOUR = timedelta(hours=1)
FIRST, NEAR, CLEAR = 0.701234, 0.703917, 0.781234
# Exact digits of the not-significant run (and its AMAE 41.372915) as JSON, CSV, CLI or a page write them.
NEAR_LEAKS = ("703917", "0.7039", "0.704", "372915", "41.37", "41.373")


@pytest.fixture
def ladder(sqlite_api: Api) -> dict[str, Any]:
    """A live Ladder phase; team alpha's first run, then one only a little better (paired replicates)."""
    api = sqlite_api
    alice = f.member_token(api.db, "alpha", "a@x.org")
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    make_phase(api, "dev", -3 * HOUR, HOUR, ladder=True, ladder_level=0.05, ladder_step=0.01)
    with api.db.transaction(write=False) as session:
        team_id = session.query(Team).filter_by(name="alpha").one().id
    rng = np.random.default_rng(7)
    base = rng.normal(0.0, 0.03, RESAMPLES)  # the patient sample of each resample, shared by all runs
    now = utcnow()
    first = scored(api, team_id, "first", "dev", FIRST, 45.0, FIRST + base, finished=now - 2 * HOUR)
    near_reps = NEAR + base + rng.normal(0.0, 0.01, RESAMPLES)  # p = P(diff <= 0) is far above 0.05
    near = scored(api, team_id, "near", "dev", NEAR, 41.372915, near_reps, finished=now - HOUR)
    return {"api": api, "alice": alice, "maud": maud, "team_id": team_id, "first": first, "near": near,
            "base": base, "rng": rng}  # fmt: skip


def _get(env: dict[str, Any], sub_id: int, who: str = "alice") -> dict[str, Any]:
    r = env["api"].client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(env[who]))
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


def _team_row(api: Api) -> dict[str, Any]:
    rows = api.client.get("/api/v1/leaderboard").json()["rows"]
    (row,) = [r for r in rows if r["team"] == "alpha"]
    return dict(row)


def test_a_run_that_is_not_significantly_better_leaves_the_displayed_score(ladder: dict[str, Any]) -> None:
    first, near = _get(ladder, ladder["first"]), _get(ladder, ladder["near"])
    assert first["ladder"] == {"displayed": 0.7, "moved": True, "note": None}
    assert near["ladder"] == {"displayed": 0.7, "moved": False, "note": NOT_SIGNIFICANT}
    assert near["kendall_tau_b"] is None and near["amae"] is None and near["metrics"] is None
    assert "Ladder phase" in near["scores_withheld"]
    row = _team_row(ladder["api"])
    assert row["kendall_tau_b"] == {"value": 0.7, "ci95": None} and row["amae"]["value"] is None
    # the board's step is the one that moved the display: the run whose own value it is
    assert row["ladder"]["note"] is None and row["submission_id"] == ladder["first"]
    assert row["is_leader"] and row["tied_with_leader"] is False  # the only model row
    page = web(ladder["api"], ladder["alice"]).get(f"/submissions/{ladder['near']}").text
    assert NOT_SIGNIFICANT in page and "stays 0.7" in page


def test_a_clearly_better_run_moves_the_displayed_score(ladder: dict[str, Any]) -> None:
    api = ladder["api"]
    clear_reps = CLEAR + ladder["base"] + ladder["rng"].normal(0.0, 0.01, RESAMPLES)
    clear = scored(api, ladder["team_id"], "clear", "dev", CLEAR, 35.0, clear_reps, finished=utcnow())
    assert _get(ladder, clear)["ladder"] == {"displayed": 0.78, "moved": True, "note": None}
    assert _get(ladder, ladder["near"])["ladder"]["displayed"] == 0.7  # each run keeps its own step
    row = _team_row(api)
    assert row["kendall_tau_b"]["value"] == 0.78 and row["submission_id"] == clear and row["ladder"]["moved"]
    assert "0.78" in api.client.get("/leaderboard.csv").text
    beta = f.team(api.db, "beta")
    scored(api, beta, "beta-run", "dev", 0.5, 50.0, 0.5 + ladder["base"])
    rows = api.client.get("/api/v1/leaderboard").json()["rows"]
    (beta_row,) = [r for r in rows if r["team"] == "beta"]
    assert beta_row["kendall_tau_b"]["value"] == 0.5 and beta_row["tied_with_leader"] is None
    assert "Ladder" in beta_row["tie_reason"]


@pytest.mark.parametrize(
    "surface",
    ["submission", "submission-list", "reports", "report-page", "team-page", "cli-status", "leaderboard",
     "leaderboard-all-runs", "leaderboard-clinical", "board-page", "board-json", "board-csv", "report-plots"],
)  # fmt: skip
def test_researchers_never_see_the_exact_value_of_a_ladder_run(ladder: dict[str, Any], surface: str) -> None:
    text = surfaces(ladder["api"], ladder["near"], "dev")[surface](ladder["alice"])
    assert not leaked(text, NEAR_LEAKS), surface
    # the first run's exact value (0.701234, AMAE 45.0 with its CI) is withheld as well
    assert "701234" not in text and "0.7012" not in text


@pytest.mark.parametrize("surface", ["submission", "submission-list", "reports", "report-page", "cli-status"])
def test_maintainers_see_the_exact_values_of_a_ladder_run(ladder: dict[str, Any], surface: str) -> None:
    text = surfaces(ladder["api"], ladder["near"], "dev")[surface](ladder["maud"])
    assert "0.704" in text or "703917" in text or "0.7039" in text, surface


@pytest.mark.parametrize("seed", [0, None], ids=["paired", "no-seed"])
def test_runs_without_a_complete_pairing_record_are_not_paired(
    ladder: dict[str, Any], seed: int | None
) -> None:
    """As for the board's tie test: replicates pair only when scorer version, test set, seed and
    resample count are all recorded; a run missing any of them falls back to the `step` margin."""
    api, base = ladder["api"], ladder["base"]
    # Above the first run on every resample (paired p = 0), but only 0.0078 above its exact tau-b.
    tau = FIRST + 0.0078
    bootstrap = {"resamples": RESAMPLES, "seed": seed} if seed is not None else {"resamples": RESAMPLES}
    sub = scored(api, ladder["team_id"], "small", "dev", tau, 40.0, tau + base, bootstrap=bootstrap)
    expected = {"displayed": 0.71, "moved": True, "note": None} if seed is not None else (
        {"displayed": 0.7, "moved": False, "note": NOT_SIGNIFICANT}
    )  # fmt: skip
    assert _get(ladder, sub)["ladder"] == expected
