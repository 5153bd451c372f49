"""No framework wording reaches a user (issue 23 item 8): real requests with bad input get the
project's words (`server.core.wording.WORDS`), each naming the field and what to change."""

from __future__ import annotations

import json

import pytest
from srvtest import factories as f
from srvtest.app import Api

from server.core import wording
from server.models import Role

#: Phrases of the framework's own messages; none may appear in an answer.
FRAMEWORK = (
    "Input should",
    "Extra inputs are not permitted",
    "Field required",
    "relative URL without a base",
    "Value error",
    "Not Found",
    "Method Not Allowed",
    "valid integer",
    "Unable to parse",
    "timezone info",
)


def _message(response: object) -> str:
    body = response.json()  # type: ignore[attr-defined]
    message = str(body["error"]["message"])
    for phrase in FRAMEWORK:
        assert phrase not in message, message
    return message


def _card(api: Api, token: str, card: dict[str, object]) -> str:
    r = api.client.post(
        "/api/v1/submissions",
        params={"name": "m", "method_card": json.dumps(card)},
        content=b"",
        headers={**f.auth(token), "Content-Type": "application/x-tar"},
    )
    assert r.status_code == 400, r.text
    return _message(r)


def test_a_bad_method_card_is_answered_in_the_projects_words(sqlite_api: Api) -> None:
    token = f.member_token(sqlite_api.db)
    message = _card(sqlite_api, token, {"architecure": "resnet", "code_url": "github.com/me/model"})
    assert "architecure: is not a field this server accepts (check its spelling)" in message
    assert "code_url: is not a full web address (write it as https://example.org/...)" in message
    assert "external_data: must be true or false" in _card(sqlite_api, token, {"external_data": "maybe"})
    assert "notes: is too long (at most 2000)" in _card(sqlite_api, token, {"notes": "x" * 2001})
    assert "paper_url: must be a web address starting with http:// or https://" in _card(
        sqlite_api, token, {"paper_url": "ftp://example.org/paper"}
    )


def test_a_bad_admin_body_and_bad_parameters_are_answered_in_the_projects_words(sqlite_api: Api) -> None:
    api = sqlite_api
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    r = api.client.post(
        "/api/v1/admin/phases",
        json={"test_set": "secret", "opens_at": "2027-03-01T00:00:00", "max_selected": 0, "colour": "red"},
        headers=f.auth(maud),
    )
    assert r.status_code == 422
    message = _message(r)
    assert "name: is required" in message
    assert "test_set: must be one of private or public" in message
    assert "opens_at: must be a time with its zone (add Z or +HH:MM)" in message
    assert "max_selected: must be at least 1" in message
    assert "colour: is not a field this server accepts" in message
    r = api.client.get("/api/v1/submissions/abc", headers=f.auth(maud))
    assert r.status_code == 422 and _message(r) == "submission_id: must be a whole number"
    r = api.client.get("/api/v1/no-such-path", headers=f.auth(maud))
    assert r.status_code == 404 and "no such page or API path" in _message(r)
    r = api.client.delete("/api/v1/quota", headers=f.auth(maud))
    assert r.status_code == 405 and "does not take that HTTP method" in _message(r)


@pytest.mark.parametrize("kind", sorted(wording.WORDS))
def test_every_word_of_the_table_is_plain(kind: str) -> None:
    """Each entry reads as words even where the framework gives no context for its fields."""
    shown = wording.words({"type": kind, "msg": "Input should be framework text", "ctx": {}})
    assert shown and "{" not in shown and "Input should" not in shown


def test_an_unknown_error_type_is_not_passed_through_and_our_own_validators_are() -> None:
    assert wording.words({"type": "something_new", "msg": "Input should be a snake"}) == "is not valid"
    assert wording.words({"type": "value_error", "msg": "Value error, no tag without a digest"}) == (
        "no tag without a digest"
    )
