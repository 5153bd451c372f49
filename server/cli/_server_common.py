"""Helpers shared by the server-side commands (`serve`, `worker`, `db`, `admin`)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from server.cli import fail
from server.core import migrate
from server.core.db import Database
from server.core.errors import CsawmError
from server.core.settings import Settings, SettingsError, load_settings


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(str(exc)) from None


@contextmanager
def open_database(settings: Settings, *, migrate_sqlite: bool = True) -> Iterator[Database]:
    """Open the configured database; an embedded SQLite is brought to the latest schema first."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database.connect(settings.effective_database_url, session_info=settings.session_info)
    try:
        if migrate_sqlite and db.is_sqlite:
            migrate.upgrade(db.engine, phase=settings.phase)
        yield db
    finally:
        db.dispose()


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a service error into one line on stderr and exit code 2."""
    try:
        yield
    except CsawmError as exc:
        raise fail(exc.message) from None


@contextmanager
def admin_session(settings: Settings | None = None, *, write: bool = True) -> Iterator[Session]:
    """One transaction on the configured database; a service error exits 2 (`reported_errors`)."""
    settings = settings or settings_or_exit()
    with open_database(settings) as db, reported_errors(), db.transaction(write=write) as session:
        yield session
