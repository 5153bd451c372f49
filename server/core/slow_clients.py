"""Deadlines for receiving a request and caps on open connections (issue 19 item 7).

uvicorn bounds only the idle gap between requests (``timeout_keep_alive``), and cancels that timer
at the first byte of the next one: a client that sends a byte every few seconds held its
connection for as long as it liked (300 trickled ``POST /login`` bodies, 100 heads sent a line at
a time, an upload of a byte every 5 s). `protocol_class` builds uvicorn's httptools protocol with
the rules of ``CSAWM_*`` settings added, enforced where every byte arrives, whatever the route:

* **Head**: the whole request head (request line and headers) within ``CSAWM_HEADER_TIMEOUT`` of
  the connection opening or of the previous response's end (keep-alive). Late: 408, closed (a
  connection that sent nothing at all is closed without an answer).
* **Body**: the whole body within ``CSAWM_BODY_TIMEOUT`` plus one second per ``CSAWM_MIN_BODY_RATE``
  bytes received. An ordinary request (a form, JSON: 64 KiB at most) thus has about
  ``CSAWM_BODY_TIMEOUT``; an archive upload of any size passes while it averages at least the
  rate. Late: 408 when no response has started yet, and the connection is closed. The body rule
  also holds after the app answered without reading the body (a 401 before an upload).
* **Connections**: at most ``CSAWM_MAX_CONNECTIONS`` open at once and
  ``CSAWM_MAX_CONNECTIONS_PER_CLIENT`` from one address; beyond, the new connection gets 503 and
  is closed before a byte is read. A trusted proxy's address (``CSAWM_FORWARDED_ALLOW_IPS``) has no
  per-address cap: behind a proxy every client shares it, and the proxy caps its clients itself.

Both deadlines run on a clock that stops while the server itself stops reading (uvicorn's flow
control pauses the socket when the app falls behind, e.g. before an upload is authenticated):
only the client's slowness counts against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.core.settings import Settings

log = logging.getLogger("csawm.server")

Stage = Literal["head", "body"]
RETRY_AFTER_S = 5
_MIN_RECHECK_S = 0.05


@dataclass
class ConnectionLimits:
    """The rules of the module docstring, and the open connections of one server (one event loop,
    so no lock: every protocol callback runs on it)."""

    header_timeout_s: float
    body_timeout_s: float
    min_body_rate: float  # bytes per second
    max_connections: int
    max_per_client: int
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    trust_all: bool = False
    per_client: Counter[str] = field(default_factory=Counter)
    total: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        items = [i.strip() for i in (settings.forwarded_allow_ips or "").split(",") if i.strip()]
        trusted = []
        for item in items:
            with contextlib.suppress(ValueError):  # "*" (below), a Unix socket path: no address
                trusted.append(ipaddress.ip_network(item, strict=False))
        return cls(
            header_timeout_s=settings.header_timeout.total_seconds(),
            body_timeout_s=settings.body_timeout.total_seconds(),
            min_body_rate=float(settings.min_body_rate),
            max_connections=settings.max_connections,
            max_per_client=settings.max_connections_per_client,
            trusted=tuple(trusted),
            trust_all="*" in items,
        )

    def _capped(self, address: str) -> bool:
        if self.trust_all:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return True
        return not any(ip in network for network in self.trusted)

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address`; the reason when it is over a cap (not counted)."""
        if self.total >= self.max_connections:
            return f"the server has {self.max_connections} connections open (CSAWM_MAX_CONNECTIONS)"
        if self.per_client[address] >= self.max_per_client and self._capped(address):
            return (
                f"{self.max_per_client} connections from your address are open "
                "(CSAWM_MAX_CONNECTIONS_PER_CLIENT)"
            )
        self.per_client[address] += 1
        self.total += 1
        return None

    def release(self, address: str) -> None:
        self.total -= 1
        self.per_client[address] -= 1
        if self.per_client[address] <= 0:
            del self.per_client[address]


class _ReadClock(FlowControl):
    """uvicorn's flow control that also knows how long the server kept reading paused."""

    def __init__(self, transport: asyncio.Transport, now: Callable[[], float]) -> None:
        super().__init__(transport)
        self._now = now
        self._paused_at: float | None = None
        self._paused_s = 0.0

    # FlowControl's two methods with the clock added, inline: they run once per chunk of a body.
    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self._paused_at = self._now()
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            if self._paused_at is not None:
                self._paused_s += self._now() - self._paused_at
                self._paused_at = None
            self._transport.resume_reading()

    def reading_s(self) -> float:
        """A clock of the time reading was not paused by the server."""
        now = self._now()
        paused = self._paused_s + (now - self._paused_at if self._paused_at is not None else 0.0)
        return now - paused


