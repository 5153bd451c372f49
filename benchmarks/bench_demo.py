"""Time ``make demo``: to "server listening" and to both baselines scored (issues 6, 10 and 24).

    .venv/bin/python benchmarks/bench_demo.py [--data-dir DIR] [--keep] [--rebuild-references]
        [--command "make demo"] [--listen-only] [--checkout DIR [--from-nothing]]

``--from-nothing`` (issue 24 item 3) times a first ``make demo`` as on a bare machine: it needs
``--checkout``, a fresh clone of the repository (so the virtualenv this script runs in stays), and
removes every ``csawm-base/*`` and ``csawm-reference/*`` image first; pip and debootstrap get
empty caches (``PIP_CACHE_DIR``, ``CSAWM_DEBOOTSTRAP_CACHE`` in a temp dir), so every package is
downloaded again. It does not remove the Debian packages (the Docker engine): time those with
``apt-get`` separately. The clone's ``.venv`` must not exist.

Runs ``make demo`` (or ``--command``, e.g. ``scripts/demo`` from a worktree with ``CSAWM_BIN``
set) with ``CSAWM_DATA_DIR`` pointing at a fresh folder (default: a new temp dir, so the benchmark,
database, training and archives are all done from scratch; the Docker base images are reused, and
so is any reference image with the same build key unless ``--rebuild-references`` removes the
``csawm-reference/*`` images first, as on a fresh machine) and ``CSAWM_PORT`` at a free loopback
port. It polls ``/healthz`` and then the public leaderboard, and prints

* seconds from the start until the server answers, and until its board lists both baselines as on
  their way (``pending``: training with a step, building, queued or running),
* seconds until the first baseline row is scored,
* seconds until both baseline rows are on the board (scored), their tau-b, and the private-set
  tau-b of the breast-brightness rule on the same benchmark (`server.benchmark.trivial`),
* the load average before and after and the highest 1-min load seen while it ran (the machine may
  be shared: say so next to the figures).

Then it stops the demo (SIGTERM to the process group it started; SIGINT, as Ctrl-C, is ignored by
a background job) and, for a temp dir, removes it. ``--data-dir`` of an earlier run times a re-run.
``DEMO_STEPS`` and the other variables of ``scripts/demo`` pass through.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from server.benchmark.dataset import Benchmark
from server.benchmark.trivial import trivial_scores

REPO_ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 3600
N_BASELINES = 2


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


def _remove_base_images() -> None:
    for name in ("python", "numpy", "torch"):
        subprocess.run(["docker", "rmi", f"csawm-base/{name}:bookworm"], capture_output=True, check=False)


def _board(client: httpx.Client, url: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(baseline rows, pending entries) of the public board; empty while it does not answer."""
    try:
        response = client.get(f"{url}/api/v1/leaderboard")
    except httpx.TransportError:
        return [], []
    if response.status_code != 200:
        return [], []
    body = response.json()
    return [row for row in body["rows"] if row["kind"] == "baseline"], list(body.get("pending", []))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="CSAWM_DATA_DIR (default: a new temp dir)"
    )
    parser.add_argument("--rebuild-references", action="store_true", help="remove csawm-reference/* first")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir")
    parser.add_argument("--command", default="make demo", help="what to run (default: make demo)")
    parser.add_argument("--listen-only", action="store_true", help="stop once the server answers")
    parser.add_argument("--checkout", type=Path, default=REPO_ROOT, help="where to run it (a clone)")
    parser.add_argument("--from-nothing", action="store_true", help="no venv, base images or caches")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    data_dir = (args.data_dir or Path(tempfile.mkdtemp(prefix="csawm-demo-bench-"))).resolve()
    env = {**os.environ, "CSAWM_DATA_DIR": str(data_dir)}
    for name in [k for k in env if k.startswith("VIRTUAL_ENV") or k == "PYTHONPATH"]:
        del env[name]
    if args.from_nothing:
        if checkout == REPO_ROOT or (checkout / ".venv").exists():
            parser.error("--from-nothing needs --checkout DIR: a fresh clone without .venv")
        caches = Path(tempfile.mkdtemp(prefix="csawm-demo-caches-"))
        env |= {"PIP_CACHE_DIR": str(caches / "pip"), "CSAWM_DEBOOTSTRAP_CACHE": str(caches / "deb")}
        _remove_base_images()
    if args.rebuild_references or args.from_nothing:
        _remove_reference_images()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env["CSAWM_PORT"] = str(port)
    log_path = data_dir.parent / f"{data_dir.name}-demo.log"
    load_before = os.getloadavg()
    started = time.monotonic()
    listening: float | None = None
    on_their_way: float | None = None
    first_scored: float | None = None
    scored: float | None = None
    peak_load = load_before[0]
    rows: list[dict[str, object]] = []
    with log_path.open("w") as log, httpx.Client(timeout=2) as client:
        process = subprocess.Popen(
            shlex.split(args.command),
            cwd=checkout,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while time.monotonic() - started < DEADLINE_S:
                if process.poll() is not None:
                    print(
                        f"{args.command} exited with {process.returncode}; log: {log_path}", file=sys.stderr
                    )
                    return 1
                if listening is None:
                    try:
                        if client.get(f"{url}/healthz").status_code == 200:
                            listening = time.monotonic() - started
                            print(f"listening after {listening:.0f} s", flush=True)
                            if args.listen_only:
                                break
                    except httpx.TransportError:
                        pass
                else:
                    rows, pending = _board(client, url)
                    now = time.monotonic() - started
                    if on_their_way is None and len(pending) + len(rows) >= N_BASELINES:
                        on_their_way = now
                        states = ", ".join(f"{p['name']}: {p['state']}" for p in pending)
                        print(f"board lists the baselines after {now:.0f} s ({states})", flush=True)
                    if first_scored is None and rows:
                        first_scored = now
                        print(f"first baseline scored after {now:.0f} s", flush=True)
                    if len(rows) >= N_BASELINES:
                        scored = time.monotonic() - started
                        break
                peak_load = max(peak_load, os.getloadavg()[0])
                time.sleep(1 if listening is None else 5)
        finally:
            _stop(process)
    load_after = os.getloadavg()
    if listening is None or (scored is None and not args.listen_only):
        print(f"not done after {DEADLINE_S} s; log: {log_path}", file=sys.stderr)
        return 1
    print(f"{args.command} -> server listening: {listening:.0f} s (data dir {data_dir}, log {log_path})")
    if on_their_way is not None:
        print(f"{args.command} -> board lists both baselines (pending or scored): {on_their_way:.0f} s")
    if first_scored is not None:
        print(f"{args.command} -> first baseline scored: {first_scored:.0f} s")
    if scored is not None:
        print(f"{args.command} -> both baselines scored on the board: {scored:.0f} s")
        for row in rows:
            tau = row["kendall_tau_b"]
            value = tau.get("value") if isinstance(tau, dict) else None
            print(
                f"  {row['name']}: tau-b {value:.4f}"
                if isinstance(value, float)
                else f"  {row['name']}: {tau}"
            )
        trivial = trivial_scores(Benchmark.open(data_dir / "benchmark"))
        print(
            f"  breast brightness rule: tau-b {trivial.breast_brightness:.4f}; "
            f"Libra_percent_density: tau-b {trivial.libra_percent_density:.4f}"
        )
    before, after = (f"{load[0]:.2f} {load[1]:.2f}" for load in (load_before, load_after))
    print(f"load average (1 min, 5 min) before {before}, after {after}; highest 1-min {peak_load:.2f}")
    if args.data_dir is None and not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
