"""Findings implied by their neighbours (guard/detection/neighbours.py) and the address and
name rules of the same change (issue 15), on the real detector: each rule with cases it must
take and cases it must leave alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from guard.detection import neighbours
from guard.detection.recognizers import address
from guard.detection.recognizers.address import postal_codes_beside

if TYPE_CHECKING:
    from guard.detection.engine import Detector


def _found(detector: Detector, text: str) -> list[tuple[str, str]]:
    return [(e.entity_type, text[e.start : e.end]) for e in detector.analyze(text)]


def _covered(detector: Detector, text: str, value: str) -> bool:
    """Whether every character of ``value`` (its first occurrence) is inside a finding."""
    start = text.index(value)
    spans = [(e.start, e.end) for e in detector.analyze(text)]
    return all(any(s <= i < e for s, e in spans) for i in range(start, start + len(value)))


# --- postal codes beside a place ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "place", "code"),
    [
        ("Kenya 01672", "Kenya", "01672"),
        ("Teruel, 44001", "Teruel", "44001"),
        ("75008 Paris", "Paris", "75008"),
        ("1011 AB Amsterdam", "Amsterdam", "1011 AB"),
        ("114 55 Stockholm", "Stockholm", "114 55"),
        ("London SW1A 1AA", "London", "SW1A 1AA"),
        ("Ottawa K1A 0B6", "Ottawa", "K1A 0B6"),
        ("Boise\n83702", "Boise", "83702"),
    ],
)
def test_a_postal_code_beside_a_place_is_read(text: str, place: str, code: str) -> None:
    start = text.index(place)
    assert [text[s:e] for s, e in postal_codes_beside(text, [(start, start + len(place))])] == [
        code
    ]


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("Paris 2024", "Paris"),  # a year
        ("1999 Berlin", "Berlin"),
        ("Texas 12:30", "Texas"),  # a time
        ("Ohio 12345-67890", "Ohio"),  # a range, not a ZIP+4
        ("Peru 123456", "Peru"),  # six digits run on
        ("Rome 3.14159", "Rome"),
        ("Oslo 12345x", "Oslo"),
    ],
)
def test_what_only_looks_like_a_postal_code_is_not(text: str, place: str) -> None:
    start = text.index(place)
    assert postal_codes_beside(text, [(start, start + len(place))]) == []


def test_the_postal_code_after_an_address_block_is_redacted(detector: Detector) -> None:
    text = "Jane Hollis\n\n12 Orchard Road\n Suite 4\n Hamilton\n\n Bermuda 30412"
    assert _covered(detector, text, "Bermuda 30412")


def test_a_postal_code_before_its_town_is_redacted(detector: Detector) -> None:
    found = _found(detector, "The office is in 10115 Berlin now.")
    assert ("ZIP_CODE", "10115") in found
    assert ("LOCATION", "Berlin") in found


def test_a_year_after_a_city_is_not_a_postal_code(detector: Detector) -> None:
    found = _found(detector, "The Paris 2024 games were sold out.")
    assert not [f for f in found if "2024" in f[1]]


# --- names listed with a name ---------------------------------------------------------------


def test_a_name_listed_with_a_name_is_a_name(detector: Detector) -> None:
    text = "Is there a better song on this list? Mandel and Daniels were precision engineers."
    assert ("PERSON", "Mandel") in _found(detector, text)
    text = "A comedy directed by Joseph Cantú and starring Alves"
    assert ("PERSON", "Alves") not in _found(detector, text)  # "starring" parts them
    text = "Joseph Cantú and Alves starred in it"
    assert ("PERSON", "Alves") in _found(detector, text)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("Capitalized words like Wisdom and Discipline are often misread.", "Wisdom"),
        ("Hi Romilda, I'm writing about my order.", "I'm"),
        ("Thanks Maria, Monday works for me.", "Monday"),
        ("Ask Maria and IBM about it.", "IBM"),
    ],
)
def test_a_word_beside_a_name_is_not_a_name_without_evidence(
    detector: Detector, text: str, word: str
) -> None:
    assert ("PERSON", word) not in _found(detector, text)


def test_a_hyphenated_name_is_one_name(detector: Detector) -> None:
    assert ("PERSON", "Lom-Ali") in _found(detector, "They had two: Lom-Ali, Timothy and Kate.")


# --- a venue before its address -------------------------------------------------------------


def test_a_venue_named_before_its_address_is_redacted(detector: Detector) -> None:
    text = "We'll meet Thursday at Costquest, 98 Hlíðarvegur 25, Reykjavik"
    assert ("ORGANIZATION", "Costquest") in _found(detector, text)


@pytest.mark.parametrize(
    "text",
    ["Come at 5, 14 Mill Road is the place.", "Meet me at the, 14 Mill Road entrance."],
)
def test_a_time_or_a_function_word_before_an_address_is_not_a_venue(
    detector: Detector, text: str
) -> None:
    assert not [f for f in _found(detector, text) if f[0] == "ORGANIZATION"]


# --- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "street",
    [
        "Gumpendorfer Strasse 44",
        "Dózsa György út 78",
        "Nordahl Rolfsens vei 187",
        "Király u. 15",
        "Erzsébet tér 92",
    ],
)
def test_a_street_type_after_the_name_makes_a_street(detector: Detector, street: str) -> None:
    text = f"The parcel went to {street} yesterday."
    assert _covered(detector, text, street)
    assert any(
        label == "STREET_ADDRESS" and street in value for label, value in _found(detector, text)
    )


def test_calle_abbreviated_c_slash_starts_a_street(detector: Detector) -> None:
    text = "The letter arrived at 92 C/ Manuel Iradier 77\nParaparaumu\n 50882 last night."
    assert _covered(detector, text, "92 C/ Manuel Iradier 77\nParaparaumu\n 50882")


@pytest.mark.parametrize("street", ["33 rue de la Paix", "5 boulevard Saint-Michel"])
def test_a_house_number_and_a_street_type_before_the_name_make_a_street(
    detector: Detector, street: str
) -> None:
    assert _covered(detector, f"Please write to {street} next week.", street)


@pytest.mark.parametrize("text", ["Turn The Ring 3 times.", "I Ring 3 times a day."])
def test_a_capitalised_word_before_a_type_word_is_not_always_a_street(
    detector: Detector, text: str
) -> None:
    assert not [f for f in _found(detector, text) if f[0] == "STREET_ADDRESS"]


def test_words_of_a_clause_before_a_street_are_not_the_street(detector: Detector) -> None:
    found = _found(detector, "I paid 25 dollars for 3 items at 12 Main Street")
    assert ("STREET_ADDRESS", "12 Main Street") in found


def test_a_building_number_before_the_house_number_is_the_address(detector: Detector) -> None:
    text = "Please return to 03 33 Rue Ibn Al Jazzar in case of an issue."
    assert _covered(detector, text, "03 33 Rue Ibn Al Jazzar")


def test_a_unit_after_a_name_starts_the_address(detector: Detector) -> None:
    text = "Ms. Holly Prošková Apt. 370 25 P.O. Box 108\nQaanaaq QA 27676"
    found = _found(detector, text)
    assert ("PERSON", "Ms. Holly Prošková") in found
    assert any(label == "STREET_ADDRESS" and value.startswith("Apt. 370") for label, value in found)


def test_the_dot_of_an_abbreviated_street_type_is_part_of_the_address(
    detector: Detector,
) -> None:
    text = "16 Grosse Praesidenten Str. 20\n Apt. 936\n Aglasterhausen\n Serbia"
    assert ("STREET_ADDRESS", text) in _found(detector, text)


def test_an_address_introduced_in_the_plural_starts_at_the_address(detector: Detector) -> None:
    text = "I need to add my addresses, here they are: 78 Untere Donaulände 33\nIzsófalva"
    found = _found(detector, text)
    assert any(
        label == "STREET_ADDRESS" and value.startswith("78 Untere Donaulände 33")
        for label, value in found
    )
    assert not [value for _, value in found if "here they are" in value]


# ------------------------------------------------ the cheap tests before the searches


_PIECES = ["Smith", "Jones", "Perić", "Paris", "75008", "1011 AB", "2024", ",", " ", "\t", "\n",
           "and", "or", "&", "x", "("]  # fmt: skip


def _spans_of(text: str, word: str) -> set[tuple[int, int]]:
    return {(i, i + len(word)) for i in range(len(text)) if text.startswith(word, i)}


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14).map("".join))
@example("Smith,\nJones")
@example("Smith and Jones, Perić")
@example("75008 \n(Paris")
@example("1011 AB Paris 2024")
def test_the_checks_before_the_searches_change_no_finding(text: str) -> None:
    """``_conjuncts`` and ``postal_codes_beside`` skip a search only where it cannot match:
    the same findings as searching before every name and place (``$`` matches before a line
    break too: "Smith,\\nJones", "75008 \\n(Paris")."""
    people = _spans_of(text, "Jones") | _spans_of(text, "Perić")
    expected: set[tuple[int, int]] = set()
    for start, end in people:
        words = text[start:end].split()
        if not (neighbours._name_like(words[0]) or neighbours._name_like(words[-1])):
            continue
        after = neighbours._CONJUNCT_AFTER.match(text, end)
        if after is not None and neighbours._may_be_a_name(after.group("name")):
            expected.add(after.span("name"))
        window = max(0, start - neighbours._CONJUNCT_CHARS)
        before = neighbours._CONJUNCT_BEFORE.search(text, window, start)
        if before is not None and neighbours._may_be_a_name(before.group("name")):
            expected.add(before.span("name"))
    assert neighbours._conjuncts(text, people) == expected

    places = _spans_of(text, "Paris")
    codes: set[tuple[int, int]] = set()
    for start, end in places:
        for found in (
            address._POSTAL_AFTER_PLACE.match(text, end),
            address._POSTAL_BEFORE_PLACE.search(
                text, max(0, start - address._POSTAL_BEFORE_CHARS), start
            ),
        ):
            if found is not None and not address._YEAR.fullmatch(found.group("code")):
                codes.add(found.span("code"))
    assert postal_codes_beside(text, places) == sorted(codes)
