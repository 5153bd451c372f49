"""What a submitter may be told of a hidden run's log (issue 23): `CSAWM_HIDDEN_LOGS` and the redacted
hint of `CSAWM_HIDDEN_HINT`, a closed list so that no character the model chose reaches a submitter."""

from __future__ import annotations

import builtins
import re
from typing import Literal

HiddenLogs = Literal["maintainers", "none", "submitters"]
HiddenHint = Literal["none", "exception_type"]

#: The closed list a hidden-failure hint is taken from (``CSAWM_HIDDEN_HINT=exception_type``): the
#: names of Python's built-in exception classes, plus ``other``. About 70 names, so a hint carries at
#: most ~6 bits a failed run, and never a character the model chose outside this list.
BUILTIN_EXCEPTIONS: frozenset[str] = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)
OTHER = "other"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def exception_hint(hidden_log: str | None) -> str:
    """The redacted hint of a hidden failure: the last built-in exception class named in the hidden
    log (the traceback's last line names the exception raised), else ``other``."""
    names = [w for w in _WORD.findall(hidden_log or "") if w in BUILTIN_EXCEPTIONS]
    return names[-1] if names else OTHER
