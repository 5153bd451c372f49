"""`csawm admin` and `csawm db` against an embedded SQLite: tokens alone on stdout, errors as one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from server.accounts import service
from server.cli.main import app
from server.core.db import Database
from server.core.principal import authenticate


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CSAWM_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("CSAWM_DATABASE_URL", raising=False)
    monkeypatch.delenv("CSAWM_BENCHMARK_DIR", raising=False)
    return tmp_path / "state"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_admin_commands_print_tokens_alone(env: Path) -> None:
    assert _run("db", "upgrade")[0] == 0
    assert _run("admin", "create-team", "alpha")[0] == 0
    code, out, err = _run("admin", "create-user", "a@x.org", "--team", "alpha", "--role", "researcher")
    assert code == 0, err
    first = out.strip()
    assert out == first + "\n" and first.startswith("csawm_")
    code, out, _ = _run("admin", "issue-token", "a@x.org", "--expires-days", "0")
    second = out.strip()
    assert code == 0 and out == second + "\n" and second != first
    db = Database.connect(f"sqlite:///{env / 'csawm.db'}")
    try:
        with db.transaction(write=False) as session:
            assert authenticate(session, first).team_name == "alpha"
            assert authenticate(session, second).email == "a@x.org"
        assert _run("admin", "revoke-token", first)[0] == 0
        with db.transaction(write=False) as session, pytest.raises(Exception, match="revoked"):
            authenticate(session, first)
        assert _run("admin", "set-quota", "alpha", "--per-day", "5", "--active", "2")[0] == 0
        with db.transaction(write=False) as session:
            team = service.get_team(session, "alpha")
            assert (team.quota_per_day, team.quota_active, team.quota_per_week) == (5, 2, None)
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("admin", "create-user", "a@x.org", "--team", "ghost"), "no team named 'ghost'"),
        (("admin", "create-user", "a@x.org"), "a researcher needs a team"),
        (("admin", "issue-token", "nobody@x.org"), "no user with email"),
        (("admin", "revoke-token", "garbage"), "expected a token"),
        (("admin", "set-quota", "ghost", "--total", "3"), "no team named 'ghost'"),
        (("admin", "create-team", "../etc"), "invalid team name"),
    ],
)
def test_admin_errors_are_one_line_exit_2(env: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = _run(*args)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_worker_refuses_to_start_without_a_benchmark(env: Path) -> None:
    code, _, err = _run("worker", "--once")
    assert (
        code == 2
        and err == "error: CSAWM_BENCHMARK_DIR is not set: a worker needs the test set to run models on\n"
    )


def test_worker_refuses_a_broken_benchmark(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSAWM_BENCHMARK_DIR", str(tmp_path / "nowhere"))
    code, _, err = _run("worker", "--once")
    assert code == 2 and err.startswith("error: CSAWM_BENCHMARK_DIR: benchmark root") and "nowhere" in err


def test_hold_and_release_a_team(env: Path) -> None:
    """Issue 19: `csawm admin hold-team` / `release-team` / `holds`, audited as the CLI user."""
    from server.models import AuditEntry

    assert _run("db", "upgrade")[0] == 0
    assert _run("admin", "create-team", "alpha")[0] == 0
    code, _, err = _run("admin", "hold-team", "alpha", "--reason", "scorer crash on run 7")
    assert code == 0 and "team alpha is held since" in err
    code, out, _ = _run("admin", "holds")
    assert code == 0 and out.startswith("TEAM ") and out.splitlines()[1].startswith("alpha ")
    assert out.rstrip().endswith("scorer crash on run 7")
    assert _run("admin", "release-team", "alpha")[0] == 0
    assert _run("admin", "holds")[1] == ""
    code, out, err = _run("admin", "release-team", "alpha")
    assert (code, out) == (2, "") and "the team is not held" in err
    code, _, err = _run("admin", "hold-team", "ghost", "--reason", "x")
    assert code == 2 and "no team named 'ghost'" in err
    db = Database.connect(f"sqlite:///{env / 'csawm.db'}")
    try:
        with db.transaction(write=False) as session:
            actions = [
                (e.action, e.actor.startswith("cli:"))
                for e in session.query(AuditEntry).order_by(AuditEntry.id)
            ]
        assert actions[-2:] == [("hold_team", True), ("release_team", True)]
    finally:
        db.dispose()
