"""Run a `csawm` command in a fresh interpreter in which the server's dependencies cannot be
imported, as after ``pip install csawm-leaderboard`` without the ``server`` extra.

A meta path finder refuses `SERVER_ONLY`: an import of one raises `ModuleNotFoundError` exactly as a
missing distribution does. The fresh-venv test (test_client_install.py) proves the same on a real
install; this one runs in seconds in the inner loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The top-level modules of the `server` extra (pyproject.toml) that the client must never need
#: (markdown-it-py is not among them: rich needs it).
SERVER_ONLY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "kubernetes",
    "sqlalchemy",
    "alembic",
    "pydantic_settings",
    "jinja2",
    "matplotlib",
    "prometheus_client",
    "psycopg",
    "yaml",
    "multipart",
    "itsdangerous",
    "swagger_ui_bundle",
)

_PRELUDE = f"""
import sys
from importlib.abc import MetaPathFinder

BLOCKED = {SERVER_ONLY!r}

class Blocked(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Blocked())
"""


def run_blocked(
    code: str, *, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`code` run by this interpreter after the blocker is installed; the tree under test first."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", _PRELUDE + code],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def csawm_blocked(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``csawm ARGS`` without the server's dependencies."""
    code = f"import sys\nsys.argv = ['csawm', *{list(args)!r}]\nfrom server.cli.main import main\nmain()\n"
    return run_blocked(code, cwd=cwd)
