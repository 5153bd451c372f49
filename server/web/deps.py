"""Dependencies of the web pages: the cookie signer, the logged-in user, the plot cache."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.core.deps import DatabaseDep, StateDep
from server.core.errors import Unauthorized
from server.core.principal import Principal, principal_for_hash
from server.web.cache import PlotCache
from server.web.session import SessionSigner, is_revoked


async def get_signer(state: StateDep) -> SessionSigner:  # async: no thread hand-off (core.deps)
    return state.parts.get(SessionSigner)


SignerDep = Annotated[SessionSigner, Depends(get_signer)]


def get_web_user(request: Request, signer: SignerDep, db: DatabaseDep) -> Principal | None:
    """The logged-in user of this browser, or None (no cookie, bad signature, logged out, revoked
    token)."""
    web_session = signer.session(request)
    if web_session is None:
        return None
    with db.session() as session:
        if is_revoked(session, web_session.session_id):
            return None
        try:
            return principal_for_hash(session, web_session.token_hash)
        except Unauthorized:
            return None


WebUser = Annotated[Principal | None, Depends(get_web_user)]


async def get_plot_cache(state: StateDep) -> PlotCache:
    return state.parts.get(PlotCache)


PlotCacheDep = Annotated[PlotCache, Depends(get_plot_cache)]
