"""Regression tests for issue 12's three memory attacks, each against ``csawm serve`` in its own
process: the server's peak resident memory may grow by at most `MAX_GROWTH` while a body many
times that size is thrown at it. On the code before issue 12 each of them grew the server by about
the size of the attack (see BENCHMARKS.md, "Hostile clients").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from srvtest import factories as f
from srvtest.attacks import MiB, PeakMemory, file_chunks, json_like, post_chunked, write_long_name_bomb
from srvtest.served import ServedServer, served

from server.core.db import Database

ATTACK_BYTES = 256 * MiB
MAX_GROWTH = 48 * MiB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServedServer, str]]:
    root = tmp_path_factory.mktemp("attacked")
    with served(root, {"CSAWM_MAX_UPLOAD_BYTES": str(64 * MiB)}) as srv:
        db = Database.connect(srv.db_url)
        try:
            f.team(db, "alpha")
            token = f.user(db, "a@x.org", team="alpha")
        finally:
            db.dispose()
        yield srv, token


def test_unauthenticated_json_body_is_refused_unread_issue_12(server: tuple[ServedServer, str]) -> None:
    """Row 1: 256 MB of chunked JSON to an admin endpoint without a token."""
    srv, _ = server
    with PeakMemory(srv.pid) as memory:
        answer = post_chunked(
            srv.url, "/api/v1/admin/teams", {"Content-Type": "application/json"}, json_like(ATTACK_BYTES)
        )
    assert answer.status == 401, answer.head
    assert answer.sent < ATTACK_BYTES  # the server answered before the body was through
    assert memory.growth < MAX_GROWTH, f"server grew by {memory.growth / MiB:.0f} MiB"


def test_json_submission_body_is_capped_while_streaming_issue_12(server: tuple[ServedServer, str]) -> None:
    """Row 3: 256 MB of chunked JSON to POST /api/v1/submissions with a valid token."""
    srv, token = server
    headers = {"Content-Type": "application/json", **f.auth(token)}
    with PeakMemory(srv.pid) as memory:
        answer = post_chunked(srv.url, "/api/v1/submissions", headers, json_like(ATTACK_BYTES))
    assert answer.status == 413, answer.head
    assert memory.growth < MAX_GROWTH, f"server grew by {memory.growth / MiB:.0f} MiB"


def test_archive_long_name_header_is_refused_issue_12(
    server: tuple[ServedServer, str], tmp_path: Path
) -> None:
    """Row 2: a .tar.gz of a few hundred KB whose one GNU long-name header holds 240 MiB (under the
    ratio guard's 256 MiB floor, so only the header cap stops it)."""
    srv, token = server
    bomb = tmp_path / "longname.tar.gz"
    write_long_name_bomb(bomb, 240 * MiB)
    assert bomb.stat().st_size < 2 * MiB
    with PeakMemory(srv.pid) as memory:
        answer = post_chunked(
            srv.url, "/api/v1/submissions?name=bomb", {"Content-Type": "application/gzip", **f.auth(token)},
            file_chunks(bomb),
        )  # fmt: skip
    assert answer.status == 422, answer.head
    assert memory.growth < MAX_GROWTH, f"server grew by {memory.growth / MiB:.0f} MiB"
