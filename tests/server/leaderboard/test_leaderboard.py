"""Leaderboard rows: who is shown, order, best per team, expert and density rows, ties with the leader
(paired only on the same scorer version, test set, seed and resamples), caching."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api

from server.benchmark.dataset import Benchmark
from server.benchmark.synth import generate
from server.models import ReviewState, RunStatus, Submission
from server.scoring import ranks
from server.scoring.bootstrap import resample_indices
from server.scoring.report import references_of_test_set

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
    repro: dict[str, Any] | None = None,
) -> int:
    record = {
        "scorer_version": "2",
        "test_set_manifest_sha256": "a" * 64,
        "bootstrap": {"resamples": int(reps.size), "seed": 0},
        **(repro or {}),
    }
    with api.db.transaction() as session:
        sub = Submission(
            team_id=team_id,
            name=name,
            phase=api.settings.phase,
            image_digest=f"sha256:{name}",
            status=RunStatus.SUCCEEDED,
            metrics=_report(tau, amae),
            kendall_tau_b=tau,
            amae=amae,
            tau_replicates=reps.astype(np.float64).tobytes(),
            review_state=review,
            baseline=baseline,
            reproducibility=record,
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
    # models are ranked among models; expert rows are reference bands, not ranked (issue 21 item 0)
    assert [r["rank"] for r in rows] == [1, 2, 3, None, None, None, None, None, 4]
    by_name = {r["name"]: r for r in rows}
    assert by_name["a-best"]["submission_id"] == lead and by_name["a-best"]["is_leader"] is True
    assert by_name["a-best"]["tied_with_leader"] is False and by_name["a-best"]["tie_reason"] is None
    assert by_name["a-best"]["scorer_version"] == "2"
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


def _pair(api: Api, repro: dict[str, Any]) -> dict[str, Any]:
    """A leader and a run with nearly the same replicates, the second with `repro` overrides."""
    rng = np.random.default_rng(4)
    base = rng.normal(0.0, 0.03, RESAMPLES)
    a, b = f.team(api.db, "A"), f.team(api.db, "B")
    _scored(api, a, "leader", 0.75, 40.0, 0.75 + base)
    _scored(api, b, "close", 0.749, 40.0, 0.749 + base + rng.normal(0, 0.005, RESAMPLES), repro=repro)
    rows = api.client.get("/api/v1/leaderboard").json()["rows"]
    return next(r for r in rows if r["name"] == "close")


def test_same_scorer_test_set_seed_and_resamples_are_tie_tested_issue_14(api: Api) -> None:
    row = _pair(api, {})
    assert row["tied_with_leader"] is True and row["tie_reason"] is None


def test_a_v1_run_and_a_v2_run_are_never_marked_tied_issue_14(api: Api) -> None:
    row = _pair(api, {"scorer_version": "1"})
    assert row["tied_with_leader"] is None
    assert row["tie_reason"] == "no tie test: scored with scorer version 1, the leader with 2"
    assert row["scorer_version"] == "1"


def test_other_test_set_seed_or_resamples_are_not_tie_tested_issue_14(api: Api) -> None:
    row = _pair(api, {"test_set_manifest_sha256": "b" * 64})
    assert row["tied_with_leader"] is None and "different test set" in row["tie_reason"]


def test_other_bootstrap_seed_is_not_tie_tested_issue_14(api: Api) -> None:
    row = _pair(api, {"bootstrap": {"resamples": RESAMPLES, "seed": 1}})
    assert row["tied_with_leader"] is None
    assert (
        row["tie_reason"]
        == f"no tie test: bootstrap seed 1 with {RESAMPLES} resamples, the leader's seed 0 with {RESAMPLES}"
    )


def test_a_run_without_a_reproducibility_record_is_not_tie_tested(api: Api) -> None:
    row = _pair(api, {"scorer_version": None, "bootstrap": None})
    assert row["tied_with_leader"] is None
    assert row["tie_reason"] == "no tie test: this run has no recorded scorer_version, seed, resamples"


@pytest.fixture(scope="module")
def benchmark_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("board") / "synthetic"
    generate(root, seed=5, n_train=0, n_public=48, n_private=64, resolution=(16, 16), workers=1)
    return root


@pytest.fixture
def board_api(tmp_path: Path, sqlite_url: str, benchmark_dir: Path) -> Iterator[Api]:
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=benchmark_dir, bootstrap_resamples=100)
    yield from open_api(settings)


def _expected_references(benchmark_dir: Path) -> dict[str, Any]:
    bench = Benchmark.open(benchmark_dir)
    return references_of_test_set(
        bench.read_private(), public_labels=bench.read_public(), resamples=100, seed=0
    )


def _expert_bands_by_loop(benchmark_dir: Path, *, resamples: int, seed: int) -> dict[str, list[float]]:
    """Each expert's 95% band computed independently: scipy's tau-b of the expert's re-ranks against
    the consensus on each resample of the runs' own draws (`resample_indices` of the private rows)."""
    labels = Benchmark.open(benchmark_dir).read_private()
    assert labels.experts is not None
    reranked = ranks.rerank_experts(labels.experts)
    truth = ranks.median_rank_ground_truth(reranked).astype(np.float64)
    draws = resample_indices(len(labels), resamples, seed)
    bands: dict[str, list[float]] = {}
    for k in range(reranked.shape[1]):
        column = reranked[:, k]
        taus = []
        for idx in draws:
            kept = idx[~np.isnan(column[idx])]
            taus.append(scipy.stats.kendalltau(truth[kept], column[kept]).statistic)
        bands[f"Expert_{k + 1}"] = [float(v) for v in np.percentile(taus, [2.5, 97.5])]
    return bands


