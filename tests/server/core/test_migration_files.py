"""Migration files are named in the order of their revision chain (issue 20): `ls` reads the history."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from server.core import migrate


def test_migration_files_sort_in_chain_order() -> None:
    scripts = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert len(scripts.get_heads()) == 1 and len(scripts.get_bases()) == 1  # one straight line
    chain = [Path(script.path).name for script in reversed(list(scripts.walk_revisions()))]
    files = sorted(p.name for p in Path(scripts.versions).glob("*.py"))
    assert files == chain
