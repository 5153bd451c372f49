"""ORCID iDs and their ISO 7064 MOD 11-2 check character."""

from __future__ import annotations

import pytest

from server.registrations.orcid import check_digit, check_orcid


@pytest.mark.parametrize("orcid", ["0000-0002-1825-0097", "0000-0001-5109-3700", "0000-0002-1694-233X"])
def test_valid_ids_pass(orcid: str) -> None:
    assert check_orcid(orcid) == orcid


@pytest.mark.parametrize("orcid", ["0000-0002-1825-0098", "0000-0002-1694-2330", "0000-0001-5109-370X"])
def test_a_wrong_check_character_is_refused(orcid: str) -> None:
    with pytest.raises(ValueError, match="check digit"):
        check_orcid(orcid)


@pytest.mark.parametrize(
    "orcid", ["", "0000000218250097", "0000-0002-1825-009x", "https://orcid.org/0000-0002-1825-0097"]
)
def test_other_forms_are_refused(orcid: str) -> None:
    with pytest.raises(ValueError, match="not an ORCID"):
        check_orcid(orcid)


def test_every_check_value_is_reachable() -> None:
    assert {check_digit(f"{n:015d}") for n in range(200)} == set("0123456789X")
