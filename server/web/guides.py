"""The guides in ``docs/`` served as pages, with the limits in force read from the live settings.

The Markdown files stay readable on their own (GitHub, an editor); where a guide has the line
``<!-- limits -->`` the page inserts a table of the values this server enforces now.

Where the files are: in a source checkout (an editable install), ``docs/`` beside the packages; in
an installed copy (the server image), ``<sys.prefix>/share/csawm/docs``, where the top-level
Dockerfile copies them. The checkout wins, so an edited guide shows without reinstalling.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from markdown_it import MarkdownIt

from server.core.settings import Settings

SOURCE_DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"
INSTALLED_DOCS_DIR = Path(sys.prefix) / "share" / "csawm" / "docs"
DOCS_DIRS = (SOURCE_DOCS_DIR, INSTALLED_DOCS_DIR)
GUIDES = {"submitting": "Submitting a model", "maintaining": "Maintaining the leaderboard"}
LIMITS_MARKER = "<!-- limits -->"


def find_guide(name: str, dirs: tuple[Path, ...] = DOCS_DIRS) -> Path | None:
    """The Markdown file of guide `name` (a key of `GUIDES`) in the first of `dirs` holding it."""
    if name not in GUIDES:
        return None
    for directory in dirs:
        path = directory / f"{name}.md"
        if path.is_file():
            return path
    return None


def render_markdown(source: str, *, heading_offset: int = 0) -> str:
    """CommonMark + tables, raw HTML off; header cells get ``scope="col"`` for screen readers.

    `heading_offset` moves every heading down that many levels (at most to ``h6``), for a text
    shown under the page's own ``h1`` (the data-use agreement)."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(source)
    for token in tokens:
        if token.type == "th_open":
            token.attrSet("scope", "col")
        elif token.type in ("heading_open", "heading_close") and heading_offset:
            token.tag = f"h{min(int(token.tag[1:]) + heading_offset, 6)}"
    return str(md.renderer.render(tokens, md.options, {}))


def limits(settings: Settings) -> list[tuple[str, str, str]]:
    """(what, value in force, setting) rows of the live limits table on the submitting guide."""

    def size(n: int) -> str:
        for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if n >= factor:
                return f"{n / factor:g} {unit}"
        return f"{n} bytes"

    def minutes(delta: timedelta) -> str:
        return f"{delta.total_seconds() / 60:g} min"

    return [
        ("Submissions per rolling 24 hours", str(settings.quota_per_day), "CSAWM_QUOTA_PER_DAY"),
        ("Submissions per rolling 7 days", str(settings.quota_per_week), "CSAWM_QUOTA_PER_WEEK"),
        (f"Submissions in phase {settings.phase!r}", str(settings.quota_total), "CSAWM_QUOTA_TOTAL"),
        ("Runs active at once", str(settings.quota_active), "CSAWM_QUOTA_ACTIVE"),
        ("Wall time on the hidden set", minutes(settings.run.timeout), "CSAWM_RUN_TIMEOUT"),
        ("Wall time of the preflight", minutes(settings.run.preflight_timeout), "CSAWM_PREFLIGHT_TIMEOUT"),
        ("Preflight images", str(settings.run.preflight_images), "CSAWM_PREFLIGHT_IMAGES"),
        ("Memory", size(settings.run.memory), "CSAWM_RUN_MEMORY"),
        ("CPUs", f"{settings.run.cpus:g}", "CSAWM_RUN_CPUS"),
        ("GPUs", str(settings.run.gpus), "CSAWM_RUN_GPUS"),
        ("Largest upload", size(settings.max_upload_bytes), "CSAWM_MAX_UPLOAD_BYTES"),
        ("Bootstrap resamples (seed)", f"{settings.bootstrap_resamples} ({settings.bootstrap_seed})",
         "CSAWM_BOOTSTRAP_RESAMPLES"),
        ("Registry submissions", settings.registry.host or "off (upload a docker save archive)",
         "CSAWM_REGISTRY"),
    ]  # fmt: skip
