"""Every exit code case of docs/cli.md's table, run for real (issue 23 item 8).

The table's last column lists the cases of each code; `CASES` plays each one against a live server
(a real uvicorn, a scripted runner) and the test compares the exit code with the table's. A case
added to the docs without a play here, or played here and missing from the docs, fails the test too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from srvtest import factories as f
from srvtest.app import make_settings
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner
from srvtest.live import free_port, live_server
from typer.testing import CliRunner

from server.app import create_app
from server.cli import client as cli_client
from server.cli.main import app as cli
from server.clock import utcnow
from server.core.db import Database
from server.operations import pause
from server.phases import service as phases

CLI_MD = Path(__file__).resolve().parents[3] / "docs" / "cli.md"
ROW = re.compile(r"^\| `(\d+)` \| [^|]+ \| (.+) \|$")


def documented() -> dict[str, int]:
    """docs/cli.md's exit code table: each case (the text of the last column, split at ";") -> code."""
    text = CLI_MD.read_text()
    table = text[text.index("**Exit codes**") : text.index("Errors are one line on stderr")]
    cases: dict[str, int] = {}
    for line in table.splitlines():
        found = ROW.match(line.strip())
        if found:
            for case in found[2].split(";"):
                cases[case.strip()] = int(found[1])
    return cases


@dataclass
class Site:
    url: str
    db: Database
    token: str
    tmp: Path
    archives: dict[str, Path]
    phase: str


def _run(site: Site, *args: str, token: str | None = "", url: str | None = None) -> int:
    env = {"CSAWM_SERVER_URL": url or site.url, "CSAWM_TOKEN": site.token if token == "" else (token or "")}
    return CliRunner().invoke(cli, list(args), env=env).exit_code


def _submit(site: Site, kind: str = "good", *extra: str) -> int:
    return _run(site, "submit", str(site.archives[kind]), "--name", f"{kind} {len(site.archives)}", *extra)


def _submitted(site: Site, kind: str) -> str:
    """Submit an archive and wait for its end; return the run's id."""
    result = CliRunner().invoke(
        cli,
        ["submit", str(site.archives[kind]), "--name", kind, "--wait"],
        env={"CSAWM_SERVER_URL": site.url, "CSAWM_TOKEN": site.token},
    )
    return result.stdout.split()[1]


def _between_phases(site: Site) -> int:
    with site.db.transaction() as session:
        phases.update(session, site.phase, {"closes_at": utcnow() - timedelta(seconds=1)}, actor="test")
    return _submit(site)


def _over_quota(site: Site) -> int:
    with site.db.transaction() as session:
        phases.update(session, site.phase, {"quota_total": 0}, actor="test")
    return _submit(site)


def _paused(site: Site) -> int:
    with site.db.transaction() as session:
        pause.set_pause(session, intake=True, runs=False, message="moving disks", actor="test")
    return _submit(site)


def _bad_card(site: Site) -> int:
    card = site.tmp / "card.json"
    card.write_text('{"architecture": "resnet34", "no_such_field": 1}')
    return _submit(site, "good", "--method-card", str(card))


def _interrupted(site: Site, monkeypatch: pytest.MonkeyPatch) -> int:
    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_client, "_wait", interrupted)
    return _submit(site, "good", "--wait")


def _no_server(site: Site) -> int:
    return _run(site, "quota", url=f"http://127.0.0.1:{free_port()}")


CASES: dict[str, Callable[[Site, pytest.MonkeyPatch], int]] = {
    "`csawm quota`": lambda s, _: _run(s, "quota"),
    "`csawm status ID` of a run that succeeded": lambda s, _: _run(s, "status", _submitted(s, "good")),
    "`csawm submit ARCHIVE --wait` of a run that fails": lambda s, _: _submit(s, "crash", "--wait"),
    "`csawm status ID` of a failed run": lambda s, _: _run(s, "status", _submitted(s, "crash")),
    "`csawm submit` of a missing archive file": lambda s, _: _run(s, "submit", "gone.tar", "--name", "x"),
    "`csawm submit` with an invalid method card": lambda s, _: _bad_card(s),
    "`csawm submit` between phases": lambda s, _: _between_phases(s),
    "`csawm submit` over quota": lambda s, _: _over_quota(s),
    "`csawm status ID` of no such run": lambda s, _: _run(s, "status", "999"),
    "`csawm check nosuch:1` (no such local image)": lambda s, _: _run(s, "check", "csawm-test-nosuch:1"),
    "`csawm quota` without a token": lambda s, _: _run(s, "quota", token=None),
    "`csawm quota` with a refused token": lambda s, _: _run(s, "quota", token="csawm_not-a-token"),
    "`csawm quota` with no server listening": lambda s, _: _no_server(s),
    "`csawm submit` while intake is paused": lambda s, _: _paused(s),
    "`csawm submit ARCHIVE --wait` interrupted while waiting": _interrupted,
}
NEEDS_ENGINE = {"`csawm check nosuch:1` (no such local image)"}


def test_the_table_and_the_cases_name_the_same_cases() -> None:
    assert set(documented()) == set(CASES)
    assert set(documented().values()) == {0, 1, 2, 3, 75, 130}


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path) -> Iterator[Site]:
    archives = {kind: tmp_path / f"{kind}.tar" for kind in ("good", "crash")}
    digests = {kind: write_archive(path, seed=f"exit-{kind}") for kind, path in archives.items()}
    settings = make_settings(
        tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100, poll_interval=0.2
    )
    runner = FakeRunner(behaviours={digests["crash"]: "crash"})
    app = create_app(settings, runner=runner, embedded_worker=True, migrate_on_start=True)
    with live_server(app) as url:
        db = app.state.csawm.db
        f.team(db, "alpha")
        yield Site(url, db, f.user(db, "a@x.org", team="alpha"), tmp_path, archives, settings.phase)


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=pytest.mark.docker) if c in NEEDS_ENGINE else c for c in CASES],
)
def test_each_documented_case_exits_with_its_documented_code(
    case: str, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = documented().get(case)
    assert expected is not None, f"{case} is not in docs/cli.md's table"
    assert CASES[case](site, monkeypatch) == expected, case
