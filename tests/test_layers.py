"""The package layers of docs/design.md#layers hold: `make lint` runs ``lint-imports`` on the contracts
in pyproject.toml, and each contract fails on the import it forbids (issue 20 item 4).

The attacks write one offending module into a copy of the tree, as a newcomer's change would, and
expect ``lint-imports`` to name the broken contract; an import inside a function counts too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The server and runner sources and pyproject.toml, copied."""
    for package in ("server", "runner"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def broken(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    return result.stdout


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_make_lint_runs_the_contracts() -> None:
    lint = (ROOT / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "$(BIN)/lint-imports" in lint


def test_core_importing_a_feature_package_breaks_the_layers(tree: Path) -> None:
    (tree / "server" / "core" / "readiness.py").write_text(
        "def worker_alive() -> bool:\n"
        "    from server.worker import presence\n\n"
        "    return presence is not None\n"
    )
    out = broken(lint_imports(tree))
    assert "server.core is not allowed to import server.worker" in out
    assert "server.core.readiness -> server.worker.presence" in out


def test_a_cycle_between_two_feature_packages_breaks_the_acyclic_contract(tree: Path) -> None:
    # server.phases imports server.accounts (lock_team); the way back closes a cycle in one layer.
    (tree / "server" / "accounts" / "phase_names.py").write_text("from server.phases import selection\n")
    out = broken(lint_imports(tree))
    assert "No cycle between two packages of the server BROKEN" in out
    assert "- .accounts -> .phases (1 import)" in out or "- .phases -> .accounts (1 import)" in out


@pytest.mark.parametrize(
    ("module", "source", "forbidden"),
    [
        ("server/scoring/peek.py", "import sqlalchemy\n", "sqlalchemy"),
        ("server/scoring/peek.py", "def rows():\n    from server.models import Run\n", "server.models"),
        ("runner/peek.py", "from fastapi import Request\n", "fastapi"),
        ("runner/peek.py", "from server.core.db import Database\n", "server.core"),
    ],
)
def test_runner_and_scoring_touching_the_database_or_the_web_break_a_contract(
    tree: Path, module: str, source: str, forbidden: str
) -> None:
    (tree / module).write_text(source)
    out = broken(lint_imports(tree))
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{importer.rsplit('.', 1)[0]} is not allowed to import {forbidden}" in out


def test_a_stale_exception_fails_until_it_is_removed(tree: Path) -> None:
    """A listed known cycle must still exist: one fixed without deleting its entry fails the check."""
    pyproject = tree / "pyproject.toml"
    text = pyproject.read_text()
    anchor = "depth = 0"
    assert anchor in text
    stale = '"server.core.db -> server.web.router"'
    pyproject.write_text(text.replace(anchor, f"ignore_imports = [{stale}]\n{anchor}", 1))
    out = broken(lint_imports(tree))
    assert "server.core.db -> server.web.router" in out


@pytest.mark.parametrize(
    ("module", "addition", "chain"),
    [
        # issue 24: `csawm check` swept its stale containers through the SQLAlchemy janitor
        ("server/cli/check.py", "\ndef _sweep():\n    from server.worker import janitor\n", "worker.janitor"),
        # the client's text rules (server.core.text) reach the errors module: no web framework there
        ("server/core/errors.py", "\nfrom fastapi import Request\n", "server.core.errors -> fastapi"),
    ],
)
def test_a_client_command_reaching_the_server_breaks_the_client_contract(
    tree: Path, module: str, addition: str, chain: str
) -> None:
    path = tree / module
    path.write_text(path.read_text() + addition)
    out = broken(lint_imports(tree))
    assert "The researcher's client knows nothing of the server BROKEN" in out
    assert chain in out
