"""User text is data (issue 12, rows 6 and 7): team and submission names drawn from a hostile
alphabet (mathtext, markup, CSV formula starts, bidi controls, quotes) go through every page and
export; none may fail, none may come out as markup or as a spreadsheet formula.

Its own seeded site (the `seed` of conftest.py, in a TestClient), so renaming rows cannot disturb
the session's shared site.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from server.app import create_app
from server.benchmark.dataset import Benchmark
from server.clock import utcnow
from server.core.db import Database
from server.core.security import hash_token
from server.core.settings import Settings, load_settings
from server.core.text import visible
from server.models import Submission, Team
from server.runs import store
from server.web.router import CSV_FORMULA_STARTS
from server.web.session import SESSION_COOKIE, SessionSigner

from .conftest import RESAMPLES, seed

HOSTILE = "$\\{}^_<>&\"'=+-@%#;,|`~\u202e\u200b\u0301é漢😀 "
printable = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
names = st.text(alphabet=st.sampled_from(HOSTILE) | printable, min_size=1, max_size=60)


class Board:
    def __init__(
        self, client: TestClient, ids: dict[str, int], cookies: dict[str, str], tokens: dict[str, str]
    ) -> None:
        self.client, self.ids, self.cookies, self.tokens = client, ids, cookies, tokens


@pytest.fixture(scope="module")
def board(synthetic_benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    state = tmp_path_factory.mktemp("hostile-web")
    app_settings = load_settings(
        data_dir=state,
        database_url=f"sqlite:///{state / 'csawm.db'}",
        embedded_worker=False,
        benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=RESAMPLES,
    )
    app = create_app(app_settings, embedded_worker=False, migrate_on_start=True)
    with TestClient(app) as client:
        app_state = app.state.csawm
        tokens, ids = seed(app_state.db, app_settings, Benchmark.open(synthetic_benchmark))
        _plant_copy(app_state.db, app_settings, ids)
        signer = app_state.parts.get(SessionSigner)
        cookies = {
            who: signer.serializer.dumps({"t": hash_token(tokens[who]), "s": f"hostile-{who}"})
            for who in ("alice", "maud")
        }
        yield Board(client, ids, cookies, tokens)


def _plant_copy(db: Database, app_settings: Settings, ids: dict[str, int]) -> None:
    """Beta's approved run stores Alpha's predictions, so the console's flags name the renamed run."""
    rows = "Filename;Final_score\n" + "".join(f"img_{i}.png;{i % 37}\n" for i in range(60))
    sha = store.save(app_settings.data_dir, rows.encode())
    with db.transaction() as session:
        for key in ("alpha_approved", "beta_approved"):
            sub = session.get(Submission, ids[key])
            assert sub is not None
            sub.predictions_sha256 = sha


def _rename(board: Board, team: str, submission: str) -> None:
    db = board.client.app.state.csawm.db  # type: ignore[attr-defined]
    with db.transaction() as session:
        sub = session.get(Submission, board.ids["alpha_approved"])
        assert sub is not None
        sub.name = submission
        sub.updated_at = utcnow()  # a new board version: nothing cached shows the old names
        pending = session.get(Submission, board.ids["alpha_pending"])
        assert pending is not None
        pending.name = submission + " v2"
        team_row = session.get(Team, sub.team_id)
        assert team_row is not None
        team_row.name = team


def _get(board: Board, path: str, who: str | None = None) -> Any:
    board.client.cookies.clear()
    if who:
        board.client.cookies.set(SESSION_COOKIE, board.cookies[who])
    response = board.client.get(path, follow_redirects=False)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
    return response


def _check_svg(text: str) -> None:
    ET.fromstring(text)  # well-formed XML: every name was escaped


CHARACTER_REFERENCE = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);")
NEUTRAL_TEAM, NEUTRAL_NAME = "neutral-team", "neutral-model"


def _outside_references(text: str) -> str:
    return CHARACTER_REFERENCE.sub("\x00", text)


