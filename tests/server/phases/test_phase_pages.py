"""The pages and phases: the current phase named on every page, the board's phase selector and its
per-phase downloads, 404 for an unknown phase."""

from __future__ import annotations

from datetime import timedelta

from phasetest import make_phase, scored
from srvtest import factories as f
from srvtest.app import Api

HOUR = timedelta(hours=1)


def test_every_page_names_the_current_phase_and_the_board_selects_one(sqlite_api: Api) -> None:
    api = sqlite_api
    alpha = f.team(api.db, "alpha")
    make_phase(api, "dev-1", -5 * HOUR, -3 * HOUR)
    make_phase(api, "final-1", -HOUR, HOUR, visibility="sealed")
    old = scored(api, alpha, "old-model", "dev-1", 0.612345, 44.0)
    for path in ("/", "/login", "/guide/submitting", "/?phase=dev-1"):
        page = api.client.get(path)
        assert page.status_code == 200, path
        assert "Phase <strong>final-1</strong>" in page.text and "sealed final round" in page.text, path
    board = api.client.get("/").text
    assert '<option value="dev-1">' in board and '<option value="final-1" selected>' in board
    assert "old-model" not in board  # the current (sealed) phase's board, not dev-1's
    dev = api.client.get("/?phase=dev-1").text
    assert '<option value="dev-1" selected>' in dev and "old-model" in dev and "0.612" in dev
    assert 'href="/leaderboard.csv?phase=dev-1"' in dev
    csv_rows = api.client.get("/leaderboard.csv", params={"phase": "dev-1"}).text.splitlines()
    assert any(",old-model," in line and "0.612345" in line for line in csv_rows)
    assert "old-model" not in api.client.get("/leaderboard.csv").text
    as_json = api.client.get("/leaderboard.json", params={"phase": "dev-1"}).json()
    assert as_json["phase"] == "dev-1" and [
        r["submission_id"] for r in as_json["rows"] if r["kind"] == "submission"
    ] == [old]
    assert api.client.get("/?phase=nope").status_code == 404
    assert api.client.get("/leaderboard.csv", params={"phase": "nope"}).status_code == 404
    api_board = api.client.get("/api/v1/leaderboard", params={"phase": "dev-1"}).json()
    assert api_board["phase"]["name"] == "dev-1" and not api_board["phase"]["open"]
