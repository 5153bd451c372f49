"""Real local receivers for the notification tests: an HTTP server and an SMTP server on 127.0.0.1.

Both listen on a port the OS chose and record what arrives; `wait_for` waits with a deadline (no
fixed sleeps). Nothing here ever talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import hmac
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import select

from server.core.db import Database
from server.models import Delivery, Role, Submission, Team, User
from server.notifications import signing


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next status of `statuses` (then `then`), recording every request."""

    statuses: list[int] = field(default_factory=list)
    then: int = 204
    requests: list[Received] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    port: int = 0

    def answer(self, received: Received) -> int:
        with self.lock:
            self.requests.append(received)
            self.lock.notify_all()
            return self.statuses.pop(0) if self.statuses else self.then

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"expected {count} requests, got {len(self.requests)}"
                self.lock.wait(left)
            return list(self.requests)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.answer(Received(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(receiver: Receiver, port: int = 0) -> Iterator[Receiver]:
    server = HTTPServer(("127.0.0.1", port), _handler(receiver))
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    """A port nothing listens on (the OS gave it, and it was released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.lock = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
            self.lock.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[list[str], Message]]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"expected {count} mails, got {len(self.messages)}"
                self.lock.wait(left)
            return list(self.messages)


@contextmanager
def smtp_server() -> Iterator[tuple[_Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1, plain (``CSAWM_SMTP_TLS=none``)."""
    box = _Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=closed_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


def team_with_members(db: Database, name: str, emails: list[str]) -> int:
    from server.accounts import service

    with db.transaction() as session:
        team = service.create_team(session, name, actor="test")
        for email in emails:
            service.create_user(session, email, role=Role.RESEARCHER, team_name=name, actor="test")
        return team.id


def add_webhook(db: Database, team_id: int, url: str, secret: str = "whsec_test-secret") -> int:
    from server.models import Webhook

    with db.transaction() as session:
        hook = Webhook(team_id=team_id, url=url, secret=secret, active=True)
        session.add(hook)
        session.flush()
        return hook.id


def scoring_run(db: Database, team_id: int, name: str = "model-a", **values: Any) -> int:
    """A submission in ``scoring``, ready for a terminal transition."""
    from server.models import RunStatus

    with db.transaction() as session:
        sub = Submission(
            team_id=team_id,
            name=name,
            phase="private-1",
            image_digest="sha256:" + "a" * 64,
            status=RunStatus.SCORING,
            **values,
        )
        session.add(sub)
        session.flush()
        return sub.id


def deliveries(db: Database) -> list[Delivery]:
    with db.transaction(write=False) as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.created_at, Delivery.id)))


def member_emails(db: Database, team: str) -> list[str]:
    with db.transaction(write=False) as session:
        return list(session.scalars(select(User.email).join(Team).where(Team.name == team)))


def verify(secret: str, timestamp: int, body: bytes, header: str) -> bool:
    """What a receiver checks: the signature header against the timestamp and the raw body."""
    return hmac.compare_digest(signing.signature(secret, timestamp, body), header)
