from __future__ import annotations

import pytest

from fjernhjelp.portal.orgnr import InvalidOrgnr, normalise_orgnr


@pytest.mark.parametrize("value", ["974760673", "974 760 673", "923609016", "990000018"])
def test_real_organisation_numbers_are_accepted(value: str) -> None:
    assert normalise_orgnr(value) == value.replace(" ", "")


@pytest.mark.parametrize(
    "value, reason",
    [
        ("974760672", "check digit"),  # last digit changed
        ("97476067", "nine digits"),
        ("9747606730", "nine digits"),
        ("97476067a", "nine digits"),
        ("174760673", "start with 8 or 9"),
        ("990000000", "check digit"),  # remainder 1: no valid check digit exists
        ("٩٧٤٧٦٠٦٧٣", "nine digits"),  # Arabic-Indic digits are digits, not ASCII
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidOrgnr) as info:
        normalise_orgnr(value)
    assert reason in info.value.reason
