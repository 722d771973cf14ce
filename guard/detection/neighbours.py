"""Findings implied by their neighbours: a second pass over the first pass's candidates.

Some values are recognisable only beside a value already found, whoever found it (the NER
model, a pattern, the gazetteer). Each rule here reads a few characters around the
candidates of the first pass and adds candidates of its own, at a score below the NER's
guesses, so that overlap resolution still settles every region:

- a postal code written beside a town, region or country ("Australia 08198", "75008 Paris");
- a name coordinated with a name ("Sjöberg and Cantu", "Perić, Rodriguez"): conjuncts of
  a list of people are people;
- the name of a venue right before the address it is at ("at Geolytics, 43 P.O. Box 41").

The pass is linear in the candidates: each rule reads a bounded window around each one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from guard.detection.entities import Candidate
from guard.detection.recognizers.address import postal_codes_beside
from guard.detection.recognizers.gazetteer import NOT_SURNAMES, first_names, surnames

if TYPE_CHECKING:
    from collections.abc import Iterable

_DIGIT = re.compile(r"\d")
#: Candidates added here score above the default threshold and below the NER's 0.85.
NEIGHBOUR_SCORE = 0.6
#: A postal code beside a place: above the NER's ORGANIZATION guess for "Bermuda 30412".
POSTAL_CODE_SCORE = 0.65
_PLACE_TYPES = frozenset({"LOCATION", "STREET_ADDRESS"})
#: A word in any alphabet, with inner apostrophes and hyphens ("O'Neil", "Lom-Ali"); whether
#: it is capitalised is checked after the match (``str.isupper`` knows every alphabet).
_WORD = r"[^\W\d_](?:[^\W\d_]|['\u2019\-](?=[^\W\d_]))*"
#: After a name: ", " / " and " / " & " / " or ", then one word.
_CONJUNCT_AFTER = re.compile(
    rf"(?:[ \t]*,[ \t]*|[ \t]+(?:and|or|&)[ \t]+)(?P<name>{_WORD})(?![\w'\u2019\-])"
)
#: Before a name: one word, then ", " / " and " / " & " / " or ".
_CONJUNCT_BEFORE = re.compile(
    rf"(?<![\w'\u2019\-])(?P<name>{_WORD})(?:[ \t]*,[ \t]*|[ \t]+(?:and|or|&)[ \t]+)$"
)
#: How far before a name its conjunct is read (a word of up to 30 letters and " and ").
_CONJUNCT_CHARS = 40
#: How the text before a name ends, blanks aside, where ``_CONJUNCT_BEFORE`` can match.
_JOINER_ENDS = (",", "and", "or", "&")
_VENUE_WORD = r"[^\W_][\w&'\u2019.\-]*"
#: A venue named right before its address, after "at": "meet at Ideas42, 30 Veslebakken 48".
_VENUE_BEFORE = re.compile(
    rf"(?<![\w'\u2019\-])at[ \t]+(?P<venue>{_VENUE_WORD}(?:[ \t]+(?:&|{_VENUE_WORD})){{0,3}}),"
    r"[ \t]*$"
)
_VENUE_CHARS = 80
#: Words that may stand capitalised beside a name without being one.
_NOT_CONJUNCTS = NOT_SURNAMES | frozenset(
    """
    mr mrs ms miss dr prof sir madam monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november december
    inc ltd llc corp co company group bank university hospital street avenue road
    """.split()
)


def neighbour_candidates(text: str, candidates: Iterable[Candidate]) -> list[Candidate]:
    """The candidates the rules above add, given the first pass's ``candidates``."""
    places: set[tuple[int, int]] = set()
    people: set[tuple[int, int]] = set()
    taken: set[tuple[int, int]] = set()
    for cand in candidates:
        taken.add((cand.start, cand.end))
        if cand.entity_type in _PLACE_TYPES:
            places.add((cand.start, cand.end))
        elif cand.entity_type == "PERSON":
            people.add((cand.start, cand.end))
    added = [
        Candidate(start, end, "PERSON", NEIGHBOUR_SCORE)
        for start, end in _conjuncts(text, people)
        if (start, end) not in taken
    ]
    if places and _DIGIT.search(text) is not None:  # a postal code, an address's number
        added.extend(
            Candidate(start, end, "ZIP_CODE", POSTAL_CODE_SCORE)
            for start, end in postal_codes_beside(text, places)
        )
        added.extend(
            Candidate(start, end, "ORGANIZATION", NEIGHBOUR_SCORE)
            for start, end in _venues(text, {start for start, end in places})
        )
    return added


