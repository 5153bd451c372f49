"""Boards as they stood (issue 22 item 5): ``GET /api/v1/leaderboard?as_of=`` on a history of 1,000
runs and 100 re-scores, against today's board build.

The history is written through the real services: each run's first report and each re-score by
`server.runs.reports.record` (2,000 bootstrap replicates each), each approval by
`server.review.service.review` (one audit entry each). Timed in-process through the app
(FastAPI's TestClient, SQLite in a temporary directory):

- today's board, built: ``GET /api/v1/leaderboard`` after the cache was dropped (what a request pays
  after every new result or review action);
- today's board, cached: the same request again;
- as_of: the board as it stood half-way through the history, and just now (every run, every re-score).

Usage: .venv/bin/python benchmarks/bench_as_of.py [--runs 1000] [--rescores 100] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from server.accounts import service as accounts
from server.app import create_app
from server.clock import iso, utcnow
from server.core.principal import Principal
from server.core.settings import load_settings
from server.leaderboard.cache import BoardCache
from server.models import ReviewState, Role, RunStatus, Submission, Team
from server.review import service as review
from server.review.schemas import ReviewAction
from server.runs import reports
from server.scoring.report import ScoreReport

RESAMPLES = 2000


def _report(tau: float, amae: float) -> dict[str, Any]:
    return {
        "scorer_version": "2",
        "masking": {
            "kendall_tau_b": {"value": tau, "ci95": [tau - 0.04, tau + 0.04]},
            "amae": {"value": amae, "ci95": [amae - 3, amae + 3], "unit": "rank"},
        },
        "experts": {f"Expert_{k}": {"kendall_tau_b": 0.7, "amae": 40.0} for k in range(1, 6)},
    }


def _store(session: Any, sub: Submission, tau: float, reps: np.ndarray, reason: str) -> None:
    reports.record(
        session, sub, ScoreReport(_report(tau, 40.0), {"kendall_tau_b": reps}), reason=reason,
        test_set_sha256="a" * 64, seed=0, resamples=RESAMPLES,
    )  # fmt: skip


def seed(client: TestClient, phase: str, runs: int, rescores: int) -> str:
    """Write the history; returns the instant half-way through it."""
    db = client.app.state.csawm.db  # type: ignore[attr-defined]
    with db.transaction() as session:
        maud = accounts.create_user(
            session, "bench@x.org", role=Role.MAINTAINER, team_name=None, actor="bench"
        )
        actor = Principal(
            user_id=maud.id, email=maud.email, role=Role.MAINTAINER, team_id=None, team_name=None
        )
    rng = np.random.default_rng(1)
    ids: list[int] = []
    half = ""
    for i in range(runs):
        with db.transaction() as session:
            team = Team(name=f"team-{i % 100:03d}")
            found = session.query(Team).filter_by(name=team.name).one_or_none()
            if found is None:
                session.add(team)
                session.flush()
            team_id = (found or team).id
            tau = float(rng.uniform(0.3, 0.8))
            sub = Submission(
                team_id=team_id, name=f"model-{i}", phase=phase, image_digest=f"sha256:{i}",
                status=RunStatus.SUCCEEDED, review_state=ReviewState.PENDING,
            )  # fmt: skip
            session.add(sub)
            session.flush()
            _store(session, sub, tau, tau + rng.normal(0, 0.02, RESAMPLES), reports.SCORED)
            review.review(session, actor, sub.id, ReviewAction.APPROVE, "")
            ids.append(sub.id)
        if i == runs // 2:
            half = iso(utcnow())
    for sub_id in rng.choice(ids, size=rescores, replace=False):
        with db.transaction() as session:
            sub = session.get(Submission, int(sub_id))
            assert sub is not None
            tau = float(rng.uniform(0.3, 0.8))
            _store(session, sub, tau, tau + rng.normal(0, 0.02, RESAMPLES), "rescored")
    return half


def _median_ms(client: TestClient, params: dict[str, str], repeat: int, *, drop_cache: bool) -> float:
    times = []
    for _ in range(repeat):
        if drop_cache:
            client.app.state.csawm.parts.get(BoardCache).key = None  # type: ignore[attr-defined]
        start = time.perf_counter()
        r = client.get("/api/v1/leaderboard", params=params)
        times.append(time.perf_counter() - start)
        assert r.status_code == 200, r.text
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rescores", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            data_dir=Path(tmp) / "state", database_url=f"sqlite:///{tmp}/db.sqlite", embedded_worker=False,
            embedded_dispatcher=False,
        )  # fmt: skip
        with TestClient(create_app(settings, migrate_on_start=True)) as client:
            start = time.perf_counter()
            half = seed(client, settings.phase, args.runs, args.rescores)
            seeded_s = time.perf_counter() - start
            now = iso(utcnow())
            every = {"best_per_team": "false"}
            results = {
                "runs": args.runs,
                "rescores": args.rescores,
                "seed_s": round(seeded_s, 1),
                "today_built_ms": _median_ms(client, every, args.repeat, drop_cache=True),
                "today_cached_ms": _median_ms(client, every, args.repeat, drop_cache=False),
                "as_of_half_ms": _median_ms(client, {**every, "as_of": half}, args.repeat, drop_cache=False),
                "as_of_now_ms": _median_ms(client, {**every, "as_of": now}, args.repeat, drop_cache=False),
                "today_best_per_team_built_ms": _median_ms(client, {}, args.repeat, drop_cache=True),
                "as_of_now_best_per_team_ms": _median_ms(
                    client, {"as_of": now}, args.repeat, drop_cache=False
                ),
            }
            rows = client.get("/api/v1/leaderboard", params={**every, "as_of": now}).json()["rows"]
            live = client.get("/api/v1/leaderboard", params=every).json()["rows"]
            results["as_of_now_equals_today"] = rows == live
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
