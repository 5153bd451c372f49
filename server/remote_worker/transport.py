"""The remote worker's HTTP transport: TLS as the operator configures it, retries, typed errors.

Rules (docs/remote-workers.md):

* ``https://`` verified against the system CA store, or against ``CSAWM_SERVER_CA`` (a PEM file)
  when set; ``http://`` only to a loopback address (tests, a TLS proxy on the same host): a worker
  token never crosses a network in clear.
* An optional client certificate (``CSAWM_WORKER_CERT`` with ``CSAWM_WORKER_KEY``) for operators
  who want mutual TLS at their proxy.
* A lost connection or a 5xx (the server restarting) is retried with capped, jittered exponential
  backoff for up to `retry_for_s`; any other answer is final and raised as `ApiError` with the server's
  error code (``test_set_mismatch``, ``lease_lost``, ...).
"""

from __future__ import annotations

import ipaddress
import logging
import random
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("csawm.remote_worker")

MAX_BACKOFF_S = 10.0


def jittered(delay: float) -> float:
    """`delay` less up to half of it, at random: workers cut off together do not retry together."""
    return delay * random.uniform(0.5, 1.0)


class TransportError(Exception):
    """The server could not be reached within the retry window, or its URL is not allowed."""


class ApiError(Exception):
    """The server answered with an error: `status` and its error `code`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class TlsConfig:
    ca: Path | None = None  # CSAWM_SERVER_CA
    cert: Path | None = None  # CSAWM_WORKER_CERT
    key: Path | None = None  # CSAWM_WORKER_KEY


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """`url` without a trailing slash; refused unless https, or http to a loopback address."""
    parts = urlsplit(url)
    host = parts.hostname
    if host and (parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))):
        return url.rstrip("/")
    raise TransportError(f"{url}: the server must be https:// (plain http:// only to a loopback address)")


def ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """The system CA store, or ``CSAWM_SERVER_CA`` alone; the client certificate when given."""
    if (tls.cert is None) != (tls.key is None):
        raise TransportError("CSAWM_WORKER_CERT and CSAWM_WORKER_KEY go together")
    context = ssl.create_default_context(cafile=str(tls.ca) if tls.ca else None)
    if tls.cert is not None and tls.key is not None:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    return context


class Transport:
    """Calls the worker API with the worker's token; see the module docstring."""

    def __init__(self, url: str, token: str, tls: TlsConfig | None = None, *, retry_for_s: float = 120.0):
        self.url = check_url(url)
        self.retry_for_s = retry_for_s
        self.client = httpx.Client(
            base_url=self.url + "/api/v1/worker",
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl_context(tls or TlsConfig()),
            timeout=httpx.Timeout(60.0, connect=10.0),
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call, retried across lost connections and 5xx answers (module docstring)."""
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.5
        while True:
            try:
                response = self.client.request(method, path, **kwargs)
                if response.status_code < 500:
                    break
                problem = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            if time.monotonic() + delay > deadline:
                raise TransportError(f"{method} {path}: the server is unreachable ({problem})")
            wait = jittered(delay)
            log.warning("%s %s: %s; retrying in %.1f s", method, path, problem, wait)
            time.sleep(wait)
            delay = min(delay * 2, MAX_BACKOFF_S)
        self.raise_for(response)
        return response

    @staticmethod
    def raise_for(response: httpx.Response) -> None:
        """Raise `ApiError` (with the server's error code) for a 4xx/5xx answer (its body read)."""
        if response.status_code < 400:
            return
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", response.text[:500]
        raise ApiError(response.status_code, code, message)
