"""Server benchmarks (issue 4): upload throughput and memory, leaderboard throughput, queue latency.

1. upload: a valid 1 GiB ``docker save`` archive POSTed over loopback to ``csawm serve`` (a separate
   process); throughput = bytes / wall time of the request (streamed to disk + SHA-256 + inspection
   + queueing), and the server's RSS growth (peak during the upload minus before), sampled from
   /proc every 20 ms.
2. leaderboard: GET /api/v1/leaderboard with 1,000 approved rows (each with 2,000 bootstrap
   replicates) versus a bare FastAPI endpoint returning bytes of the same size, both in the same
   server process, measured alternately in the same run; figure = requests/s ratio.
3. latency: a trivial image submitted to ``csawm serve`` with the embedded worker and the real Docker
   runner: seconds from "queued" (created_at) to the preflight container start and to the hidden
   container start, minus the preflight wall time; "warm" with the image already in the engine
   (its archive is not loaded again), "cold" with the image removed first (``docker load`` of the
   137 MB archive is then part of the latency).

4. stop: SIGTERM to ``csawm serve`` while its embedded worker runs a model on the hidden images:
   seconds until the process exited (the run is handed back; issue 11).

Usage: .venv/bin/python benchmarks/bench_server.py [--upload-gib 1] [--rows 1000] [--latency-runs 5]
       [--stop-runs 3] [--only upload|leaderboard|latency|stop]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.accounts import service as accounts  # noqa: E402
from server.core import migrate  # noqa: E402
from server.core.db import Database  # noqa: E402
from server.core.settings import Settings  # noqa: E402
from server.models import ReviewState, RunStatus, Submission, Team  # noqa: E402

BOARD_PHASE = str(Settings.model_fields["phase"].default)

CSAWM = str(Path(sys.executable).with_name("csawm"))
CHUNK = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Server:
    """`csawm serve` (or a custom launcher) in a subprocess with its own data dir."""

    def __init__(self, root: Path, extra_env: dict[str, str], argv: list[str] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_url = f"sqlite:///{root / 'state' / 'csawm.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSAWM_")}
        env.update(
            {
                "CSAWM_DATA_DIR": str(root / "state"),
                "CSAWM_DATABASE_URL": self.db_url,
                "CSAWM_PORT": str(self.port),
                **extra_env,
            }
        )
        self.env = env
        db = Database.connect(self.db_url)
        migrate.upgrade(db.engine)
        db.dispose()
        self.log = (root / "server.log").open("w")
        self.proc = subprocess.Popen(
            argv or [CSAWM, "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"server did not start; see {self.log.name}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def team_token(db_url: str, team: str, **quota: int) -> str:
    db = Database.connect(db_url)
    try:
        with db.transaction() as session:
            accounts.create_team(session, team, actor="bench")
            if quota:
                accounts.set_quota(session, team, dict(quota), actor="bench")
            accounts.create_user(
                session, f"{team}@bench.org", role=accounts.Role.RESEARCHER, team_name=team, actor="bench"
            )
            _, token = accounts.issue_token(
                session, f"{team}@bench.org", expires_in=timedelta(days=1), actor="bench"
            )
        return token
    finally:
        db.dispose()


# -- 1. upload ---------------------------------------------------------------------------------------


def write_big_archive(path: Path, size: int) -> None:
    """A valid one-image archive whose single layer holds `size` bytes of random data."""
    layer_path = path.with_suffix(".layer")
    rng = np.random.default_rng(0)
    inner = tarfile.TarInfo("blob.bin")
    inner.size = size
    with layer_path.open("wb") as raw, tarfile.open(fileobj=raw, mode="w") as layer:

        def chunks() -> Iterator[bytes]:
            left = size
            while left:
                n = min(CHUNK * 16, left)
                yield rng.integers(0, 256, n, dtype=np.uint8).tobytes()
                left -= n

        reader = _IterReader(chunks())
        layer.addfile(inner, reader)
    digest = hashlib.sha256()
    with layer_path.open("rb") as fh:
        while block := fh.read(CHUNK * 8):
            digest.update(block)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"User": "1000", "Cmd": ["true"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + digest.hexdigest()]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": ["bench:big"], "Layers": ["l/layer.tar"]}]
    ).encode()
    with tarfile.open(path, "w") as tf:
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        tf.add(layer_path, arcname="l/layer.tar")
    layer_path.unlink()


class _IterReader(io.RawIOBase):
    def __init__(self, it: Iterator[bytes]) -> None:
        self._it, self._buf = it, b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


def bench_upload(root: Path, gib: float) -> dict[str, float]:
    size = int(gib * 1024**3)
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "big.tar"
    t0 = time.monotonic()
    write_big_archive(archive, size)
    print(
        f"  wrote {archive.stat().st_size / 1e9:.2f} GB archive in {time.monotonic() - t0:.1f} s",
        file=sys.stderr,
    )
    server = Server(root, {"CSAWM_MAX_UPLOAD_BYTES": str(4 * 1024**3), "CSAWM_EMBEDDED_WORKER": "false"})
    try:
        token = team_token(server.db_url, "upload", per_day=100, active=100)
        baseline = rss_bytes(server.proc.pid)
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], rss_bytes(server.proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        total = archive.stat().st_size

        def body() -> Iterator[bytes]:
            with archive.open("rb") as fh:
                while block := fh.read(CHUNK):
                    yield block

        start = time.monotonic()
        response = httpx.post(
            f"{server.url}/api/v1/submissions",
            params={"name": "big"},
            content=body(),
            headers={"Authorization": f"Bearer {token}", "Content-Length": str(total)},
            timeout=600,
        )
        elapsed = time.monotonic() - start
        done.set()
        sampler.join()
        if response.status_code != 201:
            raise RuntimeError(f"upload failed: {response.status_code} {response.text}")
        return {
            "bytes": total,
            "seconds": elapsed,
            "mb_per_s": total / elapsed / 1e6,
            "rss_before_mb": baseline / 2**20,
            "rss_growth_mb": (peak[0] - baseline) / 2**20,
        }
    finally:
        server.stop()
        archive.unlink(missing_ok=True)


# -- 2. leaderboard ----------------------------------------------------------------------------------

LAUNCHER = """
import sys
import uvicorn
from fastapi import Response
from server.app import create_app
from server.core.settings import load_settings

