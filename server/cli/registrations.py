"""`csawm admin registrations | approve | reject`: maintainers decide on self-registrations from a
terminal, through the same service as `/api/v1/admin/registrations` (audited as ``cli:<user>``)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from server.cli import admin_words as words
from server.cli._server_common import admin_session, cli_actor, settings_or_exit
from server.core.text import visible
from server.models import RegistrationState
from server.registrations import service
from server.registrations.schemas import RegistrationOut


def list_registrations(
    state: Annotated[
        RegistrationState | None, typer.Option("--state", help="Only registrations in this state.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list, as the API returns it.")] = False,
) -> None:
    """List registrations as a table: id, state, email, team, name and affiliation (answers with --json)."""
    with admin_session(write=False) as session:
        rows = [RegistrationOut.of(r) for r in service.listing(session, state)]
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    if not rows:
        typer.echo("no registrations", err=True)
        return
    lines = []
    for r in rows:
        ((action, team),) = r.team.items()
        fields = (str(r.id), r.state.value, r.email, f"{action} {team}", r.name, r.affiliation)
        lines.append([visible(f) for f in fields])
    typer.echo(words.table(["ID", "STATE", "EMAIL", "TEAM", "NAME", "AFFILIATION"], lines))


def approve(registration_id: Annotated[int, typer.Argument(help="The registration's id.", min=1)]) -> None:
    """Approve a verified registration: create the team and the user (or, for a join, wait for the
    team), then mail the welcome link."""
    settings = settings_or_exit()
    with admin_session(settings) as session:
        reg = service.approve(session, settings, registration_id, actor=cli_actor())
        typer.echo(f"registration {reg.id} ({visible(reg.email)}): {reg.state.value}", err=True)


def reject(
    registration_id: Annotated[int, typer.Argument(help="The registration's id.", min=1)],
    reason: Annotated[str, typer.Option("--reason", help="Why; the applicant is told.")],
) -> None:
    """Reject a registration with a reason (mailed to a verified address)."""
    with admin_session() as session:
        reg = service.reject(session, registration_id, reason, actor=cli_actor())
        typer.echo(f"registration {reg.id} ({visible(reg.email)}): rejected", err=True)
