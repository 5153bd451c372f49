"""Names cannot hide or reverse text (issue 19 item 9): blank names and characters of the categories
Cc, Cf, Cs, Co, Cn, Zl and Zp are refused at every entry point, the API and the admin command line;
`visible` shows a name stored before the rule with those characters escaped."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select
from srvtest import factories as f
from srvtest.app import Api
from srvtest.web import csrf_token, web_login
from typer.testing import CliRunner

from server.cli.main import app
from server.core.db import Database
from server.core.text import REFUSED_CATEGORIES, check_name, check_text, visible
from server.models import Role, Team, User

#: What an attacker puts in a name, one per refused category, and blank names.
SPOOFS = {
    "bidi override and zero-width space (Cf)": "a\u202e\u200bb",
    "bidi isolate (Cf)": "model\u2066evil",
    "byte-order mark (Cf)": "\ufeffalpha",
    "next line (Cc)": "a\u0085b",
    "private use (Co)": "a\ue000b",
    "unassigned (Cn)": "a\u0378b",
    "line separator (Zl)": "a\u2028b",
    "paragraph separator (Zp)": "a\u2029b",
    "lone surrogate (Cs)": "a\ud800b",
    "a space only": " ",
    "ideographic space only": "\u3000\u3000",
}
FINE = ("café", "漢字モデル", "😀 model v2", "ResNet-34 (one-hot)", "a\u0301")


@pytest.mark.parametrize("name", SPOOFS.values(), ids=SPOOFS.keys())
def test_spoofing_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"not allowed|blank"):
        check_name(name)


@pytest.mark.parametrize("name", FINE)
def test_ordinary_names_in_any_script_pass(name: str) -> None:
    assert check_name(name) == name and visible(name) == name


def test_free_text_keeps_its_line_breaks_but_not_the_rest() -> None:
    assert check_text("line one\n\tline two\r\n") == "line one\n\tline two\r\n"
    for bad in ("a\u202eb", "a\u2028b", "a\x00b"):
        with pytest.raises(ValueError, match="not allowed"):
            check_text(bad)


def test_visible_escapes_what_a_name_may_not_hold() -> None:
    assert visible("a\u202e\u200bb") == "a\\u202e\\u200bb"
    assert visible("x\U000f0000y") == "x\\U000f0000y"  # private use, beyond the BMP
    assert visible("one\ntwo") == "one\\u000atwo"
    assert visible("one\ntwo", lines=True) == "one\ntwo"


@given(st.text(max_size=20))
@example("a\u202e\u200bb")
@example(" ")
def test_the_rule_and_the_escape_agree(name: str) -> None:
    """A name passes exactly when it is not blank and holds no refused character; `visible` leaves
    such a name alone and turns any other into text that holds none."""
    refused = any(unicodedata.category(c) in REFUSED_CATEGORIES for c in name)
    try:
        check_name(name)
        passed = True
    except ValueError:
        passed = False
    assert passed == (not refused and name.strip() != "")
    shown = visible(name)
    assert not any(unicodedata.category(c) in REFUSED_CATEGORIES for c in shown)
    assert (shown == name) == (not refused)


# -- the API ---------------------------------------------------------------------------------------


@pytest.fixture
def admin(sqlite_api: Api) -> str:
    f.team(sqlite_api.db, "alpha")
    f.user(sqlite_api.db, "a@x.org", team="alpha")
    return f.user(sqlite_api.db, "root@x.org", role=Role.ADMIN)


def _says_why(text: str) -> bool:
    # the JSON parser refuses a lone surrogate before the validator sees it (in the project's words,
    # server.core.wording); the address pattern refuses an inner space
    reasons = ("is not allowed", "must not be blank", "must be UTF-8 text", "invalid email address")
    return any(words in text for words in reasons)


def _names(db: Database) -> tuple[set[str], set[str]]:
    with db.transaction(write=False) as session:
        return set(session.scalars(select(Team.name))), set(session.scalars(select(User.email)))


@pytest.mark.parametrize("spoof", SPOOFS.values(), ids=SPOOFS.keys())
def test_every_api_entry_point_refuses_a_spoofing_name(sqlite_api: Api, admin: str, spoof: str) -> None:
    before = _names(sqlite_api.db)
    researcher = f.token(sqlite_api.db, "a@x.org")
    bodies = [
        ("/api/v1/admin/teams", {"name": spoof}),
        ("/api/v1/admin/users", {"email": f"x{spoof}y@x.org", "team": "alpha"}),
        ("/api/v1/admin/users", {"email": "new@x.org", "team": spoof}),
        ("/api/v1/admin/users/a@x.org/tokens", {"label": spoof}),
    ]
    for path, body in bodies:  # JSON escapes (\ud800): a lone surrogate arrives as one
        headers = f.auth(admin) | {"Content-Type": "application/json"}
        response = sqlite_api.client.post(path, content=json.dumps(body), headers=headers)
        assert response.status_code in (400, 422), (path, body, response.text)
        assert _says_why(response.text), response.text
    queries = [{"name": spoof}]
    if spoof.strip():  # a free text may be blank; a method card field may not hold the characters
        queries.append({"name": "ok", "method_card": json.dumps({"architecture": f"resnet{spoof}"})})
    for params in queries if "\ud800" not in spoof else []:  # a URL cannot carry a lone surrogate
        response = sqlite_api.client.post("/api/v1/submissions", params=params, headers=f.auth(researcher))
        assert response.status_code in (400, 422), (params, response.text)
        assert _says_why(response.text), response.text
    assert _names(sqlite_api.db) == before  # nothing was stored


def test_free_text_fields_refuse_direction_changes(sqlite_api: Api, admin: str) -> None:
    researcher = f.token(sqlite_api.db, "a@x.org")
    upload = sqlite_api.client.post(
        "/api/v1/submissions?name=ok&description=fine%0Aand%E2%80%AEreversed", headers=f.auth(researcher)
    )
    assert upload.status_code == 422 and "U+202E" in upload.text
    review = sqlite_api.client.post(
        "/api/v1/admin/submissions/1/review",
        json={"action": "hide", "reason": "copied \u202ereversed"},
        headers=f.auth(admin),
    )
    assert review.status_code == 422 and "U+202E" in review.text


def test_the_review_form_refuses_what_the_api_refuses(sqlite_api: Api, admin: str) -> None:
    """The console's form skips the API's body model: the service checks the reason itself."""
    maud = f.user(sqlite_api.db, "maud@x.org", role=Role.MAINTAINER)
    web_login(sqlite_api.client, maud, "/admin")
    page = sqlite_api.client.get("/admin")
    response = sqlite_api.client.post(
        "/admin/submissions/1/review",
        data={"action": "hide", "reason": "nul \x00 and \u202e", "csrf_token": csrf_token(page.text)},
    )
    assert response.status_code == 400 and "invalid reason" in response.text


def test_an_empty_token_label_is_no_label(sqlite_api: Api, admin: str) -> None:
    made = sqlite_api.client.post(
        "/api/v1/admin/users/a@x.org/tokens", json={"label": ""}, headers=f.auth(admin)
    )
    assert made.status_code == 201 and made.json()["label"] == ""


# -- the admin command line ------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CSAWM_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("CSAWM_DATABASE_URL", raising=False)
    monkeypatch.delenv("CSAWM_BENCHMARK_DIR", raising=False)
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    assert CliRunner().invoke(app, ["admin", "create-team", "alpha"]).exit_code == 0
    made = CliRunner().invoke(app, ["admin", "create-user", "a@x.org", "--team", "alpha", "--no-token"])
    assert made.exit_code == 0
    return tmp_path / "state"


@pytest.mark.parametrize(
    "args",
    [
        ("admin", "create-team", "alpha\u202e"),
        ("admin", "create-team", "alpha\n"),  # the team pattern's `$` once let a trailing newline in
        ("admin", "create-team", " "),
        ("admin", "create-user", "b\u202e\u200b@x.org", "--team", "alpha"),
        ("admin", "create-user", "b\u2028@x.org", "--team", "alpha"),
        ("admin", "issue-token", "a@x.org", "--label", "ci\u200b"),
        ("admin", "issue-token", "a@x.org", "--label", " "),
        ("admin", "create-phase", "final\n", "--opens-at", "now"),
    ],
)
def test_the_admin_command_line_refuses_spoofing_names(env: Path, args: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    db = Database.connect(f"sqlite:///{env / 'csawm.db'}")
    try:
        assert _names(db) == ({"alpha"}, {"a@x.org"})
    finally:
        db.dispose()
