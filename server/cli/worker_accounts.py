"""`csawm admin create-worker NAME` / `revoke-worker NAME`: accounts of remote workers (issue 25).

`create-worker` prints the worker's token alone on stdout (for ``CSAWM_WORKER_TOKEN``)."""

from __future__ import annotations

from typing import Annotated

import typer

from server.cli._server_common import admin_session, cli_actor
from server.worker_api import accounts

WorkerName = Annotated[str, typer.Argument(help="The worker's name: lowercase letters, digits and '-'.")]


def create_worker(name: WorkerName) -> None:
    """Create a remote worker account and print its token alone on stdout."""
    with admin_session() as session:
        _, token = accounts.create_worker(session, name, actor=cli_actor())
    typer.echo(f"created worker {name}", err=True)
    typer.echo(token)


def revoke_worker(name: WorkerName) -> None:
    """Revoke a remote worker's token at once (its run goes back to the queue)."""
    with admin_session() as session:
        accounts.revoke_worker(session, name, actor=cli_actor())
    typer.echo(f"revoked worker {name}", err=True)
