"""The review states in words, for `csawm status` and the report page (issue 23, item 4).

Standard library only: the command-line client imports it without the server's dependencies.
"""

from __future__ import annotations

#: What each review state means for a run; a run that ended without a result has none (null).
REVIEW_WORDS: dict[str, str] = {
    "pending": "awaiting review — not public yet",
    "approved": "approved",
    "hidden": "hidden by the maintainers",
    "disqualified": "disqualified by the maintainers",
}
NO_REVIEW = "none (the run ended without a result)"
