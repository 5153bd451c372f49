"""Scoring notes in words (issue 23 item 8): the scorer's ``PATH: TEXT`` notes read as sentences,
with the path kept for programs; a note the table does not know is kept as written."""

from __future__ import annotations

import pytest

from server.scoring.notes import Note, readable


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        (
            "clinical.interval_cancer.odds_ratios.Q4: 210 of 2000 bootstrap resamples were degenerate and "
            "are left out of the interval",
            Note(
                "clinical.interval_cancer.odds_ratios.Q4",
                "Interval cancer, odds ratio of Q4: 210 of 2000 resamples could not be computed (no case, or "
                "no control, among the rows drawn); the interval uses the other 1790",
            ),
        ),
        (
            "masking.levels.group_amae.1-2: null, undefined (no rows in the group)",
            Note(
                "masking.levels.group_amae.1-2",
                "Masking, 8-level view, AMAE of levels 1-2: not defined (no rows in the group)",
            ),
        ),
        (
            "experts.Expert_1.per_expert.Expert_2.kendall_tau_b: no bootstrap interval (fewer than 2 "
            "resamples defined)",
            Note(
                "experts.Expert_1.per_expert.Expert_2.kendall_tau_b",
                "Experts, Expert 1 against Expert 2, Kendall τ-b: no confidence interval: fewer than 2 "
                "resamples could be computed",
            ),
        ),
        (
            "clinical.composite.references.percent_density.odds_ratios.Q3: null, infinite: a zero cell",
            Note(
                "clinical.composite.references.percent_density.odds_ratios.Q3",
                "Composite endpoint, LIBRA, percent density, odds ratio of Q3: not defined (infinite: a zero "
                "cell)",
            ),
        ),
        ("a note without a path", Note(None, "a note without a path")),
    ],
)
def test_a_note_reads_as_a_sentence_and_keeps_its_path(note: str, expected: Note) -> None:
    assert readable(note) == expected
