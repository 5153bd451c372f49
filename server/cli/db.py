"""`csawm db upgrade`: apply the Alembic migrations to the configured database."""

from __future__ import annotations

from typing import Annotated

import typer

from server.cli._server_common import open_database, settings_or_exit
from server.core import migrate

app = typer.Typer(help="Database schema management (Alembic migrations only).", no_args_is_help=True)


@app.command("upgrade")
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Bring the database schema up to `revision` (default: the latest)."""
    settings = settings_or_exit()
    with open_database(settings, migrate_sqlite=False) as db:
        before = migrate.current_revision(db.engine)
        migrate.upgrade(db.engine, revision, phase=settings.phase)
        after = migrate.current_revision(db.engine)
    typer.echo(f"database at revision {after} (was {before})", err=True)


@app.command("current")
def current() -> None:
    """Print the current schema revision."""
    settings = settings_or_exit()
    with open_database(settings, migrate_sqlite=False) as db:
        typer.echo(migrate.current_revision(db.engine) or "none")
