"""Payment card numbers of every length (13 to 19 digits), grouped or not, Luhn-checked.

Presidio's card pattern is shaped around 16-digit numbers; American Express (15), Diners (14)
and 19-digit cards slip through. A Luhn-invalid run is not reported as a card.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from guard.detection.recognizers.base import Finding, GuardRecognizer, digit_count_at_least
from guard.detection.recognizers.phone import _luhn_ok

if TYPE_CHECKING:
    from collections.abc import Iterable

_CARD = re.compile(r"(?<![\w\-.])\d(?:[ \-]?\d){12,18}(?![\w\-]|\.\d)")


class PaymentCardRecognizer(GuardRecognizer):
    """CREDIT_CARD: 13-19 digits with optional space/dash grouping and a valid check digit."""

    SCORE = 1.0

    def __init__(self) -> None:
        super().__init__(
            entity="CREDIT_CARD",
            name="GuardCreditCardRecognizer",
            context=("card", "credit", "debit", "visa", "mastercard", "amex", "cc", "payment"),
            precheck=digit_count_at_least(13),
        )

    def find(self, text: str) -> Iterable[Finding]:
        """Luhn-valid digit runs with consistent separators."""
        for match in _CARD.finditer(text):
            value = match.group()
            separators = {ch for ch in value if not ch.isdigit()}
            if len(separators) > 1:
                continue
            digits = value.replace(" ", "").replace("-", "")
            if _luhn_ok(digits) and len(set(digits)) > 1:
                yield match.start(), match.end(), self.SCORE
