"""The handlers that turn `CsawmError` and the framework's own errors into the API's JSON shape
(``{"error": {"code": str, "message": str, ...extra}}``, see `server.core.errors`)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.core.errors import CsawmError


async def _handle_csawm_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CsawmError)
    return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=exc.headers)


async def _handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    body = {"error": {"code": "validation_error", "message": "; ".join(parts)}}
    return JSONResponse(body, status_code=422)


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


async def _handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Errors raised by the framework itself (an unknown path, a body that is not UTF-8 JSON) in
    the same ``{"error": ...}`` shape as the API's own."""
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    body = {"error": {"code": code, "message": str(exc.detail)}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CsawmError, _handle_csawm_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
