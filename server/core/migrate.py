"""Schema management through Alembic only (`csawm db upgrade`; `csawm serve` on embedded SQLite)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def alembic_config(url: str) -> Config:
    config = Config(str(_INI))
    config.set_main_option("script_location", str(_INI.parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head", *, phase: str | None = None) -> None:
    """Apply migrations up to `revision` on `engine`'s database. `phase` is ``CSAWM_PHASE``: the
    phase a server without phase rows gets a row for (``0010_phase_rows``; the environment's when None)."""
    _migrate(engine, command.upgrade, revision, phase)


def downgrade(engine: Engine, revision: str) -> None:
    """Undo migrations down to `revision` (tests of an upgrade from an older schema)."""
    _migrate(engine, command.downgrade, revision)


def _migrate(
    engine: Engine, step: Callable[[Config, str], None], revision: str, phase: str | None = None
) -> None:
    """Run `step` in one transaction. On SQLite with foreign keys off: a batch migration copies a
    table, drops the old one and renames the copy, and with foreign keys on, dropping `users` would
    cascade to every token (SQLite ignores the pragma inside a transaction, so it is set before)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                config.attributes["connection"] = conn
                if phase is not None:
                    config.attributes["csawm_phase"] = phase
                step(config, revision)
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_up_to_date(engine: Engine) -> bool:
    return (
        current_revision(engine)
        == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    )
