"""Slow clients (issue 19 item 7): how long the issue's trickling connections stay open, for two
code trees in the same run ("before" = the tree named by --before, "after" = this tree), each
``csawm serve --no-worker`` in its own process on loopback with its default settings.

Three attacks at once, each connection a raw socket (tests/server/srvtest/attacks.py, `trickle`):

1. ``login-body``: --login ``POST /login`` heads with ``Content-Length: 1000``, then a body byte
   every 15 s;
2. ``head-lines``: --heads request heads sent a header line every 5 s;
3. ``upload``: --uploads authenticated archive uploads (``Content-Length`` 1 GiB), a byte every 5 s.

The connections come from --sources loopback addresses (127.0.0.10, .11, ...), round robin: with
enough sources the per-address cap admits them all and the deadlines show; with one source the cap
shows. Watched for --watch-s seconds. Per attack: connections, refused at once (503), closed by
the server (with 408 / without an answer), the median and largest time to the close, still open.

Usage: .venv/bin/python benchmarks/bench_slow_clients.py --before /work/main [--login 300]
       [--heads 100] [--uploads 2] [--sources 20] [--watch-s 120] [--skip-before]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "server"))
sys.path.insert(0, str(REPO / "benchmarks"))

import socket  # noqa: E402

from bench_server import team_token  # noqa: E402
from srvtest.attacks import Closed, trickle  # noqa: E402
from srvtest.served import ServedServer, served  # noqa: E402


@dataclass(frozen=True)
class Attack:
    name: str
    count: int
    first: bytes
    piece: bytes
    every_s: float


def attacks(args: argparse.Namespace, token: str) -> list[Attack]:
    upload = (
        f"POST /api/v1/submissions?name=slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/x-tar\r\nContent-Length: {1024**3}\r\n\r\n"
    ).encode()
    login = (
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    return [
        Attack("login-body", args.login, login, b"a", 15.0),
        Attack("head-lines", args.heads, b"GET / HTTP/1.1\r\n", b"X-Padding: a\r\n", 5.0),
        Attack("upload", args.uploads, upload, b"\0", 5.0),
    ]


def run(srv: ServedServer, plan: list[Attack], sources: int, watch_s: float) -> dict[str, list[Closed]]:
    parts = urlsplit(srv.url)
    socks: dict[str, list[socket.socket]] = {}
    n = 0
    for attack in plan:
        socks[attack.name] = []
        for _ in range(attack.count):
            source = f"127.0.0.{10 + n % sources}"
            n += 1
            socks[attack.name].append(
                socket.create_connection((parts.hostname, parts.port), timeout=30, source_address=(source, 0))
            )
    results: dict[str, list[Closed]] = {}

    def one(attack: Attack) -> None:
        sent = socks[attack.name]
        results[attack.name] = trickle(sent, attack.first, attack.piece, attack.every_s, watch_s)

    threads = [threading.Thread(target=one, args=(attack,)) for attack in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def row(label: str, name: str, closed: list[Closed], watch_s: float) -> str:
    refused = [c for c in closed if c.answer.startswith(b"HTTP/1.1 503 ")]
    timed_out = [c for c in closed if c.answer.startswith(b"HTTP/1.1 408 ")]
    ended = [c.after_s for c in closed if c.after_s is not None and c not in refused]
    still = sum(1 for c in closed if c.after_s is None)
    median = f"{statistics.median(ended):.1f}" if ended else "-"
    largest = f"{max(ended):.1f}" if ended else "-"
    return (
        f"| {label} | {name} | {len(closed)} | {len(refused)} | {len(ended)} ({len(timed_out)} with 408) "
        f"| {median} | {largest} | {still} (> {watch_s:g} s) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, help="the tree to compare with (e.g. main)")
    parser.add_argument("--skip-before", action="store_true")
    parser.add_argument("--login", type=int, default=300)
    parser.add_argument("--heads", type=int, default=100)
    parser.add_argument("--uploads", type=int, default=2)
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--watch-s", type=float, default=120.0)
    args = parser.parse_args()
    trees = {"after": REPO}
    if args.before and not args.skip_before:
        trees = {"before": args.before.resolve(), **trees}
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-slow-") as tmp:
        for label, tree in trees.items():
            with served(Path(tmp) / label, code=tree) as srv:
                token = team_token(srv.db_url, "slow", per_day=100, active=100)
                results = run(srv, attacks(args, token), args.sources, args.watch_s)
            for name, closed in results.items():
                lines.append(row(label, name, closed, args.watch_s))
                print(lines[-1], flush=True)
    print(f"\n{args.sources} source address(es); watched {args.watch_s:g} s")
    print("| tree | attack | connections | refused (503) | closed by the server | median close (s) "
          "| largest (s) | still open |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