def _conjuncts(text: str, people: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Names listed with a name found: "Sjöberg and Cantu", "Cantu, Sjöberg".

    Both sides must read as names on their own evidence (see ``_name_like``): the NER's
    PERSON for "Discipline" in "Wisdom and Discipline" does not make "Wisdom" a person.
    """
    found: set[tuple[int, int]] = set()
    for start, end in people:
        after = _CONJUNCT_AFTER.match(text, end)
        window = max(0, start - _CONJUNCT_CHARS)
        # the search tries every position of the window: only where a joiner ends it (its
        # "$" also matches before a final line break, so line breaks are stripped too)
        before = (
            _CONJUNCT_BEFORE.search(text, window, start)
            if text[window:start].rstrip(" \t\n").endswith(_JOINER_ENDS)
            else None
        )
        if after is None and before is None:
            continue
        words = text[start:end].split()
        if not words or not (_name_like(words[0]) or _name_like(words[-1])):
            continue
        if after is not None and _may_be_a_name(after.group("name")):
            found.add(after.span("name"))
        if before is not None and _may_be_a_name(before.group("name")):
            found.add(before.span("name"))
    return found


def _may_be_a_name(word: str) -> bool:
    """Whether a word listed beside a name is a name too.

    Capitalised (not all capitals: "USA", "IBM"), not a function word, title or month, not a
    contraction ("I'm"), and a name on its own evidence.
    """
    return (
        len(word) > 1
        and word[0].isupper()
        and not word.isupper()
        and word.lower() not in _NOT_CONJUNCTS
        and _CONTRACTION.search(word) is None
        and _name_like(word)
    )


#: "I'm", "You're", "We've", "It's": a pronoun and a verb, not a name.
_CONTRACTION = re.compile(r"['\u2019](?:m|s|re|ve|ll|d|t)$", re.IGNORECASE)


def _name_like(word: str) -> bool:
    """A census first name or surname, or a word written with letters beyond ASCII.

    English words that the NER model tags as names are ASCII ("Discipline"); names from
    other languages that no census list holds are not ("Perić", "Sjöberg", "Árias").
    """
    bare = word.strip(".,;:!?\"'()").partition("'")[0].partition("\u2019")[0].lower()
    return bool(bare) and (bare in first_names() or bare in surnames() or not bare.isascii())


def _venues(text: str, address_starts: set[int]) -> list[tuple[int, int]]:
    """A venue named right before an address after "at" ("at Geolytics, 43 P.O. Box 41")."""
    found = []
    for start in address_starts:
        if not text[start : start + 1].isdigit():
            continue
        venue = _VENUE_BEFORE.search(text, max(0, start - _VENUE_CHARS), start)
        if venue is None:
            continue
        words = venue.group("venue").split()
        # every word capitalised or holding a digit ("Ideas42", "Rand Corporation"), and not
        # only words that are not names ("at Home, 12 Elm St")
        if not all(word[0].isupper() or word[0].isdigit() or word == "&" for word in words):
            continue
        if not any(char.isalpha() for char in words[0]):  # "at 5, 12 Elm Street": a time
            continue
        if all(word.lower() in _NOT_CONJUNCTS for word in words):
            continue
        found.append(venue.span("venue"))
    return found
