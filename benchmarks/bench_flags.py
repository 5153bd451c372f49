"""`GET /api/v1/admin/flags` (issue 15 item 4): time against a naive per-pair Spearman, same run.

For each ``--runs`` count, a temp SQLite database and prediction store hold that many succeeded
runs spread over ``--teams`` teams, each with a stored hidden-run predictions file of ``--images``
rows (475: the CSAW-M private set), its own random scores except one planted copy (noise added) per
ten runs. Timed in process (Starlette TestClient, no network, a maintainer's token):

* ours cold: the first request of a fresh app (every file read, parsed and ranked);
* ours warm: later requests (files ranked once, cached by their sha256), median of ``--repeats``;
* naive: each file read and parsed once, then ``scipy.stats.spearmanr`` on the common images of
  every pair of runs from different teams (what one would write first).

The script fails unless both find the same flagged pairs with rho equal to 1e-6.

    .venv/bin/python benchmarks/bench_flags.py --runs 50 200 500 --repeats 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import scipy.stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastapi.testclient import TestClient  # noqa: E402

from server.accounts import service as accounts  # noqa: E402
from server.app import create_app  # noqa: E402
from server.clock import utcnow  # noqa: E402
from server.core.settings import Settings, load_settings  # noqa: E402
from server.models import Role, RunStatus, Submission  # noqa: E402
from server.review.flags import RHO_THRESHOLD  # noqa: E402
from server.runs import store  # noqa: E402
from server.scoring.predictions import read_predictions  # noqa: E402


def _plant(settings: Settings, app: object, runs: int, teams: int, images: int) -> str:
    """Create the teams, runs and files; return a maintainer's token."""
    rng = np.random.default_rng(runs)
    names = [f"P_{i:05d}_R.png" for i in range(images)]
    db = app.state.csawm.db  # type: ignore[attr-defined]
    start = utcnow() - timedelta(days=30)
    with db.transaction() as session:
        team_ids = [accounts.create_team(session, f"team-{k}", actor="bench").id for k in range(teams)]
        accounts.create_user(session, "m@bench.example", role=Role.MAINTAINER, team_name=None, actor="bench")
        _, token = accounts.issue_token(session, "m@bench.example", expires_in=None, actor="bench")
        scores: list[np.ndarray] = []
        for i in range(runs):
            copy = i % 10 == 9  # a planted copy of the previous run, from the next team
            own = scores[-1] + rng.normal(0, 0.01, images) if copy else rng.normal(size=images)
            scores.append(own)
            body = "Filename;Final_score\n" + "".join(
                f"{n};{s!r}\n" for n, s in zip(names, own.tolist(), strict=True)
            )
            tau = float(rng.uniform(0.2, 0.6))
            sub = Submission(
                team_id=team_ids[i % teams], name=f"run-{i}", phase="p", image_digest=f"sha256:{i:064x}",
                status=RunStatus.SUCCEEDED, predictions_sha256=store.save(settings.data_dir, body.encode()),
                kendall_tau_b=tau, created_at=start + timedelta(minutes=i),
                metrics={"masking": {"kendall_tau_b": {"value": tau, "ci95": [tau - 0.04, tau + 0.04]}}},
            )  # fmt: skip
            session.add(sub)
    return str(token)


def _naive(settings: Settings, app: object) -> tuple[float, dict[frozenset[int], float]]:
    db = app.state.csawm.db  # type: ignore[attr-defined]
    started = time.perf_counter()
    with db.transaction(write=False) as session:
        rows = session.query(Submission.id, Submission.team_id, Submission.predictions_sha256).all()
    parsed = {}
    for sub_id, _, sha in rows:
        predictions = read_predictions(store.load(settings.data_dir, sha))
        parsed[sub_id] = dict(zip(predictions.filenames, predictions.final_score.tolist(), strict=True))
    found = {}
    for (id_a, team_a, _), (id_b, team_b, _) in itertools.combinations(rows, 2):
        if team_a == team_b:
            continue
        a, b = parsed[id_a], parsed[id_b]
        common = [n for n in a if n in b]
        rho = float(scipy.stats.spearmanr([a[n] for n in common], [b[n] for n in common]).statistic)
        if rho >= RHO_THRESHOLD:
            found[frozenset({id_a, id_b})] = rho
    return time.perf_counter() - started, found


def _one(runs: int, teams: int, images: int, repeats: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="csawm-bench-flags-") as tmp:
        state = Path(tmp)
        settings = load_settings(
            data_dir=state, database_url=f"sqlite:///{state / 'csawm.db'}", embedded_worker=False
        )
        app = create_app(settings, embedded_worker=False, migrate_on_start=True)
        with TestClient(app) as client:
            token = _plant(settings, app, runs, teams, images)
            headers = {"Authorization": f"Bearer {token}"}

            def request() -> tuple[float, dict[str, object]]:
                started = time.perf_counter()
                response = client.get("/api/v1/admin/flags", headers=headers)
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, response.text
                return elapsed, response.json()

            cold, body = request()
            warm = statistics.median(request()[0] for _ in range(repeats))
            naive, expected = _naive(settings, app)
        ours = {
            frozenset(r["id"] for r in flag["runs"]): flag["evidence"]["spearman_rho"]
            for flag in body["flags"]  # type: ignore[attr-defined]
            if flag["kind"] == "correlated_predictions"
        }
        if ours.keys() != expected.keys() or any(abs(ours[k] - expected[k]) > 1e-6 for k in ours):
            raise SystemExit(f"flags differ from the naive computation: {ours} vs {expected}")
        return {
            "runs": runs, "teams": teams, "images": images, "flagged_pairs": len(ours),
            "ours_cold_s": round(cold, 3), "ours_warm_s": round(warm, 4), "naive_s": round(naive, 2),
            "speedup_cold": round(naive / cold, 1), "speedup_warm": round(naive / warm, 1),
            "load_average": [round(x, 1) for x in os.getloadavg()],
        }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--teams", type=int, default=25)
    parser.add_argument("--images", type=int, default=475)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for runs in args.runs:
        print(json.dumps(_one(runs, args.teams, args.images, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
