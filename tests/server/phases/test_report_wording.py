"""The report page in a reader's words (issue 23 item 8): no "No scores yet." under a scored run,
scoring notes as sentences (the API keeps the path beside the text), the reproducibility record as a
definition list, and a reason for every missing runtime figure (the phase banner's layout:
tests/web/test_layout_browser.py, in chromium)."""

from __future__ import annotations

import re
from datetime import timedelta

from phasetest import make_phase, report, scored, web
from srvtest import factories as f
from srvtest.app import Api
from srvtest.web import as_shown, repro_record

from server.models import Role, Submission, Team

HOUR = timedelta(hours=1)
DEGENERATE = (
    "clinical.interval_cancer.odds_ratios.Q4: 210 of 2000 bootstrap resamples were degenerate "
    "and are left out of the interval"
)


def _alice(api: Api) -> str:
    return f.member_token(api.db, "alpha", "a@x.org")


def _team_id(api: Api) -> int:
    with api.db.transaction(write=False) as session:
        return int(session.query(Team).filter_by(name="alpha").one().id)


def _page(api: Api, token: str, sub_id: int) -> str:
    page = web(api, token).get(f"/submissions/{sub_id}")
    assert page.status_code == 200, page.text
    return page.text


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_a_scored_ladder_run_does_not_say_no_scores_yet(sqlite_api: Api) -> None:
    api = sqlite_api
    alice = _alice(api)
    make_phase(api, "ladder", -HOUR, HOUR, ladder=True)
    sub_id = scored(api, _team_id(api), "ladder-run", "ladder", 0.6, 40.0)
    text = _text(_page(api, alice, sub_id))
    assert "No scores yet" not in text
    assert "The run is scored; its report is withheld in this phase (Ladder phase" in text


def test_scoring_notes_are_sentences_on_the_page_and_keep_their_path_in_the_api(sqlite_api: Api) -> None:
    api = sqlite_api
    alice = _alice(api)
    make_phase(api, "dev", -HOUR, HOUR, test_set="public")
    sub_id = scored(api, _team_id(api), "noted", "dev", 0.6, 40.0)
    with api.db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.metrics = {**(sub.metrics or report(0.6, 40.0)), "warnings": [DEGENERATE]}
    text = _text(_page(api, alice, sub_id))
    assert "clinical.interval_cancer" not in text and "degenerate" not in text
    assert (
        "Interval cancer, odds ratio of Q4: 210 of 2000 resamples could not be computed (no case, or no "
        "control, among the rows drawn); the interval uses the other 1790"
    ) in text
    body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(alice)).json()
    assert body["metrics"]["warnings"] == [DEGENERATE]  # the stored report is the scorer's
    assert body["notes"] == [
        {
            "path": "clinical.interval_cancer.odds_ratios.Q4",
            "text": "Interval cancer, odds ratio of Q4: 210 of 2000 resamples could not be computed (no "
            "case, or no control, among the rows drawn); the interval uses the other 1790",
        }
    ]


def test_the_reproducibility_record_is_a_definition_list_not_json(sqlite_api: Api) -> None:
    api = sqlite_api
    alice = _alice(api)
    make_phase(api, "dev", -HOUR, HOUR, test_set="public")
    sub_id = scored(api, _team_id(api), "recorded", "dev", 0.6, 40.0, bootstrap={"resamples": 400, "seed": 7})
    html = _page(api, alice, sub_id)
    section = html[html.index('id="repro-heading"') :]
    assert "<pre>" not in section and "{" not in _text(section)
    assert re.search(r"<dt>resamples</dt><dd><code>400</code></dd>", section)
    assert re.search(r"<dt>seed</dt><dd><code>7</code></dd>", section)
    run = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(alice)).json()
    assert repro_record(html) == as_shown(run["reproducibility"])  # the page carries the API's record


def test_every_runtime_figure_is_shown_or_says_why_not(sqlite_api: Api) -> None:
    api = sqlite_api
    alice = _alice(api)
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    make_phase(api, "dev", -HOUR, HOUR, test_set="public")
    sub_id = scored(api, _team_id(api), "timed", "dev", 0.6, 40.0)
    unmeasured = {"wall_s": 3.0, "container_s": 2.5, "cpu_s": None, "gpu_s": None, "peak_memory_bytes": None}
    with api.db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.runtime = {"phases": {"preflight": unmeasured, "hidden": unmeasured, "scoring": unmeasured}}
    for token, withheld in ((alice, True), (maud, False)):
        html = _page(api, token, sub_id)
        table = html[html.index('<table class="runtime">') : html.index("</table>", html.index("runtime"))]
        cells = re.findall(r'<td data-key="\w+">(.*?)</td>', table, re.S)
        assert cells and all(_text(c).strip() not in ("", "–", "-") for c in cells), cells
        assert "not measured by this runner" in table and "no GPU used" in table
        assert ("withheld: shown to the maintainers only" in table) is withheld
        assert ("CSAWM_HIDDEN_RUNTIME" in table) is withheld
    with api.db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.runtime = None
    assert "No runtime figures were recorded for this run" in _text(_page(api, maud, sub_id))
