"""The researcher's client against the full install: wheel install time and installed size (issue 24).

    .venv/bin/python benchmarks/bench_client_install.py [--python python3.12] [--repeats 2]

Builds this checkout's wheel once, then for each of ``csawm-leaderboard`` (the client) and
``csawm-leaderboard[server]`` (client and server), ``--repeats`` times: a fresh virtualenv made by
``--python``, ``pip install WHEEL[extra]`` with an empty pip cache (every dependency downloaded from
the index pip is configured with, as on a researcher's first install), timed; then the
virtualenv's size on disk and its package count. Prints one table row per install, the median
time of each and the ratio client / full, measured in the same run. Say the machine's load beside
the figures (printed before and after).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"client": "", "server": "[server]"}


def _size_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO_ROOT)], check=True
    )
    (wheel,) = out.glob("csawm_leaderboard-*.whl")
    return wheel


def _install(python: str, wheel: Path, extra: str, work: Path) -> tuple[float, int, int]:
    venv, cache = work / "venv", work / "pip-cache"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_CACHE_DIR": str(cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    started = time.monotonic()
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}{extra}"], check=True, env=env)
    seconds = time.monotonic() - started
    listing = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=freeze"], check=True, capture_output=True, text=True
    )
    return seconds, _size_bytes(venv), len(listing.stdout.split())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default="python3.11", help="the interpreter of the virtualenvs")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="csawm-client-bench-") as tmp:
        wheel = _build_wheel(Path(tmp) / "dist")
        print(f"wheel {wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB; python {args.python}")
        print("| install | time (s) | size (MB) | packages |\n| --- | --- | --- | --- |")
        for repeat in range(args.repeats):
            for name, extra in VARIANTS.items():  # interleaved: the same conditions for both
                work = Path(tmp) / f"{name}-{repeat}"
                seconds, size, packages = _install(args.python, wheel, extra, work)
                times[name].append(seconds)
                print(f"| {name} | {seconds:.1f} | {size / 1e6:.0f} | {packages} |", flush=True)
                shutil.rmtree(work)
    client, server = (statistics.median(times[name]) for name in VARIANTS)
    print(f"median: client {client:.1f} s, client + server {server:.1f} s, ratio {client / server:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
