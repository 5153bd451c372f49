"""Issue 19 item 6: the board's plot URL (``/plots/leaderboard-tau.svg?v=...``) spelled out the
board's cache key: the count of succeeded runs, the latest success to the microsecond, the count
of selections and the newest selection id. Anyone could follow a sealed round from it. Now ``v`` is
an HMAC of that key: it still changes whenever the board does, and tells nothing of it."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from phasetest import make_phase, scored, web
from srvtest import factories as f
from srvtest.app import Api

from server.core.settings import load_settings
from server.leaderboard import service as leaderboard_service
from server.models import Submission, Team
from server.web.cache import plot_key, plot_version

HOUR = timedelta(hours=1)
PLOT_URL = re.compile(r'src="/plots/leaderboard-tau\.svg\?v=([^"]*)"')
REPORT_PLOT_URL = re.compile(r'src="/submissions/\d+/plots/[a-z-]+\.svg\?v=([^"]*)"')


def _board(api: Api, phase: str = "final") -> tuple[str, str]:
    """The anonymous board page of `phase` and the ``v`` of its plot URL."""
    page = web(api, None).get("/", params={"phase": phase})
    assert page.status_code == 200
    match = PLOT_URL.search(page.text)
    assert match, "no board plot on the page"
    return page.text, match.group(1)


def _key(api: Api) -> tuple[int | str, ...]:
    with api.db.session() as session:
        return leaderboard_service.version_key(session.connection())


def _sealed_round(api: Api) -> tuple[str, int]:
    alice = f.member_token(api.db, "alpha", "a@x.org")
    make_phase(api, "final", -HOUR, HOUR, visibility="sealed", max_selected=2)
    with api.db.transaction(write=False) as session:
        team_id = session.query(Team).filter_by(name="alpha").one().id
    return alice, team_id


def test_the_board_plot_url_tells_nothing_and_follows_every_change_issue_19(api: Api) -> None:
    alice, team_id = _sealed_round(api)
    first = scored(api, team_id, "run-1", "final", 0.61, 40.0)
    page, v1 = _board(api)
    assert re.fullmatch(r"[0-9a-f]{16}", v1), v1  # fixed width: no count, no timestamp fits in it
    count, latest, _, changed, selections, newest = _key(api)
    assert (count, selections, newest) == (1, 0, 0)
    for part in (str(latest), str(latest)[-6:], str(changed), str(changed)[-6:]):
        assert part not in page, part
    assert _board(api)[1] == v1  # unchanged board, unchanged URL (the browser's cache holds)

    second = scored(api, team_id, "run-2", "final", 0.62, 41.0)  # another run succeeds
    _, v2 = _board(api)
    assert v2 != v1 and re.fullmatch(r"[0-9a-f]{16}", v2)

    assert api.client.post(f"/api/v1/submissions/{first}/select", headers=f.auth(alice)).status_code == 200
    page, v3 = _board(api)  # a selection in the sealed round
    assert v3 not in (v1, v2)
    count, latest, _, _, selections, newest = _key(api)
    assert (count, selections) == (2, 1) and int(newest) >= 1
    assert str(latest) not in page and str(latest)[-6:] not in v3

    assert api.client.post(f"/api/v1/submissions/{second}/select", headers=f.auth(alice)).status_code == 200
    assert _board(api)[1] not in (v1, v2, v3)


def test_the_plot_version_is_keyed_by_the_servers_secret_issue_19(tmp_path: Path) -> None:
    """The same board key under another secret gives another ``v``: nobody without the server's
    secret can test a guess of the board's state (count, time of the last success) against it."""
    key = (3, "2026-03-01 10:00:00.123456+00:00", 2, "2026-02-01 09:00:00+00:00", 1, 7, "ab12", "final")

    def version(secret: str) -> str:
        state = SimpleNamespace(plot_key=plot_key(load_settings(data_dir=tmp_path, session_secret=secret)))
        return plot_version(state, *key)  # type: ignore[arg-type]

    assert version("a" * 40) == version("a" * 40) != version("b" * 40)
    plain = "\x1f".join(str(part) for part in key).encode()
    assert version("a" * 40) not in (hashlib.sha256(plain).hexdigest(), hashlib.md5(plain).hexdigest())


def test_report_plot_urls_do_not_carry_the_runs_update_time_issue_19(api: Api) -> None:
    alice, team_id = _sealed_round(api)
    make_phase(api, "dev", -3 * HOUR, -2 * HOUR)  # a live phase whose report the team may see
    sub_id = scored(api, team_id, "dev-run", "dev", 0.6, 40.0)
    page = web(api, alice).get(f"/submissions/{sub_id}")
    versions = set(REPORT_PLOT_URL.findall(page.text))
    assert len(versions) == 1, page.text[:2000]
    (v,) = versions
    assert re.fullmatch(r"[0-9a-f]{16}", v)
    with api.db.session() as session:
        updated = session.get(Submission, sub_id).updated_at
    assert str(int(updated.timestamp())) not in page.text
