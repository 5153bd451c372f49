"""Results by stratum in Chromium (issue 21 item 3): the report page's strata table and dot plot, and
the board's strata view, as a researcher of a ``summary`` phase sees them (no outcome stratum)."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import Site, login, screenshot

pytestmark = pytest.mark.browser

IMAGE_STRATA = ["density q1", "density q2", "density q3", "density q4", "laterality L", "laterality R"]


def test_the_report_page_shows_the_strata_table_and_dot_plot(page: Any, site: Site) -> None:
    own = site.ids["alpha_approved"]
    login(page, site, "alice", next_path=f"/submissions/{own}")
    assert page.get_by_role("heading", name="Results by stratum").is_visible()
    names = page.locator("#strata-table tbody th").all_inner_texts()
    assert names == IMAGE_STRATA  # a summary phase: cancer and no cancer are withheld
    cells = page.locator("#strata-table tbody td:nth-child(3)").all_inner_texts()
    assert all(c.startswith(("suppressed", "0.", "-0.", "1.")) for c in cells), cells
    assert "cancer" not in page.locator("#strata-differences").inner_text()
    plot = page.locator("img[src*='/plots/strata.svg']")
    plot.scroll_into_view_if_needed()
    assert plot.evaluate("img => img.complete && img.naturalWidth > 100")
    assert "strata of the test set" in (plot.get_attribute("alt") or "")
    screenshot(page, "report-strata")


def test_the_board_has_a_strata_view(page: Any, site: Site) -> None:
    page.goto(site.url + "/")
    assert page.locator("#strata").count() == 0
    page.locator("#strata-link").click()
    page.wait_for_url("**view=strata**")
    table = page.locator("#strata")
    assert table.is_visible()
    headers = table.locator("thead th").all_inner_texts()
    assert [h.split(" [")[0] for h in headers[3:9]] == IMAGE_STRATA
    models = table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert "submission" in models and "expert" not in models
    screenshot(page, "board-strata")
