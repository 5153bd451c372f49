"""Where the guides are found: the source checkout first, else the installed copy the server image
ships (the top-level Dockerfile must copy ``docs/`` exactly there)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from server.web.guides import DOCS_DIRS, GUIDES, INSTALLED_DOCS_DIR, SOURCE_DOCS_DIR, find_guide

ROOT = Path(__file__).resolve().parents[2]


def test_every_guide_is_in_the_checkout() -> None:
    assert SOURCE_DOCS_DIR == ROOT / "docs"
    for name in GUIDES:
        assert find_guide(name) == ROOT / "docs" / f"{name}.md"


def test_lookup_order_and_unknown_names(tmp_path: Path) -> None:
    source, installed = tmp_path / "src", tmp_path / "installed"
    installed.mkdir()
    (installed / "submitting.md").write_text("# installed")
    dirs = (source, installed)
    assert find_guide("submitting", dirs) == installed / "submitting.md"  # no checkout: the copy
    source.mkdir()
    (source / "submitting.md").write_text("# checkout")
    assert find_guide("submitting", dirs) == source / "submitting.md"  # the checkout wins
    assert find_guide("maintaining", dirs) is None  # in neither place
    (source / "secrets.md").write_text("not a guide")
    assert find_guide("secrets", dirs) is None  # only the names in GUIDES are served
    assert find_guide("../README", dirs) is None


def test_the_server_image_ships_the_guides_where_they_are_looked_for() -> None:
    """Regression: the image deleted its source tree, so /guide/... answered 404 there."""
    assert DOCS_DIRS[-1] == INSTALLED_DOCS_DIR
    dockerfile = (ROOT / "Dockerfile").read_text()
    venv = re.search(r"^ENV VIRTUAL_ENV=(\S+)", dockerfile, re.MULTILINE)
    copy = re.search(r"^COPY docs/\*\.md (\S+)$", dockerfile, re.MULTILINE)
    assert venv and copy, "the Dockerfile must set VIRTUAL_ENV and COPY docs/*.md"
    # Inside the image sys.prefix is the virtualenv, so the lookup resolves to this folder.
    expected = Path(venv.group(1)) / INSTALLED_DOCS_DIR.relative_to(sys.prefix)
    assert Path(copy.group(1)) == expected
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not ignored & {"docs", "docs/*", "*.md", "**/*.md"}, "docs/ must reach the build context"
