"""One error base class carrying its HTTP status; one handler turns it into JSON.

Response body: ``{"error": {"code": str, "message": str, ...extra}}``. A model that crashed is not an
HTTP error: it is data on the run (status, error_code, error_message).

The handlers live in `server.core.error_handlers`: this module imports no web framework, so the
researcher's client (which shares these types through `server.core.text`) installs without one.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CsawmError(Exception):
    """Base of every error the API reports on purpose."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class BadRequest(CsawmError):
    """400 ``bad_request``, as the base class."""


class InvalidArchive(CsawmError):
    status_code = 422
    code = "archive_invalid"


class Unauthorized(CsawmError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(CsawmError):
    status_code = 403
    code = "forbidden"


class AgreementRequired(Forbidden):
    """The caller has not accepted the current data-use agreement (``CSAWM_DUA_FILE``); the error
    carries its ``version`` and the ``url`` of the page to read and accept it."""

    code = "agreement_required"


class NotFound(CsawmError):
    status_code = 404
    code = "not_found"


class Conflict(CsawmError):
    status_code = 409
    code = "conflict"


class AgreementOutdated(Conflict):
    """An acceptance named a version of the data-use agreement that is no longer the current one."""

    code = "agreement_outdated"


class TransitionConflict(CsawmError):
    status_code = 409
    code = "invalid_state"


class DuplicateSubmission(CsawmError):
    status_code = 409
    code = "duplicate_submission"


class PhaseClosed(CsawmError):
    """No phase is open now (issue 15): nothing was read or charged; ``next_opens_at`` says when."""

    status_code = 403
    code = "phase_closed"


class SelectionLimit(CsawmError):
    status_code = 409
    code = "selection_limit"


class PayloadTooLarge(CsawmError):
    status_code = 413
    code = "upload_too_large"


class InsufficientStorage(CsawmError):
    """The server's disk is too full to take an upload; nothing was read or charged."""

    status_code = 507
    code = "insufficient_storage"


class RequestTimeout(CsawmError):
    status_code = 408
    code = "request_timeout"


class TooManyUploads(CsawmError):
    status_code = 429
    code = "too_many_uploads"


class QuotaExceeded(CsawmError):
    status_code = 429
    code = "quota_exceeded"


class RegistryFailure(CsawmError):
    """The image registry failed or refused the server (issue 13): nothing was queued or charged."""

    status_code = 503
    code = "registry_unavailable"


class NotReady(CsawmError):
    status_code = 503
    code = "not_ready"
