"""The OpenAPI document, complete: every error the API can answer is documented in its real shape.

FastAPI documents only the 200 and a 422 in its own ``{"detail": [...]}`` shape, while this API
answers every error as ``{"error": {"code", "message", ...}}`` (`server.core.errors`). `complete`
post-processes the generated document once (issue 12):

* every operation with parameters or a body documents 422 with the `ErrorOut` schema (FastAPI's
  ``HTTPValidationError`` is dropped);
* an operation with a bearer security requirement documents 401 and 403;
* an operation with a request body documents 413 (``CSAWM_MAX_JSON_BYTES``, `server.core.guard`);
* schemas referenced from ``openapi_extra`` (`EXTRA_SCHEMAS`, e.g. ``RegistrySubmissionIn``, which
  no endpoint takes as a parsed body) are added to ``components.schemas``, so no reference dangles.

Routers add the statuses only they can answer (404, 409, 429, ...) with `error_responses`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

_REF = "#/components/schemas/{model}"
_DESCRIPTIONS = {
    400: "Bad request (the message says what is wrong)",
    401: "Missing, unknown, revoked or expired bearer token",
    403: "The token's role may not do this (a submission: the data-use agreement is not accepted)",
    404: "No such resource, or not visible to the caller",
    408: "The request body stopped arriving (CSAWM_UPLOAD_IDLE_TIMEOUT) or came too slowly",
    409: "Conflicts with the resource's current state",
    413: "Request body over its limit",
    422: "A parameter or the body failed validation",
    429: "Over quota or too many concurrent uploads (see Retry-After)",
    503: "Not ready (the message names the failing check)",
    507: "The server is short of disk space; nothing was read or charged",
}


class ErrorDetail(BaseModel):
    """``code`` is stable and machine-readable; ``message`` is for people. Some errors add fields
    (e.g. ``limit_bytes``, ``next_slot_at``)."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class ErrorOut(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a router or route: each status with the `ErrorOut` body."""
    return {status: {"description": _DESCRIPTIONS[status], "model": ErrorOut} for status in statuses}


def complete(document: dict[str, Any], extra_schemas: list[type[BaseModel]]) -> dict[str, Any]:
    """Apply the rules of the module docstring to a generated document, in place; return it."""
    models: list[type[BaseModel]] = [ErrorOut, *extra_schemas]
    _, schema = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(schema.get("$defs", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            statuses: set[int] = set()
            if operation.get("parameters") or "requestBody" in operation:
                statuses.add(422)
            if operation.get("security"):
                statuses |= {401, 403}
            if "requestBody" in operation:
                statuses.add(413)
            for status in sorted(statuses):
                responses[str(status)] = {
                    "description": _DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorOut")}}},
                }
    return document
