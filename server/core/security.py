"""API tokens: random, shown once, stored only as a SHA-256 hash.

A token is ``csawm_`` + 43 URL-safe characters (32 random bytes). Tokens carry 256 bits of entropy,
so an unsalted fast hash is enough: no dictionary exists to attack, and lookup stays one indexed
equality on ``token_hash``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets

TOKEN_PREFIX = "csawm_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_display_prefix(token: str) -> str:
    """The first characters, kept in clear so an operator can tell tokens apart in listings."""
    return token[: len(TOKEN_PREFIX) + 6]


_TOKEN_RE = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{8,}")
_TOKEN_PARAM_RE = re.compile(r"(?i)\b((?:access_)?token=)[^&\s\"]+")
REDACTED = TOKEN_PREFIX + "[redacted]"


def redact(text: str) -> str:
    """`text` with every API token, and every ``token=`` query value, replaced (issue 12: a token
    sent in a query string was written whole to the access log)."""
    return _TOKEN_PARAM_RE.sub(r"\1[redacted]", _TOKEN_RE.sub(REDACTED, text))


class RedactTokens(logging.Filter):
    """A logging filter that applies `redact` to the message and its string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True
