"""Review flags (issue 15 item 4): planted copies are flagged, independent work is not; same image
across teams; sudden jumps; missing files tolerated; maintainers only; flags never change a run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import scipy.stats
from srvtest import factories as f
from srvtest.app import Api

from server.clock import utcnow
from server.models import ReviewState, Role, RunStatus, Submission
from server.review.flags import RankCache, compute_flags
from server.runs import store

N_IMAGES = 475
NAMES = [f"img_{i:04d}.png" for i in range(N_IMAGES)]
START = utcnow() - timedelta(days=10)


def _csv(names: list[str], scores: np.ndarray) -> bytes:
    rows = ["Filename;Final_score", *(f"{n};{s!r}" for n, s in zip(names, scores.tolist(), strict=True))]
    return ("\n".join(rows) + "\n").encode()


class Site:
    """Plants runs straight into the database, predictions through the store's own `save`."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.teams: dict[str, int] = {}
        self.count = 0

    def team(self, name: str) -> int:
        if name not in self.teams:
            self.teams[name] = f.team(self.api.db, name)
        return self.teams[name]

    def run(
        self,
        team: str,
        scores: np.ndarray | None = None,
        *,
        names: list[str] = NAMES,
        tau: float | None = None,
        ci: tuple[float, float] | None = None,
        digest: str | None = None,
        status: RunStatus = RunStatus.SUCCEEDED,
        baseline: bool = False,
        sha: str | None = None,
        error_code: str | None = None,
    ) -> int:
        self.count += 1
        if scores is not None:
            sha = store.save(self.api.settings.data_dir, _csv(names, scores))
        metrics = None
        if tau is not None:
            lo, hi = ci if ci is not None else (tau - 0.04, tau + 0.04)
            metrics = {"masking": {"kendall_tau_b": {"value": tau, "ci95": [lo, hi]}}}
        with self.api.db.transaction() as session:
            sub = Submission(
                team_id=self.team(team), name=f"{team}-run-{self.count}", phase=self.api.settings.phase,
                baseline=baseline,
                image_digest=digest or f"sha256:{self.count:064x}", status=status,
                predictions_sha256=sha, kendall_tau_b=tau, metrics=metrics, error_code=error_code,
                created_at=START + timedelta(hours=self.count),
            )  # fmt: skip
            session.add(sub)
            session.flush()
            return sub.id

    def flags(self, **kwargs: Any) -> Any:
        with self.api.db.transaction(write=False) as session:
            return compute_flags(session, self.api.settings.data_dir, **kwargs)


@pytest.fixture
def site(api: Api) -> Site:
    return Site(api)


def _pairs(result: Any, kind: str = "correlated_predictions") -> dict[frozenset[int], Any]:
    return {frozenset(r.id for r in fl.runs): fl for fl in result.flags if fl.kind.value == kind}


def test_planted_copies_are_flagged_and_independent_work_is_not(site: Site) -> None:
    rng = np.random.default_rng(15)
    original = rng.normal(size=N_IMAGES)
    a = site.run("A", original)
    noisy = site.run("B", original + rng.normal(0, 0.01, N_IMAGES))  # a copy with tiny noise
    rescaled = site.run("C", np.exp(3 * original) + 7)  # rank-preserving: Spearman sees a copy
    independent = site.run("D", rng.normal(size=N_IMAGES))
    result = site.flags()
    pairs = _pairs(result)
    assert set(pairs) == {frozenset({a, noisy}), frozenset({a, rescaled}), frozenset({noisy, rescaled})}
    copy = pairs[frozenset({a, noisy})]
    assert copy.evidence.spearman_rho >= 0.995 and copy.evidence.n_images == N_IMAGES
    assert copy.teams == ["A", "B"] and [r.id for r in copy.runs] == [a, noisy]
    assert copy.evidence.same_predictions_file is False
    assert pairs[frozenset({a, rescaled})].evidence.spearman_rho == pytest.approx(1.0)
    assert result.runs_compared == 4 and result.notes == []
    assert all(independent not in pair for pair in pairs)


def test_rho_matches_scipy_with_ties_and_different_image_sets(site: Site) -> None:
    """Every cross-team rho (threshold -1 keeps them all) equals scipy's Spearman on the common images."""
    rng = np.random.default_rng(7)
    plans: dict[int, tuple[list[str], np.ndarray]] = {}
    for k in range(4):
        scores = np.round(rng.normal(size=N_IMAGES) * 2) if k % 2 else rng.normal(size=N_IMAGES)  # ties
        plans[site.run(f"T{k}", scores)] = (NAMES, scores)
    subset = NAMES[100:] + [f"extra_{i}.png" for i in range(30)]  # another test-set version
    scores = rng.integers(1, 9, len(subset)).astype(float)
    plans[site.run("T9", scores, names=subset)] = (subset, scores)
    pairs = _pairs(site.flags(rho_threshold=-1.0))
    assert len(pairs) == 10
    for pair, flag in pairs.items():
        (names_a, a), (names_b, b) = (plans[i] for i in sorted(pair))
        common = sorted(set(names_a) & set(names_b))
        xa = [a[names_a.index(n)] for n in common]
        xb = [b[names_b.index(n)] for n in common]
        expected = scipy.stats.spearmanr(xa, xb).statistic
        assert flag.evidence.n_images == len(common)
        assert flag.evidence.spearman_rho == pytest.approx(expected, abs=1e-6)


