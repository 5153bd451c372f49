"""The pages over plain HTTP (no browser): content, downloads, access rules, CSRF, accessibility."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from server.accounts import service as accounts
from server.models import ApiToken, AuditEntry, ReviewState, Submission
from tests.server.srvtest.web import as_shown, page_times, repro_record, runtime_table

from .a11y import audit_html, contrast_ratio, css_palette
from .helpers import Site

STYLESHEET = Path(__file__).resolve().parents[2] / "server" / "web" / "static" / "style.css"
#: (foreground, background) custom properties the stylesheet pairs for text.
TEXT_PAIRS = [
    ("fg", "bg"),
    ("muted", "bg"),
    ("link", "bg"),
    ("fg", "row-alt-bg"),
    ("muted", "row-alt-bg"),
    ("link", "row-alt-bg"),
    ("fg", "baseline-bg"),
    ("link", "baseline-bg"),
    ("fg", "expert-bg"),
    ("link", "expert-bg"),
    ("fg", "leader-bg"),
    ("link", "leader-bg"),
    ("muted", "code-bg"),
    ("muted", "baseline-bg"),
    ("muted", "expert-bg"),
    ("muted", "leader-bg"),
    ("fg", "code-bg"),
    ("header-fg", "header-bg"),
    ("badge-fg", "badge-baseline-bg"),
    ("badge-fg", "badge-expert-bg"),
    ("badge-fg", "badge-leader-bg"),
    ("badge-fg", "badge-tie-bg"),
    ("badge-fg", "badge-density-bg"),
    ("fg", "density-bg"),
    ("link", "density-bg"),
    ("muted", "density-bg"),
    ("error-fg", "error-bg"),
    ("error-fg", "bg"),
    ("error-fg", "row-alt-bg"),
    ("ok-fg", "ok-bg"),
    ("button-fg", "button-bg"),
]


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def http_login(client: httpx.Client, token: str) -> httpx.Response:
    form = client.get("/login")
    return client.post("/login", data={"token": token, "csrf_token": _csrf(form.text), "next": "/team"})


@pytest.fixture
def anon(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=60) as client:
        yield client


@pytest.fixture
def alice(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=60) as client:
        assert http_login(client, site.tokens["alice"]).status_code == 303
        yield client


@pytest.fixture
def maud(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=60) as client:
        assert http_login(client, site.tokens["maud"]).status_code == 303
        yield client


def test_leaderboard_rows_and_downloads_agree_with_the_api(site: Site, anon: httpx.Client) -> None:
    api_rows = anon.get("/api/v1/leaderboard").json()["rows"]
    page = anon.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    board, clinical = page.text.split('id="clinical"')
    kinds = re.findall(r'<tr class="kind-(\w+)', board)
    assert kinds == [row["kind"] for row in api_rows]
    assert {"submission", "baseline", "expert"} <= set(kinds)
    clinical_rows = anon.get("/api/v1/leaderboard", params={"view": "clinical"}).json()["rows"]
    clinical_kinds = re.findall(r'<tr class="kind-(\w+)', clinical.split("</table>")[0])
    assert clinical_kinds == [row["kind"] for row in clinical_rows]
    assert clinical_kinds.count("density") == 3 and "LIBRA percent density" in clinical
    assert "Expert 1" in page.text and "ResNet-34 multi-hot" in page.text

    table = list(csv.DictReader(io.StringIO(anon.get("/leaderboard.csv").text)))
    download = anon.get("/leaderboard.json")
    assert "attachment" in download.headers["content-disposition"]
    rows = download.json()["rows"]
    assert [r["name"] for r in table] == [r["name"] for r in rows] == [r["name"] for r in api_rows]
    for row, api_row, line in zip(rows, api_rows, table, strict=True):
        assert row["kendall_tau_b"] == api_row["kendall_tau_b"]
        assert row["tied_with_leader"] == api_row["tied_with_leader"]
        assert float(line["kendall_tau_b"]) == pytest.approx(api_row["kendall_tau_b"]["value"])
    alpha = next(r for r in rows if r["name"] == "alpha-convnext")
    assert alpha["links"] == {
        "paper": "https://example.org/paper",
        "code": "https://example.org/code",
        "link": "https://example.org/project",
    }
    with site.db.session() as session:
        stored = session.scalar(select(Submission.metrics).where(Submission.id == alpha["submission_id"]))
    for endpoint in ("interval_cancer", "large_invasive_cancer", "composite"):
        q4 = stored["clinical"][endpoint]["odds_ratios"]["Q4"]
        assert alpha["odds_ratio_q4"][endpoint] == {"value": q4["value"], "ci95": q4["ci95"]}


def test_reports_are_for_their_team_and_maintainers_only(
    site: Site, anon: httpx.Client, alice: httpx.Client, maud: httpx.Client
) -> None:
    own, other = site.ids["alpha_approved"], site.ids["beta_approved"]
    redirect = anon.get(f"/submissions/{own}")
    assert redirect.status_code == 303 and redirect.headers["location"].startswith("/login?next=")
    assert alice.get(f"/submissions/{own}").status_code == 200
    assert alice.get(f"/submissions/{other}").status_code == 404
    assert alice.get(f"/submissions/{other}/plots/confusion.svg").status_code == 404
    assert anon.get(f"/submissions/{own}/plots/confusion.svg").status_code == 404
    assert alice.get("/teams/Beta").status_code == 404
    assert alice.get("/admin").status_code == 403
    assert maud.get(f"/submissions/{other}").status_code == 200
    assert maud.get("/admin").status_code == 200
    plot = alice.get(f"/submissions/{own}/plots/odds-ratios.svg")
    assert plot.headers["content-type"].startswith("image/svg+xml") and b"<svg" in plot.content


def test_failed_run_shows_error_and_log_tail(site: Site, alice: httpx.Client) -> None:
    html = alice.get(f"/submissions/{site.ids['alpha_failed']}").text
    assert "Run failed: nonzero_exit during preflight" in html
    assert "ValueError: weights not found" in html
    assert "<img" not in html  # no scores, so no plots
    assert "javascript:alert(1)" in html and 'href="javascript:' not in html  # shown, never a link


def test_failed_run_report_says_the_charge_the_log_and_the_next_step_as_the_api_does(
    site: Site, alice: httpx.Client
) -> None:
    """Issue 23 items 1 and 4: the report page shows the API's `outcome` words, and no review state
    that never ends for a run that failed."""
    html, run = _page_and_api(site, alice, "alice", "alpha_failed")
    outcome = run["outcome"]
    assert run["review_state"] is None and "none (the run ended without a result)" in html
    for key in ("charge", "log", "next_step"):
        assert escape(outcome[key]) in html
    pending_html, pending = _page_and_api(site, alice, "alice", "alpha_pending")
    assert pending["outcome"] is None and "awaiting review — not public yet" in pending_html


def test_the_cancel_button_needs_the_csrf_token_and_cancels_a_queued_run(
    site: Site, alice: httpx.Client, maud: httpx.Client
) -> None:
    """Issue 23 item 3: the report page's cancel button (CSRF), its refund rule stated."""
    sub_id = site.ids["beta_queued"]
    page = maud.get(f"/submissions/{sub_id}").text
    assert "Cancel this run" in page and "Refunded if it stops before the hidden run starts" in page
    refused = maud.post(f"/submissions/{sub_id}/cancel", data={"csrf_token": "forged"})
    assert refused.status_code == 400
    assert alice.post(f"/submissions/{sub_id}/cancel", data={"csrf_token": _csrf(page)}).status_code in (
        400,
        404,
    )  # another team's run (and another session's token)
    done = maud.post(f"/submissions/{sub_id}/cancel", data={"csrf_token": _csrf(page)})
    assert done.status_code == 303 and done.headers["location"] == f"/submissions/{sub_id}"
    after = maud.get(f"/submissions/{sub_id}").text
    assert "Run cancelled" in after and "Cancel this run" not in after
    again = maud.post(f"/submissions/{sub_id}/cancel", data={"csrf_token": _csrf(after)})
    assert again.status_code == 409 and "already ended" in again.text


