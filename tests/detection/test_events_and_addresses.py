"""Dates of events, one-line US addresses and NER spans across lines (issue 15), on the real
detector: positive and negative cases for each rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from guard.detection.engine import Detector


def _found(detector: Detector, text: str) -> list[tuple[str, str]]:
    return [(e.entity_type, text[e.start : e.end]) for e in detector.analyze(text)]


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("We'll meet Wednesday at the office.", "Wednesday"),
        ("The refund arrives on monday.", "monday"),
        ("I'm away until next Tuesday.", "Tuesday"),
        ("It has been broken since Sunday", "Sunday"),
    ],
)
def test_a_weekday_that_dates_an_event_is_a_date(detector: Detector, text: str, day: str) -> None:
    assert ("DATE_TIME", day) in _found(detector, text)


@pytest.mark.parametrize(
    "text",
    ["Fridays are always busy here.", "Good Friday is a holiday.", "Sunday roast recipes"],
)
def test_a_weekday_on_its_own_is_not_redacted(detector: Detector, text: str) -> None:
    assert not [f for f in _found(detector, text) if f[0] == "DATE_TIME"]


@pytest.mark.parametrize("value", ["Sep-66", "May-2021", "21-May", "dec-99"])
def test_a_month_with_a_dash_is_a_date_whatever_the_ner_guesses(
    detector: Detector, value: str
) -> None:
    assert _found(detector, f"{value} is the one on file.") == [("DATE_TIME", value)]


def test_a_month_name_inside_a_word_is_not_a_date(detector: Detector) -> None:
    found = _found(detector, "The may-or-may-not clause, Mayday-12")
    assert not [f for f in found if f[0] == "DATE_TIME"]


def test_a_date_and_its_time_are_one_value(detector: Detector) -> None:
    text = "Date: 2011-10-24 06:30:25 Name: Joseph Arnold"
    assert ("DATE_TIME", "2011-10-24 06:30:25") in _found(detector, text)


@pytest.mark.parametrize(
    "address",
    [
        "30 Memorial Drive, Avon MA 2322",
        "137 Teaticket Hwy, East Falmouth MA 2536",
        "780 Lynnway, Lynn MA 1905",
        "250 Rt 59, Airmont NY 10901",
    ],
)
def test_a_street_line_with_city_state_and_postal_code_is_one_address(
    detector: Detector, address: str
) -> None:
    assert _found(detector, f"My new address is {address}") == [("STREET_ADDRESS", address)]


@pytest.mark.parametrize("address", ["56 Main St", "12 Elm Street", "1600 Pennsylvania Avenue"])
def test_a_house_number_and_street_stay_one_address_against_the_ner(
    detector: Detector, address: str
) -> None:
    assert _found(detector, f"The office is at {address}") == [("STREET_ADDRESS", address)]


def test_a_number_and_words_without_a_state_and_postal_code_are_not_an_address(
    detector: Detector,
) -> None:
    found = _found(detector, "We sold 250 Blue Widgets, Acme Corp said on Monday")
    assert not [f for f in found if f[0] == "STREET_ADDRESS"]


def test_a_refused_place_does_not_hide_the_next_cue(detector: Detector) -> None:
    text = "Rory is a 50 year old man who grew up in MJÄLLOM."
    assert ("LOCATION", "MJÄLLOM") in _found(detector, text)


def test_an_ner_entity_is_read_one_line_at_a_time(detector: Detector) -> None:
    text = "Best regards,\nNicole Querry\nCrushing, grinding, and polishing machine tender"
    found = _found(detector, text)
    assert ("PERSON", "Nicole Querry") in found
    assert not [f for f in found if "\n" in f[1]]
