"""Request dependencies as `Annotated` aliases, in one place.

The request owns the transaction: `SessionDep` commits when the endpoint returns normally and rolls
back on any error; services only flush. Mutating requests get a write session (``BEGIN IMMEDIATE``
on SQLite) that starts lazily at the first query, so a long upload holds no transaction open.
Authentication reads the token in its own short session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from server.core.db import Database
from server.core.errors import Forbidden, Unauthorized
from server.core.guard import PRINCIPAL_STATE_KEY
from server.core.principal import Principal, authenticate
from server.core.settings import Settings
from server.core.state import AppState
from server.models import Role

#: Ids, quota values and counts are INTEGER columns: 32-bit on PostgreSQL. A path or query integer
#: outside this range is a 422, never a 500 from the database driver (issue 12).
DB_INT_MAX = 2**31 - 1
IdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
OffsetQuery = Annotated[int, Query(ge=0, le=DB_INT_MAX)]

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_bearer = HTTPBearer(auto_error=False, description="An API token issued by `csawm admin issue-token`.")


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.csawm
    return state


# The dependencies that only read the app's state are `async def`: FastAPI runs a plain `def`
# dependency in its thread pool, a hand-off per dependency on every request.


async def _state(request: Request) -> AppState:
    return get_state(request)


StateDep = Annotated[AppState, Depends(_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_database(state: StateDep) -> Database:
    return state.db


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]


def get_session(request: Request, db: DatabaseDep) -> Iterator[Session]:
    factory = db.session if request.method in _READ_METHODS else db.write_session
    with factory() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        else:
            session.commit()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(
    request: Request,
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller. `server.core.guard.RequestGuard` has normally resolved it already, before the
    body was read; the lookup here serves an app mounted without the guard."""
    resolved = getattr(request.state, PRINCIPAL_STATE_KEY, None)
    if isinstance(resolved, Principal):
        return resolved
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    with db.session() as session:
        return authenticate(session, credentials.credentials)


CurrentUser = Annotated[Principal, Depends(get_principal)]


def require_maintainer(user: CurrentUser) -> Principal:
    if user.role not in (Role.MAINTAINER, Role.ADMIN):
        raise Forbidden("this action needs the maintainer or admin role")
    return user


def require_admin(user: CurrentUser) -> Principal:
    if user.role != Role.ADMIN:
        raise Forbidden("this action needs the admin role")
    return user


MaintainerUser = Annotated[Principal, Depends(require_maintainer)]
AdminUser = Annotated[Principal, Depends(require_admin)]
