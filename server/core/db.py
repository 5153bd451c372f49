"""Engine and session factories for SQLite (embedded) and PostgreSQL.

SQLite: WAL, foreign keys, a busy timeout, and transactions opened by us, not by the driver (pysqlite
otherwise defers BEGIN and breaks SAVEPOINTs). Sessions made by `Database.write_session` start with
``BEGIN IMMEDIATE`` so a read-then-write transaction (the quota check-and-charge, a run lease) holds
the write lock from its first statement and concurrent writers queue on the busy timeout instead of
failing with "database is locked" on upgrade. On PostgreSQL the same code locks rows with
``SELECT ... FOR UPDATE`` (and ``SKIP LOCKED`` for leases); there the write session is an ordinary one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    """Build the engine for `url`. An SQLite file (it holds token hashes) is created 0600 in a folder
    created 0700 before SQLite opens it, whichever command opens it first (SQLite gives its journal
    and WAL files the database file's mode)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _install_sqlite_hooks(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@dataclass
class Database:
    """The engine plus two session factories: `session` (reads, deferred) and `write_session`."""

    engine: Engine
    session: sessionmaker[Session]
    write_session: sessionmaker[Session]

    @classmethod
    def connect(cls, url: str, *, session_info: dict[str, object] | None = None) -> Database:
        """`session_info` is copied into every session's ``info`` (e.g. whether notification email is
        on, read by `server.notifications.outbox.enqueue` inside a state change's transaction)."""
        engine = make_engine(url)
        info = dict(session_info or {})
        write_engine = (
            engine.execution_options(sqlite_begin="IMMEDIATE") if engine.dialect.name == "sqlite" else engine
        )
        return cls(
            engine=engine,
            session=sessionmaker(engine, expire_on_commit=False, info=info),
            write_session=sessionmaker(write_engine, expire_on_commit=False, info=info),
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A session scope for background work: commit on success, roll back on error."""
        factory = self.write_session if write else self.session
        with factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
