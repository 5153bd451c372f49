"""The request guard: authentication and a body limit, both before any body is read (issue 12).

FastAPI reads and parses a request's body before it solves the endpoint's dependencies, so a body
model on an authenticated route used to be read whole (400 MB in memory) before the token was even
looked at. This ASGI middleware runs first, for every HTTP request:

1. **Authentication before the body.** When the app first asks for the body of a route that
   depends on `get_principal` (the routers put it on whole routers), the bearer token is resolved
   here, in a worker thread, and the `Principal` is handed to the dependency through the request
   state. A request without a valid token gets its 401 then; its body is never read.
2. **A body limit while streaming.** Every body is capped at ``CSAWM_MAX_JSON_BYTES`` (JSON, forms,
   anything) except the raw archive of a route marked with `streamed_body`, which has its own
   streaming cap (`server.submissions.upload`). A declared ``Content-Length`` over the cap is
   refused before a byte is read; a chunked body is counted as it arrives and stopped at the first
   byte over the cap. Either way the answer is 413 ``{"error": {"code": "body_too_large", ...}}``.

The guard reads the route the router chose (``scope["route"]``) and whether it depends on
`get_principal`, so it needs no list of public paths: a new authenticated route is covered by
construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.core.errors import CsawmError, PayloadTooLarge, Unauthorized
from server.core.principal import Principal, authenticate
from server.core.state import AppState

PRINCIPAL_STATE_KEY = "csawm_principal"
_STREAMED_ATTR = "__csawm_streamed_body__"

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
    """ASGI middleware; see the module docstring.

    It acts when the app first asks for the body: by then the router has chosen the route and put
    it in ``scope["route"]``, so the guard knows whether the route needs a token and whether it
    streams its own body, without repeating the routing. An endpoint that never reads a body is
    left to its dependencies. When the guard refuses, whatever the app makes of the interrupted
    body is replaced by the guard's own answer.
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, principal_dependency: Callable[..., Any]
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.principal_dependency = principal_dependency
        self._needs_token: dict[int, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cap = self.max_body_bytes
        first = True
        capped = True
        received = 0
        refusal: CsawmError | None = None
        started = False

        async def guarded_receive() -> Message:
            nonlocal first, capped, received, refusal
            if refusal is not None:
                raise refusal
            if first:
                first = False
                try:
                    capped = await self._before_body(scope, headers)
                except CsawmError as exc:
                    refusal = exc
                    raise
            message = await receive()
            if capped and message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    refusal = _too_large(cap)
                    raise refusal
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _error(refusal)(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except CsawmError as exc:
            if exc is not refusal or started:
                raise
            started = True
            await _error(exc)(scope, receive, send)

    async def _before_body(self, scope: Scope, headers: Headers) -> bool:
        """Authenticate when the route needs a token; refuse a declared length over the cap.
        Returns whether the body is capped (False for a `streamed_body` route's raw archive)."""
        route = scope.get("route")
        state = scope.setdefault("state", {})
        if (
            isinstance(route, APIRoute)
            and self._route_needs_token(route)
            and PRINCIPAL_STATE_KEY not in state
        ):
            state[PRINCIPAL_STATE_KEY] = await self._authenticate(scope, headers)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if (
            getattr(getattr(route, "endpoint", None), _STREAMED_ATTR, False)
            and content_type != "application/json"
        ):
            return False
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        return True

    def _route_needs_token(self, route: APIRoute) -> bool:
        key = id(route)
        if key not in self._needs_token:
            self._needs_token[key] = _depends_on(route.dependant, self.principal_dependency)
        return self._needs_token[key]

    async def _authenticate(self, scope: Scope, headers: Headers) -> Principal:
        token = bearer_token(headers)
        if token is None:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        state: AppState = scope["app"].state.csawm

        def lookup() -> Principal:
            with state.db.session() as session:
                return authenticate(session, token)

        return await anyio.to_thread.run_sync(lookup)


def _too_large(cap: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body over the limit of {cap} bytes (CSAWM_MAX_JSON_BYTES)", limit_bytes=cap)


def _error(exc: CsawmError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=exc.headers)
