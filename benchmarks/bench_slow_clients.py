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

With --overhead N instead: the cost of the rules to a fast upload. Two uvicorn processes serve an
app that drains the body, one with uvicorn's httptools protocol and one with
`server.core.slow_clients`'s; 1 GiB is posted to each N times, alternated, and the figure is the
median CPU time of the server process per GiB (CPU time, not wall time: on a shared machine the
wall time varies by tens of percent between identical servers).

Usage: .venv/bin/python benchmarks/bench_slow_clients.py --before ../a-checkout-of-the-old-code [--login 300]
       [--heads 100] [--uploads 2] [--sources 20] [--watch-s 120] [--skip-before]
       .venv/bin/python benchmarks/bench_slow_clients.py --overhead 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
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


def _drain_server(port: int, kind: str) -> None:
    """Serve an app that reads the whole body and answers its length (for --overhead)."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from server.core.settings import load_settings
    from server.core.slow_clients import protocol_class

    async def app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def,type-arg]
        if scope["type"] != "http":
            return
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = str(size).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    with tempfile.TemporaryDirectory() as tmp:
        proto = HttpToolsProtocol if kind == "plain" else protocol_class(load_settings(data_dir=tmp))
        uvicorn.run(app, host="127.0.0.1", port=port, http=proto, log_level="warning", lifespan="off")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _post_gib(port: int) -> None:
    size, chunk = 1024**3, bytes(1024**2)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(1024)
    assert answer.startswith(b"HTTP/1.1 200 "), answer


def overhead(rounds: int) -> None:
    from srvtest.live import free_port

    servers = {}
    for kind in ("plain", "guarded"):
        port = free_port()
        cmd = [sys.executable, __file__, "--serve-drain", f"{port}:{kind}"]
        servers[kind] = (subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}), port)
    try:
        for _, port in servers.values():
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "drain server did not start"
                    time.sleep(0.1)
        cpu: dict[str, list[float]] = {"plain": [], "guarded": []}
        for i in range(rounds):
            for kind in ("plain", "guarded") if i % 2 == 0 else ("guarded", "plain"):
                proc, port = servers[kind]
                before = _cpu_s(proc.pid)
                _post_gib(port)
                time.sleep(0.2)
                cpu[kind].append(_cpu_s(proc.pid) - before)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)
    for kind, values in cpu.items():
        print(
            f"{kind:8} median {statistics.median(values):.3f} s CPU per GiB {[round(v, 2) for v in values]}"
        )
    print(f"guarded/plain {statistics.median(cpu['guarded']) / statistics.median(cpu['plain']):.3f}")


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
    parser.add_argument("--overhead", type=int, metavar="ROUNDS", help="measure the CPU cost instead")
    parser.add_argument("--serve-drain", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_drain:
        port, kind = args.serve_drain.split(":")
        _drain_server(int(port), kind)
        return
    if args.overhead:
        overhead(args.overhead)
        return
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
