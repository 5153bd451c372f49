"""Hostile clients (issue 12): server memory under the three memory attacks, and upload throughput,
for two code trees in the same run ("before" = the tree named by --before, "after" = this tree).

Each tree's ``csawm serve --no-worker`` runs in its own process on loopback (tests/server/srvtest/
served.py). Memory: the growth of the server's peak RSS during one attack (the kernel's high-water
mark is reset just before it; tests/server/srvtest/attacks.py):

1. ``unauth-json``: N MiB of chunked JSON to ``POST /api/v1/admin/teams`` without a token;
2. ``json-submission``: N MiB of chunked JSON to ``POST /api/v1/submissions`` with a token;
3. ``longname-archive``: a .tar.gz whose one GNU long-name header holds 240 MiB (under the
   ratio guard's 256 MiB floor, as in the issue), uploaded.

Throughput: a valid archive of --upload-mib MiB (plain tar, one random layer) uploaded --rounds
times to each server, alternating before/after; the figure is the median bytes / wall time.

Usage: .venv/bin/python benchmarks/bench_hostile.py --before /work/main [--attack-mib 256]
       [--upload-mib 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "server"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_server import team_token, write_big_archive  # noqa: E402
from srvtest.attacks import MiB, PeakMemory, file_chunks, json_like, post_chunked, write_long_name_bomb  # noqa: E402
from srvtest.served import ServedServer, served  # noqa: E402

LONG_NAME_BYTES = 240 * MiB


def attacks(srv: ServedServer, token: str, size: int, bomb: Path) -> dict[str, tuple[int | None, int]]:
    """(status, peak RSS growth in bytes) per attack."""
    auth = {"Authorization": f"Bearer {token}"}
    cases = {
        "unauth-json": ("/api/v1/admin/teams", {"Content-Type": "application/json"}, lambda: json_like(size)),
        "json-submission": (
            "/api/v1/submissions",
            {"Content-Type": "application/json", **auth},
            lambda: json_like(size),
        ),
        "longname-archive": (
            "/api/v1/submissions?name=bomb",
            {"Content-Type": "application/gzip", **auth},
            lambda: file_chunks(bomb),
        ),
    }
    out = {}
    for name, (path, headers, body) in cases.items():
        with PeakMemory(srv.pid) as memory:
            answer = post_chunked(srv.url, path, headers, body(), timeout=600)
        out[name] = (answer.status, memory.growth)
    return out


def upload_once(srv: ServedServer, archive: Path, i: int) -> float:
    """One upload by a new team (a team may not submit the same image twice)."""
    token = team_token(srv.db_url, f"uploader{i}", per_day=100, active=100)
    t0 = time.perf_counter()
    with archive.open("rb") as fh:
        r = httpx.post(
            f"{srv.url}/api/v1/submissions",
            params={"name": f"u{i}"},
            content=fh,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-tar"},
            timeout=600,
        )
    wall = time.perf_counter() - t0
    if r.status_code != 201:
        raise RuntimeError(f"upload failed: {r.status_code} {r.text[:300]}")
    return archive.stat().st_size / wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True, help="the tree to compare with (e.g. main)")
    parser.add_argument("--attack-mib", type=int, default=256)
    parser.add_argument("--upload-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": REPO}
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        root = Path(tmp)
        bomb = root / "longname.tar.gz"
        write_long_name_bomb(bomb, LONG_NAME_BYTES)
        archive = root / "upload.tar"
        write_big_archive(archive, args.upload_mib * MiB)
        env = {"CSAWM_MAX_UPLOAD_BYTES": str(4 * 1024**3)}
        results: dict[str, dict[str, tuple[int | None, int]]] = {}
        speeds: dict[str, list[float]] = {"before": [], "after": []}
        for label, tree in trees.items():
            with served(root / label / "attacks", env, code=tree) as srv:
                token = team_token(srv.db_url, "attacker", per_day=100, active=100)
                results[label] = attacks(srv, token, args.attack_mib * MiB, bomb)
                print(label, results[label], flush=True)
        with (
            served(root / "before" / "upload", env, code=trees["before"]) as before,
            served(root / "after" / "upload", env, code=trees["after"]) as after,
        ):
            servers = {"before": before, "after": after}
            for i in range(args.rounds):
                for label in ("before", "after") if i % 2 == 0 else ("after", "before"):
                    speeds[label].append(upload_once(servers[label], archive, i))
    print(f"attack size {args.attack_mib} MiB; before = {trees['before']}, after = {trees['after']}")
    print(f"{'attack':18} {'before: status, RSS growth':>28} {'after: status, RSS growth':>28}")
    for name in results["after"]:
        cells = []
        for label in ("before", "after"):
            status, growth = results[label][name]
            cells.append(f"{status}, {growth / MiB:8.1f} MiB")
        print(f"{name:18} {cells[0]:>28} {cells[1]:>28}")
    medians = {k: statistics.median(v) for k, v in speeds.items()}
    print(
        f"upload {args.upload_mib} MiB x {args.rounds}: before {medians['before'] / 1e6:.0f} MB/s, "
        f"after {medians['after'] / 1e6:.0f} MB/s, after/before = {medians['after'] / medians['before']:.3f}"
    )


if __name__ == "__main__":
    main()
