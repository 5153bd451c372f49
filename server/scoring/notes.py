"""Scoring notes in words a reader takes in (issue 23 item 8).

The scorer writes each note as ``PATH: TEXT`` where PATH is the report's JSON path of the figure it
is about (``clinical.interval_cancer.odds_ratios.Q4: 210 of 2000 bootstrap resamples were degenerate
and are left out of the interval``): exact for a program, opaque for a person. `readable` turns one
into a sentence ("Interval cancer, odds ratio of Q4: 210 of 2000 resamples could not be computed (no
case, or no control, among the rows drawn); the interval uses the other 1790"). The stored report keeps
the scorer's note; the pages show `readable`'s, and the API gives both (`Note`).

The rule: a path's parts are named by `PARTS` (one table), any other part is shown with its
underscores as spaces; a known TEXT is reworded by `_TEXTS`, any other kept as the scorer wrote it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The report's keys in words; keys not here are shown with their underscores as spaces.
PARTS: dict[str, str] = {
    "masking": "Masking",
    "levels": "8-level view",
    "kendall_tau_b": "Kendall τ-b",
    "amae": "AMAE",
    "group_amae": "AMAE of levels",
    "per_expert": "against",
    "experts": "Experts",
    "clinical": "",  # the endpoint's name says it
    "interval_cancer": "Interval cancer",
    "large_invasive_cancer": "Large invasive cancer",
    "composite": "Composite endpoint",
    "auc": "AUC",
    "odds_ratios": "odds ratio of",
    "odds_ratio_q4": "odds ratio of Q4",
    "references": "LIBRA",
    "predictions": "Predictions",
    "bootstrap": "Bootstrap",
    "strata": "Strata",
    "low_bin": "levels 1–2",
    "high_bin": "levels 7–8",
}

_PATH = re.compile(r"^(?P<path>[A-Za-z][\w.\- ]*?): (?P<text>.+)$", re.S)
_DEGENERATE = re.compile(
    r"^(?P<bad>\d+) of (?P<total>\d+) bootstrap resamples were degenerate and are left out of the interval$"
)
_UNDEFINED = re.compile(r"^null, (?:undefined )?\(?(?P<why>.*?)\)?$")


@dataclass(frozen=True)
class Note:
    """One scoring note: the scorer's path of the figure it is about (None for a note about the whole
    report) and the sentence a reader is shown."""

    path: str | None
    text: str


def _where(path: str) -> str:
    words: list[str] = []
    for part in re.split(r"[. ]", path):
        word = PARTS.get(part, part.replace("_", " "))
        if not word:
            continue
        if words and (words[-1].endswith((" of", " of levels", "against")) or word == "against"):
            words[-1] = f"{words[-1]} {word}"
        else:
            words.append(word)
    return ", ".join(words)


def _what(text: str) -> str:
    found = _DEGENERATE.match(text)
    if found:
        bad, total = int(found["bad"]), int(found["total"])
        return (
            f"{bad} of {total} resamples could not be computed (no case, or no control, among the rows "
            f"drawn); the interval uses the other {total - bad}"
        )
    if text == "no bootstrap interval (fewer than 2 resamples defined)":
        return "no confidence interval: fewer than 2 resamples could be computed"
    found = _UNDEFINED.match(text)
    if found:
        return f"not defined ({found['why']})"
    return text


def readable(note: str) -> Note:
    """The scorer's `note` as a reader is shown it, with the path it is about."""
    found = _PATH.match(note)
    if found is None:
        return Note(None, note)
    path = found["path"]
    return Note(path, f"{_where(path)}: {_what(found['text'])}")