def _check_html(text: str, name: str, neutral: str) -> None:
    """A name with markup characters never reaches the page raw.

    Outside character references (where an escaped name lives) the name may occur only as often as
    in the same page rendered with neutral names: a name such as ``<``, ``&`` or ``<td>`` is also
    part of the page's own markup, so "not in the page" would be wrong for it.
    """
    if "<" in name or "&" in name:
        hostile, plain = _outside_references(text), _outside_references(neutral)
        assert hostile.count(name) <= plain.count(name), "a name reached the page unescaped"


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(team=names, submission=names)
@example(team='=HYPERLINK("https://evil.example","x")', submission="$\\frac{1}{$ broken")
@example(team="@SUM(1+1)", submission="<script>alert(1)</script>")
@example(team="-2+3", submission="+cmd|' /C calc'!A0")
@example(team="<", submission="<")  # also the page's own markup: compared with a neutral page
@example(team="&", submission="&")
@example(team="t", submission="<td>")
def test_every_page_and_export_survives_hostile_names_issue_12(
    board: Board, team: str, submission: str
) -> None:
    sub_id = board.ids["alpha_approved"]
    _rename(board, NEUTRAL_TEAM, NEUTRAL_NAME)
    neutral = {
        page: _get(board, path, who).text
        for page, path, who in (
            ("board", "/", None),
            ("report", f"/submissions/{sub_id}", "alice"),
            ("admin", "/admin", "maud"),
            ("team", f"/teams/{NEUTRAL_TEAM}", "maud"),
        )
    }
    _rename(board, team, submission)
    _check_html(_get(board, "/").text, submission, neutral["board"])
    _check_svg(_get(board, "/plots/leaderboard-tau.svg").text)
    rows = json.loads(_get(board, "/leaderboard.json").text)["rows"]
    assert submission in {row["name"] for row in rows}
    api_rows = _get(board, "/api/v1/leaderboard").json()["rows"]
    assert team in {row["team"] for row in api_rows}
    table = list(csv.DictReader(io.StringIO(_get(board, "/leaderboard.csv").text)))
    for row in table:
        for column in ("kind", "team", "name", "image_digest"):
            assert not row[column].startswith(CSV_FORMULA_STARTS), (column, row[column])
    exported = {row["name"] for row in table}
    shown = visible(submission)  # invisible and direction-changing characters escaped (issue 19)
    assert (("'" + shown) if shown.startswith(CSV_FORMULA_STARTS) else shown) in exported
    _check_html(_get(board, f"/submissions/{sub_id}", "alice").text, submission, neutral["report"])
    for plot in ("confusion", "group-amae", "odds-ratios"):  # a maintainer sees every plot
        _check_svg(_get(board, f"/submissions/{sub_id}/plots/{plot}.svg", "maud").text)
    _check_svg(_get(board, f"/submissions/{sub_id}/plots/odds-ratios.svg", "alice").text)
    admin = _get(board, "/admin", "maud").text
    assert 'id="flags-heading"' in admin and f"#{sub_id} " in admin  # the flags section lists the run
    _check_html(admin, submission, neutral["admin"])
    flags = board.client.get(
        "/api/v1/admin/flags", headers={"Authorization": f"Bearer {board.tokens['maud']}"}
    )
    assert submission in {run["name"] for flag in flags.json()["flags"] for run in flag["runs"]}
    team_page = _get(board, f"/teams/{quote(team, safe='')}", "maud").text
    _check_html(team_page, submission, neutral["team"])


INVISIBLE_TEAM, INVISIBLE_NAME = "Alpha\u202e\u200b", "a\u202e\u200bb\u2028c"  # stored before issue 19
SHOWN_TEAM, SHOWN_NAME = "Alpha\\u202e\\u200b", "a\\u202e\\u200bb\\u2028c"
RAW = ("\u202e", "\u200b", "\u2028")


def _svg_text(svg: str) -> str:
    return " ".join(node.text or "" for node in ET.fromstring(svg).iter())


def test_names_stored_with_invisible_characters_show_escaped_issue_19(board: Board) -> None:
    """A name that reverses or hides text, stored before the rule (written straight to the database),
    is shown as visible escapes on the pages, in the CSV and in the plots; the JSON keeps the data."""
    sub_id = board.ids["alpha_approved"]
    _rename(board, INVISIBLE_TEAM, INVISIBLE_NAME)
    pages = {
        "/": None,
        f"/submissions/{sub_id}": "alice",
        "/admin": "maud",
        f"/teams/{quote(INVISIBLE_TEAM, safe='')}": "maud",
    }
    for path, who in pages.items():
        text = html.unescape(_get(board, path, who).text)
        assert SHOWN_NAME in text and not any(char in text for char in RAW), path
    assert SHOWN_TEAM in html.unescape(_get(board, "/").text)
    table = list(csv.DictReader(io.StringIO(_get(board, "/leaderboard.csv").text)))
    row = next(r for r in table if r["submission_id"] == str(sub_id))
    assert (row["team"], row["name"]) == (SHOWN_TEAM, SHOWN_NAME)
    tau = _svg_text(_get(board, "/plots/leaderboard-tau.svg").text)
    forest = _svg_text(_get(board, f"/submissions/{sub_id}/plots/odds-ratios.svg", "maud").text)
    for label in (tau, forest):
        assert SHOWN_NAME in label and not any(char in label for char in RAW)
    rows = json.loads(_get(board, "/leaderboard.json").text)["rows"]
    assert INVISIBLE_NAME in {r["name"] for r in rows}  # the data, as stored
    api_rows = _get(board, "/api/v1/leaderboard").json()["rows"]
    assert (INVISIBLE_TEAM, INVISIBLE_NAME) in {(r["team"], r["name"]) for r in api_rows}
