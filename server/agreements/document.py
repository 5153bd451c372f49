"""The data-use agreement's document: the Markdown file of ``CSAWM_DUA_FILE`` and its version.

The version is the SHA-256 of the file's bytes (lowercase hex), so any edit, even of one space,
is a new version that every researcher accepts anew. The server reads the file once, in
`server.app.create_app`, and serves that text and version until it is restarted: a file edited
while the server runs changes nothing until the restart (every replica behind one load balancer
must then serve the same file). A set path that is missing, unreadable, empty, too large, not
UTF-8 or holding control characters other than tabs and line breaks stops the server at startup
with a message naming ``CSAWM_DUA_FILE``, never at a submission.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from server.core.settings import SettingsError
from server.core.text import check_document

#: The agreement is shown whole on a page and in API answers; a longer file is a mistake.
MAX_BYTES = 1024**2
WEB_PATH = "/agreement"


@dataclass(frozen=True)
class Agreement:
    version: str  # sha256 hex of the file's bytes
    text: str  # the Markdown, decoded (a UTF-8 byte-order mark dropped)
    path: Path


def load_agreement(path: Path | None) -> Agreement | None:
    """The agreement in `path`, or None when ``CSAWM_DUA_FILE`` is unset (no agreement required).

    Raises `SettingsError` naming the setting and the path when the file cannot serve.
    """
    if path is None:
        return None
    where = f"CSAWM_DUA_FILE={path}"
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise SettingsError(f"{where}: {what} (expected the data-use agreement, a Markdown file)")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SettingsError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise SettingsError(f"{where}: larger than {MAX_BYTES // 1024} KiB; is it the agreement?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{where}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not text.strip():
        raise SettingsError(f"{where}: is empty; write the agreement or unset the setting")
    try:  # printed as is by `csawm agreement`: no terminal escapes, no NUL
        check_document(text)
    except ValueError as exc:
        raise SettingsError(f"{where}: {exc} (only tabs and line breaks may be control characters)") from None
    return Agreement(version=hashlib.sha256(data).hexdigest(), text=text, path=path)
