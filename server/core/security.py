"""API tokens: random, shown once, stored only as a SHA-256 hash.

A token is ``csawm_`` + 43 URL-safe characters (32 random bytes). Tokens carry 256 bits of entropy,
so an unsalted fast hash is enough: no dictionary exists to attack, and lookup stays one indexed
equality on ``token_hash``.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "csawm_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_display_prefix(token: str) -> str:
    """The first characters, kept in clear so an operator can tell tokens apart in listings."""
    return token[: len(TOKEN_PREFIX) + 6]
