"""Benchmark: the ranking statistics of issue 21 on large boards, and ``csawm rank`` on 50 files.

Part 1 (``server/scoring/ranking.py``): boards of K = 200 and 1,000 rows x R = 2,000 resamples.
Time and peak memory (``tracemalloc``, which numpy reports its buffers to) of

* the rank summary (rank intervals, median ranks, ``p_first``) of every row,
* the tiers of every row (the full K x K significance map, Holm per column, the tier count),
* the significance map of the top 20 rows (what the board shows as a heatmap).

The replicates are synthetic but shaped like a board's: row k's true tau-b spread over [0.3, 0.8],
plus one shared per-resample shift (the paired part: every row sees the same resample) and a row's
own noise of the size a 475-row tau-b has (sd 0.02), rounded to 4 decimals so that ties occur. The
statistics' cost depends on K and R only, not on the values.

Part 2: ``csawm rank`` as a subprocess on 50 prediction files of 475 rows (the synthetic private set
``csawm synth`` writes, predictions = its latent masking + noise of growing size), with the default
2,000 resamples: wall time and the child's peak RSS.

Usage::

    .venv/bin/python benchmarks/bench_ranking.py [--rows 200 1000] [--resamples 2000] [--files 50]
        [--skip-cli]

Prints a table and one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.scoring import ranking

TOP = 20


def board_replicates(k: int, resamples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = np.sort(rng.uniform(0.3, 0.8, size=k))[::-1]
    shared = rng.normal(0, 0.02, size=resamples)
    return np.round(truth[:, None] + shared[None, :] + rng.normal(0, 0.02, size=(k, resamples)), 4)


def measure(step: Callable[[], object]) -> tuple[float, float]:
    """(seconds, peak MiB allocated during the call)."""
    tracemalloc.start()
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20


def tiers_of(reps: np.ndarray) -> np.ndarray:
    return ranking.tiers(ranking.holm_by_column(ranking.significance(reps)))


def statistics(rows: list[int], resamples: int) -> list[dict[str, float | int | str]]:
    results: list[dict[str, float | int | str]] = []
    for k in rows:
        reps = board_replicates(k, resamples)
        top = reps[np.argsort(-reps.mean(axis=1))[:TOP]]
        for name, step in (
            ("rank summary", lambda r=reps: ranking.rank_summary(r)),
            ("tiers (full map + Holm)", lambda r=reps: tiers_of(r)),
            (f"map of top {TOP}", lambda t=top: ranking.holm_by_column(ranking.significance(t))),
        ):
            seconds, peak = measure(step)
            results.append(
                {"rows": k, "resamples": resamples, "step": name, "seconds": seconds, "peak_mib": peak}
            )
    return results


def rank_cli(files: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        csawm = [sys.executable, "-m", "server.cli.main"]
        subprocess.run(
            [*csawm, "synth", str(root), "--n-train", "8", "--n-public", "8", "--n-private", "475",
             "--resolution", "16x16", "--workers", "1"],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
        lines = (root / "synthetic" / "latent.csv").read_text().splitlines()[1:]
        latent = dict(line.split(";") for line in lines)
        names = [
            line.split(";")[0]
            for line in (root / "labels" / "CSAW-M_test_private.csv").read_text().splitlines()[1:]
        ]
        values = np.array([float(latent[n]) for n in names])
        rng = np.random.default_rng(0)
        paths = []
        for i in range(files):
            score = values + rng.normal(scale=0.2 + 0.05 * i, size=values.size)
            path = Path(tmp) / f"model_{i:02d}.csv"
            body = "".join(f"{n};{float(s)!r}\n" for n, s in zip(names, score, strict=True))
            path.write_text("Filename;Final_score\n" + body)
            paths.append(str(path))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        done = subprocess.run(
            [*csawm, "rank", *paths, "--labels", str(root / "labels" / "CSAW-M_test_private.csv"), "--json"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"csawm rank failed: {done.stderr}")
        assert len(json.loads(done.stdout)["rows"]) == files
        peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        return {
            "files": files,
            "rows": 475,
            "resamples": 2000,
            "seconds": seconds,
            "peak_rss_mib": peak / 1024,
        }


def board_build(rows: int, resamples: int, requests: int = 200) -> dict[str, float | int]:
    """The board of `rows` approved runs (`bench_server.seed_leaderboard`, each with a
    reproducibility record so all pair) built with and without the rank figures in the same run,
    and the cached API's latency afterwards (median of `requests` GETs, in-process TestClient)."""
    import statistics as stats
    from unittest import mock

    import bench_server
    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from server.app import create_app
    from server.core import migrate
    from server.core.db import Database
    from server.core.settings import Settings
    from server.leaderboard import service, standing
    from server.models import Submission
    from server.phases.service import board_phase

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/csawm.db"
        db = Database.connect(url)
        migrate.upgrade(db.engine)
        bench_server.seed_leaderboard(url, rows, resamples)
        record = {"scorer_version": "2", "test_set_manifest_sha256": "a" * 64,
                  "bootstrap": {"resamples": resamples, "seed": 0}}  # fmt: skip
        with db.transaction() as session:
            session.execute(update(Submission).values(reproducibility=record))
        settings = Settings(data_dir=Path(tmp), database_url=url, bootstrap_resamples=resamples)

        def build() -> object:
            with db.session() as session:
                return service.build_board(session, phase=board_phase(session, settings, None))

        def bare(models: list[standing.Model], bands: object, alpha: float) -> tuple[list[object], None]:
            return [standing.Standing() for _ in models], None

        build()  # warm the imports and the connection
        timings: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
        for _ in range(3):  # alternated, so both variants see the same load of a shared machine
            timings["with"].append(measure(build))
            with mock.patch.object(service, "standings", bare):
                timings["without"].append(measure(build))
        db.dispose()
        apps = {"with": create_app(settings, embedded_worker=False, migrate_on_start=False),
                "without": create_app(settings, embedded_worker=False, migrate_on_start=False)}  # fmt: skip
        latency: dict[str, list[float]] = {"with": [], "without": []}
        with TestClient(apps["with"]) as with_client, TestClient(apps["without"]) as without_client:
            clients = {"with": with_client, "without": without_client}
            assert with_client.get("/api/v1/leaderboard").status_code == 200  # built with the figures
            with mock.patch.object(service, "standings", bare):
                assert without_client.get("/api/v1/leaderboard").status_code == 200  # built without
            for _ in range(requests):
                for label, client in clients.items():
                    start = time.perf_counter()
                    client.get("/api/v1/leaderboard")
                    latency[label].append(time.perf_counter() - start)
        build_s = {label: stats.median(t for t, _ in runs) for label, runs in timings.items()}
        peak = {label: max(m for _, m in runs) for label, runs in timings.items()}
    return {
        "rows": rows,
        "resamples": resamples,
        "build_with_s": build_s["with"],
        "build_without_s": build_s["without"],
        "peak_with_mib": peak["with"],
        "peak_without_mib": peak["without"],
        "cached_get_with_ms": stats.median(latency["with"]) * 1000,
        "cached_get_without_ms": stats.median(latency["without"]) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--board", action="store_true", help="only the board build with/without figures")
    args = parser.parse_args()
    if args.board:
        for rows in args.rows:
            print(json.dumps(board_build(rows, args.resamples)), flush=True)
        return
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    stats = statistics(args.rows, args.resamples)
    print(f"{'rows':>6} {'resamples':>9}  {'step':<26} {'seconds':>8} {'peak MiB':>9}")
    for row in stats:
        cells = f"{row['rows']:>6} {row['resamples']:>9}  {row['step']:<26}"
        print(f"{cells} {row['seconds']:>8.3f} {row['peak_mib']:>9.1f}")
    cli = None if args.skip_cli else rank_cli(args.files)
    if cli is not None:
        print(f"csawm rank: {cli['files']} files x {cli['rows']} rows, {cli['resamples']} resamples: "
              f"{cli['seconds']:.1f} s, peak RSS {cli['peak_rss_mib']:.0f} MiB")  # fmt: skip
    print(json.dumps({"statistics": stats, "csawm_rank": cli}))


if __name__ == "__main__":
    main()
