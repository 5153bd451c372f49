"""Remote workers (issue 25): what the worker API's HTTP path costs, against ``csawm serve`` in its
own process on loopback (tests/server/srvtest/served.py).

1. ``lease``: a worker long-polls ``POST /api/v1/worker/lease`` while a run is submitted; the
   figure is the run's ``started_at - created_at`` (queued → leased, both stamped by the server;
   median of --rounds). The long poll looks at the queue every 0.2 s, so it adds at most that.
2. ``download``: the run's stored archive of about --mib MiB through ``GET .../archive`` with
   httpx, against ``curl`` of the same URL (the server hashes the file before it streams it).

Usage: PYTHONPATH=. .venv/bin/python benchmarks/bench_remote_worker.py [--rounds 5] [--mib 128]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "server"))

from srvtest import factories as f
from srvtest.archives import write_archive
from srvtest.served import served

from server.benchmark.synth import generate
from server.core.db import Database
from server.worker.images_digest import images_digest
from server.worker_api import accounts


def _queued_to_leased(db_url: str, sub_id: int) -> float:
    from server.models import Submission

    db = Database.connect(db_url)
    try:
        with db.transaction(write=False) as session:
            sub = session.get(Submission, sub_id)
            assert sub is not None and sub.started_at is not None
            return (sub.started_at - sub.created_at).total_seconds()
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mib", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench = root / "bench"
        generate(bench, seed=7, n_train=8, n_public=16, n_private=16, resolution=(64, 52), workers=1)
        digest = images_digest(bench)
        with served(root / "srv", {"CSAWM_BENCHMARK_DIR": str(bench)}) as srv:
            db = Database.connect(srv.db_url)
            researcher = f.member_token(db, runs=1000)
            with db.transaction() as session:
                wtoken = accounts.create_worker(session, "bench", actor="bench")[1]
            db.dispose()
            body = {"instance": "b:1:x", "version": "bench", "images_digest": digest.images}
            body |= {"public_digest": digest.public, "wait_s": 30}
            worker = httpx.Client(base_url=srv.url + "/api/v1/worker", headers=f.auth(wtoken), timeout=60)
            submitter = httpx.Client(base_url=srv.url, headers=f.auth(researcher), timeout=60)
            latencies: list[float] = []
            lease: dict = {}
            for i in range(args.rounds):
                archive = root / f"a{i}.tar"
                write_archive(archive, seed=f"s{i}", weights=(args.mib << 20) if i == args.rounds - 1 else 0)
                answer: dict[str, object] = {}
                done = threading.Event()

                def poll(answer: dict[str, object] = answer, done: threading.Event = done) -> None:
                    answer.update(worker.post("/lease", json=body).json())
                    done.set()

                thread = threading.Thread(target=poll)
                thread.start()
                time.sleep(0.5)  # the poll is waiting
                r = submitter.post(
                    "/api/v1/submissions", params={"name": f"s{i}"}, content=archive.read_bytes()
                )
                assert r.status_code == 201, r.text
                done.wait(30)
                lease = answer["lease"]  # type: ignore[assignment]
                latencies.append(_queued_to_leased(srv.db_url, int(lease["submission_id"])))
            print(
                f"queued -> leased (remote long poll): median {statistics.median(latencies) * 1000:.0f} ms, "
                f"max {max(latencies) * 1000:.0f} ms over {args.rounds} rounds"
            )
            # archive download vs curl: the last round's run (each round leased the new run)
            params = {"owner": lease["owner"], "attempt": lease["attempt"]}
            url = f"{srv.url}/api/v1/worker/runs/{lease['submission_id']}/archive"
            started = time.perf_counter()
            size = 0
            with worker.stream("GET", url, params=params) as stream:
                for chunk in stream.iter_bytes(1 << 20):
                    size += len(chunk)
            http_s = time.perf_counter() - started
            query = f"?owner={lease['owner']}&attempt={lease['attempt']}"
            started = time.perf_counter()
            subprocess.run(
                ["curl", "-sf", "-o", "/dev/null", "-H", f"Authorization: Bearer {wtoken}", url + query],
                check=True,
            )
            curl_s = time.perf_counter() - started
            print(
                f"archive download ({size} bytes): httpx {size / http_s / 2**20:.0f} MiB/s, "
                f"curl {size / curl_s / 2**20:.0f} MiB/s"
            )


if __name__ == "__main__":
    main()