def _page_and_api(site: Site, client: httpx.Client, who: str, key: str) -> tuple[str, dict[str, Any]]:
    sub_id = site.ids[key]
    api = httpx.get(
        f"{site.url}/api/v1/submissions/{sub_id}", headers={"Authorization": f"Bearer {site.tokens[who]}"}
    )
    assert api.status_code == 200
    return client.get(f"/submissions/{sub_id}").text, api.json()


def _api_times(run: dict[str, Any]) -> set[datetime]:
    stamps = [run["created_at"], run["started_at"], run["finished_at"], *(e["at"] for e in run["events"])]
    return {datetime.fromisoformat(t.replace("Z", "+00:00")) for t in stamps if t}


def _api_runtime(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keys = ("wall_s", "container_s", "cpu_s", "gpu_s", "peak_memory_bytes")
    phases = (run["runtime"] or {}).get("phases") or {}
    return {name: {k: values.get(k) for k in keys} for name, values in phases.items()}


@pytest.mark.parametrize("key", ["alpha_approved", "alpha_failed"])
def test_report_page_shows_exactly_what_the_api_shows(
    site: Site, alice: httpx.Client, maud: httpx.Client, key: str
) -> None:
    """Issue 19 item 5: a researcher's report page shows the API's runtime figures, timestamps and
    reproducibility record, no more (no worker host or name, no predictions hash, no hidden-stage
    figure under the default ``CSAWM_HIDDEN_RUNTIME``); a maintainer's shows everything."""
    for client, who in ((alice, "alice"), (maud, "maud")):
        html, run = _page_and_api(site, client, who, key)
        assert set(page_times(html)) == _api_times(run)
        assert runtime_table(html) == _api_runtime(run)
        assert repro_record(html) == as_shown(run["reproducibility"] or {})
    html, run = _page_and_api(site, alice, "alice", key)
    for secret in ("worker-host-17", "csawm-worker-3", "c0ffee", "2100000000", "97.25"):
        assert secret not in html
    if key == "alpha_approved":
        staff_html, staff_run = _page_and_api(site, maud, "maud", key)
        assert set(runtime_table(staff_html)) == {"preflight", "hidden", "scoring"}
        assert runtime_table(html) == {"preflight": _api_runtime(staff_run)["preflight"]}
        assert "worker-host-17" in staff_html and "c0ffee" in staff_html
    stamps = [datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("started_at", "finished_at")]
    assert all(t.second == 0 and t.microsecond == 0 for t in stamps)


def test_review_console_lists_failed_runs_with_their_reasons(site: Site, maud: httpx.Client) -> None:
    """Issue 10 item 3b: failed and infra_error runs are visible to maintainers, with the reason."""
    html = maud.get("/admin").text
    section = html[html.index('id="failed-heading"') : html.index('id="quota-heading"')]
    assert "Failed runs (1)" in section
    failed = site.ids["alpha_failed"]
    assert f'<a href="/submissions/{failed}">{failed}</a></td><td>Alpha</td><td>alpha-broken</td>' in section
    assert "<td>preflight</td>" in section and "<code>nonzero_exit</code>" in section
    assert "the model exited with code 1 during preflight" in section


def test_team_page_shows_quota_and_own_submissions(site: Site, alice: httpx.Client) -> None:
    team = alice.get("/team", follow_redirects=True)
    assert team.url.path == "/teams/Alpha"
    assert "alpha-broken" in team.text and "beta-vit" not in team.text
    used_day = re.search(
        r"Rolling 24 hours</th><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)", team.text
    )
    assert used_day is not None and used_day.groups() == ("3", str(site.settings.quota_per_day))


def test_form_posts_need_the_csrf_token(site: Site, maud: httpx.Client) -> None:
    target = site.ids["alpha_pending"]
    refused = maud.post(f"/admin/submissions/{target}/review", data={"action": "approve", "reason": ""})
    assert refused.status_code == 400 and "security token" in refused.text
    forged = maud.post(
        f"/admin/submissions/{target}/review",
        data={"action": "approve", "csrf_token": _csrf(maud.get("/admin").text)},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 400 and "another origin" in forged.text
    assert maud.post("/login", data={"token": site.tokens["maud"]}).status_code == 400
    with site.db.session() as session:
        assert session.get(Submission, target).review_state == ReviewState.PENDING  # type: ignore[union-attr]


def test_review_without_reason_is_refused_and_nothing_is_recorded(site: Site, maud: httpx.Client) -> None:
    target = site.ids["alpha_pending"]
    response = maud.post(
        f"/admin/submissions/{target}/review",
        data={"action": "disqualify", "reason": "", "csrf_token": _csrf(maud.get("/admin").text)},
    )
    assert response.status_code == 400 and "a reason is required" in response.text
    with site.db.session() as session:
        assert session.get(Submission, target).review_state == ReviewState.PENDING  # type: ignore[union-attr]
        audited = session.scalars(
            select(AuditEntry).where(
                AuditEntry.target_type == "submission", AuditEntry.target_id == str(target)
            )
        ).all()
        assert audited == []


def test_revoking_the_token_ends_the_web_session(site: Site) -> None:
    with site.db.transaction() as session:
        row, token = accounts.issue_token(session, "alice@alpha.example", expires_in=None, actor="test")
    with httpx.Client(base_url=site.url, timeout=60) as client:
        assert http_login(client, token).status_code == 303
        assert client.get("/team").status_code == 303  # to /teams/Alpha, logged in
        assert client.get("/team").headers["location"] == "/teams/Alpha"
        with site.db.transaction() as session:
            accounts.revoke_token(session, str(row.id), actor="test")
        assert client.get("/team").headers["location"].startswith("/login")
    with httpx.Client(base_url=site.url, timeout=60) as client:
        refused = http_login(client, token)
        assert refused.status_code == 401 and "token revoked" in refused.text
        client.cookies.set("csawm_session", "forged.value.sig")
        assert client.get("/team").headers["location"].startswith("/login")


def test_a_token_expiring_ends_its_open_web_session_issue_20(site: Site) -> None:
    """The pages ask the API's own lookup (`server.core.principal.principal_for_hash`): a cookie
    outlives no rule of the token behind it, expiry included."""
    with site.db.transaction() as session:
        row, token = accounts.issue_token(session, "alice@alpha.example", expires_in=None, actor="test")
        token_id = row.id
    with httpx.Client(base_url=site.url, timeout=60) as client:
        assert http_login(client, token).status_code == 303
        assert client.get("/team").headers["location"] == "/teams/Alpha"
        with site.db.transaction() as session:
            expiring = session.get(ApiToken, token_id)
            assert expiring is not None
            expiring.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        assert client.get("/team").headers["location"].startswith("/login")


def test_login_never_redirects_off_site(site: Site, anon: httpx.Client) -> None:
    form = anon.get("/login?next=//evil.example/x")
    assert 'name="next" value="/team"' in form.text
    response = anon.post(
        "/login",
        data={"token": site.tokens["bob"], "csrf_token": _csrf(form.text), "next": "https://evil.example"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/team"
    cookie = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookie if c.startswith("csawm_session="))
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
    assert site.tokens["bob"] not in session_cookie


def test_guide_shows_the_limits_in_force(site: Site, anon: httpx.Client) -> None:
    html = anon.get("/guide/submitting").text
    assert "<!-- limits -->" not in html
    row = re.search(r"Submissions per rolling 24 hours</th><td>(\d+)</td>", html)
    assert row is not None and int(row.group(1)) == site.settings.quota_per_day == 5
    assert "csawm check" in html
    assert anon.get("/guide/maintaining").status_code == 200
    assert anon.get("/guide/nope").status_code == 404
    assert anon.get("/static/../router.py").status_code == 404


def test_pages_pass_the_accessibility_smoke_check(
    site: Site, anon: httpx.Client, alice: httpx.Client, maud: httpx.Client
) -> None:
    pages = {
        "leaderboard": anon.get("/"),
        "login": anon.get("/login"),
        "guide": anon.get("/guide/submitting"),
        "report": alice.get(f"/submissions/{site.ids['alpha_approved']}"),
        "full report": maud.get(f"/submissions/{site.ids['alpha_approved']}"),
        "failed report": alice.get(f"/submissions/{site.ids['alpha_failed']}"),
        "team": alice.get("/teams/Alpha"),
        "admin": maud.get("/admin"),
    }
    problems = {name: audit_html(r.text) for name, r in pages.items() if r.status_code == 200}
    assert len(problems) == len(pages), {name: r.status_code for name, r in pages.items()}
    assert problems == {name: [] for name in pages}
    plot = r'<img src="/submissions/\d+/plots/[\w-]+\.svg\?v=[0-9a-f]{16}" alt="([^"]+)"'
    alts = re.findall(plot, pages["full report"].text)
    assert len(alts) == 5 and all(len(alt) > 40 for alt in alts)  # + agreement (v2), strata (v3)
    # the researcher's summary (a private phase): the strata's dots (image strata only), the
    # odds-ratio forest and the model against each expert (docs/scoring.md; per-expert figures are
    # shown under summary, issue 21 item 6)
    assert [alt[:30] for alt in re.findall(plot, pages["report"].text)] == [
        "Kendall tau-b with 95% confide",
        "Forest plot of odds ratios, to",
        "Heatmap of Kendall tau-b again",
    ]


def test_palette_contrast_meets_wcag_aa() -> None:
    palette = css_palette(STYLESHEET.read_text())
    ratios = {f"{fg} on {bg}": contrast_ratio(palette[fg], palette[bg]) for fg, bg in TEXT_PAIRS}
    assert min(ratios.values()) >= 4.5, {k: round(v, 2) for k, v in ratios.items() if v < 4.5}
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)


def test_leaderboard_json_is_strict_json(anon: httpx.Client) -> None:
    text = anon.get("/leaderboard.json").text
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["rows"]


def test_expired_tokens_cannot_log_in(site: Site, anon: httpx.Client) -> None:
    with site.db.transaction() as session:
        _, token = accounts.issue_token(
            session, "bob@beta.example", expires_in=timedelta(microseconds=1), actor="test"
        )
    response = http_login(anon, token)
    assert response.status_code == 401 and "expired" in response.text
