"""``GET /downloads/csawm_leaderboard-<version>-py3-none-any.whl`` (issue 24 item 1): the server serves
the client's wheel of its own version, built once from the checkout into the data folder, and
links it on ``/guide/submitting``; no other name is served."""

from __future__ import annotations

import importlib.metadata
import io
import sys
import zipfile
from pathlib import Path

import pytest
from srvtest.app import Api

from server.web import downloads

VERSION = importlib.metadata.version("csawm-leaderboard")
NAME = f"csawm_leaderboard-{VERSION}-py3-none-any.whl"
INSTALLED = downloads.INSTALLED_WHEELS_DIR  # before the fixture below replaces it


@pytest.fixture(autouse=True)
def _no_installed_wheel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As in a checkout: nothing under <sys.prefix>/share/csawm/wheels, so the wheel is built."""
    monkeypatch.setattr(downloads, "INSTALLED_WHEELS_DIR", tmp_path / "no-installed-wheels")


@pytest.mark.timeout(300)
def test_the_wheel_of_the_server_s_version_is_built_once_and_served(sqlite_api: Api) -> None:
    response = sqlite_api.client.get(f"/downloads/{NAME}")
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"csawm_leaderboard-{VERSION}.dist-info/METADATA").decode()
    assert "server/cli/main.py" in names and "server/cli/reference.py" in names
    assert f"Version: {VERSION}" in metadata
    assert "Requires-Python: <3.14,>=3.11" in metadata or "Requires-Python: >=3.11,<3.14" in metadata
    assert "Provides-Extra: server" in metadata
    cached = sqlite_api.settings.data_dir / "downloads" / NAME
    built_at = cached.stat().st_mtime_ns
    again = sqlite_api.client.get(f"/downloads/{NAME}")
    assert again.status_code == 200 and again.content == response.content
    assert cached.stat().st_mtime_ns == built_at  # served from the cache, not built again


@pytest.mark.parametrize(
    "name",
    ["csawm_leaderboard-0.0.1-py3-none-any.whl", "settings.json", "..%2F..%2Fpyproject.toml", "x.whl"],
)
def test_any_other_name_is_404_and_builds_nothing(sqlite_api: Api, name: str) -> None:
    response = sqlite_api.client.get(f"/downloads/{name}")
    assert response.status_code == 404
    if "%2F" not in name:  # an encoded slash matches no route at all: the framework's 404
        assert NAME in response.json()["error"]["message"]
    assert not (sqlite_api.settings.data_dir / "downloads").exists()


def test_the_submitting_guide_links_the_wheel(sqlite_api: Api) -> None:
    page = sqlite_api.client.get("/guide/submitting")
    assert page.status_code == 200
    assert f'href="/downloads/{NAME}"' in page.text
    assert downloads.WHEEL_MARKER not in page.text


def test_the_server_image_ships_the_wheel_where_it_is_looked_for() -> None:
    """The image deletes its source tree, so it builds the wheel into <sys.prefix>/share/csawm/wheels
    (sys.prefix is the image's VIRTUAL_ENV)."""
    assert Path(sys.prefix) / "share" / "csawm" / "wheels" == INSTALLED
    dockerfile = (downloads.SOURCE_ROOT / "Dockerfile").read_text()
    assert "ENV VIRTUAL_ENV=/opt/csawm" in dockerfile
    assert 'pip wheel --no-cache-dir --no-deps -q -w "$VIRTUAL_ENV/share/csawm/wheels" .' in dockerfile
