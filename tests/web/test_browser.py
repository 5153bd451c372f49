"""The pages in headless Debian chromium (Playwright): what a researcher and a maintainer do.

Every test's `page` fixture also asserts, after the test, that no request left the test server's
origin. Screenshots of the leaderboard, a report and the review console are written to
``test-output/screenshots/`` for review.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .helpers import Site, login, screenshot

pytestmark = pytest.mark.browser


def _column(page: Any, index: int) -> list[str]:
    cells: list[str] = page.locator(f"#leaderboard tbody tr td:nth-child({index})").all_inner_texts()
    return cells


def _numbers(cells: list[str]) -> list[float]:
    return [float(c.split()[0]) for c in cells if c.split() and c.split()[0] != "–"]


def test_leaderboard_shows_kinds_sorts_and_plots(page: Any, site: Site) -> None:
    page.goto(site.url + "/")
    rows = page.locator("#leaderboard tbody tr")
    kinds = rows.evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert {"submission", "baseline", "expert"} <= set(kinds)
    # distinct styling, not colour alone: a badge and a different background
    baseline_bg = page.locator("tr.kind-baseline").first.evaluate("r => getComputedStyle(r).backgroundColor")
    expert_bg = page.locator("tr.kind-expert").first.evaluate("r => getComputedStyle(r).backgroundColor")
    plain_bg = page.locator("tr.kind-submission:not(.is-leader)").first.evaluate(
        "r => getComputedStyle(r).backgroundColor"
    )
    assert len({baseline_bg, expert_bg, plain_bg}) == 3
    assert page.locator("#leaderboard tr.kind-baseline .badge.kind-baseline").count() == 2
    # The clinical table lists the three LIBRA density comparators after the models.
    assert page.locator("#clinical tr.kind-density").count() == 3

    tau_server_order = _numbers(_column(page, 8))  # rank, tier, rank 95%, p(first), team, model, experts
    assert tau_server_order == sorted(tau_server_order, reverse=True)
    plot = page.locator("figure.plot img").first
    assert "Kendall tau-b" in (plot.get_attribute("alt") or "")
    assert plot.evaluate("img => img.complete && img.naturalWidth > 100")
    screenshot(page, "leaderboard")

    amae_header = page.locator("#leaderboard").get_by_role("button", name="AMAE")
    amae_header.click()  # first click: the better direction (ascending)
    assert page.locator("th[aria-sort]").get_attribute("aria-sort") == "ascending"
    amae = _numbers(_column(page, 9))
    assert amae == sorted(amae) and len(amae) == len(kinds)
    amae_header.click()
    assert _numbers(_column(page, 9)) == sorted(amae, reverse=True)
    page.locator("#leaderboard").get_by_role("button", name="Team").click()
    teams = [t for t in _column(page, 5) if t != "–"]
    assert teams == sorted(teams, key=str.lower)


def test_researcher_logs_in_sees_own_report_with_plots_but_not_another_team(page: Any, site: Site) -> None:
    own = site.ids["alpha_approved"]
    page.goto(f"{site.url}/submissions/{own}")
    assert "/login" in page.url  # not logged in yet
    login(page, site, "alice", next_path=f"/submissions/{own}")
    assert page.url.endswith(f"/submissions/{own}")
    assert page.get_by_role("heading", level=1).inner_text() == f"Submission {own}: alpha-convnext"
    images = page.locator("figure.plot img[src^='/submissions/']")
    # a private phase shows its researchers the summary: of the five plots, the odds ratios' forest,
    # the agreement heatmap (per-expert figures, issue 21 item 6) and the strata's dots (a maintainer
    # gets group AMAE and confusion too; tests/web/test_pages.py)
    assert images.count() == 3
    # and the run's standing on the live board: its rank plot and significance map (issue 21)
    board_plots = page.locator("#standing-heading ~ figure.plot img")
    assert board_plots.count() == 2
    for i in range(2):
        board_plots.nth(i).scroll_into_view_if_needed()
        assert board_plots.nth(i).evaluate("img => img.complete && img.naturalWidth > 100")
    assert page.locator("#summary-note").is_visible()
    for i in range(2):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        assert image.evaluate("img => img.complete && img.naturalWidth > 100"), image.get_attribute("src")
        assert len(image.get_attribute("alt") or "") > 40
    assert page.get_by_text("Reproducibility record").is_visible()
    screenshot(page, "report")

    other = page.goto(f"{site.url}/submissions/{site.ids['beta_approved']}")
    assert other is not None and other.status == 404
    assert "beta-vit" not in page.content()

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(site.url + "/")
    again = page.goto(f"{site.url}/submissions/{own}")
    assert again is not None and "/login" in page.url


def test_maintainer_approves_a_result_and_it_reaches_the_public_board(
    open_page: Callable[[], Any], site: Site
) -> None:
    board, page = open_page(), open_page()  # an anonymous visitor and the maintainer
    board.goto(site.url + "/")
    assert board.locator("#leaderboard").get_by_text("gamma-effnet").count() == 0
    target = site.ids["gamma_pending"]
    login(page, site, "maud", next_path="/admin")
    assert page.url.endswith("/admin")
    row = page.locator("tr", has=page.locator(f'a[href="/submissions/{target}"]')).first
    assert "first result" in row.inner_text()  # Gamma has no earlier approved result
    screenshot(page, "admin")
    row.get_by_label(f"Action for submission {target}").select_option("approve")
    row.get_by_role("button", name="Record").click()
    page.wait_for_url("**/admin?reviewed=*")
    assert page.get_by_role("status").inner_text() == f"Submission {target}: approve recorded."
    audit = page.locator("section", has=page.get_by_role("heading", name="Audit log"))
    assert "review_approve" in audit.inner_text() and "maud@maintainers.example" in audit.inner_text()

    board.reload()
    assert board.locator("#leaderboard").get_by_text("gamma-effnet").count() == 1


def test_api_docs_render_offline_under_the_csp_issue_12(page: Any, site: Site) -> None:
    """Swagger UI from the packaged assets draws every operation; the page's CSP forbids anything
    else, and the fixture fails the test if a request leaves this server."""
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{site.url}/docs")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() >= 20 and blocked == []
    screenshot(page, "api-docs")
