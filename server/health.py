"""Liveness, readiness and Prometheus metrics endpoints (no auth; ``/metrics`` shows the operator's
series only to ``CSAWM_METRICS_TOKEN``, see `server.core.metrics`).

Readiness asks the worker and the registry, so it sits above them, beside the app, never in
`server.core` (which imports no feature package: docs/design.md#layers)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.core import migrate
from server.core.deps import StateDep
from server.core.errors import NotReady
from server.core.metrics import operator_view
from server.core.openapi import error_responses
from server.registry.client import RegistryClient
from server.registry.config import RegistryConfig
from server.registry.errors import RegistryError
from server.worker import presence
from server.worker.loop import Worker

router = APIRouter(tags=["health"])
READYZ_REGISTRY_TIMEOUT_S = 5.0  # a probe must answer well inside the kubelet's probe timeout


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(state: StateDep) -> dict[str, str]:
    """Ready when every check passes; else 503 naming the failing ones in ``error.checks``.

    * ``database``: it answers and its schema is at the latest migration;
    * ``worker`` (with an embedded worker): its thread is alive and its heartbeat row is younger
      than three lease TTLs;
    * ``test_set`` (with an embedded worker): the worker could prepare the hidden test set and
      verify that the models' input is that test set (`server.worker.test_set`);
    * ``registry`` (with ``CSAWM_REGISTRY``): the registry answers ``/v2/`` and accepts the server's
      credentials — without it no archive can be accepted and no Job can pull its image.
    """
    failing: dict[str, str] = {}
    try:
        with state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        if not migrate.is_up_to_date(state.db.engine):
            failing["database"] = "database schema is not at the latest migration (run `csawm db upgrade`)"
    except SQLAlchemyError as exc:
        failing["database"] = f"database unreachable: {exc.__class__.__name__}"
    worker = state.parts.find(Worker)
    if worker is not None:
        limit = 3 * state.settings.lease_ttl.total_seconds()
        age = None if "database" in failing else _heartbeat_age(state, worker.name)
        if not worker.alive:
            failing["worker"] = "the embedded worker is not running"
        elif age is not None and age > limit:
            failing["worker"] = (
                f"the embedded worker's last heartbeat is {age:.0f} s old (limit {limit:.0f} s)"
            )
        if worker.blocked:
            failing["test_set"] = worker.blocked
    if (registry_problem := _registry_problem(state)) is not None:
        failing["registry"] = registry_problem
    if failing:
        raise NotReady("; ".join(failing.values()), checks=sorted(failing), details=failing)
    return {"status": "ready"}


def _registry_problem(state: StateDep) -> str | None:
    """None when no registry is configured or it answers with the server's credentials."""
    config = RegistryConfig.from_settings(state.settings)
    if config is None:
        return None
    try:
        with RegistryClient(config, timeout=READYZ_REGISTRY_TIMEOUT_S) as client:
            client.ping()
    except RegistryError as exc:
        return str(exc)
    return None


def _heartbeat_age(state: StateDep, name: str) -> float | None:
    try:
        return presence.age_s(state.db, name)
    except SQLAlchemyError:
        return None


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
        **error_responses(401),
    },
)
def metrics(request: Request, state: StateDep) -> Response:
    """Anyone: the queue depth and whether a worker is alive. With ``Authorization: Bearer
    <CSAWM_METRICS_TOKEN>``: every series (runs by status and error, stage durations, workers,
    uploads); a wrong or unexpected token is a 401."""
    operator = operator_view(request.headers.get("authorization"), state.settings)
    registry = state.metrics.registry if operator else state.metrics.public_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
