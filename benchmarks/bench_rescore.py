"""`csawm admin rescore --all` over many stored runs (issue 14): wall time and peak memory.

A synthetic benchmark of the real test-set size (475 private + 497 public images, small pixels: the
scorer never reads them), one real scored run whose stored hidden predictions are shared by `--runs`
cloned succeeded runs (each re-scored independently, with the default 2,000 bootstrap resamples),
then `csawm admin rescore --all` in a subprocess: wall time, runs per second, and the subprocess's
peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``).

Usage: .venv/bin/python benchmarks/bench_rescore.py [--runs 1000] [--resamples 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import inspect  # noqa: E402

from server.benchmark.synth import generate  # noqa: E402
from server.core import migrate  # noqa: E402
from server.core.db import Database  # noqa: E402
from server.models import ReviewState, RunStatus, Submission, Team  # noqa: E402
from server.runs import reports, store  # noqa: E402
from server.worker.evaluation import EvaluationSet  # noqa: E402
from server.worker.stages import score_report  # noqa: E402

CSAWM = str(Path(sys.executable).with_name("csawm"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="csawm-bench-rescore-") as tmp:
        root = Path(tmp)
        bench = root / "benchmark"
        generate(bench, seed=5, n_train=8, n_public=497, n_private=475, resolution=(32, 26), workers=1)
        data = root / "state"
        url = f"sqlite:///{data / 'csawm.db'}"
        data.mkdir()
        db = Database.connect(url)
        migrate.upgrade(db.engine)
        evaluation = EvaluationSet.prepare(bench, data, 4)
        rows = ["Filename;Final_score"] + [
            f"{name};{int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**32:.6f}"
            for name in evaluation.hidden_filenames
        ]
        sha = store.save(data, ("\n".join(rows) + "\n").encode())
        from server.scoring.predictions import read_predictions

        report = score_report(read_predictions(store.load(data, sha)), evaluation, args.resamples, 0)
        with db.transaction() as session:
            team = Team(name="bench")
            session.add(team)
            session.flush()
            columns = [c.key for c in inspect(Submission).mapper.column_attrs if c.key != "id"]
            template = Submission(
                team_id=team.id, name="r", phase="p", image_digest="", status=RunStatus.SUCCEEDED,
                review_state=ReviewState.APPROVED, predictions_sha256=sha,
            )  # fmt: skip
            for i in range(args.runs):
                sub = Submission(**{c: getattr(template, c) for c in columns})
                sub.image_digest = f"sha256:{i:064x}"
                session.add(sub)
                session.flush()
                reports.record(
                    session, sub, report, reason="scored", test_set_sha256=evaluation.manifest_digest,
                    seed=0, resamples=args.resamples, predictions_sha256=sha,
                )  # fmt: skip
        db.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSAWM_")}
        env.update(
            {
                "CSAWM_DATA_DIR": str(data),
                "CSAWM_DATABASE_URL": url,
                "CSAWM_BENCHMARK_DIR": str(bench),
                "CSAWM_BOOTSTRAP_RESAMPLES": str(args.resamples),
            }
        )
        started = time.monotonic()
        done = subprocess.run([CSAWM, "admin", "rescore", "--all"], env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps({
            "runs": args.runs, "resamples": args.resamples, "wall_s": round(wall, 1),
            "runs_per_s": round(args.runs / wall, 2), "peak_rss_mib": round(peak_kib / 1024, 1),
            "cli": done.stderr.strip().splitlines()[-1], "load_average": os.getloadavg(),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
