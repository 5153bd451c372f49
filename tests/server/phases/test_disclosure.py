"""A phase's disclosure level (issue 19 item 3): a ``summary`` phase shows its researchers the
headline metrics with their CIs and the board's figures, and no confusion matrix, 2x2 table,
``n_positive`` or outcome-subset figure, on any surface; a ``full`` (development) phase shows the
whole report; maintainers see it all; sealed and Ladder phases withhold more on top; the admin API
and CLI set and show the field; the migration gives existing phases their test set's default."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from phasetest import leaked, make_phase, surfaces, web
from srvtest import factories as f
from srvtest.app import Api, make_settings, running_api
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner
from typer.testing import CliRunner

from server.cli.main import app
from server.clock import utcnow
from server.core import migrate
from server.core.db import Database
from server.models import Phase, ReviewState, Role, RunStatus, Submission, SubmissionReport, Team
from server.phases import service as phases
from server.scoring.report import score_report
from server.scoring.summary import summary_report
from server.worker.loop import Worker
from tests.scoring.factories import predictions, private_labels, public_labels
from tests.scoring.schema import valid_report, valid_summary

HOUR = timedelta(hours=1)
RESAMPLES = 100
# Sentinel values written into the withheld figures of a real report, as JSON shows them; the
# integers also as the pages and plots print them.
MATRIX = [[424242 if i + j == 0 else 1 for j in range(8)] for i in range(8)]
SENTINELS = {
    ("masking", "levels", "confusion_matrix"): MATRIX,
    ("masking", "levels", "group_amae", "1-2"): 7.171717,
    ("masking", "levels", "kendall_tau_b", "value"): 0.828282,
    ("masking", "levels", "low_bin", "precision"): 0.363636,
    ("masking", "per_expert", "Expert_1", "kendall_tau_b"): 0.939393,
    ("clinical", "composite", "n_positive"): 515151,
    ("clinical", "composite", "odds_ratios", "Q4", "table"): [[616161, 1], [1, 1]],
    ("clinical", "composite", "odds_ratios", "Q2", "value"): 5.252525,
    ("clinical", "composite", "references", "dense_area", "n_positive"): 535353,
    ("experts", "Expert_1", "per_expert", "Expert_2", "kendall_tau_b"): 0.474747,
}  # fmt: skip
LEAKS = ("424242", "171717", "828282", "363636", "515151", "616161", "252525", "535353", "474747")
# Shown under summary since issue 21 item 6: the model's own tau-b against each expert.
PER_EXPERT = "939393"
# Headings and columns the report page has only for a full report.
FULL_PAGE_MARKERS = ("8-level view", "Levels 1–2", "Positives", "OR Q2")
WITHHELD_PLOTS = ("confusion", "group-amae")
SHOWN_PLOTS = ("odds-ratios", "agreement")  # the agreement heatmap: the model against each expert


def _report() -> dict[str, Any]:
    """A real pooled report (scored as the server scores it) with sentinels in its withheld figures."""
    private, latent = private_labels(120)
    public, public_latent = public_labels(96)
    score = np.concatenate([latent, public_latent]) + np.random.default_rng(5).normal(size=216)
    names = (*private.filenames, *public.filenames)
    data: dict[str, Any] = valid_report(
        score_report(predictions(names, score), private, public_labels=public, resamples=RESAMPLES).data
    )
    for path, value in SENTINELS.items():
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return data


REPORT = _report()


def _team_id(api: Api, name: str = "alpha") -> int:
    with api.db.transaction(write=False) as session:
        return int(session.query(Team).filter_by(name=name).one().id)


def _scored(api: Api, phase: str, name: str = "secret-model") -> int:
    """An approved scored run of team alpha in `phase` with `REPORT` and its report history."""
    reps = np.random.default_rng(0).normal(0.5, 0.02, RESAMPLES)
    record = {"scorer_version": "2", "test_set_manifest_sha256": "a" * 64,
              "bootstrap": {"resamples": RESAMPLES, "seed": 0}}  # fmt: skip
    tau, amae = REPORT["masking"]["kendall_tau_b"]["value"], REPORT["masking"]["amae"]["value"]
    with api.db.transaction() as session:
        sub = Submission(
            team_id=_team_id(api), name=name, phase=phase, image_digest=f"sha256:{name}",
            status=RunStatus.SUCCEEDED, metrics=copy.deepcopy(REPORT), kendall_tau_b=tau, amae=amae,
            tau_replicates=reps.tobytes(), review_state=ReviewState.APPROVED, reproducibility=record,
            finished_at=utcnow(),
        )  # fmt: skip
        session.add(sub)
        session.flush()
        session.add(
            SubmissionReport(
                submission_id=sub.id, reason="scored", scorer_version="2", test_set_sha256="a" * 64,
                bootstrap_seed=0, bootstrap_resamples=RESAMPLES, metrics=copy.deepcopy(REPORT),
            )
        )  # fmt: skip
        return int(sub.id)


def _people(api: Api) -> tuple[str, str]:
    return f.member_token(api.db, "alpha", "a@x.org"), f.user(api.db, "m@x.org", role=Role.MAINTAINER)


def _metrics(api: Api, token: str, sub_id: int) -> Any:
    return api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()["metrics"]


def _history(api: Api, token: str, sub_id: int) -> list[Any]:
    rows = api.client.get(f"/api/v1/submissions/{sub_id}/reports", headers=f.auth(token)).json()
    return [row["metrics"] for row in rows]


def _plot_codes(api: Api, token: str, sub_id: int) -> dict[str, int]:
    client = web(api, token)
    names = (*WITHHELD_PLOTS, *SHOWN_PLOTS)
    return {name: client.get(f"/submissions/{sub_id}/plots/{name}.svg").status_code for name in names}


@pytest.fixture
def summary_phase(api: Api) -> dict[str, Any]:
    """A private live phase open now (disclosure left out: summary) with one scored run of alpha."""
    alice, maud = _people(api)
    make_phase(api, "live", -HOUR, HOUR)
    return {"api": api, "alice": alice, "maud": maud, "sub_id": _scored(api, "live")}


def test_a_private_phase_defaults_to_summary_and_a_development_phase_to_full(sqlite_api: Api) -> None:
    make_phase(sqlite_api, "old", -3 * HOUR, -2 * HOUR)
    make_phase(sqlite_api, "dev", -2 * HOUR, -HOUR, test_set="public")
    make_phase(sqlite_api, "open-books", -HOUR, HOUR, disclosure="full")
    listed = {p["name"]: p["disclosure"] for p in sqlite_api.client.get("/api/v1/phases").json()}
    # the server's own CSAWM_PHASE row (private) is a phase like any other
    assert listed == {"private-1": "summary", "old": "summary", "dev": "full", "open-books": "full"}


def test_the_servers_csawm_phase_row_is_a_summary_phase(sqlite_api: Api) -> None:
    alice, maud = _people(sqlite_api)
    [own] = sqlite_api.client.get("/api/v1/phases").json()
    assert (own["name"], own["disclosure"]) == (sqlite_api.settings.phase, "summary")
    sub_id = _scored(sqlite_api, sqlite_api.settings.phase)
    assert _metrics(sqlite_api, alice, sub_id) == summary_report(REPORT)
    assert _metrics(sqlite_api, maud, sub_id) == REPORT


def test_a_summary_phase_shows_researchers_the_summary_in_the_api(summary_phase: dict[str, Any]) -> None:
    api, alice, sub_id = summary_phase["api"], summary_phase["alice"], summary_phase["sub_id"]
    body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(alice)).json()
    metrics = valid_summary(body["metrics"])
    assert metrics == summary_report(REPORT) and metrics["disclosure"] == "summary"
    assert "levels" not in metrics["masking"] and "n_positive" not in metrics["clinical"]["composite"]
    assert body["kendall_tau_b"] == REPORT["masking"]["kendall_tau_b"]["value"]  # the headline stays
    assert body["scores_withheld"] is None
    assert _history(api, alice, sub_id) == [metrics]


@pytest.mark.parametrize(
    "surface",
    ["submission", "submission-list", "reports", "leaderboard", "leaderboard-phase", "leaderboard-all-runs",
     "leaderboard-clinical", "board-page", "board-page-phase", "board-json", "board-csv", "report-page",
     "team-page", "report-plots", "cli-status"],
)  # fmt: skip
def test_no_withheld_figure_reaches_a_researcher_or_a_visitor(
    summary_phase: dict[str, Any], surface: str
) -> None:
    read = surfaces(summary_phase["api"], summary_phase["sub_id"], "live")[surface]
    for viewer, token in (("researcher", summary_phase["alice"]), ("anonymous", None)):
        text = read(token)
        assert not leaked(text, LEAKS), f"{surface} shows {leaked(text, LEAKS)} to the {viewer}"


def test_the_report_page_and_plots_of_a_summary_phase(summary_phase: dict[str, Any]) -> None:
    api, alice, maud, sub_id = (summary_phase[k] for k in ("api", "alice", "maud", "sub_id"))
    page = web(api, alice).get(f"/submissions/{sub_id}").text
    assert 'id="summary-note"' in page and "Kendall τ-b" in page and "AUC" in page
    assert [marker for marker in FULL_PAGE_MARKERS if marker in page] == []
    assert "/plots/confusion.svg" not in page and "/plots/odds-ratios.svg" in page
    # a plot of a withheld figure is not served, even asked for by its URL
    assert _plot_codes(api, alice, sub_id) == {"confusion": 404, "group-amae": 404, "agreement": 200,
                                               "odds-ratios": 200}  # fmt: skip
    assert PER_EXPERT in api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(alice)).text
    # the maintainer (asking first or after: the plot cache does not mix the two)
    assert _plot_codes(api, maud, sub_id) == dict.fromkeys((*WITHHELD_PLOTS, *SHOWN_PLOTS), 200)
    assert _plot_codes(api, alice, sub_id)["confusion"] == 404
    full = web(api, maud).get(f"/submissions/{sub_id}").text
    assert 'id="summary-note"' not in full and all(marker in full for marker in FULL_PAGE_MARKERS)
    assert leaked(full, LEAKS)  # the page shows the full report to a maintainer


@pytest.mark.parametrize("surface", ["submission", "reports", "report-page", "report-plots"])
def test_maintainers_see_the_full_report_of_a_summary_phase(
    summary_phase: dict[str, Any], surface: str
) -> None:
    text = surfaces(summary_phase["api"], summary_phase["sub_id"], "live")[surface](summary_phase["maud"])
    assert leaked(text, LEAKS), f"{surface} withholds the full report from a maintainer"
    if surface == "submission":
        assert json.loads(text)["metrics"] == REPORT


@pytest.mark.parametrize(
    ("test_set", "disclosure", "shown"),
    [("public", None, "full"), ("private", "full", "full"), ("public", "summary", "summary")],
)
def test_a_full_phase_shows_researchers_the_whole_report(
    sqlite_api: Api, test_set: str, disclosure: str | None, shown: str
) -> None:
    api = sqlite_api
    alice, _ = _people(api)
    values = {"test_set": test_set} | ({"disclosure": disclosure} if disclosure else {})
    make_phase(api, "phase", -HOUR, HOUR, **values)
    sub_id = _scored(api, "phase")
    expected = REPORT if shown == "full" else summary_report(REPORT)
    assert _metrics(api, alice, sub_id) == expected and _history(api, alice, sub_id) == [expected]
    codes = _plot_codes(api, alice, sub_id)
    assert codes == dict.fromkeys(WITHHELD_PLOTS, 200 if shown == "full" else 404) | dict.fromkeys(
        SHOWN_PLOTS, 200
    )  # fmt: skip
    page = web(api, alice).get(f"/submissions/{sub_id}").text
    assert all(marker in page for marker in FULL_PAGE_MARKERS) is (shown == "full")


@pytest.mark.parametrize("disclosure", ["full", "summary"])
def test_a_sealed_phase_withholds_everything_before_the_reveal_and_the_level_applies_after(
    sqlite_api: Api, disclosure: str
) -> None:
    api = sqlite_api
    alice, maud = _people(api)
    make_phase(api, "final", -HOUR, HOUR, visibility="sealed", disclosure=disclosure)
    sub_id = _scored(api, "final")
    assert _metrics(api, alice, sub_id) is None and _history(api, alice, sub_id) == [None]
    assert set(_plot_codes(api, alice, sub_id).values()) == {404}
    assert _metrics(api, maud, sub_id) == REPORT
    assert api.client.post(f"/api/v1/submissions/{sub_id}/select", headers=f.auth(alice)).status_code == 200
    with api.db.transaction() as session:
        phases.update(session, "final", {"closes_at": utcnow() - timedelta(seconds=1)}, actor="test")
        phases.reveal(session, "final", actor="test")
    expected = REPORT if disclosure == "full" else summary_report(REPORT)
    assert _metrics(api, alice, sub_id) == expected


@pytest.mark.parametrize("disclosure", ["full", "summary"])
def test_a_ladder_phase_withholds_the_report_whatever_its_level(sqlite_api: Api, disclosure: str) -> None:
    api = sqlite_api
    alice, maud = _people(api)
    make_phase(api, "ladder", -HOUR, HOUR, ladder=True, disclosure=disclosure)
    sub_id = _scored(api, "ladder")
    assert _metrics(api, alice, sub_id) is None and _history(api, alice, sub_id) == [None]
    assert set(_plot_codes(api, alice, sub_id).values()) == {404}
    assert _metrics(api, maud, sub_id) == REPORT


def test_a_worker_scored_run_reaches_its_team_as_a_valid_summary(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """The real path: the worker scores a private run and a development run; the team reads a summary
    of the first (valid against its schema) and the full report of the second."""
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100)
    with running_api(settings) as api:
        alice, maud = _people(api)
        ids = {}
        for phase, values in (("final", {}), ("dev", {"test_set": "public"})):
            now = utcnow()
            opened = -3 * HOUR if phase == "final" else -HOUR
            make_phase(api, phase, opened, HOUR, **values)
            path = tmp_path / f"{phase}.tar"
            write_archive(path, seed=phase)
            r = api.client.post("/api/v1/submissions", params={"name": phase}, content=path.read_bytes(),
                                headers=f.auth(alice))  # fmt: skip
            assert r.status_code == 201, r.text
            ids[phase] = r.json()["id"]
            if phase == "final":
                with api.db.transaction() as session:
                    phases.update(session, "final", {"closes_at": now - 2 * HOUR}, actor="test")
        worker = Worker(api.settings, api.db, FakeRunner())
        assert worker.run_once() and worker.run_once()
        private, dev = (_metrics(api, alice, ids[name]) for name in ("final", "dev"))
        stored = _metrics(api, maud, ids["final"])
        valid_report(stored)
        assert valid_summary(private) == summary_report(stored) and private["label_layout"] == "rank"
        assert valid_report(dev) == _metrics(api, maud, ids["dev"]) and dev["label_layout"] == "level"
        assert "confusion_matrix" in dev["masking"]["levels"]


def test_the_admin_api_sets_and_shows_the_level(sqlite_api: Api) -> None:
    api = sqlite_api
    alice, maud = _people(api)
    opens = (utcnow() - HOUR).isoformat()
    body = {"name": "dev", "opens_at": opens, "test_set": "public"}
    created = api.client.post("/api/v1/admin/phases", json=body, headers=f.auth(maud))
    assert created.status_code == 201 and created.json()["disclosure"] == "full"
    bad = api.client.post("/api/v1/admin/phases", json={**body, "name": "x", "disclosure": "some"},
                          headers=f.auth(maud))  # fmt: skip
    assert bad.status_code == 422 and "disclosure" in bad.text

    def patch(body: dict[str, Any], token: str = maud) -> Any:
        return api.client.patch("/api/v1/admin/phases/dev", json=body, headers=f.auth(token))

    assert patch({"disclosure": "summary"}, alice).status_code == 403
    assert patch({"disclosure": "summary"}).json()["disclosure"] == "summary"
    assert patch({"disclosure": None}).status_code == 400  # cannot be cleared
    # the test set changed without a level: the new test set's default, never a leftover `full`
    assert patch({"disclosure": "full"}).json()["disclosure"] == "full"
    assert patch({"test_set": "private"}).json()["disclosure"] == "summary"
    assert patch({"test_set": "public", "disclosure": "summary"}).json()["disclosure"] == "summary"
    assert patch({"test_set": "public"}).json()["disclosure"] == "summary"  # unchanged test set: kept
    listed = {p["name"]: p["disclosure"] for p in api.client.get("/api/v1/phases").json()}
    assert listed == {"private-1": "summary", "dev": "summary"}
    board = api.client.get("/api/v1/leaderboard", params={"phase": "dev"}).json()
    assert board["phase"]["disclosure"] == "summary"


def test_the_admin_cli_sets_and_shows_the_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSAWM_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("CSAWM_DATABASE_URL", raising=False)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stderr

    assert run("db", "upgrade")[0] == 0
    code, err = run("admin", "create-phase", "dev", "--opens-at", "2020-01-01T00:00Z", "--closes-at",
                    "2021-01-01T00:00Z", "--test-set", "public")  # fmt: skip
    assert code == 0 and "researchers see the full report" in err, err
    code, err = run("admin", "update-phase", "dev", "--disclosure", "summary")
    assert code == 0 and "researchers see the summary report" in err, err
    code, err = run("admin", "update-phase", "dev", "--disclosure", "partial")
    assert code != 0 and "disclosure must be 'full' or 'summary'" in err, err
    code, err = run("admin", "create-phase", "x", "--opens-at", "2030-01-01T00:00Z", "--disclosure", "full")
    assert code == 0 and "private test set" in err and "researchers see the full report" in err, err


def test_the_migration_gives_existing_phases_their_test_sets_default(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db = Database.connect(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        migrate.upgrade(db.engine, "0005_phases")
        when = datetime(2026, 1, 1, tzinfo=UTC)
        rows = [
            {"name": name, "test_set": test_set, "opens_at": when + timedelta(days=i), "visibility": "live",
             "ladder": False, "ladder_level": 0.05, "ladder_step": 0.01, "max_selected": 2,
             "created_at": when, "updated_at": when}
            for i, (name, test_set) in enumerate((("final", "private"), ("dev", "public")))
        ]  # fmt: skip
        table = sa.table("phases", *(sa.column(key) for key in rows[0]))
        with db.engine.begin() as conn:
            conn.execute(table.insert(), rows)
        migrate.upgrade(db.engine)
        with db.transaction(write=False) as session:
            found = {row.name: row.disclosure.value for row in session.query(Phase)}
        assert found == {"final": "summary", "dev": "full"}
    finally:
        db.dispose()
