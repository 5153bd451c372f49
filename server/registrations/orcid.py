"""ORCID iDs: the form ``0000-0002-1825-0097`` and its ISO 7064 MOD 11-2 check character."""

from __future__ import annotations

import re

_FORM = re.compile(r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$")


def check_digit(base: str) -> str:
    """The check character of the first 15 digits (ISO 7064 MOD 11-2): ``0``-``9`` or ``X``."""
    total = 0
    for digit in base:
        total = (total + int(digit)) * 2
    result = (12 - total % 11) % 11
    return "X" if result == 10 else str(result)


def check_orcid(value: str) -> str:
    """`value` unchanged, or `ValueError` naming what is wrong with it."""
    if not _FORM.fullmatch(value):
        raise ValueError(f"{value!r} is not an ORCID iD of the form 0000-0002-1825-0097")
    digits = value.replace("-", "")
    if check_digit(digits[:15]) != digits[15]:
        raise ValueError(f"{value!r} is not a valid ORCID iD: its check digit is wrong")
    return value
