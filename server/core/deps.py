"""Request dependencies as `Annotated` aliases, in one place.

The request owns the transaction: `SessionDep` commits when the endpoint returns normally and rolls
back on any error; services only flush. Mutating requests get a write session (``BEGIN IMMEDIATE``
on SQLite) that starts lazily at the first query, so a long upload holds no transaction open.
Authentication reads the token in its own short session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from server.accounts import service as accounts
from server.core.db import Database
from server.core.errors import Forbidden, Unauthorized
from server.core.principal import Principal
from server.core.settings import Settings
from server.core.state import AppState
from server.models import Role

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_bearer = HTTPBearer(auto_error=False, description="An API token issued by `csawm admin issue-token`.")


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.csawm
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_database(state: StateDep) -> Database:
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
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    with db.session() as session:
        return accounts.authenticate(session, credentials.credentials)


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