def test_same_team_pairs_are_not_flagged_and_a_copied_baseline_is(site: Site) -> None:
    rng = np.random.default_rng(2)
    mine = rng.normal(size=N_IMAGES)
    own = [site.run("A", mine), site.run("A", mine), site.run("A", mine + 1e-6)]  # one team, thrice
    reference = rng.normal(size=N_IMAGES)
    base = site.run("CSAW-M baselines", reference, baseline=True)
    rerun = site.run("CSAW-M baselines", reference, baseline=True)  # the baseline team's own rerun
    thief = site.run("C", reference)  # byte-identical to the baseline's predictions
    pairs = _pairs(site.flags())
    assert set(pairs) == {frozenset({base, thief}), frozenset({rerun, thief})}
    flag = pairs[frozenset({base, thief})]
    assert flag.evidence.same_predictions_file is True and flag.evidence.spearman_rho == pytest.approx(1.0)
    assert flag.runs[0].baseline is True and flag.teams == ["CSAW-M baselines", "C"]
    assert not any(pair <= set(own) for pair in pairs)


def test_same_image_digest_across_teams_any_status(site: Site) -> None:
    digest = "sha256:" + "ab" * 32
    first = site.run("A", digest=digest, status=RunStatus.FAILED)
    again = site.run("A", digest=digest, status=RunStatus.SUCCEEDED)
    other = site.run("B", digest=digest, status=RunStatus.CANCELLED)
    site.run("C", digest="sha256:" + "cd" * 32)
    site.run("C", digest="sha256:" + "cd" * 32)  # a team resubmitting its own image: no flag
    flags = [fl for fl in site.flags().flags if fl.kind.value == "same_image"]
    assert len(flags) == 1
    (flag,) = flags
    assert flag.evidence.image_digest == digest and flag.evidence.n_teams == 2
    assert [r.id for r in flag.runs] == [first, again, other] and flag.teams == ["A", "B"]
    assert [r.status for r in flag.runs] == ["failed", "succeeded", "cancelled"]


def test_sudden_jump_is_flagged_and_a_normal_improvement_is_not(site: Site) -> None:
    site.run("A", tau=0.30, ci=(0.26, 0.34))
    steady = site.run("A", tau=0.36, ci=(0.32, 0.40))  # +0.06 < 3 x 0.08
    site.run("A", tau=0.20, ci=(0.16, 0.24))  # worse: the best earlier stays 0.36
    jump = site.run("A", tau=0.61, ci=(0.57, 0.65))  # +0.25 > 3 x 0.08 = 0.24
    site.run("B", tau=0.10, ci=(0.06, 0.14))
    site.run("B", tau=0.33, ci=(0.29, 0.37))  # +0.23 < 0.24: just under
    site.run("C", tau=0.70, ci=(0.66, 0.74))  # a first result is never a jump
    flags = [fl for fl in site.flags().flags if fl.kind.value == "sudden_jump"]
    assert len(flags) == 1
    (flag,) = flags
    assert [r.id for r in flag.runs] == [jump, steady]
    ev = flag.evidence
    assert ev.previous_best_id == steady and ev.previous_best == 0.36 and ev.factor == 3.0
    assert ev.jump == pytest.approx(0.25) and ev.ci_width == pytest.approx(0.08)
    assert ev.threshold == pytest.approx(0.24) and ev.ci95 == (0.57, 0.65)
    assert not site.flags(jump_factor=3.2).flags  # 0.25 < 3.2 x 0.08: the factor is what decides


def test_a_report_without_a_ci_is_noted_not_judged(site: Site) -> None:
    site.run("A", tau=0.2)
    broken = site.run("A", tau=0.9)
    with site.api.db.transaction() as session:
        sub = session.get(Submission, broken)
        assert sub is not None
        sub.metrics = {"masking": {"kendall_tau_b": {"value": 0.9, "ci95": [None, None]}}}
    result = site.flags()
    assert result.flags == [] and result.notes == [
        f"run {broken}: its report has no usable 95% CI of tau-b, so a jump was not judged"
    ]


