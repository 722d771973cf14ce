"""Ages of people: "37 years old", "a 37-year-old", "aged 37", "age: 37", "I just turned 37".

An age is a quasi-identifier (GDPR recital 26; HIPAA's Safe Harbor method removes ages over 89
and every date element but the year): with a place and a job it narrows a customer down to a
few people. A bare number never counts: each pattern needs an age cue next to the number
(a unit of age such as "years old" or "y/o", or a word that introduces one such as "aged",
"age:", "turned"), so "room 37", "I am 5 minutes away" and "aged cheese" stay text.

What is redacted is the age itself, with its unit when it has one ("37 years old",
"37-year-old"): the cue word before it ("aged", "turned") says nothing about the person.
Decades of life ("in my early 30s", "in her forties") are ages too: an age range of ten
years is what a data set generalised for k-anonymity would keep, not what a message should.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from guard.detection.recognizers.base import (
    Finding,
    GuardRecognizer,
    folded,
    has_word,
    searches_folded,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

#: Oldest age accepted: the oldest verified human lived to 122.
MAX_AGE = 125

_UNITS = "one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
#: A number written in words, one to a hundred-and-nineteen ("thirty-seven", "a hundred and
#: two" is left out: ages that high are written in digits).
_WORD_NUMBER = (
    rf"(?:(?:{'|'.join(_TENS)})(?:[ \t-]?(?:{'|'.join(_UNITS)}))?"
    rf"|{'|'.join(_TEENS)}|{'|'.join(_UNITS)})"
)
#: The number of an age: digits (a half year allowed: "2.5 years old") or words.
_NUMBER = rf"(?:(?<![\w.,])\d{{1,3}}(?:\.5)?(?![\d_]|[.,]\d)|\b{_WORD_NUMBER}\b)"

#: "37 years old", "37-year-old", "37 yrs old", "6 months old", "37 years of age": the unit
#: is part of the age.
_WITH_UNIT = re.compile(
    rf"""(?P<age>{_NUMBER}
        (?:[ \t]?-?[ \t]?(?:years?|yrs?|months?|mos?)(?:[ \t]?-[ \t]?|[ \t]+)old\b
          |[ \t]+(?:years?|yrs?)[ \t]+of[ \t]+age\b))""",
    re.VERBOSE | re.IGNORECASE,
)
#: "37 y/o", "37yo", "37 y.o." (in digits: "yo" after a word is a greeting)
_YEARS_OLD_ABBREVIATED = re.compile(
    r"(?P<age>(?<![\w.,])\d{1,3}[ \t]?(?:y/o|y\.o\.?|yo)(?![\w/-]))", re.IGNORECASE
)
#: "aged 37", "age: 37", "Age - 37", "at the age of 37", "ages 37", "turned 37" (the cue
#: before, the age after: only the number is the age).
_AFTER_CUE = re.compile(
    rf"""\b(?:aged|ages?[ \t]*[:=\-][ \t]*|ages?[ \t]+(?:of[ \t]+|is[ \t]+|was[ \t]+)?)[ \t]*
        (?P<age>{_NUMBER})(?!\w)
        (?![ \t]*(?:%|percent|per|x\b|times|minutes?|mins?|hours?|hrs?|days?|weeks?|months?))""",
    re.VERBOSE | re.IGNORECASE,
)
#: "I just turned 37.", "she turns 40 next week": a birthday, unless a unit follows ("turned
#: 90 degrees", "turn 2 pages"): the number must end the clause or come before a time word.
_TURNED = re.compile(
    rf"""\bturn(?:s|ed|ing)?[ \t]+(?P<age>{_NUMBER})
        (?=[ \t]*(?:[.,;:!?)]|$)|[ \t]+(?:and|but|last|this|next|today|yesterday|tomorrow
          |recently|soon|years?|yrs?)\b)""",
    re.VERBOSE | re.IGNORECASE | re.MULTILINE,
)
#: "I'm 37 and ...", "I am 37, and", "she is 37 now": a person said to *be* a number (in
#: digits), with a word after it that keeps the number from being a quantity of something
#: ("I am 5 minutes away" has a noun after it; "I'm 2 and a half hours away" a fraction).
_IS_NUMBER = re.compile(
    r"""\b(?:i[ \t]*['’]?m|i[ \t]+am|(?:he|she)[ \t]*['’]s|(?:he|she)[ \t]+is|you['’]re
          |you[ \t]+are|i[ \t]+was|(?:he|she)[ \t]+was)[ \t]+(?:only[ \t]+|just[ \t]+|now[ \t]+)?
        (?P<age>(?<![\w.,])\d{1,3}(?![\d_]|[.,]\d))
        (?=,?[ \t]+(?:and|now|but|so|too|already)\b(?![ \t]+(?:a[ \t]+)?half\b))""",
    re.VERBOSE | re.IGNORECASE,
)
_DECADES = "twenties|thirties|forties|fifties|sixties|seventies|eighties|nineties"
#: "in my 30s", "in her early forties", "in their mid-20's", "a man in his late 60s"
_DECADE = re.compile(
    rf"""\bin[ \t]+(?:my|his|her|their|your|our)[ \t]+
        (?P<age>(?:(?:early|mid|late)[ \t]*-?[ \t]*)?(?:[1-9]0['’]?s|{_DECADES}))\b""",
    re.VERBOSE | re.IGNORECASE,
)


def _has_digit(text: str) -> bool:
    return any(map(str.isdigit, text))


def _holds(*needles: str) -> Callable[[str], bool]:
    """A gate: the folded text contains one of ``needles`` (a substring test, in C)."""

    def check(text: str) -> bool:
        low = folded(text)
        return any(n in low for n in needles)

    return check


_CONNECTIVE_AFTER_DIGIT = searches_folded(r"\d,?[ \t]+(?:and|now|but|so|too|already)\b")
_ABBREVIATION = _holds("y/", "y.", "yo")
_DECADE_WORD = _holds("0s", "0's", "0’s", "ties")
_POSSESSIVE_AFTER_IN = searches_folded(r"\bin[ \t]+(?:my|his|her|their|your|our)[ \t]")


_HAS_CUE_WORD = has_word("old", "age", "aged", "ages", "turn", "turns", "turned", "turning")


def _number_then_connective(text: str) -> bool:
    return _has_digit(text) and _CONNECTIVE_AFTER_DIGIT(text)


def _decade_after_possessive(text: str) -> bool:
    return _DECADE_WORD(text) and _POSSESSIVE_AFTER_IN(text)


#: For each pattern, a cheap test that every match of it passes (a keyword it must hold):
#: a pattern whose gate is closed is not run. The cue words stand whole in every match, so
#: they are looked up in the text's word set (``has_word``: "message" holds "age", not the
#: word); substring tests next, regexes only behind them (tests/detection/test_classes.py
#: checks the gates on generated text).
PATTERN_GATES: dict[re.Pattern[str], Callable[[str], bool]] = {
    _WITH_UNIT: has_word("old", "age"),
    _YEARS_OLD_ABBREVIATED: lambda text: _ABBREVIATION(text) and _has_digit(text),
    _AFTER_CUE: has_word("aged", "age", "ages"),
    _TURNED: has_word("turn", "turns", "turned", "turning"),
    _IS_NUMBER: _number_then_connective,
    _DECADE: _decade_after_possessive,
}


def _any_gate(text: str) -> bool:
    """The recognizer's pre-check: one of the pattern gates is open.

    Written out: it runs on every text, and a generator over the gates cost more than the
    tests themselves.
    """
    if _HAS_CUE_WORD(text):
        return True
    low = folded(text)
    if ("y/" in low or "y." in low or "yo" in low) and _has_digit(text):
        return True
    return _number_then_connective(text) or _decade_after_possessive(text)


def _plausible(value: str) -> bool:
    """An age a person can have: digits up to ``MAX_AGE`` (words are always below it)."""
    digits = re.match(r"\d+", value)
    return digits is None or int(digits.group()) <= MAX_AGE


class AgeRecognizer(GuardRecognizer):
    """AGE: a number with an age cue: its unit ("years old"), "aged", "age:", "turned", ..."""

    #: A unit of age is unambiguous ("37 years old").
    UNIT_SCORE = 0.75
    #: A cue word before the number ("aged 37", "turned 37") is nearly so.
    CUE_SCORE = 0.7
    #: "I'm 37 and ..." and "in my 30s" read as ages in context, less certainly.
    CONTEXT_SCORE = 0.6

    def __init__(self) -> None:
        super().__init__(
            entity="AGE",
            name="GuardAgeRecognizer",
            context=("age", "aged", "old", "born", "birthday"),
            precheck=_any_gate,
        )

    def find(self, text: str) -> Iterable[Finding]:
        """Ages found by each pattern whose gate is open."""
        for pattern, score in (
            (_WITH_UNIT, self.UNIT_SCORE),
            (_YEARS_OLD_ABBREVIATED, self.UNIT_SCORE),
            (_AFTER_CUE, self.CUE_SCORE),
            (_TURNED, self.CUE_SCORE),
            (_IS_NUMBER, self.CONTEXT_SCORE),
            (_DECADE, self.CONTEXT_SCORE),
        ):
            if not PATTERN_GATES[pattern](text):
                continue
            for match in pattern.finditer(text):
                start, end = match.span("age")
                if _plausible(text[start:end]):
                    yield start, end, score
