"""User text is data: the constrained string types every request body and query parameter uses,
and the escaped form every page, export, plot and terminal shows.

A name (team, submission, token label, e-mail, image reference) is one line of visible text, not
blank; a free text (description, method card, review reason) may also hold tabs and line breaks.
Both refuse the characters of `REFUSED_CATEGORIES`: control characters (``Cc``: NUL is a 500 on
PostgreSQL, issue 12), format characters (``Cf``: the bidi overrides and isolates that reverse a
row on the board, zero-width spaces and joiners that make two names look alike), lone surrogates
(``Cs``: not UTF-8), private-use and unassigned code points (``Co``, ``Cn``: no agreed glyph) and
the line and paragraph separators (``Zl``, ``Zp``: line breaks to some viewers, not to others).

Names stored before this rule may still hold such characters. `visible` writes each of them as a
``\\u202e``-style escape; the JSON answers keep the stored text (it is the data), while the pages,
the CSV export, the plots, mails and the command line show the escaped form.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

from server.core.errors import BadRequest

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
LINE_BREAKS = frozenset("\t\n\r")

_WHAT = {
    "Cc": "control character",
    "Cf": "invisible or direction-changing character",
    "Cs": "lone surrogate",
    "Co": "private-use character",
    "Cn": "unassigned code point",
    "Zl": "line separator",
    "Zp": "paragraph separator",
}


def _refused(char: str, allowed: frozenset[str]) -> bool:
    return char not in allowed and unicodedata.category(char) in REFUSED_CATEGORIES


def _check(value: str, allowed: frozenset[str], refused: frozenset[str] = REFUSED_CATEGORIES) -> str:
    if value.isprintable():  # C speed; false for every refused category (and for Zs but " ")
        return value
    for char in value:
        if char not in allowed and (category := unicodedata.category(char)) in refused:
            raise ValueError(f"{_WHAT[category]} U+{ord(char):04X} is not allowed")
    return value


def check_name(value: str) -> str:
    """`value` unchanged, or `ValueError` when it is blank or holds a refused character."""
    _check(value, frozenset())
    if not value.strip():
        raise ValueError("a name must not be blank")
    return value


def check_optional_name(value: str) -> str:
    """As `check_name`, but the empty string (no name, e.g. a token without a label) passes."""
    return value if value == "" else check_name(value)


def check_text(value: str) -> str:
    """`value` unchanged, or `ValueError` for a refused character; tabs and line breaks pass."""
    return _check(value, LINE_BREAKS)


def check_document(value: str) -> str:
    """The operator's data-use agreement (``CSAWM_DUA_FILE``): only control characters other than
    tabs and line breaks, and lone surrogates, are refused. It is no user's name, and its Markdown
    may hold soft hyphens and emoji joiners (``Cf``) that a stricter rule would stop the server for."""
    return _check(value, LINE_BREAKS, frozenset({"Cc", "Cs"}))


def require(check: Callable[[str], str], value: str, what: str) -> str:
    """`check(value)`, its refusal as a 400 naming `what`: for the services that the admin command
    line calls without a request body to validate."""
    try:
        return check(value)
    except ValueError as exc:
        raise BadRequest(f"invalid {what}: {exc}") from None


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(value: str, *, lines: bool = False) -> str:
    """`value` with every refused character written as a visible escape (``a\\u202eb``).

    With `lines`, tabs and line breaks stay as they are (free text on a page); otherwise they are
    escaped too (one line: a CSV cell, a plot label, a table cell in a terminal).
    """
    allowed = LINE_BREAKS if lines else frozenset()
    if value.isprintable() or not any(_refused(char, allowed) for char in value):
        return value
    return "".join(_escape(char) if _refused(char, allowed) else char for char in value)


NameStr = Annotated[str, AfterValidator(check_name)]
OptionalNameStr = Annotated[str, AfterValidator(check_optional_name)]
TextStr = Annotated[str, AfterValidator(check_text)]