def test_missing_and_altered_prediction_files_are_skipped_with_a_note(site: Site) -> None:
    scores = np.random.default_rng(4).normal(size=N_IMAGES)
    a = site.run("A", scores)
    b = site.run("B", scores + 1e-4)
    gone = site.run("C", scores + 5)  # a copy too, were its file still there
    altered = site.run("D", scores * 3)
    ghost = site.run("E", sha="0" * 64)
    data = site.api.settings.data_dir
    with site.api.db.transaction(write=False) as session:
        shas = {i: session.get(Submission, i).predictions_sha256 for i in (gone, altered)}  # type: ignore[union-attr]
    store.predictions_path(data, shas[gone]).unlink()  # type: ignore[arg-type]
    store.predictions_path(data, shas[altered]).write_bytes(b"Filename;Final_score\nx;1\n")  # type: ignore[arg-type]
    result = site.flags()
    assert set(_pairs(result)) == {frozenset({a, b})}
    assert result.runs_compared == 2 and len(result.notes) == 3
    for run, words in ((gone, "are missing"), (altered, "do not match their hash"), (ghost, "are missing")):
        assert any(n.startswith(f"run {run}:") and words in n for n in result.notes), (run, result.notes)


def test_each_file_is_ranked_once_and_cached_by_its_hash(site: Site) -> None:
    scores = np.random.default_rng(5).normal(size=N_IMAGES)
    sha = store.save(site.api.settings.data_dir, _csv(NAMES, scores))
    for team in ("A", "B", "C"):
        site.run(team, sha=sha)
    cache = RankCache()
    first = site.flags(cache=cache)
    assert cache.misses == 1 and len(_pairs(first)) == 3
    store.predictions_path(site.api.settings.data_dir, sha).unlink()  # content-addressed: cache is valid
    assert _pairs(site.flags(cache=cache)).keys() == _pairs(first).keys() and cache.misses == 1


def test_the_api_is_for_maintainers_and_never_changes_a_run(site: Site) -> None:
    scores = np.random.default_rng(6).normal(size=N_IMAGES)
    a = site.run("A", scores, tau=0.4)
    b = site.run("B", scores, tau=0.4)
    researcher = f.user(site.api.db, "r@a.org", team="A")
    maintainer = f.user(site.api.db, "m@x.org", role=Role.MAINTAINER)
    client = site.api.client
    assert client.get("/api/v1/admin/flags").status_code == 401
    refused = client.get("/api/v1/admin/flags", headers=f.auth(researcher))
    assert refused.status_code == 403 and "maintainer" in refused.json()["error"]["message"]
    for sub_id in (a, b):  # nor does a researcher's view of their run mention flags
        body = client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(researcher))
        assert "flag" not in body.text.lower() and "correlated" not in body.text
    r = client.get("/api/v1/admin/flags", headers=f.auth(maintainer))
    assert r.status_code == 200, r.text
    body = r.json()
    (flag,) = body["flags"]
    assert flag["kind"] == "correlated_predictions" and flag["teams"] == ["A", "B"]
    assert set(flag["evidence"]) == {"spearman_rho", "n_images", "threshold", "same_predictions_file"}
    assert {run["id"] for run in flag["runs"]} == {a, b} and body["rho_threshold"] == 0.995
    with site.api.db.transaction(write=False) as session:
        states = {s.id: (s.status, s.review_state) for s in session.query(Submission)}
    assert states == {
        a: (RunStatus.SUCCEEDED, ReviewState.PENDING),
        b: (RunStatus.SUCCEEDED, ReviewState.PENDING),
    }
    approved = client.post(
        f"/api/v1/admin/submissions/{b}/review", json={"action": "approve"}, headers=f.auth(maintainer)
    )
    assert approved.status_code == 200 and approved.json()["review_state"] == "approved"  # never blocked


def test_repeated_infra_errors_of_one_team_are_flagged(site: Site) -> None:
    """Issue 19: one team whose runs keep ending in our failures is worth a look (a model that breaks
    the scorer or the engine); a single infra_error (an outage) and model faults are not."""
    from server.runs import holds

    failed = RunStatus.FAILED
    first = site.run("A", status=failed, error_code="infra_error")
    site.run("A", status=failed, error_code="output_invalid")  # the model's fault: not counted
    second = site.run("A", status=failed, error_code="infra_error")
    site.run("B", status=failed, error_code="infra_error")  # once
    site.run("C", status=failed, error_code="nonzero_exit")
    site.run("C", status=failed, error_code="nonzero_exit")
    site.run("D", tau=0.5)
    flags = [fl for fl in site.flags().flags if fl.kind.value == "repeated_infra_errors"]
    assert len(flags) == 1
    assert flags[0].teams == ["A"] and [r.id for r in flags[0].runs] == [first, second]
    assert (flags[0].evidence.n_runs, flags[0].evidence.threshold, flags[0].evidence.held) == (2, 2, False)
    with site.api.db.transaction() as session:
        holds.hold(session, site.teams["A"], reason="scorer crash", actor="test")
    (flag,) = [fl for fl in site.flags().flags if fl.kind.value == "repeated_infra_errors"]
    assert flag.evidence.held is True
