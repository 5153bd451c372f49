"""`csawm admin` prints sentences and tables, not reprs (issue 23 item 8); ``--json`` gives a program
the data on stdout; token-printing commands keep the token alone on stdout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from server.cli.main import app

REPR = re.compile(r"\w+=\w|\{'|None\b|True\b|False\b|stored")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CSAWM_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("CSAWM_DATABASE_URL", raising=False)
    monkeypatch.delenv("CSAWM_BENCHMARK_DIR", raising=False)
    monkeypatch.setenv("CSAWM_QUOTA_PER_WEEK", "7")
    return tmp_path / "state"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_admin_commands_speak_in_sentences_and_tables(env: Path) -> None:
    assert _run("db", "upgrade")[0] == 0
    code, out, err = _run("admin", "create-team", "alpha")
    assert code == 0 and out == "" and not REPR.search(err), err
    code, out, err = _run(
        "admin", "create-phase", "dev-ladder", "--opens-at", "2030-01-01T00:00Z", "--closes-at",
        "2030-02-01T00:00Z", "--ladder", "--total", "3",
    )  # fmt: skip
    assert code == 0 and out == "", err
    assert err == (
        "created phase dev-ladder (live, Ladder board (level 0.05, step 0.01), opens 2030-01-01 00:00 UTC, "
        "closes 2030-02-01 00:00 UTC; private test set; researchers see the summary report; submissions "
        "per team: 3 in the phase, the server's default a day, the server's default a week)\n"
    )
    code, out, err = _run("admin", "update-phase", "dev-ladder", "--no-ladder", "--json")
    assert code == 0 and "updated phase dev-ladder (live, exact board," in err and not REPR.search(err)
    data = json.loads(out)
    assert data["name"] == "dev-ladder" and data["ladder"] is False and data["quota_total"] == 3
    code, out, err = _run("admin", "set-quota", "alpha", "--per-day", "10")
    assert code == 0 and out == ""
    assert err == (
        "quota of team alpha: 10 a day, 7 a week (server default), 20 per phase (server default), "
        "1 active at once (server default)\n"
    )
    code, out, _ = _run("admin", "set-quota", "alpha", "--total", "4", "--json")
    assert code == 0 and json.loads(out) == {"per_day": 10, "per_week": None, "total": 4, "active": None}
    code, out, err = _run("admin", "holds")
    assert (code, out, err) == (0, "", "no team is held\n")
    assert _run("admin", "hold-team", "alpha", "--reason", "scorer crash")[0] == 0
    code, out, _ = _run("admin", "holds", "--json")
    assert code == 0 and [h["team"] for h in json.loads(out)] == ["alpha"]
    # a token alone on stdout, as scripts/demo reads it
    code, out, err = _run("admin", "create-user", "a@x.org", "--team", "alpha", "--role", "researcher")
    assert code == 0 and re.fullmatch(r"csawm_\S+\n", out) and not REPR.search(err)
    code, _, err = _run("admin", "issue-token", "nobody@x.org")
    assert code == 2 and "no user with email" in err
    code, _, err = _run("admin", "create-team", "alpha")
    assert code == 2 and "already exists" in err
