"""Payment card numbers of every length (13 to 19 digits), grouped or not, Luhn-checked.

Presidio's card pattern is shaped around 16-digit numbers; American Express (15), Diners (14)
and 19-digit cards slip through. A Luhn-invalid run is not reported as a card.

A card is one value: written without separators, or in the groups card numbers are printed
in (ISO/IEC 7812 numbers are grouped in fours, the last group shorter or one longer, or 4-6-5 /
4-6-4 for American Express and Diners), with one kind of separator. Two cards side by side, or
a card next to another number, are read as separate values, never as one "card" across both:
a run of digit groups is cut into cards group by group.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import TYPE_CHECKING

from guard.detection.recognizers.base import (
    CONTEXT_ONLY_SCORE,
    Finding,
    GuardRecognizer,
    digit_count_at_least,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

#: A run of digit groups, each separator one space or dash. Possessive: a run is read once, so
#: the scan is linear however long the run ("1 1 1 1 ..." is one match).
_RUN = re.compile(r"\d++(?:[ \-]\d++)*+")
_DIGITS = re.compile(r"\d++")
#: What may not touch a card: a word character or dash before it, or a dot (a decimal or a
#: version number); a word character or dash after it, or a dot and a digit.
_GLUED_BEFORE = re.compile(r"[\w\-.]")
_GLUED_AFTER = re.compile(r"[\w\-]|\.\d")

MIN_DIGITS = 13
MAX_DIGITS = 19
#: Groupings besides fours: American Express (4-6-5), Diners Club (4-6-4), 13-digit Visa
#: (4-3-3-3).
_OTHER_GROUPINGS = frozenset({(4, 6, 5), (4, 6, 4), (4, 3, 3, 3)})
#: Grouped card numbers have at least three groups; but for the others above, all of four
#: digits save the last, which may hold one to five (4-4-4-4, 4-4-4-3, 4-4-5, 4-4-4-4-3).
_MIN_GROUPS = 3
#: The most groups a card reading holds (4-4-4-4-3).
_MAX_GROUPS = 5
_GROUP = 4
_LAST_GROUP = range(1, _GROUP + 2)


def card_grouping_ok(groups: tuple[int, ...]) -> bool:
    """Whether digit groups of these lengths are written the way card numbers are printed.

    One group; three or more groups of four digits, the last of one to five; or 4-6-5,
    4-6-4, 4-3-3-3. Two groups ("123456 7890123"), or groups of other lengths, are separate
    numbers (a table, a phone number and an amount), not one card.
    """
    if len(groups) == 1 or groups in _OTHER_GROUPINGS:
        return True
    return (
        len(groups) >= _MIN_GROUPS
        and all(g == _GROUP for g in groups[:-1])
        and groups[-1] in _LAST_GROUP
    )


class PaymentCardRecognizer(GuardRecognizer):
    """CREDIT_CARD: 13-19 digits, ungrouped or grouped like a card, with a valid check digit."""

    SCORE = 1.0
    #: A Luhn-valid number of card length in groups no card is printed in. The phone
    #: recognizer leaves Luhn-valid runs of 13 or more digits to this one, so dropping it
    #: would leak it; it is still reported, below a card's score.
    UNUSUAL_GROUPING_SCORE = 0.5

    def __init__(self) -> None:
        super().__init__(
            entity="CREDIT_CARD",
            name="GuardCreditCardRecognizer",
            context=("card", "credit", "debit", "visa", "mastercard", "amex", "cc", "payment"),
            precheck=digit_count_at_least(MIN_DIGITS),
        )

    def find(self, text: str) -> Iterable[Finding]:
        """Luhn-valid cards in every run of digit groups, each card its own finding."""
        for run in _RUN.finditer(text):
            if run.end() - run.start() < MIN_DIGITS:
                continue
            groups = [(g.start(), g.end()) for g in _DIGITS.finditer(text, run.start(), run.end())]
            # a group glued to a word or a longer number at either end is not part of a card
            if run.start() > 0 and _GLUED_BEFORE.match(text, run.start() - 1):
                groups = groups[1:]
            if _GLUED_AFTER.match(text, run.end()):
                groups = groups[:-1]
            found = False
            for start, end in _cards(text, groups) if groups else ():
                found = True
                yield start, end, self.SCORE
            if not found and groups:
                whole = _unusual_grouping(text, groups)
                if whole is not None:
                    yield whole[0], whole[1], self.UNUSUAL_GROUPING_SCORE
                elif (invalid := _card_shaped(text, groups)) is not None:
                    yield invalid[0], invalid[1], CONTEXT_ONLY_SCORE


def _cards(text: str, groups: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """The cards in consecutive digit groups: from each group, the longest valid reading.

    A reading is the groups from one to another (13-19 digits in all, one separator kind, a
    card's grouping, the Luhn check, not one repeated digit). After a card the search goes on
    after it, so two cards side by side are two findings. Each start reads at most five
    groups: linear in the run.
    """
    lengths = [end - start for start, end in groups]
    # gaps[i]: the separator before group i ("" before the first)
    gaps = [""] + [text[groups[i - 1][1] : groups[i][0]] for i in range(1, len(groups))]
    gaps.append("")  # after the last
    index = 0
    while index < len(groups):
        if lengths[index] < MIN_DIGITS and lengths[index] != _GROUP:
            index += 1  # opens no card: the usual case in a table of numbers, kept cheap
            continue
        last = _card_from(text, groups, lengths, gaps, index)
        if last is None:
            index += 1
            continue
        yield groups[index][0], groups[last][1]
        index = last + 1


def _card_from(
    text: str, groups: list[tuple[int, int]], lengths: list[int], gaps: list[str], index: int
) -> int | None:
    """The index of the last group of the longest card that begins at group ``index``."""
    if gaps[index] == "-":
        return None  # a dash joins the group before to this one: one longer number
    if lengths[index] != _GROUP:  # a lone group of card length; grouped cards open with 4
        start, end = groups[index]
        if MIN_DIGITS <= lengths[index] <= MAX_DIGITS and gaps[index + 1] != "-":
            return index if _is_card_number(text[start:end]) else None
        return None
    separator = gaps[index + 1]
    best: int | None = None
    digits = _GROUP
    fours = True  # every group before ``last`` has four digits
    for last in range(index + 1, min(index + _MAX_GROUPS, len(groups))):
        if gaps[last] != separator:
            break
        digits += lengths[last]
        if digits > MAX_DIGITS:
            break
        count = last - index + 1
        grouped = (fours and count >= _MIN_GROUPS and lengths[last] in _LAST_GROUP) or (
            not fours and tuple(lengths[index : last + 1]) in _OTHER_GROUPINGS
        )
        if grouped and digits >= MIN_DIGITS and gaps[last + 1] != "-":
            number = "".join(text[s:e] for s, e in groups[index : last + 1])
            if _is_card_number(number):
                best = last
        fours = fours and lengths[last] == _GROUP
        if not fours and not any(
            other[:count] == tuple(lengths[index : last + 1]) for other in _OTHER_GROUPINGS
        ):
            break
    return best


#: Digits doubled and summed, as the Luhn check reads every second digit from the right.
_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_ok(number: str) -> bool:
    """The Luhn (ISO/IEC 7812-1) check of a string of ASCII digits, summed in C."""
    reverse = number[::-1]
    total = sum(map(int, reverse[0::2])) + sum(map(int, reverse[1::2].translate(_DOUBLED)))
    return total % 10 == 0


def _is_card_number(digits: str) -> bool:
    """A valid Luhn check digit, and not one digit repeated ("0000 0000 0000 0000")."""
    return luhn_ok(digits) and len(set(digits)) > 1


def _gap(text: str, groups: list[tuple[int, int]], index: int) -> str:
    """The separator between group ``index - 1`` and group ``index``."""
    return text[groups[index - 1][1] : groups[index][0]]


def _card_shaped(text: str, groups: list[tuple[int, int]]) -> tuple[int, int] | None:
    """All ``groups`` as one card-shaped number whose check digit is wrong; or None.

    Reported at ``CONTEXT_ONLY_SCORE``: after "card number" it is that customer's card with a
    typo, and is redacted; alone, a Luhn-invalid number is not a card.
    """
    lengths = tuple(end - start for start, end in groups)
    digits = sum(lengths)
    gaps = {text[left[1] : right[0]] for left, right in pairwise(groups)}
    if not MIN_DIGITS <= digits <= MAX_DIGITS or len(gaps) > 1 or not card_grouping_ok(lengths):
        return None
    return groups[0][0], groups[-1][1]


def _unusual_grouping(text: str, groups: list[tuple[int, int]]) -> tuple[int, int] | None:
    """All ``groups`` as one number: 13-19 digits, one separator kind, Luhn-valid; or None."""
    digits = sum(end - start for start, end in groups)
    if not MIN_DIGITS <= digits <= MAX_DIGITS:
        return None
    gaps = {text[left[1] : right[0]] for left, right in pairwise(groups)}
    number = "".join(text[start:end] for start, end in groups)
    if len(gaps) > 1 or not _is_card_number(number):
        return None
    return groups[0][0], groups[-1][1]
