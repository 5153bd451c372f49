"""A small client for the OCI distribution API v2: manifests and blobs by digest, read-only.

Authentication follows the registry's ``WWW-Authenticate`` challenge: ``Basic`` (htpasswd, as
Docker Distribution does) sends the configured credentials; ``Bearer`` (a token service, as most
hosted registries do) exchanges them for a pull token scoped to the repository. Everything read is
content-addressed, so every manifest and blob is checked against its digest before it is used: a
registry (or anything between it and us) cannot substitute another image.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from server.registry.config import RegistryConfig
from server.registry.errors import ManifestNotFound, RegistryDenied, RegistryError, RegistryUnavailable

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MAX_MANIFEST_BYTES = 4 * 1024**2  # the distribution spec's own recommended limit
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as stored: its digest, media type, exact bytes and parsed JSON."""

    digest: str
    media_type: str
    raw: bytes
    body: dict[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def _ssl_context(config: RegistryConfig) -> ssl.SSLContext | bool:
    if config.insecure:
        return False  # plain HTTP (loopback only, enforced by the settings); no TLS at all
    if config.ca_file is not None:
        return ssl.create_default_context(cafile=str(config.ca_file))
    return True


class RegistryClient:
    """Read manifests and blobs from one registry. Use as a context manager (one HTTP pool)."""

    def __init__(self, config: RegistryConfig, *, timeout: float = 30.0) -> None:
        self.config = config
        self._http = httpx.Client(
            base_url=config.base_url,
            verify=_ssl_context(config),
            timeout=timeout,
            follow_redirects=True,  # blobs may be served from a redirect (object storage)
            trust_env=False,  # never through an environment proxy: the registry is configured here
        )
        self._tokens: dict[str, str] = {}  # scope -> bearer token

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def ping(self) -> None:
        """Check that the registry answers the API and accepts the server's credentials
        (``GET /v2/``), for a readiness check. Raises `RegistryDenied` or `RegistryUnavailable`."""
        response = self._authorized("/v2/", accept="application/json", scope="")
        response.close()
        if response.status_code in (401, 403):
            raise RegistryDenied(
                f"registry {self.config.host} refused the server's credentials ({response.status_code})"
            )
        if response.status_code != 200:
            raise RegistryUnavailable(f"registry {self.config.host} answered {response.status_code} on /v2/")

    def manifest(self, repository: str, digest: str) -> Manifest:
        """The manifest (or index) `digest` of `repository`, verified against its digest."""
        accept = ", ".join(sorted(MANIFEST_TYPES | INDEX_TYPES))
        response = self._get(
            repository, f"/v2/{repository}/manifests/{digest}", accept=accept, what=f"manifest {digest}"
        )
        raw = _bounded(response, MAX_MANIFEST_BYTES, f"manifest {digest}")
        _verify(raw, digest, f"manifest of {repository}")
        body = json_object(raw, f"manifest {digest} of {repository}", RegistryUnavailable)
        header_type = response.headers.get("content-type", "").split(";")[0].strip()
        media_type = body.get("mediaType") if isinstance(body.get("mediaType"), str) else header_type
        return Manifest(digest=digest, media_type=str(media_type), raw=raw, body=body)

    def blob(self, repository: str, digest: str, *, max_bytes: int) -> bytes:
        """A (small) blob such as an image config, verified against its digest."""
        response = self._get(
            repository, f"/v2/{repository}/blobs/{digest}", accept="*/*", what=f"blob {digest}"
        )
        raw = _bounded(response, max_bytes, f"blob {digest}")
        _verify(raw, digest, f"blob of {repository}")
        return raw

    def _authorized(self, path: str, *, accept: str, scope: str) -> httpx.Response:
        """GET `path`, answering one authentication challenge with the configured credentials."""
        token = self._tokens.get(scope)
        headers = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token else {})}
        response = self._send(path, headers)
        if response.status_code == 401:
            response.close()
            headers.update(self._answer_challenge(response, scope))
            response = self._send(path, headers)
        return response

    def _get(self, repository: str, path: str, *, accept: str, what: str) -> httpx.Response:
        response = self._authorized(path, accept=accept, scope=f"repository:{repository}:pull")
        if response.status_code == 200:
            return response
        status, detail = response.status_code, _error_detail(response)
        if status in (401, 403):
            raise RegistryDenied(
                f"registry {self.config.host} refused access to {repository} ({status}{detail}) "
                "with the server's credentials"
            )
        if status == 404:
            raise ManifestNotFound(f"{what} not found in {self.config.host}/{repository}")
        raise RegistryUnavailable(f"registry {self.config.host} answered {status}{detail} for {what}")

    def _send(self, path: str, headers: dict[str, str]) -> httpx.Response:
        """GET without reading the body yet (`_bounded` reads it, up to a limit)."""
        try:
            return self._http.send(self._http.build_request("GET", path, headers=headers), stream=True)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"registry {self.config.host} unreachable: {exc}") from None

    def _basic(self) -> str:
        pair = f"{self.config.username}:{self.config.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def _answer_challenge(self, response: httpx.Response, scope: str) -> dict[str, str]:
        challenge = response.headers.get("www-authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        if scheme == "basic":
            if not self.config.has_credentials:
                raise RegistryDenied(
                    f"registry {self.config.host} requires credentials; set CSAWM_REGISTRY_USERNAME "
                    "and CSAWM_REGISTRY_PASSWORD"
                )
            return {"Authorization": self._basic()}
        if scheme == "bearer" and "realm" in params:
            token = self._fetch_token(params["realm"], params.get("service"), scope)
            self._tokens[scope] = token
            return {"Authorization": f"Bearer {token}"}
        raise RegistryUnavailable(f"registry {self.config.host} sent an unsupported challenge {challenge!r}")

    def _fetch_token(self, realm: str, service: str | None, scope: str) -> str:
        # An empty scope (the /v2/ ping) asks for a token that only proves who we are.
        query = {**({"scope": scope} if scope else {}), **({"service": service} if service else {})}
        headers = {"Authorization": self._basic()} if self.config.has_credentials else {}
        try:
            response = self._http.get(realm, params=query, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"token service {realm} unreachable: {exc}") from None
        if response.status_code in (401, 403):
            raise RegistryDenied(f"token service {realm} refused the server's credentials for {scope}")
        if response.status_code != 200:
            raise RegistryUnavailable(f"token service {realm} answered {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            raise RegistryUnavailable(f"token service {realm} sent no JSON") from None
        token = payload.get("token") or payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryUnavailable(f"token service {realm} sent no token")
        return token


def _bounded(response: httpx.Response, max_bytes: int, what: str) -> bytes:
    """Read a streamed body, refusing (and closing) it once it passes `max_bytes`."""
    try:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise RegistryUnavailable(f"{what} is {declared} bytes, over the limit of {max_bytes}")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise RegistryUnavailable(f"{what} is over the limit of {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise RegistryUnavailable(f"reading {what} failed: {exc}") from None
    finally:
        response.close()


def json_object(raw: bytes, what: str, error: type[RegistryError]) -> dict[str, Any]:
    """`raw` parsed as a JSON object, else `error` saying that `what` is not one."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise error(f"{what} is not JSON") from None
    if not isinstance(body, dict):
        raise error(f"{what} is not a JSON object")
    return body


def _verify(raw: bytes, digest: str, what: str) -> None:
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    if actual != digest:
        raise RegistryUnavailable(f"{what} does not match its digest {digest} (got {actual})")


def _error_detail(response: httpx.Response) -> str:
    """The first error code of a distribution-spec error body, if any (``: MANIFEST_UNKNOWN``)."""
    try:
        errors = json.loads(_bounded(response, 64 * 1024, "error response")).get("errors")
        return f": {errors[0]['code']}" if errors else ""
    except (RegistryUnavailable, ValueError, AttributeError, LookupError, TypeError):
        return ""