def test_expert_rows_come_from_the_test_set_before_any_run_issue_10(
    board_api: Api, benchmark_dir: Path
) -> None:
    rows = board_api.client.get("/api/v1/leaderboard").json()["rows"]
    expected = _expected_references(benchmark_dir)["experts"]
    bands = _expert_bands_by_loop(benchmark_dir, resamples=100, seed=0)
    assert sorted(r["name"] for r in rows) == [f"Expert_{k}" for k in range(1, 6)]
    for row in rows:
        assert row["kind"] == "expert" and row["scorer_version"] == "3" and row["rank"] is None
        assert row["kendall_tau_b"]["value"] == expected[row["name"]]["kendall_tau_b"]
        assert row["kendall_tau_b"]["ci95"] == pytest.approx(bands[row["name"]], abs=1e-12)
        assert row["tied_with_leader"] is None
    # The web board shows them too.
    page = board_api.client.get("/")
    assert page.status_code == 200 and page.text.count('data-kind="expert"') == 5


def test_clinical_view_lists_the_density_rows_issue_14(board_api: Api, benchmark_dir: Path) -> None:
    rows = board_api.client.get("/api/v1/leaderboard", params={"view": "clinical"}).json()["rows"]
    assert [r["kind"] for r in rows] == ["density"] * 3
    assert [r["variable"] for r in rows] == ["percent_density", "dense_area", "breast_area"]
    refs = _expected_references(benchmark_dir)["clinical"]
    density = rows[0]
    assert density["rank"] is None and density["population"] == "pooled"
    expected = refs["interval_cancer"]["references"]["percent_density"]
    assert density["clinical"]["interval_cancer"]["auc"] == expected["auc"]
    assert (
        density["clinical"]["interval_cancer"]["odds_ratio_q4"]["value"]
        == expected["odds_ratios"]["Q4"]["value"]
    )
    assert board_api.client.get("/api/v1/leaderboard", params={"view": "other"}).status_code == 422


def test_without_a_test_set_expert_rows_fall_back_to_the_newest_report(api: Api) -> None:
    team = f.team(api.db, "A")
    _scored(api, team, "m", 0.7, 40.0, np.full(RESAMPLES, 0.7))
    experts = [r for r in api.client.get("/api/v1/leaderboard").json()["rows"] if r["kind"] == "expert"]
    assert len(experts) == 5 and experts[0]["kendall_tau_b"]["value"] == 0.65


def test_one_cache_serves_the_api_the_pages_and_the_downloads(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The board is built once per version for the API, the page, the CSV and the JSON download
    (issue 20: one row model, one cache), their rows agree, and a review change rebuilds it."""
    from server.leaderboard import service

    team = f.team(api.db, "A")
    _scored(api, team, "m", 0.7, 40.0, np.full(RESAMPLES, 0.7))
    built: list[bool] = []
    real = service.build_board

    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append(kwargs.get("best_per_team", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "build_board", counted)
    rows = api.client.get("/api/v1/leaderboard").json()["rows"]
    page, csv = api.client.get("/"), api.client.get("/leaderboard.csv")
    download = api.client.get("/leaderboard.json").json()["rows"]
    significance = api.client.get("/api/v1/leaderboard/significance").json()
    assert page.status_code == 200 and csv.status_code == 200
    assert significance["map"]["names"] == ["m"]
    assert built == [True]  # one build for all five
    assert [(r["rank"], r["name"], r["kendall_tau_b"]) for r in rows] == [
        (r["rank"], r["name"], r["kendall_tau_b"]) for r in download
    ]
    assert "m" in csv.text.splitlines()[1]
    _scored(api, team, "n", 0.8, 39.0, np.full(RESAMPLES, 0.8))
    assert api.client.get("/leaderboard.json").json()["rows"][0]["name"] == "n"
    assert api.client.get("/api/v1/leaderboard").json()["rows"][0]["name"] == "n"
    assert built == [True, True]  # the new run moved the version: rebuilt once, for both
