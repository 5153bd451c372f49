"""Pulling a model image from a registry by digest, and checking that it is the image submitted.

The server records two things for a registry image: its reference pinned by manifest digest
(``HOST/REPO@sha256:<manifest>``) and its image id (``sha256:<config>``), read from the registry
before the submission was charged. The engine checks the manifest against the digest it pulled by;
`pull` then checks that the image it now holds has the recorded id, which also covers a reference
to a multi-platform index (the engine picks the platform's entry, which must be the one inspected).

Credentials are handed to the engine for this one pull only (``auth_config``), never stored in an
engine login. For a registry with a private CA the engine itself must trust it
(``/etc/docker/certs.d/HOST/ca.crt``); for a plain-HTTP registry it must be loopback or listed in
the engine's ``insecure-registries``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import docker
import requests

from runner.errors import ImageInvalidError, PermanentInfraError, RunnerError, TransientInfraError

_REFERENCE = re.compile(r"^(?P<repository>[^@\s]+/[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")
_AUTH_FAILURES = ("unauthorized", "no basic auth credentials", "denied", "authentication required")


@dataclass(frozen=True)
class RegistryAuth:
    """Pull credentials for one registry (``CSAWM_REGISTRY_USERNAME`` / ``_PASSWORD``)."""

    username: str
    password: str = field(repr=False)


ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


def engine_error(exc: Exception, what: str) -> RunnerError:
    """Map an engine exception to the taxonomy: 5xx, 409 and connection trouble are transient."""
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        explanation = exc.explanation or str(exc)
        if status >= 500 or status == 409:
            return TransientInfraError(f"{what}: the engine answered {status}: {explanation}")
        return PermanentInfraError(f"{what}: the engine refused ({status}): {explanation}")
    return TransientInfraError(f"{what}: the engine is unreachable: {exc}")


def _error(exc: Exception, reference: str) -> RunnerError:
    if isinstance(exc, docker.errors.APIError):
        explanation = str(exc.explanation or exc)
        if exc.status_code == 404 or "manifest unknown" in explanation:
            return ImageInvalidError(f"image {reference} is no longer in the registry: {explanation}")
        if any(word in explanation.lower() for word in _AUTH_FAILURES):
            return PermanentInfraError(
                f"the registry refused the configured credentials for {reference}: {explanation} "
                "(check CSAWM_REGISTRY_USERNAME / CSAWM_REGISTRY_PASSWORD)"
            )
    return engine_error(exc, f"pulling {reference}")


def pull(
    client: docker.DockerClient, reference: str, auth: RegistryAuth | None, *, expected_image_id: str
) -> str:
    """Pull `reference` (``HOST/REPO@sha256:...``) and return its image id, which must be
    `expected_image_id`.

    Raises
    ------
    ImageInvalidError
        The reference is not pinned by digest, or the registry no longer holds it.
    PermanentInfraError
        The registry refused the credentials, or the pulled image is not the expected one.
    TransientInfraError
        The engine or the registry could not be reached or failed (5xx).
    """
    match = _REFERENCE.match(reference)
    if match is None:
        raise ImageInvalidError(
            f"image {reference!r} is not a registry reference pinned by digest (REPO@sha256:...)"
        )
    auth_config: dict[str, Any] | None = (
        {"username": auth.username, "password": auth.password} if auth is not None else None
    )
    try:
        # Streamed, so a failure reported in the middle of the pull is seen (the engine answers
        # 200 first and reports layer errors in the stream).
        for event in client.api.pull(
            match["repository"], tag=match["digest"], auth_config=auth_config, stream=True, decode=True
        ):
            if isinstance(event, dict) and event.get("error"):
                raise docker.errors.APIError(str(event["error"]), explanation=str(event["error"]))
        image_id = str(client.images.get(reference).id)
    except ENGINE_ERRORS as exc:
        raise _error(exc, reference) from None
    if image_id != expected_image_id:
        raise PermanentInfraError(
            f"pulled {reference} is image {image_id}, not the image {expected_image_id} checked at "
            "submission; the run was not started"
        )
    return image_id
