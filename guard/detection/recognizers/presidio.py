"""Presidio's own pattern recognizers that guard keeps, each behind a cheap pre-check.

A recognizer whose pre-check fails is skipped without running its regexes: an email
recognizer on text without "@", an IBAN recognizer on text with fewer than 15 digits.
The email recognizer validates domains against tldextract's bundled public-suffix snapshot,
never the network (Presidio's default asks the network on first use).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import tldextract
from presidio_analyzer.predefined_recognizers import (
    CryptoRecognizer,
    DateRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    MacAddressRecognizer,
    UrlRecognizer,
    UsBankRecognizer,
    UsItinRecognizer,
    UsLicenseRecognizer,
    UsPassportRecognizer,
    UsSsnRecognizer,
)

from guard.detection.recognizers.base import contains_any, digit_count_at_least

if TYPE_CHECKING:
    from collections.abc import Callable

    from presidio_analyzer import EntityRecognizer

#: Offline public-suffix lookups: no fetch, no cache directory, the snapshot shipped in the wheel.
OFFLINE_TLD_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer with an offline public-suffix check."""

    def validate_result(self, pattern_text: str) -> bool:
        """A domain with a known public suffix."""
        return bool(OFFLINE_TLD_EXTRACT(pattern_text).fqdn)


def _prechecked(recognizer: EntityRecognizer, precheck: Callable[[str], bool]) -> EntityRecognizer:
    """Wrap ``recognizer.analyze`` so that it returns nothing when ``precheck`` fails."""
    analyze = recognizer.analyze

    def guarded(text: str, entities: list[str], *args: Any, **kwargs: Any) -> list[Any]:  # noqa: ANN401
        if not precheck(text):
            return []
        result: list[Any] = analyze(text, entities, *args, **kwargs)
        return result

    recognizer.analyze = guarded  # type: ignore[method-assign] # a per-instance pre-check
    return recognizer


def _searches(pattern: str) -> Callable[[str], bool]:
    """A pre-check: a small regex that any match of the recognizer must contain."""
    compiled = re.compile(pattern, re.IGNORECASE)

    def check(text: str) -> bool:
        return compiled.search(text) is not None

    return check


#: A dot between a letter or digit and a two-letter-or-longer label: every URL has one.
_URL_HINT = r"[a-z0-9]\.[a-z]{2,}|://"
#: Dotted quads or colon-separated hex groups.
_IP_HINT = r"\d{1,3}\.\d{1,3}\.\d|[0-9a-f]{1,4}::?[0-9a-f]{1,4}:"
_MAC_HINT = r"[0-9a-f]{2}[:\-.][0-9a-f]{2}[:\-.]"


def presidio_recognizers() -> list[EntityRecognizer]:
    """The Presidio recognizers guard runs, each with its pre-check."""
    return [
        _prechecked(OfflineEmailRecognizer(), contains_any("@")),
        _prechecked(IbanRecognizer(), digit_count_at_least(10)),
        _prechecked(IpRecognizer(), _searches(_IP_HINT)),
        _prechecked(UrlRecognizer(), _searches(_URL_HINT)),
        _prechecked(CryptoRecognizer(), digit_count_at_least(5)),
        _prechecked(MacAddressRecognizer(), _searches(_MAC_HINT)),
        _prechecked(DateRecognizer(), digit_count_at_least(4)),
        _prechecked(UsSsnRecognizer(), digit_count_at_least(9)),
        _prechecked(UsItinRecognizer(), digit_count_at_least(9)),
        _prechecked(UsPassportRecognizer(), digit_count_at_least(8)),
        _prechecked(UsLicenseRecognizer(), digit_count_at_least(6)),
        _prechecked(UsBankRecognizer(), digit_count_at_least(8)),
    ]
