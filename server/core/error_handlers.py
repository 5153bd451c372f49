"""The handlers that turn `CsawmError` and the framework's own errors into the API's JSON shape
(``{"error": {"code": str, "message": str, ...extra}}``, see `server.core.errors`).

No framework wording reaches a user: a validation error is worded by `server.core.wording` (its one
table, `WORDS`, which the client shares), and the framework's own HTTP errors by `_HTTP_WORDS`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.core import wording
from server.core.errors import CsawmError


async def _handle_csawm_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CsawmError)
    return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=exc.headers)


async def _handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    body = {"error": {"code": "validation_error", "message": wording.problems(exc.errors())}}
    return JSONResponse(body, status_code=422)


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


#: The framework's own texts for its HTTP errors -> the project's words.
_HTTP_WORDS = {
    "Not Found": "no such page or API path: see /docs for the API",
    "Method Not Allowed": "this path does not take that HTTP method: see /docs for the API",
    "There was an error parsing the body": "the request body could not be read: send JSON (or a tar archive)",
}


async def _handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Errors raised by the framework itself (an unknown path, a body that is not UTF-8 JSON) in
    the same ``{"error": ...}`` shape as the API's own, in the project's words."""
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = str(exc.detail)
    body = {"error": {"code": code, "message": _HTTP_WORDS.get(detail, detail)}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CsawmError, _handle_csawm_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
