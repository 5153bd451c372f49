"""User text is data: the constrained string types every request body and query parameter uses.

A name (team, submission, token label, e-mail) is one line of printable text; a free text
(description, review reason) may also hold tabs and line breaks. Both refuse NUL and other control
characters and lone surrogates: PostgreSQL refuses NUL in ``text`` (a 500, issue 12), neither can be
encoded as UTF-8, and none belongs in a name shown on the leaderboard or in a CSV export.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

_TEXT_ALLOWED = frozenset("\t\n\r")


def _check(value: str, allowed: frozenset[str]) -> str:
    for char in value:
        if char in allowed:
            continue
        category = unicodedata.category(char)
        if category == "Cc":
            raise ValueError(f"control character U+{ord(char):04X} is not allowed")
        if category == "Cs":
            raise ValueError(f"lone surrogate U+{ord(char):04X} is not allowed")
    return value


def check_name(value: str) -> str:
    """`value` unchanged, or `ValueError` for a control character or lone surrogate."""
    return _check(value, frozenset())


def check_text(value: str) -> str:
    """As `check_name`, but tabs and line breaks are allowed."""
    return _check(value, _TEXT_ALLOWED)


NameStr = Annotated[str, AfterValidator(check_name)]
TextStr = Annotated[str, AfterValidator(check_text)]
