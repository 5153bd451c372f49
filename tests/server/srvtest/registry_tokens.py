"""A minimal token service for Docker Distribution's ``auth.token`` mode, so the tests exercise the
``Bearer`` challenge most hosted registries use, against the real registry binary.

The protocol is the distribution "token authentication specification": the registry answers 401
with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``; the client asks the realm for a
token with its credentials (HTTP Basic); the realm returns a JWT (RS256, the signing certificate in
the ``x5c`` header) whose ``access`` claim lists the granted actions; the registry verifies it
against its ``rootcertbundle``. This service grants every requested action to its one user and
refuses anyone else with 401. Signing uses the openssl CLI (no crypto library needed).
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

SERVICE = "csawm-test-registry"
ISSUER = "csawm-test-tokens"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenService:
    realm: str
    cert: Path  # the registry's rootcertbundle
    requests: list[str]  # every scope asked for, in order (for assertions)


def _jwt(key: Path, cert_der: bytes, subject: str, access: list[dict[str, object]]) -> str:
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(cert_der).decode()]}
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 30,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": access,
    }
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key)],
        input=signing_input.encode(),
        capture_output=True,
        check=True,
    ).stdout
    return f"{signing_input}.{_b64url(signature)}"


@contextmanager
def token_service(root: Path, username: str, password: str) -> Iterator[TokenService]:
    """Serve tokens on a free loopback port until the block ends."""
    key, cert = root / "token-key.pem", root / "token-cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={ISSUER}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    cert_der = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True, capture_output=True
    ).stdout
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            scopes = query.get("scope", [])
            asked.extend(scopes)
            if self.headers.get("Authorization") != expected or query.get("service") != [SERVICE]:
                self._send(401, {"details": "bad credentials"})
                return
            access = []
            for scope in scopes:
                kind, name, actions = scope.split(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            token = _jwt(key, cert_der, username, access)
            self._send(200, {"token": token, "access_token": token, "expires_in": 300})

        def _send(self, status: int, body: dict[str, object]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TokenService(f"http://127.0.0.1:{server.server_address[1]}/token", cert, asked)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
