"""Phone numbers in the shapes people type them, in any country's grouping.

Presidio's phone recognizer (libphonenumber with a few regions) misses many international
groupings and tags bare order numbers as phones. Here a phone is a run of 7 to 15 digits
written the way phones are written: with a ``+``/``00`` prefix, parentheses, or separators
between groups, optionally an extension. A bare digit run (no separators) is only a weak
candidate that needs a context word such as "phone" or "call" to be reported.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from guard.detection.recognizers.base import Finding, GuardRecognizer, digit_count_at_least

if TYPE_CHECKING:
    from collections.abc import Iterable

#: The number is an atomic group: once its longest reading is found it is never re-split.
#: Backtracking into it tried every way of cutting a long digit run into groups of one to five
#: digits (a run of 36 digits: ~350 µs per character of text) only to fail on every one, since
#: a number that runs on into more digits or a word is not a phone however it is cut.
_PHONE = re.compile(
    r"""
    (?<![\w+@./\-])                 # not glued to a word, an email, a path or a longer number
    (?>(?P<number>
      (?:\+|\b00)?\s?               # international prefix
      \(?\d{1,5}\)?                 # first group, maybe in parentheses
      (?:[ .\-/]{0,2}\(?\d{1,5}\)?){1,6}  # more groups with at most two separator chars
    ))
    (?P<ext>\s*(?:x|ext\.?|extension|\#)\s*\d{1,6})?
    (?![\w@]|[.\-/:]\d)             # not followed by more of a word, number or time
    """,
    re.VERBOSE | re.IGNORECASE,
)
_DATE_LIKE = re.compile(r"^\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}$")
#: The SSA's 3-2-4 grouping with one separator throughout ("123-45-6789", "123 45 6789"):
#: no numbering plan groups a phone number so, the SSN and ITIN recognizers read it.
_SSN_LIKE = re.compile(r"^\d{3}([\- .])\d{2}\1\d{4}$")
_IP_LIKE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_TIME_LIKE = re.compile(r"^\d{1,2}:\d{2}")

PHONE_CONTEXT = (
    "phone",
    "telephone",
    "tel",
    "mobile",
    "cell",
    "call",
    "text",
    "sms",
    "whatsapp",
    "fax",
    "landline",
    "reach",
    "contact",
    "number",
    "ph",
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2  # noqa: PLR2004 - Luhn doubling
        total += d
    return total % 10 == 0


class PhoneNumberRecognizer(GuardRecognizer):
    """PHONE_NUMBER: formatted phone numbers strongly, bare digit runs weakly."""

    FORMATTED_SCORE = 0.7
    BARE_SCORE = 0.3

    def __init__(self) -> None:
        super().__init__(
            entity="PHONE_NUMBER",
            name="GuardPhoneRecognizer",
            context=PHONE_CONTEXT,
            precheck=digit_count_at_least(7),
        )

    def find(self, text: str) -> Iterable[Finding]:
        """Phone-shaped digit runs that are not dates, SSNs, IPs or card numbers."""
        for match in _PHONE.finditer(text):
            raw = match.group("number")
            start = match.start("number") + len(raw) - len(raw.lstrip())
            number = raw.strip()
            number_end = start + len(number)
            opened, closed = number.count("("), number.count(")")
            # a parenthesis without its pair belongs to the sentence, not the number:
            # "((201) 555-0123)" is a number in parentheses, "(tel 201...)" a remark
            if opened > closed and number.startswith("("):
                number, start = number[1:], start + 1
            elif closed > opened and number.endswith(")"):
                number, number_end = number[:-1], number_end - 1
            end = match.end("ext") if match.group("ext") else number_end
            # trailing separators are not part of the number
            while end > start and not text[end - 1].isalnum() and text[end - 1] != ")":
                end -= 1
            digits = "".join(ch for ch in number if ch.isdigit())
            if not 7 <= len(digits) <= 15:  # noqa: PLR2004 - E.164 allows at most 15 digits
                continue
            # what the number is, read without the parentheses around it: "(1993-01-04)"
            bare = number.strip("()")
            if _DATE_LIKE.match(bare) or _SSN_LIKE.match(bare) or _IP_LIKE.match(bare):
                continue
            if _TIME_LIKE.match(bare):
                continue
            if number.count("(") != number.count(")"):
                number = bare
            formatted = bool(match.group("ext")) or any(ch in number for ch in "+()-. /")
            if len(digits) >= 13 and _luhn_ok(digits) and not number.startswith("+"):  # noqa: PLR2004
                continue  # a payment card, left to the card recognizer
            yield start, end, self.FORMATTED_SCORE if formatted else self.BARE_SCORE
