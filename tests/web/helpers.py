"""Helpers of the web tests: the seeded site's handle, browser login, screenshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from server.core.db import Database
from server.core.settings import Settings

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@dataclass
class Site:
    """The running server and what was seeded into it."""

    url: str
    db: Database
    settings: Settings
    tokens: dict[str, str]
    ids: dict[str, int]
    requests: list[str] = field(default_factory=list)


def login(page: Any, site: Site, who: str, next_path: str = "/team") -> None:
    """Log in through the form by pasting `who`'s API token."""
    page.goto(f"{site.url}/login?next={quote(next_path)}")
    page.get_by_label("API token").fill(site.tokens[who])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("load")


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
