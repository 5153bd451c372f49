"""POST one signed webhook delivery, to the address that was checked (no rebinding, no redirects).

Headers: ``X-CSAWM-Event``, ``X-CSAWM-Delivery`` (the delivery id; the same on every retry),
``X-CSAWM-Timestamp`` (Unix seconds at this attempt) and ``X-CSAWM-Signature`` (`signing`). Success
is a 2xx status; a redirect, any other status, a refused address or a timeout is a failed attempt.
At most `RESPONSE_CAP` bytes of the response are read, and none of it is stored.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from typing import Any

from server.notifications import addresses, signing
from server.notifications.outcome import Outcome

RESPONSE_CAP = 4096
USER_AGENT = "csawm-webhooks/1"


class PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to `host` (Host header) made to the already checked address `ip`."""

    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self.ip, self.port), self.timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the checked address `ip`, with the certificate checked for `host` (SNI too)."""

    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.ip = ip

    def connect(self) -> None:
        raw = socket.create_connection((self.ip, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def post(
    url: str,
    secret: str,
    event: str,
    delivery_id: str,
    payload: bytes,
    *,
    timeout_s: float,
    allow_private: bool,
) -> Outcome:
    """One attempt. The address check runs again here, before any connection is made."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target, ips = addresses.check(url, allow_private=allow_private)
    except addresses.WebhookURLRefused as exc:
        return Outcome(ok=False, duration_ms=elapsed(), error=f"refused before connecting: {exc.message}")
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-CSAWM-Event": event,
        "X-CSAWM-Delivery": delivery_id,
        "X-CSAWM-Timestamp": str(timestamp),
        "X-CSAWM-Signature": signing.signature(secret, timestamp, payload),
    }
    kind = PinnedHTTPSConnection if target.scheme == "https" else PinnedHTTPConnection
    last_error = "no address"
    for ip in ips:
        conn = kind(target.host, target.port, ip, timeout_s)
        try:
            try:
                conn.connect()
            except OSError as exc:  # nothing was sent: the next address may answer
                last_error = f"{type(exc).__name__}: {exc}"[:500]
                continue
            conn.request("POST", target.path, body=payload, headers=headers)
            response = conn.getresponse()
            response.read(RESPONSE_CAP)
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(ok=False, duration_ms=elapsed(), error=f"{type(exc).__name__}: {exc}"[:500])
        finally:
            conn.close()
        if 200 <= status < 300:
            return Outcome(ok=True, duration_ms=elapsed(), status_code=status)
        reason = "redirects are not followed" if 300 <= status < 400 else "the receiver answered"
        return Outcome(ok=False, duration_ms=elapsed(), status_code=status, error=f"{reason}: HTTP {status}")
    return Outcome(ok=False, duration_ms=elapsed(), error=last_error)
