"""Issue 19 item 7: slow clients held connections for as long as they liked (uvicorn's keep-alive
timer resets on every byte). Played against ``csawm serve`` in its own process on loopback with raw
sockets, under short deadlines so each attack ends in a second or two: a head sent a line at a
time, a ``/login`` body trickled a byte at a time, an upload below the minimum rate, and many
connections from one address. A normal keep-alive client and a normal upload pass unharmed.

Every loop is bounded (`LIMIT_S`): a connection the server fails to close fails the test.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from srvtest import factories as f
from srvtest.archives import write_archive
from srvtest.attacks import read_response, trickle
from srvtest.served import ServedServer, served

from server.core.db import Database
from server.core.settings import load_settings
from server.core.slow_clients import ConnectionLimits

pytestmark = pytest.mark.slow

HEADER_S = 2.0
BODY_S = 1.0
MIN_RATE = 16 * 1024
PER_CLIENT = 6
TOTAL = 16
SLACK_S = 2.0  # a loaded two-core machine may answer late, never early
LIMIT_S = 10.0
SETTINGS = {
    "CSAWM_HEADER_TIMEOUT": f"{HEADER_S:g}s",
    "CSAWM_BODY_TIMEOUT": f"{BODY_S:g}s",
    "CSAWM_MIN_BODY_RATE": str(MIN_RATE),
    "CSAWM_MAX_UPLOAD_BYTES": str(8 * 1024**2),
    "CSAWM_MAX_CONNECTIONS": str(TOTAL),
    "CSAWM_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT),
    "CSAWM_FORWARDED_ALLOW_IPS": "127.0.0.9",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServedServer, str]]:
    with served(tmp_path_factory.mktemp("slow"), SETTINGS) as srv:
        db = Database.connect(srv.db_url)
        try:
            f.team(db, "alpha")
            token = f.user(db, "a@x.org", team="alpha")
        finally:
            db.dispose()
        yield srv, token


def _connect(srv: ServedServer, source: str = "127.0.0.1") -> socket.socket:
    parts = urlsplit(srv.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=LIMIT_S, source_address=(source, 0))


def _trickle(
    socks: list[socket.socket], first: bytes, piece: bytes, every_s: float
) -> list[tuple[bytes, float]]:
    """`trickle` on `socks`: (what the server answered, when it closed) of each, all closed."""
    results = [(r.answer, r.after_s) for r in trickle(socks, first, piece, every_s, LIMIT_S)]
    ended = [(answer, after) for answer, after in results if after is not None]
    still_open = len(results) - len(ended)
    assert not still_open, f"{still_open} connection(s) still open after {LIMIT_S} s"
    return ended


def _is_408(answer: bytes) -> bool:
    return answer.startswith(b"HTTP/1.1 408 ") and b'"code": "request_timeout"' in answer


def test_heads_sent_a_line_at_a_time_are_closed_after_the_header_timeout_issue_19(
    server: tuple[ServedServer, str],
) -> None:
    srv, _ = server
    socks = [_connect(srv) for _ in range(5)]
    results = _trickle(socks, b"POST /login HTTP/1.1\r\nHost: x\r\n", b"X-Padding: a\r\n", 0.2)
    for answer, after in results:
        assert _is_408(answer) and b"CSAWM_HEADER_TIMEOUT" in answer, answer
        assert HEADER_S - 0.1 <= after <= HEADER_S + SLACK_S, after


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout_issue_19(
    server: tuple[ServedServer, str],
) -> None:
    srv, _ = server
    ((answer, after),) = _trickle([_connect(srv)], b"", b"", 0.2)
    assert answer == b"" and HEADER_S - 0.1 <= after <= HEADER_S + SLACK_S


def test_a_login_body_trickled_a_byte_at_a_time_is_closed_issue_19(server: tuple[ServedServer, str]) -> None:
    srv, _ = server
    head = (
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 400\r\n\r\ntoken="
    )
    results = _trickle([_connect(srv) for _ in range(3)], head, b"a", 0.2)
    for answer, after in results:
        assert _is_408(answer), answer
        assert BODY_S - 0.1 <= after <= BODY_S + SLACK_S, after


def _upload_head(token: str, name: str, length: int) -> bytes:
    return (
        f"POST /api/v1/submissions?name={name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/x-tar\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_an_upload_below_the_minimum_rate_is_closed_with_408_issue_19(
    server: tuple[ServedServer, str],
) -> None:
    """1 KiB every 0.25 s (4 KiB/s) against a minimum of 16 KiB/s: the archive never arrives, and
    the partial file is gone."""
    srv, token = server
    head = _upload_head(token, "trickle", 4 * 1024**2)
    ((answer, after),) = _trickle([_connect(srv)], head, bytes(1024), 0.25)
    assert _is_408(answer) and b"CSAWM_MIN_BODY_RATE" in answer, answer
    sent = 1024 * after / 0.25
    assert after <= BODY_S + sent / MIN_RATE + SLACK_S, after
    uploads = Path(srv.log).parent / "state" / "uploads"
    deadline = time.monotonic() + LIMIT_S
    while uploads.exists() and list(uploads.iterdir()):
        assert time.monotonic() < deadline, list(uploads.iterdir())
        time.sleep(0.05)


def test_an_upload_at_a_reasonable_rate_outlasts_the_body_timeout_issue_19(
    server: tuple[ServedServer, str], tmp_path: Path
) -> None:
    """About 100 KiB at 32 KiB/s (twice the minimum) takes three body timeouts and is accepted."""
    srv, token = server
    archive = tmp_path / "m.tar"
    write_archive(archive, seed="steady", weights=96 * 1024)
    body = archive.read_bytes()
    sock = _connect(srv)
    start = time.monotonic()
    with sock:
        sock.sendall(_upload_head(token, "steady", len(body)))
        for offset in range(0, len(body), 4096):
            sock.sendall(body[offset : offset + 4096])
            time.sleep(0.125)
        answer = read_response(sock)
    assert time.monotonic() - start > 3 * BODY_S
    assert answer.startswith(b"HTTP/1.1 201 "), answer


def test_keep_alive_requests_are_unaffected_issue_19(server: tuple[ServedServer, str]) -> None:
    """Three requests on one connection with pauses between them, then a form body sent whole:
    each gets its answer and the connection stays open well past both deadlines in total."""
    srv, _ = server
    with _connect(srv) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.6 * HEADER_S)
        form = b"token=nope&csrf_token=x&next=/team"
        sock.sendall(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(form), form)
        )
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 ") and not answer.startswith(b"HTTP/1.1 408 "), answer


def test_connections_are_capped_per_address_and_in_all_issue_19(server: tuple[ServedServer, str]) -> None:
    """Six per address, twelve in all; the trusted proxy 127.0.0.9 has no per-address cap. Over a
    cap, a connection gets 503 before it sends anything; the held ones still end at the header
    timeout, and then the address is served again."""
    srv, _ = server
    time.sleep(0.5)  # the server has seen the previous tests' connections close
    held = [_connect(srv, "127.0.0.2") for _ in range(PER_CLIENT)]
    over_address = _connect(srv, "127.0.0.2")
    held += [_connect(srv, "127.0.0.9") for _ in range(PER_CLIENT + 1)]  # the proxy: 13 open in all
    held += [_connect(srv, "127.0.0.3") for _ in range(TOTAL - len(held))]
    over_total = _connect(srv, "127.0.0.4")
    answers = []
    for refused in (over_address, over_total):
        with refused:
            answers.append(read_response(refused))
    assert all(a.startswith(b"HTTP/1.1 503 ") and b"too_many_connections" in a for a in answers), answers
    assert b"CSAWM_MAX_CONNECTIONS_PER_CLIENT" in answers[0] and b"CSAWM_MAX_CONNECTIONS)" in answers[1]
    ready, _, _ = select.select(held, [], [], 0.2)
    assert ready == [], "a connection within the caps was refused"
    results = _trickle(held, b"GET /healthz HTTP/1.1\r\n", b"X-Padding: a\r\n", 0.5)
    assert all(after <= HEADER_S + SLACK_S and _is_408(answer) for answer, after in results), results
    with _connect(srv, "127.0.0.2") as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_the_per_address_cap_spares_only_the_trusted_proxies_issue_19(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, max_connections=100, max_connections_per_client=1,
        forwarded_allow_ips="10.1.0.0/16, fd00::1, /run/proxy.sock",
    )  # fmt: skip
    limits = ConnectionLimits.from_settings(settings)
    for proxy in ("10.1.2.3", "fd00::1"):
        assert [limits.admit(proxy) for _ in range(3)] == [None, None, None]
    for client in ("10.2.0.1", "fd00::2", "192.0.2.7"):
        assert limits.admit(client) is None and "PER_CLIENT" in (limits.admit(client) or "")
    limits.release("192.0.2.7")
    assert limits.admit("192.0.2.7") is None and limits.total == 9
    anyone = ConnectionLimits.from_settings(settings.model_copy(update={"forwarded_allow_ips": "*"}))
    assert [anyone.admit("192.0.2.7") for _ in range(3)] == [None, None, None]
