"""The page layout in chromium (issue 23 item 8): the phase banner's text starts where the page's
content does, not flush against the window's left edge."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import Site, login

pytestmark = pytest.mark.browser

TEXT_LEFT = (
    "el => { const r = document.createRange(); r.selectNodeContents(el); "
    "return r.getBoundingClientRect().left; }"
)


@pytest.mark.parametrize("width", [1400, 1800, 700])
def test_the_phase_banner_is_aligned_with_the_page(page: Any, site: Site, width: int) -> None:
    own = site.ids["alpha_approved"]
    page.set_viewport_size({"width": width, "height": 900})
    login(page, site, "alice", next_path=f"/submissions/{own}")
    banner = page.locator(".phase-banner")
    assert banner.count() == 1
    banner_left = float(banner.evaluate(TEXT_LEFT))
    heading_left = float(page.get_by_role("heading", level=1).evaluate(TEXT_LEFT))
    assert banner_left >= 12, banner_left  # not flush against the edge
    assert abs(banner_left - heading_left) <= 2, (banner_left, heading_left)
