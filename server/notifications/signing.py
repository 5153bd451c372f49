"""The webhook signature: ``X-CSAWM-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``.

The signed bytes are the decimal Unix timestamp sent in ``X-CSAWM-Timestamp``, one ``.``, then the
raw request body. Signing the timestamp with the body lets a receiver refuse a replayed request:
an old body cannot be re-sent with a fresh timestamp without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()
