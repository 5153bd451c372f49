"""The request guard: authentication and a body limit, both before any body is read (issue 12).

FastAPI reads and parses a request's body before it solves the endpoint's dependencies, so a body
model on an authenticated route used to be read whole (400 MB in memory) before the token was even
looked at. This ASGI middleware runs first, for every HTTP request:

1. **Authentication before the body.** When the matched route depends on `get_principal` (the
   routers put it on whole routers), the bearer token is resolved here, in a worker thread, and the
   `Principal` is handed to the dependency through the request state. A request without a valid
   token gets its 401 at once; its body is never read.
2. **A body limit while streaming.** Every body is capped at ``CSAWM_MAX_JSON_BYTES`` (JSON, forms,
   anything) except the raw archive of a route marked with `streamed_body`, which has its own
   streaming cap (`server.submissions.upload`). A declared ``Content-Length`` over the cap is
   refused before a byte is read; a chunked body is counted as it arrives and stopped at the first
   byte over the cap. Either way the answer is 413 ``{"error": {"code": "body_too_large", ...}}``.

Route matching repeats what the router does (``route.matches``) so the guard needs no list of
public paths: a new authenticated route is covered by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.core.errors import CsawmError, PayloadTooLarge, Unauthorized

PRINCIPAL_STATE_KEY = "csawm_principal"
_STREAMED_ATTR = "__csawm_streamed_body__"
_JSON_TYPES = ("application/json",)

F = TypeVar("F", bound=Callable[..., Any])


def streamed_body(endpoint: F) -> F:
    """Mark an endpoint whose raw (non-JSON) body it streams itself under its own cap."""
    setattr(endpoint, _STREAMED_ATTR, True)
    return endpoint


class BodyTooLarge(PayloadTooLarge):
    code = "body_too_large"


def _depends_on(dependant: Dependant, target: Callable[..., Any]) -> bool:
    return any(d.call is target or _depends_on(d, target) for d in dependant.dependencies)


def bearer_token(headers: Headers) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


class RequestGuard:
    """ASGI middleware; see the module docstring. `principal_of` resolves a token or raises."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, principal_dependency: Callable[..., Any]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.principal_dependency = principal_dependency
        self._needs_token: dict[int, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        route = self._route(scope)
        if route is not None and self._route_needs_token(route):
            try:
                principal = await self._authenticate(scope, headers)
            except CsawmError as exc:
                await _error(exc)(scope, receive, send)
                return
            scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        streamed = route is not None and getattr(route.endpoint, _STREAMED_ATTR, False)
        if streamed and content_type not in _JSON_TYPES:
            await self.app(scope, receive, send)
            return
        await self._limited(scope, receive, send, headers)

    def _route(self, scope: Scope) -> APIRoute | None:
        for route in scope["app"].router.routes:
            if isinstance(route, APIRoute) and route.matches(scope)[0] == Match.FULL:
                return route
        return None

    def _route_needs_token(self, route: APIRoute) -> bool:
        key = id(route)
        if key not in self._needs_token:
            self._needs_token[key] = _depends_on(route.dependant, self.principal_dependency)
        return self._needs_token[key]

    async def _authenticate(self, scope: Scope, headers: Headers) -> Any:
        from server.accounts.service import authenticate

        token = bearer_token(headers)
        if token is None:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        db = scope["app"].state.csawm.db

        def lookup() -> Any:
            with db.session() as session:
                return authenticate(session, token)

        return await anyio.to_thread.run_sync(lookup)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        cap = self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await _error(_too_large(cap))(scope, receive, send)
            return
        received = 0
        over = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    over = True
                    raise _too_large(cap)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # whatever the app made of the interrupted body, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _error(_too_large(cap))(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not started:
                await _error(_too_large(cap))(scope, receive, send)


def _too_large(cap: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body over the limit of {cap} bytes (CSAWM_MAX_JSON_BYTES)", limit_bytes=cap)


def _error(exc: CsawmError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=exc.headers)