def _raw_response(status: int, reason: str, code: str, message: str, extra: list[str]) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and caps of `limits` (module docstring).

    The stage of the connection decides which deadline runs: ``head`` from the connection's start
    (or the end of the previous response) to the end of the request head, ``body`` from there to
    the end of the body, none while the app works on a request it has whole.
    """

    limits: ClassVar[ConnectionLimits]
    _clock: _ReadClock

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address = ""
        self._admitted = False
        self._stage: Stage | None = None
        self._stage_start = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._in_message = False
        self._body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = self._clock = _ReadClock(transport, self.loop.time)
        self._address = self.client[0] if self.client else ""
        refusal = self.limits.admit(self._address)
        if refusal is not None:
            log.warning("connection from %s refused: %s", self._address or "?", refusal)
            transport.write(
                _raw_response(
                    503, "Service Unavailable", "too_many_connections", f"{refusal}; try again later",
                    [f"retry-after: {RETRY_AFTER_S}"],
                )
            )  # fmt: skip
            transport.close()
            return
        self._admitted = True
        self._enter("head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._leave()
        if self._admitted:
            self.limits.release(self._address)
            self._admitted = False
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:  # a refused connection is closing: nothing it sends is parsed
            return
        if self._stage == "body":  # counted here, not in on_body: one call less per chunk
            self._body_bytes += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = True
        self._body_bytes = 0
        if self._stage is None:  # a pipelined request begins while the previous one is served
            self._enter("head")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._enter("body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_message = False
        if self.cycle is not None and self.cycle.response_complete:
            self._enter("head")  # the app answered before the body ended: the next request's turn
        else:
            self._leave()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        served = self.cycle is None or self.cycle.response_complete  # no pipelined request left
        if not self._in_message and served:
            self._enter("head")

    def _enter(self, stage: Stage) -> None:
        self._leave()
        self._stage = stage
        self._stage_start = self._clock.reading_s()
        self._schedule(self._allowed_s())

    def _leave(self) -> None:
        self._stage = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _allowed_s(self) -> float:
        if self._stage == "head":
            return self.limits.header_timeout_s
        return self.limits.body_timeout_s + self._body_bytes / self.limits.min_body_rate

    def _schedule(self, delay: float) -> None:
        self._timer = self.loop.call_later(max(delay, _MIN_RECHECK_S), self._check)

    def _check(self) -> None:
        self._timer = None
        if self._stage is None or self.transport.is_closing():
            return
        left = self._allowed_s() - (self._clock.reading_s() - self._stage_start)
        if left > 0:
            self._schedule(left)
        else:
            self._expire(self._stage)

    def _expire(self, stage: Stage) -> None:
        """Close the connection; answer 408 first where no response is under way on it."""
        self._stage = None
        limits = self.limits
        in_flight = self.cycle is not None and not self.cycle.response_complete
        if stage == "head":
            message = (
                f"the request head did not arrive within {limits.header_timeout_s:g} s (CSAWM_HEADER_TIMEOUT)"
            )
            answer = self._in_message and not in_flight  # a connection that sent nothing is just closed
        else:
            message = (
                f"the request body came too slowly: {self._body_bytes} bytes received, the allowance is "
                f"CSAWM_BODY_TIMEOUT ({limits.body_timeout_s:g} s) plus 1 s per CSAWM_MIN_BODY_RATE "
                f"({limits.min_body_rate:g}) bytes"
            )
            answer = self.cycle is not None and not self.cycle.response_started
        if in_flight:
            # The app's receive() returns http.disconnect, and whatever it still sends goes nowhere.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        log.warning("slow client %s closed: %s", self._address or "?", message)
        if answer:
            self.transport.write(_raw_response(408, "Request Timeout", "request_timeout", message, []))
        self.transport.close()


def protocol_class(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to pass to uvicorn as ``http=``, with its own connection counts."""

    class CsawmHttpProtocol(GuardedHttpToolsProtocol):
        limits = ConnectionLimits.from_settings(settings)

    return CsawmHttpProtocol
