"""Dates written out in words ("December 5, 1983", "5th of Dec 1983", "Dec. 5").

Numeric dates are Presidio's DateRecognizer's. spaCy's DATE entities are not used at all:
they include "today" and "the end of the month", which identify nobody.
"""

from __future__ import annotations

import re

from guard.detection.recognizers.base import RegexRecognizer, digit_count, folded

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]\d\d|2[01]\d\d)"

_WRITTEN_DATE = re.compile(
    rf"""\b(?:
        {_MONTH}\s+{_DAY}(?:,?\s+{_YEAR})?          # December 5, 1983 / Dec 5th
      | {_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}     # 5 December 1983 / 5th of Dec, 1983
      | {_DAY}\s+(?:of\s+)?{_MONTH}(?=\W|$)          # 5 December
      | {_MONTH}\s+{_YEAR}                           # December 1983
    )(?![\w])""",
    re.VERBOSE | re.IGNORECASE,
)


class WrittenDateRecognizer(RegexRecognizer):
    """DATE_TIME: month names with a day and/or a year."""

    def __init__(self) -> None:
        super().__init__(
            entity="DATE_TIME",
            name="GuardWrittenDateRecognizer",
            pattern=_WRITTEN_DATE,
            score=0.6,
            context=("born", "birthday", "birth", "dob", "date"),
            precheck=_has_month_and_digit,
        )


_MONTH_STEMS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def _has_month_and_digit(text: str) -> bool:
    if not digit_count(text):
        return False
    low = folded(text)  # as the case-insensitive pattern reads it (a long s is an "s")
    return any(stem in low for stem in _MONTH_STEMS)


_DATE_AND_TIME = re.compile(
    r"""\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4})(?:,?[ T]|\s+at\s+)
         \d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[ap]\.?m\.?)?(?:Z|[+\-]\d{2}:?\d{2})?(?!\w)""",
    re.VERBOSE | re.IGNORECASE,
)


class DateTimeRecognizer(RegexRecognizer):
    """DATE_TIME: a numeric date with a time of day ("1993-01-04 14:56:41")."""

    def __init__(self) -> None:
        super().__init__(
            entity="DATE_TIME",
            name="GuardDateTimeRecognizer",
            pattern=_DATE_AND_TIME,
            score=0.85,
            precheck=lambda text: ":" in text,
        )


_WEEKDAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)day"
#: A weekday that dates an event: after a word that schedules or dates ("we'll meet Friday",
#: "on Monday", "until next Tuesday", "since Sunday"). A weekday alone ("Fridays are busy") or
#: in a name ("Good Friday") says when nothing happened to anyone and is left alone.
_SCHEDULED_WEEKDAY = re.compile(
    rf"""\b(?:meet(?:ing)?|see\s+you|on|by|until|till|til|next|last|this|coming|since|before
          |after|from|every|due|arrives?|arrived|delivered|scheduled(?:\s+for)?|booked(?:\s+for)?)
        [ \t]+(?:next[ \t]+|last[ \t]+|this[ \t]+)?(?P<value>{_WEEKDAY})\b""",
    re.VERBOSE | re.IGNORECASE,
)


class WeekdayRecognizer(RegexRecognizer):
    """DATE_TIME: a weekday named as the day of an event (HIPAA counts every element of a date).

    Presidio's own evaluation data labels them; a meeting's day with the place and the people
    makes the event findable.
    """

    def __init__(self) -> None:
        super().__init__(
            entity="DATE_TIME",
            name="GuardWeekdayRecognizer",
            pattern=_SCHEDULED_WEEKDAY,
            group="value",
            score=0.6,
            precheck=_names_a_weekday,
        )


def _names_a_weekday(text: str) -> bool:
    return "day" in folded(text)


_MONTH_ABBREVIATION = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sept?|oct|nov|dec)"
#: Spreadsheet and database notations of a month with a dash: "Sep-66", "May-2021", "21-May".
#: The month and the dash make it a date whatever the NER guesses it is (a place, a person).
_MONTH_DASH = re.compile(
    rf"""(?<![\w\-])(?:{_MONTH_ABBREVIATION}-(?:\d{{4}}|\d{{2}})|(?:[12]\d|3[01]|0?[1-9])-{_MONTH_ABBREVIATION})
         (?![\w\-])""",
    re.VERBOSE | re.IGNORECASE,
)


class MonthDashDateRecognizer(RegexRecognizer):
    """DATE_TIME: "Sep-66", "May-2021", "21-May", scored above the NER's guesses (0.85)."""

    def __init__(self) -> None:
        super().__init__(
            entity="DATE_TIME",
            name="GuardMonthDashDateRecognizer",
            pattern=_MONTH_DASH,
            score=0.86,
            context=("born", "birthday", "birth", "dob", "date"),
            precheck=_has_month_dash,
        )


def _has_month_dash(text: str) -> bool:
    return "-" in text and _has_month_and_digit(text)
