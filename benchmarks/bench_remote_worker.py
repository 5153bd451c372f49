"""Remote workers (issue 25): what the worker API's HTTP path costs, against ``csawm serve`` in its
own process on loopback (tests/server/srvtest/served.py).

1. ``lease``: a worker long-polls ``POST /api/v1/worker/lease`` while a run is submitted; the
   figure is the run's ``started_at - created_at`` (queued → leased, both stamped by the server;
   median of --rounds). The long poll looks at the queue every 0.2 s, so it adds at most that.
2. ``download``: the run's stored archive of about --mib MiB through ``GET .../archive`` with
   httpx, against ``curl`` of the same URL (the server hashes the file before it streams it).
3. ``upload``: --upload-mib MiB of hidden predictions through ``PUT .../predictions`` with httpx
   (as `server.remote_worker.client` sends them), against ``curl -T`` of the same bytes.
4. ``--containers`` (needs the Docker engine and ``csawm-base/python:bookworm``): queued → model
   container started (the run's ``preflight_started_after_s``, stamped by the worker against the
   server's ``created_at``), ``csawm worker --server`` against a database ``csawm worker``, same
   machine, same model archive, --rounds runs each (median; the image is loaded once per worker).

Usage: PYTHONPATH=. .venv/bin/python benchmarks/bench_remote_worker.py [--rounds 5] [--mib 128]
       [--upload-mib 32] [--containers]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
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


def _started_after(db_url: str, sub_ids: list[int]) -> list[float]:
    from server.models import Submission

    db = Database.connect(db_url)
    try:
        with db.transaction(write=False) as session:
            subs = [session.get(Submission, i) for i in sub_ids]
            return [float((s.timings or {})["preflight_started_after_s"]) for s in subs if s is not None]
    finally:
        db.dispose()


def _run_through(db_url: str, url: str, archive: Path, rounds: int, tag: str) -> list[int]:
    """Submit `archive` `rounds` times (by as many teams: a team submits an image once), one after
    the other, each waited for until it ends."""
    from server.models import Submission

    ids = []
    for i in range(rounds):
        db = Database.connect(db_url)
        token = f.member_token(db, f"team-{tag}{i}", f"{tag}{i}@x.org")
        db.dispose()
        r = httpx.post(
            f"{url}/api/v1/submissions", params={"name": f"{tag}{i}"}, content=archive.read_bytes(),
            headers=f.auth(token), timeout=120,
        )  # fmt: skip
        assert r.status_code == 201, r.text
        ids.append(int(r.json()["id"]))
        deadline = time.monotonic() + 120
        while True:
            db = Database.connect(db_url)
            with db.transaction(write=False) as session:
                sub = session.get(Submission, ids[-1])
                status = sub.status.value if sub is not None else "?"
            db.dispose()
            if status in ("succeeded", "failed", "cancelled"):
                assert status == "succeeded", f"run {ids[-1]} {status}"
                break
            assert time.monotonic() < deadline, f"run {ids[-1]} still {status}"
            time.sleep(0.2)
    return ids


def containers(rounds: int) -> None:
    """Queued → model container started: a remote worker against a database worker (section 4)."""
    import docker
    from srvtest import images
    from srvtest.remote import cli_env, create_worker, start_worker

    client = docker.from_env()
    images.ensure_base(client)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench = root / "bench"
        generate(bench, seed=7, n_train=8, n_public=16, n_private=16, resolution=(64, 52), workers=1)
        archive = images.save(images.build(client, "good"), root / "good.tar")
        env = {"CSAWM_BENCHMARK_DIR": str(bench), "CSAWM_BOOTSTRAP_RESAMPLES": "200"}
        try:
            with served(root / "srv", env) as srv:
                token = create_worker(srv.db_url, root / "srv", "bench")
                remote = start_worker(srv.url, token, bench, root, "remote")
                remote_ids = _run_through(srv.db_url, srv.url, archive, rounds, "r")
                remote.send_signal(signal.SIGTERM)
                remote.wait(60)
                local_env = cli_env(
                    CSAWM_DATABASE_URL=srv.db_url, CSAWM_DATA_DIR=str(root / "srv" / "state"),
                    CSAWM_BENCHMARK_DIR=str(bench), CSAWM_HIDDEN_END_GRID="0", CSAWM_POLL_INTERVAL="0.2",
                    CSAWM_BOOTSTRAP_RESAMPLES="200", CSAWM_EMBEDDED_DISPATCHER="false",
                )  # fmt: skip
                with (root / "db.log").open("w") as out:
                    local = subprocess.Popen(
                        [sys.executable, "-m", "server.cli.main", "worker", "--name", "db"],
                        env=local_env, stdout=out, stderr=subprocess.STDOUT,
                    )  # fmt: skip
                local_ids = _run_through(srv.db_url, srv.url, archive, rounds, "d")
                local.send_signal(signal.SIGTERM)
                local.wait(60)
                for name, ids in (("remote worker (HTTP)", remote_ids), ("database worker", local_ids)):
                    values = _started_after(srv.db_url, ids)
                    print(
                        f"queued -> model container started, {name}: "
                        f"median {statistics.median(values):.3f} s, "
                        f"min {min(values):.3f} s, max {max(values):.3f} s over {len(values)} runs"
                    )
        finally:
            images.remove_all(client)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mib", type=int, default=128)
    parser.add_argument("--upload-mib", type=int, default=32)
    parser.add_argument("--containers", action="store_true")
    args = parser.parse_args()
    if args.containers:
        containers(args.rounds)
        return
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
            # predictions upload vs curl: the run is moved to running (its preflight passed)
            at = {"owner": lease["owner"], "attempt": lease["attempt"]}
            sub_url = f"/runs/{lease['submission_id']}"
            assert worker.post(f"{sub_url}/preflight", json=at).status_code == 200
            data = os.urandom(args.upload_mib << 20)
            sha = hashlib.sha256(data).hexdigest()
            headers = {"X-Predictions-SHA256": sha}
            body = root / "predictions.bin"
            body.write_bytes(data)
            target = f"{url.removesuffix('/archive')}/predictions{query}"
            curl = ["curl", "-sf", "-o", "/dev/null", "-T", str(body)]
            curl += ["-H", f"Authorization: Bearer {wtoken}", "-H", f"X-Predictions-SHA256: {sha}", target]
            http_s = curl_s = float("inf")
            for _ in range(3):  # alternated, best of three each: the same server work for both
                started = time.perf_counter()
                r = worker.put(f"{sub_url}/predictions", params=at, content=data, headers=headers)
                http_s = min(http_s, time.perf_counter() - started)
                assert r.status_code == 200, r.text
                started = time.perf_counter()
                subprocess.run(curl, check=True)
                curl_s = min(curl_s, time.perf_counter() - started)
            size = len(data)
            print(
                f"predictions upload ({size} bytes): httpx {size / http_s / 2**20:.0f} MiB/s, "
                f"curl {size / curl_s / 2**20:.0f} MiB/s"
            )


if __name__ == "__main__":
    main()
