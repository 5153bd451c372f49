"""Time `make demo` up to "server listening" (issue 6, Measure).

    .venv/bin/python benchmarks/bench_demo.py [--data-dir DIR] [--keep]

Runs ``make demo`` with ``CSAWM_DATA_DIR`` pointing at a fresh folder (default: a new temp dir, so
the benchmark, database, training and archives are all done from scratch; the Docker base images
and any reference image with the same build key are reused, as on a re-run) and ``CSAWM_PORT`` at a
free loopback port, polls ``/healthz`` and prints the seconds from start until it answers, with the
load average before and after. Then stops the demo (SIGINT to the process group it started) and, for
a temp dir, removes it. Pass ``--rebuild-references`` to remove the demo's reference images first
(a fresh machine trains them). ``DEMO_STEPS`` and the other variables of ``scripts/demo`` pass through;
``--data-dir`` of an earlier run times a re-run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 3600


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _remove_reference_images() -> None:
    listing = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "csawm-reference/*"],
        capture_output=True,
        text=True,
        check=True,
    )
    for tag in listing.stdout.split():
        subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="CSAWM_DATA_DIR (default: a new temp dir)"
    )
    parser.add_argument("--rebuild-references", action="store_true", help="remove csawm-reference/* first")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="csawm-demo-bench-"))
    if args.rebuild_references:
        _remove_reference_images()
    port = _free_port()
    env = {**os.environ, "CSAWM_DATA_DIR": str(data_dir), "CSAWM_PORT": str(port)}
    log_path = data_dir.parent / f"{data_dir.name}-demo.log"
    load_before = os.getloadavg()
    started = time.monotonic()
    with log_path.open("w") as log, httpx.Client(timeout=1) as client:
        process = subprocess.Popen(
            ["make", "demo"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while True:
                if process.poll() is not None:
                    print(f"make demo exited with {process.returncode}; log: {log_path}", file=sys.stderr)
                    return 1
                try:
                    if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - started > DEADLINE_S:
                    print(f"not listening after {DEADLINE_S} s; log: {log_path}", file=sys.stderr)
                    return 1
                time.sleep(1)
            elapsed = time.monotonic() - started
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
    load_after = os.getloadavg()
    print(f"make demo -> server listening: {elapsed:.0f} s (data dir {data_dir}, log {log_path})")
    before, after = (f"{load[0]:.2f} {load[1]:.2f}" for load in (load_before, load_after))
    print(f"load average (1 min, 5 min) before {before}, after {after}")
    if args.data_dir is None and not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
