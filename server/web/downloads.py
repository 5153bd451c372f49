"""``GET /downloads/csawm_leaderboard-<version>-py3-none-any.whl``: the researcher's client, of this
server's own version, for a deployment that does not publish it on a package index
(docs/submitting.md, "Your first hour"; the submitting guide links it).

Where the wheel comes from, first found wins:

* an installed copy (the server image): ``<sys.prefix>/share/csawm/wheels/``, where the top-level
  Dockerfile builds it;
* a source checkout (an editable install): built once, on the first request, with ``pip wheel
  --no-deps`` and pip's configured index (for the build backend), into ``DATA_DIR/downloads/``;
  a failed build is a 503 naming pip's reason, and the next request tries again.

Only that one file name is served: any other name, another version included, is a 404.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from server.core.deps import SettingsDep
from server.core.errors import CsawmError, NotFound

DISTRIBUTION = "csawm-leaderboard"
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # holds pyproject.toml in a checkout
INSTALLED_WHEELS_DIR = Path(sys.prefix) / "share" / "csawm" / "wheels"
WHEEL_MARKER = "<!-- client-wheel -->"  # replaced by the link on the submitting guide
BUILD_TIMEOUT_S = 300
_build_lock = threading.Lock()

router = APIRouter()


class WheelUnavailable(CsawmError):
    status_code = 503
    code = "wheel_unavailable"


def wheel_name() -> str:
    version = importlib.metadata.version(DISTRIBUTION)
    return f"{DISTRIBUTION.replace('-', '_')}-{version}-py3-none-any.whl"


def wheel_link() -> str:
    """The Markdown link the submitting guide shows in place of `WHEEL_MARKER`."""
    name = wheel_name()
    return f"The client of this server's version: [{name}](/downloads/{name})."


def client_wheel(data_dir: Path) -> Path:
    """The wheel's path, built first where needed; `WheelUnavailable` when it cannot be."""
    name = wheel_name()
    installed = INSTALLED_WHEELS_DIR / name
    if installed.is_file():
        return installed
    cached = data_dir / "downloads" / name
    with _build_lock:
        if cached.is_file():
            return cached
        if not (SOURCE_ROOT / "pyproject.toml").is_file():
            raise WheelUnavailable(f"{name} is not installed with this server ({INSTALLED_WHEELS_DIR})")
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cached.parent, prefix=".build-") as tmp:
            command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp, str(SOURCE_ROOT)]
            try:
                built = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise WheelUnavailable(f"building {name} took over {BUILD_TIMEOUT_S} s") from None
            output = Path(tmp) / name
            if built.returncode != 0 or not output.is_file():
                reason = (built.stderr.strip().splitlines() or [f"exit {built.returncode}"])[-1]
                raise WheelUnavailable(f"building {name} failed: {reason}")
            shutil.move(output, cached)  # same folder: an atomic rename
    return cached


@router.get("/downloads/{filename}", include_in_schema=False)
def download(filename: str, settings: SettingsDep) -> FileResponse:
    if filename != wheel_name():
        raise NotFound(f"no download {filename!r}; this server offers {wheel_name()}")
    path = client_wheel(settings.data_dir)
    return FileResponse(path, media_type="application/octet-stream", filename=filename)