size = int(sys.argv[1])
app = create_app(load_settings(), embedded_worker=False)
payload = (b'{"rows":[' + b'0,' * ((size - 11) // 2))[: size - 2] + b']}'

@app.get("/bare")
def bare() -> Response:
    return Response(content=payload, media_type="application/json")

settings = load_settings()
uvicorn.run(app, host="127.0.0.1", port=settings.port, log_level="warning")
"""


def seed_leaderboard(db_url: str, rows: int, resamples: int = 2000) -> None:
    db = Database.connect(db_url)
    rng = np.random.default_rng(1)
    try:
        with db.transaction() as session:
            for i in range(rows):
                team = Team(name=f"team-{i:04d}")
                session.add(team)
                session.flush()
                tau = float(rng.uniform(0.3, 0.8))
                amae = float(rng.uniform(30, 60))
                report = {
                    "masking": {
                        "kendall_tau_b": {"value": tau, "ci95": [tau - 0.04, tau + 0.04]},
                        "amae": {"value": amae, "ci95": [amae - 3, amae + 3], "unit": "rank"},
                    },
                    "experts": {f"Expert_{k}": {"kendall_tau_b": 0.7, "amae": 40.0} for k in range(1, 6)},
                }
                reps = (tau + rng.normal(0, 0.02, resamples)).astype(np.float64)
                session.add(
                    Submission(
                        team_id=team.id,
                        name=f"model-{i}",
                        phase=BOARD_PHASE,  # the CSAWM_PHASE row: the board the server shows
                        image_digest=f"sha256:{i}",
                        status=RunStatus.SUCCEEDED,
                        metrics=report,
                        kendall_tau_b=tau,
                        amae=amae,
                        tau_replicates=reps.tobytes(),
                        review_state=ReviewState.APPROVED,
                    )
                )
    finally:
        db.dispose()


def bench_leaderboard(root: Path, rows: int, requests: int) -> dict[str, float]:
    state = root / "state"
    state.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{state / 'csawm.db'}"
    db = Database.connect(db_url)
    migrate.upgrade(db.engine)
    db.dispose()
    seed_leaderboard(db_url, rows)
    probe = Server(root / "probe", {"CSAWM_EMBEDDED_WORKER": "false", "CSAWM_DATABASE_URL": db_url})
    size = len(httpx.get(f"{probe.url}/api/v1/leaderboard", timeout=60).content)
    probe.stop()
    server = Server(
        root, {"CSAWM_EMBEDDED_WORKER": "false"}, argv=[sys.executable, "-c", LAUNCHER, str(size)]
    )
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            first = time.monotonic()
            lb = client.get("/api/v1/leaderboard")
            cold = time.monotonic() - first
            assert lb.status_code == 200 and len(lb.json()["rows"]) == rows + 5
            bare = client.get("/bare")
            assert abs(len(bare.content) - len(lb.content)) <= 2, (len(bare.content), len(lb.content))
            timings: dict[str, list[float]] = {"/api/v1/leaderboard": [], "/bare": []}
            for _ in range(5):  # alternate blocks so drifting machine load hits both alike
                for path in timings:
                    t0 = time.monotonic()
                    for _ in range(requests // 5):
                        client.get(path)
                    timings[path].append(time.monotonic() - t0)
        lb_rps = (requests // 5) * 5 / sum(timings["/api/v1/leaderboard"])
        bare_rps = (requests // 5) * 5 / sum(timings["/bare"])
        return {
            "rows": rows,
            "bytes": len(lb.content),
            "cold_build_s": cold,
            "leaderboard_rps": lb_rps,
            "bare_rps": bare_rps,
            "ratio": lb_rps / bare_rps,
        }
    finally:
        server.stop()


# -- 3. queued -> container started ------------------------------------------------------------------


def bench_latency(root: Path, runs: int, *, cold: bool) -> dict[str, float]:
    import docker

    sys.path.insert(0, str(REPO / "tests" / "server"))
    from srvtest import images  # the integration tests' tiny model image

    from server.benchmark.synth import generate

    client = docker.from_env()
    images.ensure_base(client)
    root.mkdir(parents=True, exist_ok=True)
    bench_dir = root / "benchmark"
    generate(bench_dir, seed=3, n_train=8, n_public=16, n_private=32, resolution=(64, 52), workers=1)
    server = Server(
        root,
        {
            "CSAWM_BENCHMARK_DIR": str(bench_dir),
            "CSAWM_MAX_UPLOAD_BYTES": str(1024**3),
            "CSAWM_BOOTSTRAP_RESAMPLES": "200",
        },
    )
    try:
        token = team_token(server.db_url, "latency", per_day=100, per_week=100, active=1)
        first, hidden, loads = [], [], []
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as http:
            for i in range(runs):
                # a distinct image (digest) per run: duplicates of one team are refused
                tag = images.build(client, "good", f"{'cold' if cold else 'warm'}{i}")
                archive = images.save(tag, root / "good.tar")
                if cold:  # as from a researcher's machine: the engine must load the archive
                    client.images.remove(tag, force=True)
                r = http.post("/api/v1/submissions", params={"name": f"lat{i}"}, content=archive.read_bytes())
                r.raise_for_status()
                sub_id = r.json()["id"]
                deadline = time.monotonic() + 300
                while True:
                    sub = http.get(f"/api/v1/submissions/{sub_id}").json()
                    if sub["status"] in ("succeeded", "failed", "cancelled"):
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError("run did not finish")
                    time.sleep(0.2)
                if sub["status"] != "succeeded":
                    raise RuntimeError(f"run failed: {sub['error_message']}")
                t = sub["timings"] or {}
                first.append(t["preflight_started_after_s"])
                loads.append(t.get("image_load_s", 0.0))
                hidden.append(t["hidden_started_after_s"] - t["preflight_s"])
        return {
            "runs": runs,
            "image_in_engine": not cold,
            "median_image_load_s": statistics.median(loads),
            "median_to_preflight_start_s": statistics.median(first),
            "median_to_hidden_start_minus_preflight_s": statistics.median(hidden),
            "max_to_hidden_start_minus_preflight_s": max(hidden),
        }
    finally:
        server.stop()
        images.remove_all(client)


# -- 4. graceful stop ----------------------------------------------------------------------------------


def bench_stop(root: Path, runs: int) -> dict[str, float]:
    """SIGTERM to `csawm serve` (embedded worker) while a model runs on the hidden images: seconds to
    process exit; the run must then be back in the queue (handed back, resume at the hidden run)."""
    import docker

    sys.path.insert(0, str(REPO / "tests" / "server"))
    from srvtest import images

    from server.benchmark.synth import generate

    client = docker.from_env()
    images.ensure_base(client)
    bench_dir = root / "benchmark"
    generate(bench_dir, seed=3, n_train=8, n_public=16, n_private=32, resolution=(64, 52), workers=1)
    tag = images.build(client, "slow", "300")
    archive = images.save(tag, root / "slow.tar")
    took = []
    try:
        for i in range(runs):
            server = Server(
                root / f"run{i}",
                {"CSAWM_BENCHMARK_DIR": str(bench_dir), "CSAWM_MAX_UPLOAD_BYTES": str(1024**3)},
            )
            token = team_token(server.db_url, f"stop{i}", per_day=10, per_week=10, active=1)
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120
            ) as http:
                r = http.post(
                    "/api/v1/submissions", params={"name": f"stop{i}"}, content=archive.read_bytes()
                )
                r.raise_for_status()
                sub_id = r.json()["id"]
            deadline = time.monotonic() + 120
            while not any(
                c.status == "running" and f"-{sub_id}-hidden-" in c.name
                for c in client.containers.list(filters={"label": "csawm.run_id"})
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the hidden container did not start")
                time.sleep(0.1)
            sent = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(60)
            took.append(time.monotonic() - sent)
            server.log.close()
            db = Database.connect(server.db_url)
            with db.transaction(write=False) as session:
                sub = session.get(Submission, sub_id)
                assert sub is not None
                if (sub.status, sub.resume_status) != (RunStatus.QUEUED, "running"):
                    raise RuntimeError(f"run not handed back: {sub.status} {sub.resume_status}")
            db.dispose()
    finally:
        images.remove_all(client)
    return {
        "runs": runs,
        "median_sigterm_to_exit_s": statistics.median(took),
        "max_sigterm_to_exit_s": max(took),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upload-gib", type=float, default=1.0)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--stop-runs", type=int, default=3)
    parser.add_argument("--only", choices=["upload", "leaderboard", "latency", "stop"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["upload", "leaderboard", "latency"])
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="csawm-bench-") as tmp:
        root = Path(tmp)
        if "upload" in only:
            results["upload"] = bench_upload(root / "upload", args.upload_gib)
            print("upload", json.dumps(results["upload"]), flush=True)
        if "leaderboard" in only:
            results["leaderboard"] = bench_leaderboard(root / "leaderboard", args.rows, args.requests)
            print("leaderboard", json.dumps(results["leaderboard"]), flush=True)
        if "latency" in only:
            for cold in (False, True):
                key = "latency_cold" if cold else "latency_warm"
                results[key] = bench_latency(root / key, args.latency_runs, cold=cold)
                print(key, json.dumps(results[key]), flush=True)
        if "stop" in only:
            results["stop"] = bench_stop(root / "stop", args.stop_runs)
            print("stop", json.dumps(results["stop"]), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
