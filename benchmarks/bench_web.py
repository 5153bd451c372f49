"""Web page latency: the leaderboard and a report page, with and without the plot cache.

Builds an app on a temp SQLite database with ``--teams`` approved submissions (one scored report
on the synthetic benchmark, copied with shifted tau-b so the board has distinct rows), then times
requests in process (Starlette TestClient, no network):

* baseline: ``GET /api/v1/leaderboard`` (the API's cached JSON), in the same run;
* ``GET /`` with the tau-b plot already cached (warm) and after clearing the cache (cold: the page
  renders the SVG);
* ``GET /submissions/{id}`` warm and cold (three SVGs rendered on a cold view).

Prints medians over ``--repeats`` and each page's ratio to the baseline.

    .venv/bin/python benchmarks/bench_web.py --teams 100 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from server.accounts import service as accounts
from server.app import create_app
from server.benchmark.dataset import Benchmark
from server.benchmark.synth import generate
from server.core.settings import load_settings
from server.models import ReviewState, Role, RunStatus, Submission
from server.scoring.predictions import Predictions
from server.scoring.report import score_report
from server.web.cache import PlotCache


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(
            root / "bench", seed=3, n_train=8, n_public=64, n_private=120, resolution=(64, 52), workers=1
        )
        bench = Benchmark.open(root / "bench")
        private, public = bench.read_private(), bench.read_public()
        assert private.experts is not None and public is not None and public.label is not None
        rng = np.random.default_rng(0)
        score = np.concatenate(
            [np.nanmean(private.experts, axis=1) + rng.normal(0, 10, len(private)), public.label + 0.0]
        )
        predictions = Predictions((*private.filenames, *public.filenames), score, None, None)
        report = score_report(predictions, private, public_labels=public, resamples=2000, seed=0)

        settings = load_settings(data_dir=root / "state", embedded_worker=False)
        app = create_app(settings, embedded_worker=False, migrate_on_start=True)
        with TestClient(app) as client:
            db = app.state.csawm.db
            with db.transaction() as session:
                accounts.create_user(session, "m@x.org", role=Role.MAINTAINER, team_name=None, actor="bench")
                _, token = accounts.issue_token(session, "m@x.org", expires_in=None, actor="bench")
                for k in range(args.teams):
                    team = accounts.create_team(session, f"team-{k:03d}", actor="bench")
                    data = copy.deepcopy(report.data)
                    shift = -0.002 * k
                    data["masking"]["kendall_tau_b"]["value"] += shift
                    session.add(
                        Submission(
                            team_id=team.id, name=f"model-{k}", phase=settings.phase,
                            image_digest="sha256:" + f"{k:064x}", status=RunStatus.SUCCEEDED,
                            review_state=ReviewState.APPROVED, metrics=data,
                            kendall_tau_b=data["masking"]["kendall_tau_b"]["value"],
                            amae=data["masking"]["amae"]["value"],
                            tau_replicates=(report.replicates["kendall_tau_b"] + shift).tobytes(),
                        )
                    )  # fmt: skip
                session.flush()
                report_id = session.query(Submission.id).order_by(Submission.id).first()[0]  # type: ignore[index]
            form = client.get("/login").text
            csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            client.post("/login", data={"token": token, "csrf_token": csrf}, follow_redirects=False)

            def get(path: str) -> Callable[[], object]:
                def call() -> object:
                    response = client.get(path)
                    assert response.status_code == 200, (path, response.status_code)
                    return response

                return call

            def cold(path: str) -> Callable[[], object]:
                def call() -> object:
                    app.state.csawm.parts.get(PlotCache).items.clear()
                    return get(path)()

                return call

            get("/")()  # warm everything once
            get(f"/submissions/{report_id}")()
            results = {
                "API GET /api/v1/leaderboard (baseline)": _median_s(get("/api/v1/leaderboard"), args.repeats),
                "GET / (plot cached)": _median_s(get("/"), args.repeats),
                "GET / (plot rendered)": _median_s(cold("/"), args.repeats),
                "GET /submissions/ID (plots cached)": _median_s(
                    get(f"/submissions/{report_id}"), args.repeats
                ),
                "GET /submissions/ID (3 plots rendered)": _median_s(
                    cold(f"/submissions/{report_id}"), args.repeats
                ),
            }
    base = next(iter(results.values()))
    print(f"{args.teams} approved submissions + 5 expert rows; median of {args.repeats}")
    print("| request | median | ratio to API |")
    print("| --- | --- | --- |")
    for name, seconds in results.items():
        print(f"| {name} | {seconds * 1000:.1f} ms | {seconds / base:.1f}x |")


if __name__ == "__main__":
    main()
