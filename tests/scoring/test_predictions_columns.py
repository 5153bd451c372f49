"""A predictions file with the wrong columns is told the expected ones (issue 23 item 8): the error
names `Filename` and `Final_score`, the optional columns, the separator, and that names are
case-sensitive, pointing at a header name that differs only in case."""

from __future__ import annotations

import pytest

from server.scoring.predictions import PredictionsError, read_predictions

EXPECTED = (
    "the columns are Filename and Final_score (required), Final_pred and Prob_bin_1..Prob_bin_8 "
    "(optional), separated by ';'; names are case-sensitive"
)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (b"filename;final_score\na.png;0.1\n", "'filename' is not 'Filename'"),
        (b"Filename;Final_Score\na.png;0.1\n", "'Final_Score' is not 'Final_score'"),
        (b"Filename;Score\na.png;0.1\n", None),
        (b"Filename;Final_score;final_pred\na.png;0.1;3\n", None),
    ],
)
def test_a_wrong_header_names_the_expected_columns(text: bytes, hint: str | None) -> None:
    with pytest.raises(PredictionsError) as caught:
        read_predictions(text, expected=["a.png"])
    message = str(caught.value)
    assert EXPECTED in message
    if hint is not None:
        assert hint in message
