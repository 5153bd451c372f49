"""Leaderboard rows: who is shown, order, best per team, expert rows, ties with the leader, caching."""

from __future__ import annotations

from typing import Any

import numpy as np
from srvtest import factories as f
from srvtest.app import Api

from server.models import ReviewState, RunStatus, Submission

RESAMPLES = 500


def _report(tau: float, amae: float) -> dict[str, Any]:
    return {
        "masking": {
            "kendall_tau_b": {"value": tau, "ci95": [tau - 0.05, tau + 0.05]},
            "amae": {"value": amae, "ci95": [amae - 2, amae + 2], "unit": "rank"},
        },
        "experts": {f"Expert_{k}": {"kendall_tau_b": 0.6 + k / 100, "amae": 40.0 + k} for k in range(1, 6)},
    }


def _scored(
    api: Api,
    team_id: int,
    name: str,
    tau: float,
    amae: float,
    reps: np.ndarray,
    *,
    review: ReviewState = ReviewState.APPROVED,
    baseline: bool = False,
) -> int:
    with api.db.transaction() as session:
        sub = Submission(
            team_id=team_id,
            name=name,
            phase="p",
            image_digest=f"sha256:{name}",
            status=RunStatus.SUCCEEDED,
            metrics=_report(tau, amae),
            kendall_tau_b=tau,
            amae=amae,
            tau_replicates=reps.astype(np.float64).tobytes(),
            review_state=review,
            baseline=baseline,
        )
        session.add(sub)
        session.flush()
        return sub.id


def test_rows_order_best_per_team_experts_and_ties(api: Api) -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 0.03, RESAMPLES)
    a, b, c = f.team(api.db, "A"), f.team(api.db, "B"), f.team(api.db, "C")
    lead = _scored(api, a, "a-best", 0.75, 40.0, 0.75 + base)
    _scored(api, a, "a-older", 0.70, 41.0, 0.70 + base)
    close = _scored(api, b, "b-close", 0.745, 39.0, 0.745 + base + rng.normal(0, 0.005, RESAMPLES))
    far = _scored(api, c, "c-far", 0.50, 50.0, 0.50 + base)
    _scored(api, c, "c-pending", 0.90, 30.0, 0.90 + base, review=ReviewState.PENDING)
    _scored(api, c, "c-hidden", 0.95, 30.0, 0.95 + base, review=ReviewState.HIDDEN)
    baseline = _scored(
        api, a, "resnet34-onehot", 0.745, 38.0, 0.6 + base, review=ReviewState.PENDING, baseline=True
    )

    rows = api.client.get("/api/v1/leaderboard").json()["rows"]
    names = [r["name"] for r in rows]
    # tau-b descending, then AMAE ascending (baseline 0.745/38 before b-close 0.745/39); experts interleave
    assert names == [
        "a-best",
        "resnet34-onehot",
        "b-close",
        "Expert_5",
        "Expert_4",
        "Expert_3",
        "Expert_2",
        "Expert_1",
        "c-far",
    ]
    assert [r["rank"] for r in rows] == list(range(1, 10))
    by_name = {r["name"]: r for r in rows}
    assert by_name["a-best"]["submission_id"] == lead and by_name["a-best"]["is_leader"] is True
    assert by_name["a-best"]["tied_with_leader"] is False
    assert by_name["b-close"]["tied_with_leader"] is True and by_name["b-close"]["submission_id"] == close
    assert by_name["c-far"]["tied_with_leader"] is False and by_name["c-far"]["submission_id"] == far
    assert by_name["resnet34-onehot"]["kind"] == "baseline"
    assert by_name["resnet34-onehot"]["submission_id"] == baseline
    assert by_name["resnet34-onehot"]["tied_with_leader"] is False  # its replicates sit 0.15 lower
    expert = by_name["Expert_3"]
    assert expert["kind"] == "expert" and expert["tied_with_leader"] is None and "submission_id" not in expert
    assert expert["kendall_tau_b"] == {"value": 0.63, "ci95": None}
    assert by_name["a-best"]["kendall_tau_b"] == {"value": 0.75, "ci95": [0.7, 0.8]}
    assert by_name["a-best"]["amae"]["unit"] == "rank"

    every = api.client.get("/api/v1/leaderboard", params={"best_per_team": "false"}).json()["rows"]
    assert "a-older" in [r["name"] for r in every]


def test_cache_follows_review_changes(api: Api) -> None:
    from server.models import Role

    team = f.team(api.db, "A")
    sub = _scored(api, team, "m", 0.7, 40.0, np.full(RESAMPLES, 0.7), review=ReviewState.PENDING)
    rows = api.client.get("/api/v1/leaderboard").json()["rows"]
    assert [r["kind"] for r in rows] == ["expert"] * 5  # experts come from any scored run
    maint = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    queue = api.client.get("/api/v1/admin/review", headers=f.auth(maint)).json()
    assert [q["id"] for q in queue] == [sub]
    response = api.client.post(
        f"/api/v1/admin/submissions/{sub}/review", json={"action": "approve"}, headers=f.auth(maint)
    )
    assert response.status_code == 200 and response.json()["review_state"] == "approved"
    assert next(r["name"] for r in api.client.get("/api/v1/leaderboard").json()["rows"]) == "m"
    assert api.client.get("/api/v1/admin/review", headers=f.auth(maint)).json() == []
