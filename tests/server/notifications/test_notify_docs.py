"""The receiver in docs/notifications.md, run as written against real deliveries (so the docs cannot rot)."""

from __future__ import annotations

import http.client
import json
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from srvtest.app import make_settings
from srvtest.notify import add_webhook, closed_port, deliveries, scoring_run, team_with_members

from server.core import migrate
from server.core.db import Database
from server.models import RunStatus
from server.notifications import signing
from server.notifications.dispatcher import Dispatcher
from server.runs.transitions import transition

DOC = Path(__file__).resolve().parents[3] / "docs" / "notifications.md"
SECRET = "whsec_docs-test-secret"


def snippet() -> str:
    text = DOC.read_text(encoding="utf-8")
    part = text.split("### Verifying a delivery", 1)[1]
    match = re.search(r"```python\n(.*?)```", part, re.DOTALL)
    assert match, "no python block under 'Verifying a delivery'"
    return match.group(1)


def test_the_snippet_is_short_and_stdlib_only() -> None:
    code = snippet()
    assert len(code.strip().splitlines()) <= 13
    imported = set(re.findall(r"^(?:import|from) ([\w., ]+?)(?: import|$)", code, re.MULTILINE))
    modules = {m.strip() for group in imported for m in group.split(",")}
    assert modules <= {"hashlib", "hmac", "os", "time", "http.server"}, modules


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[int, queue.Queue[str]]]:
    script = tmp_path / "receiver.py"
    script.write_text(snippet())
    port = closed_port()
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env={"CSAWM_WEBHOOK_SECRET": SECRET, "PORT": str(port), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in out], daemon=True).start()
    deadline = time.monotonic() + 20
    while True:  # until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, "the receiver exited"
            assert time.monotonic() < deadline, "the receiver never listened"
            time.sleep(0.05)
    try:
        yield port, lines
    finally:
        proc.terminate()
        proc.wait(10)


def _post(port: int, body: bytes, ts: int, sig: str, delivery: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {
        "X-CSAWM-Timestamp": str(ts),
        "X-CSAWM-Signature": sig,
        "X-CSAWM-Delivery": delivery,
        "X-CSAWM-Event": "run.finished",
    }
    conn.request("POST", "/", body=body, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def test_the_docs_receiver_verifies_a_real_delivery(
    tmp_path: Path, sqlite_url: str, receiver: tuple[int, queue.Queue[str]]
) -> None:
    port, lines = receiver
    db = Database.connect(sqlite_url)
    migrate.upgrade(db.engine)
    team = team_with_members(db, "alpha", [])
    add_webhook(db, team, f"http://127.0.0.1:{port}/", SECRET)
    sub = scoring_run(db, team)
    with db.transaction() as session:
        transition(session, sub, RunStatus.SUCCEEDED)
    settings = make_settings(tmp_path, sqlite_url, webhook_allow_private=True)
    assert Dispatcher(settings, db).run_once() == 1
    (row,) = deliveries(db)
    assert row.delivered_at is not None  # the snippet answered 204
    event, _, raw = lines.get(timeout=10).rstrip("\n").partition(" ")
    body = json.loads(raw)
    assert event == "run.finished" and body["delivery_id"] == row.id and body["submission_id"] == sub

    payload = raw.encode()
    now = int(time.time())
    # a replay of the same delivery, freshly signed: accepted (204) but handled once
    assert _post(port, payload, now, signing.signature(SECRET, now, payload), row.id) == 204
    # a tampered body, a wrong secret, a stale timestamp: refused
    tampered = payload.replace(b"succeeded", b"failed")
    assert _post(port, tampered, now, signing.signature(SECRET, now, payload), "dlv_t") == 401
    assert _post(port, payload, now, signing.signature("whsec_other", now, payload), "dlv_w") == 401
    stale = now - 400
    assert _post(port, payload, stale, signing.signature(SECRET, stale, payload), "dlv_s") == 401
    # the next line it prints is a new delivery's: the replay and the refusals printed nothing
    assert _post(port, b'{"n": 2}', now, signing.signature(SECRET, now, b'{"n": 2}'), "dlv_new") == 204
    assert lines.get(timeout=10) == 'run.finished {"n": 2}\n'
    db.dispose()
