"""Presidio's own pattern recognizers that guard keeps, each behind a cheap pre-check.

A recognizer whose pre-check fails is skipped without running its regexes: an email
recognizer on text without "@", an IBAN recognizer on text with fewer than 15 digits.
The email recognizer validates domains against tldextract's bundled public-suffix snapshot,
never the network (Presidio's default asks the network on first use).

Time: every recognizer here runs in time linear in the text, and none fails open.

- Presidio's email and URL regexes backtrack super-linearly: the email pattern starts a match at
  every word boundary of a long dotted run and scans it to its end ("a.a.a..." before an "@":
  quadratic), the URL pattern retries a 253-character host and a thousand-branch top-level-domain
  alternation at every position (``"http://" + "a." * 4000 + "com"``: 7.9 s for 8 KB). Guard finds
  exactly what those regexes find, by a scan that reads each character a bounded number of times:
  :class:`GuardEmailRecognizer` and :class:`GuardUrlRecognizer` (the same top-level domains, the
  same scores, the same spans; a property test compares them with Presidio's on random text).
  A URL also takes in what RFC 3986 puts in it and Presidio's regex cuts off: a port
  (``host.com:8443/path``) and a query or fragment without a path (``host.com?ref=x``).
- The others keep Presidio's patterns (bounded, linear) but run them through
  :class:`~guard.detection.recognizers.base.FailClosedPatternRecognizer`: a regex that runs out
  of time raises DetectionFailedError instead of being skipped with a warning.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

import regex
import tldextract
from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult
from presidio_analyzer import Pattern as PresidioPattern
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

from guard.detection.recognizers.base import (
    CONTEXT_ONLY_SCORE,
    FailClosedPatternRecognizer,
    Readings,
    all_of,
    contains_any,
    digit_count_at_least,
    searches,
    searches_folded,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from presidio_analyzer import Pattern

#: A digit and a dot right before an IPv4 match, a dot and a digit right after it.
_DOTTED_BEFORE = re.compile(r"\d\.$")
_DOTTED_AFTER = re.compile(r"\.\d")

#: Offline public-suffix lookups: no fetch, no cache directory, the snapshot shipped in the wheel.
OFFLINE_TLD_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class _LinearScanRecognizer(EntityRecognizer):
    """A Presidio recognizer whose findings come from a linear scan instead of its regexes."""

    # Presidio assigns it in __init__ without an annotation
    name: str

    def load(self) -> None:
        """Nothing to load."""

    def finding(self, start: int, end: int, score: float, pattern_name: str) -> RecognizerResult:
        """A RecognizerResult shaped like Presidio's pattern results (name, id, explanation)."""
        explanation = AnalysisExplanation(
            recognizer=self.name,
            original_score=score,
            pattern_name=pattern_name,
            textual_explanation=f"Detected by `{self.name}` using pattern `{pattern_name}`",
        )
        return RecognizerResult(
            entity_type=self.supported_entities[0],
            start=start,
            end=end,
            score=score,
            analysis_explanation=explanation,
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


# ------------------------------------------------------------------------------------ email
# Presidio's pattern: \b(local)@domain\b, local = X or X[X.]*X, X = [!#$%&'*+\-/=?^_`{|}~\w],
# domain = \w+(-+\w+)*(\.\w+(-+\w+)*)+. Scanned from each "@": the local part is the run of
# X-or-dot characters that ends at it (runs of different "@"s are disjoint), its start the
# leftmost X character at a word boundary; the domain a possessive (backtracking-free) match.
_LOCAL_CHARS = r"!#$%&'*+\-/=?^_`{|}~\w"
_LOCAL_RUN_BACKWARDS = regex.compile(rf"(?r)[{_LOCAL_CHARS}.]++")
_LOCAL_START = regex.compile(rf"\b[{_LOCAL_CHARS}]")
_EMAIL_DOMAIN = regex.compile(r"\w++(?:-++\w++)*+(?:\.\w++(?:-++\w++)*+)++")


#: An "@" right after a character a local part can end with: only these can start a match
#: ("@@@@..." is a million "@"s and no candidate).
_AT_AFTER_LOCAL = regex.compile(rf"@(?<=[{_LOCAL_CHARS}]@)")


def email_spans(text: str) -> Iterator[tuple[int, int]]:
    """Spans Presidio's email regex matches in ``text``, found in linear time."""
    resume = 0
    for candidate in _AT_AFTER_LOCAL.finditer(text):
        at = candidate.start()
        if at <= resume:
            continue
        run = _LOCAL_RUN_BACKWARDS.search(text, resume, at)
        start = _LOCAL_START.search(text, run.start(), at) if run is not None else None
        domain = _EMAIL_DOMAIN.match(text, at + 1) if start is not None else None
        if start is not None and domain is not None:
            yield start.start(), domain.end()
            resume = domain.end()


class GuardEmailRecognizer(_LinearScanRecognizer, EmailRecognizer):
    """Presidio's email recognizer: the same matches by a linear scan, domains checked offline."""

    def __init__(self) -> None:
        super().__init__(name="GuardEmailRecognizer")

    def validate_result(self, pattern_text: str) -> bool:
        """A domain with a known public suffix."""
        return bool(OFFLINE_TLD_EXTRACT(pattern_text).fqdn)

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: Any = None,  # noqa: ANN401 - Presidio's signature
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """Valid email addresses (score 1.0); invalid ones are dropped, as Presidio does."""
        del entities, nlp_artifacts, regex_flags
        pattern = EmailRecognizer.PATTERNS[0]
        results = [
            self.finding(start, end, EntityRecognizer.MAX_SCORE, pattern.name)
            for start, end in email_spans(text)
            if self.validate_result(text[start:end])
        ]
        return EntityRecognizer.remove_duplicates(results)


# -------------------------------------------------------------------------------------- URL
#: Presidio's top-level domains, in its order: the first that matches wins, as in its regex.
_TLD_ORDER: dict[str, int] = {}
for _index, _tld in enumerate(re.findall(r"\(\?:([a-z]+)\)", UrlRecognizer.BASE_URL_REGEX)):
    _TLD_ORDER.setdefault(_tld, _index)
_TLD_LENGTHS = sorted({len(tld) for tld in _TLD_ORDER})
_HOST_RUN = re.compile(r"[a-z0-9.\-]++", re.IGNORECASE)
_WWW = re.compile(r"www\d{0,3}\.", re.IGNORECASE)
_PATH = re.compile(r"/[^\s()<>\"']*+")
#: What Presidio's pattern stops before, though RFC 3986 puts it in the URL: a port after the
#: host, and a query or fragment with no path before it ("https://host.com?ref=x").
_PORT = re.compile(r":\d{1,5}(?![\w:])")
_QUERY_OR_FRAGMENT = re.compile(r"[?#][^\s()<>\"']++")
_SCHEME = re.compile(r"https?://", re.IGNORECASE)
_QUOTED_SCHEME = re.compile(r"[\"']https?://", re.IGNORECASE)
_QUOTE = re.compile(r"[\"']")
_TERMINATOR = re.compile(r"[\s()<>\"']")
_MAX_HOST = 253
_QUOTES = "\"'"


#: What a top-level domain can be read from: a letter whose lower case is an ASCII letter
#: (the Kelvin sign lowers to "k"). A dot before anything else has no domain after it, which
#: spares a dozen lookups at each dot of a long dotted run ("a.a.a...").
_TLD_LETTERS = re.compile("[A-Za-z\u212a]*")


def _tld_at(text: str, position: int) -> str | None:
    """The top-level domain Presidio's alternation picks at ``position`` (first in its order)."""
    best: tuple[int, str] | None = None
    letters = _TLD_LETTERS.match(text, position)
    reach = letters.end() - position if letters is not None else 0
    for length in _TLD_LENGTHS:
        if length > reach:
            break
        candidate = text[position : position + length].lower()
        order = _TLD_ORDER.get(candidate)
        if order is not None and (best is None or order < best[0]):
            best = (order, candidate)
    return None if best is None else best[1]


def _tld_dots(text: str, start: int, end: int) -> list[int]:
    """Dots in text[start:end] followed by a top-level domain, in order."""
    dots = []
    dot = text.find(".", start, end)
    while dot != -1:
        if _tld_at(text, dot + 1) is not None:
            dots.append(dot)
        dot = text.find(".", dot + 1, end)
    return dots


def _host_reach(text: str, start: int) -> int:
    """The last dot position a host starting at ``start`` may reach (Presidio's {1,253})."""
    www = _WWW.match(text, start)
    return start + _MAX_HOST + (www.end() - start if www is not None else 0)


def _url_end(text: str, dot: int) -> int:
    """Where a URL whose host ends at ``dot`` ends: its top-level domain, then any path.

    Past Presidio's reading: a port before the path, and a query or fragment without one.
    """
    tld = _tld_at(text, dot + 1)
    end = dot + 1 + len(tld or "")
    port = _PORT.match(text, end)
    if port is not None:
        end = port.end()
    path = _PATH.match(text, end) or _QUERY_OR_FRAGMENT.match(text, end)
    return path.end() if path is not None else end


def url_spans_without_scheme(text: str) -> Iterator[tuple[int, int]]:
    """Spans of Presidio's "Non schema URL" pattern, in linear time.

    Its regex has no left boundary: a match starts at the leftmost position from which a host
    of 1 to 253 characters reaches a dot followed by a top-level domain, and takes the
    farthest such dot (greedy host). Each run of host characters is read once.
    """
    resume = 0
    for run in _HOST_RUN.finditer(text):
        if run.end() <= resume:
            continue
        dots = _tld_dots(text, run.start(), run.end())
        position = max(run.start(), resume)
        while dots:
            index = bisect_right(dots, position)
            if index == len(dots):
                break
            first = dots[index]
            if first - position > _MAX_HOST:
                position = first - _MAX_HOST
            last = dots[bisect_right(dots, _host_reach(text, position)) - 1]
            end = _url_end(text, last)
            yield position, end
            resume = position = end
            if end >= run.end():
                break


def url_spans_with_scheme(text: str) -> Iterator[tuple[int, int]]:
    """Spans of Presidio's "Standard Url" pattern (http:// or https://), in linear time."""
    resume = 0
    for scheme in _SCHEME.finditer(text):
        if scheme.start() < resume:
            continue
        host = scheme.end()
        run = _HOST_RUN.match(text, host)
        if run is None:
            continue
        reach = min(run.end(), _host_reach(text, host) + 1)
        dots = [d for d in _tld_dots(text, host, reach) if d > host]
        if dots:
            resume = _url_end(text, dots[-1])
            yield scheme.start(), resume


def url_spans_quoted(text: str) -> Iterator[tuple[int, int]]:
    """Spans of Presidio's "Quoted URL" pattern: a quote, a URL with a scheme, a quote."""
    return _quoted_spans(text, _QUOTED_SCHEME)


def url_spans_quoted_without_scheme(text: str) -> Iterator[tuple[int, int]]:
    """Spans of Presidio's "Quoted Non-schema URL" pattern: a quote, a host, a quote."""
    return _quoted_spans(text, _QUOTE)


def _quoted_spans(text: str, opening_pattern: re.Pattern[str]) -> Iterator[tuple[int, int]]:
    r"""Quoted URLs whose opening (a quote, maybe a scheme) ``opening_pattern`` matches.

    The closing quote is the first of ``\s()<>"'`` after the opening (nothing in a host or a
    path can be one); the URL before it must end in a top-level domain, or a domain and a path.
    """
    resume = 0
    for opening in opening_pattern.finditer(text):
        if opening.start() < resume:
            continue
        host = opening.end()
        closing = _TERMINATOR.search(text, host)
        if closing is None or text[closing.start()] not in _QUOTES:
            continue
        run = _HOST_RUN.match(text, host)
        if run is None:
            continue
        reach = min(run.end(), _host_reach(text, host) + 1)
        if _quoted_host_ends(text, host, reach, closing.start()):
            resume = closing.end()
            yield opening.start(), resume


def _quoted_host_ends(text: str, host: int, reach: int, closing: int) -> bool:
    """Some dot and top-level domain after ``host`` end right at the quote or at a path."""
    dot = text.find(".", host + 1, reach)
    while dot != -1:
        for length in _TLD_LENGTHS:
            end = dot + 1 + length
            if end > closing:
                break
            if text[dot + 1 : end].lower() in _TLD_ORDER and (end == closing or text[end] == "/"):
                return True
        dot = text.find(".", dot + 1, reach)
    return False


#: A URL whose host is an IP address (RFC 3986 IPv4address or a bracketed IP-literal), which
#: Presidio's patterns, built on top-level domains, never match: "http://192.0.2.10/admin".
_IP_HOST_URL = re.compile(
    r"https?://(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]{2,45}\])(?::\d{1,5})?"
    r"(?:[/?#][^\s()<>\"']*+)?",
    re.IGNORECASE,
)


def url_spans_ip_host(text: str) -> Iterator[tuple[int, int]]:
    """Spans of URLs with a scheme and an IP address for a host."""
    for match in _IP_HOST_URL.finditer(text):
        yield match.span()


class GuardUrlRecognizer(_LinearScanRecognizer, UrlRecognizer):
    """Presidio's URL recognizer: the same four patterns' matches, found in linear time.

    And a fifth: URLs whose host is an IP address (``url_spans_ip_host``), scored as
    Presidio scores a URL with a scheme.
    """

    def __init__(self) -> None:
        super().__init__(name="GuardUrlRecognizer")
        self._scans: tuple[tuple[Callable[[str], Iterator[tuple[int, int]]], Pattern], ...] = (
            (url_spans_with_scheme, UrlRecognizer.PATTERNS[0]),
            (url_spans_without_scheme, UrlRecognizer.PATTERNS[1]),
            (url_spans_quoted, UrlRecognizer.PATTERNS[2]),
            (url_spans_quoted_without_scheme, UrlRecognizer.PATTERNS[3]),
            (url_spans_ip_host, UrlRecognizer.PATTERNS[0]),
        )

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: Any = None,  # noqa: ANN401 - Presidio's signature
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """URLs with and without a scheme, and quoted; contained duplicates removed."""
        del entities, nlp_artifacts, regex_flags
        results = [
            self.finding(start, end, pattern.score, pattern.name)
            for scan, pattern in self._scans
            for start, end in scan(text)
        ]
        return EntityRecognizer.remove_duplicates(results)


# ------------------------------------------------------------------------ bounded patterns
class GuardIbanRecognizer(FailClosedPatternRecognizer, IbanRecognizer):
    """Presidio's IBAN recognizer; a regex time-out fails closed."""

    def match_results(
        self,
        text: str,
        match: regex.Match[str],
        pattern: Pattern,
        flags: int,
        readings: Readings,
    ) -> Iterator[RecognizerResult]:
        """Presidio's IBAN reading: the longest group-ending that passes the checksum."""
        del readings  # several candidate values per match; the checksum is cheap
        start = match.start()
        for group in reversed(range(1, len(match.groups()) + 1)):
            end = match.end(group) if match.end(group) > 0 else match.end()
            value = text[start:end]
            if not value:
                continue
            validation = self.validate_result(value)
            explanation = self.build_regex_explanation(
                self.name, pattern.name, pattern.regex, pattern.score, bool(validation), flags
            )
            score = pattern.score
            if validation is not None:
                score = EntityRecognizer.MAX_SCORE if validation else EntityRecognizer.MIN_SCORE
            if score > EntityRecognizer.MIN_SCORE:
                yield self._result(start, end, score, explanation)
                return


class GuardIpRecognizer(FailClosedPatternRecognizer, IpRecognizer):
    r"""Presidio's IP recognizer; a regex time-out fails closed.

    Four dotted numbers inside a longer run of them ("+33.6.12.34.56.78", a French phone;
    "1.2.3.4.5", a version) are not an IPv4 address: Presidio's IPv4 pattern, bounded by
    ``\b`` only, took them for one.
    """

    def match_results(
        self,
        text: str,
        match: regex.Match[str],
        pattern: Pattern,
        flags: int,
        readings: Readings,
    ) -> Iterator[RecognizerResult]:
        """Presidio's reading of a match that is not part of a longer dotted number."""
        start, end = match.span()
        if _DOTTED_BEFORE.search(text, max(0, start - 2), start) or _DOTTED_AFTER.match(text, end):
            return iter(())
        return super().match_results(text, match, pattern, flags, readings)


class GuardCryptoRecognizer(FailClosedPatternRecognizer, CryptoRecognizer):
    """Presidio's crypto-wallet recognizer; a regex time-out fails closed."""


class GuardMacAddressRecognizer(FailClosedPatternRecognizer, MacAddressRecognizer):
    """Presidio's MAC address recognizer; a regex time-out fails closed."""


class GuardDateRecognizer(FailClosedPatternRecognizer, DateRecognizer):
    """Presidio's numeric date recognizer; a regex time-out fails closed.

    Two patterns more. A month and a year with a two-digit month and a four-digit year of
    the 20th or 21st century ("05/2021", as forms and card expiry dates write it): Presidio
    scores every "m/yyyy" 0.2, under the threshold, for fear of fractions ("1/2000"); the
    zero-padded month with a plausible year is a date. And year-first dates with dots
    ("2021.05.21", as Korea, China and Hungary write them).
    """

    def __init__(self) -> None:
        month_year = PresidioPattern("mm/yyyy", r"\b(?:0[1-9]|1[0-2])/(?:19|20)\d{2}\b", 0.6)
        year_first_dots = PresidioPattern(
            "yyyy.mm.dd",
            r"\b(?:19|20)\d{2}\.(?:0?[1-9]|1[0-2])\.(?:0?[1-9]|[12]\d|3[01])\b(?!\.\d)",
            0.6,
        )
        super().__init__(patterns=[*DateRecognizer.PATTERNS, month_year, year_first_dots])


class GuardUsSsnRecognizer(FailClosedPatternRecognizer, UsSsnRecognizer):
    """Presidio's US SSN recognizer; a regex time-out fails closed.

    A number in an SSN's shape that the SSA never issues or published as a sample
    ("078-05-1120", "123-45-6789", area 000 or 666) is not dropped, as in Presidio, but kept
    at a score only a context word ("SSN", "social security") lifts to the threshold:
    introduced as an SSN, it is one as far as redaction goes (someone's typo, a real number
    in a test record); on its own it stays unreported.
    """

    invalid_score = CONTEXT_ONLY_SCORE

    def invalidate_result(self, pattern_text: str) -> bool:
        """Presidio's checks, and area numbers 900-999: the SSA issues none (ITINs use them)."""
        digits = [ch for ch in pattern_text if ch.isdigit()]
        return bool(super().invalidate_result(pattern_text)) or digits[:1] == ["9"]


class GuardUsItinRecognizer(FailClosedPatternRecognizer, UsItinRecognizer):
    """Presidio's US ITIN recognizer; a regex time-out fails closed."""


class GuardUsPassportRecognizer(FailClosedPatternRecognizer, UsPassportRecognizer):
    """Presidio's US passport recognizer; a regex time-out fails closed."""


class GuardUsLicenseRecognizer(FailClosedPatternRecognizer, UsLicenseRecognizer):
    """Presidio's US driver's licence recognizer; a regex time-out fails closed."""


class GuardUsBankRecognizer(FailClosedPatternRecognizer, UsBankRecognizer):
    """Presidio's US bank account recognizer; a regex time-out fails closed."""


def _prechecked(recognizer: EntityRecognizer, precheck: Callable[[str], bool]) -> EntityRecognizer:
    """Wrap ``recognizer.analyze`` so that it returns nothing when ``precheck`` fails.

    The pre-check and the unwrapped ``analyze`` stay on the recognizer (``precheck``,
    ``unchecked_analyze``): the pre-check invariant test runs the recognizer without its
    pre-check wherever the pre-check says "skip", and asserts it finds nothing there.
    """
    analyze = recognizer.analyze

    def guarded(text: str, entities: list[str], *args: Any, **kwargs: Any) -> list[Any]:  # noqa: ANN401
        if not precheck(text):
            return []
        result: list[Any] = analyze(text, entities, *args, **kwargs)
        return result

    recognizer.analyze = guarded  # type: ignore[method-assign] # a per-instance pre-check
    recognizer.precheck = precheck  # type: ignore[attr-defined]
    recognizer.unchecked_analyze = analyze  # type: ignore[attr-defined]
    return recognizer


# Each hint below is a regex every match of its recognizer contains (tests/detection/
# test_prechecks.py holds them to it): a hint stricter than its recognizer skips real values.
# Hints are searched in the folded text, case-sensitively (``searches_folded``), and start at
# their rarest character, a separator or a digit, with lookbehinds for what comes before it:
# the engine then skips to the candidates instead of trying every position (the date hint
# written from its first digit took 16 times as long).
#: A dot between a host character (a letter, digit, dot or hyphen: "Mr..com" is a host to
#: Presidio's pattern) and a two-letter-or-longer label: every URL has one.
_URL_HINT = r"\.(?<=[a-z0-9.\-]\.)[a-z]{2}|://"
#: Dotted quads; or in IPv6, "::" (every compressed form: "::1", "fe80::1%eth0",
#: "::ffff:192.0.2.1", "2001:db8::/32") or two colon-ended hex groups (the full form).
_IP_HINT = r"\.(?<=\d\.)\d{1,3}\.\d|:(?::|(?<=[0-9a-f]:)[0-9a-f]{1,4}:)"
#: A hex pair between colons or hyphens (00:1a:2b..., 00-1A-2B...), or a hex quad between
#: dots (Cisco's 001a.2b3c.4d5e).
_MAC_HINT = r"[:\-][0-9a-f]{2}[:\-]|\.[0-9a-f]{4}\."
_MONTH_ABBREVIATION = "(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
#: Every numeric date pattern has a digit, a separator and a digit ("5/21", "2021-05-21",
#: "21.05.2021"); the others a day or year next to a month: "21-May", "May-21", "21-MAY-2021".
_DATE_HINT = (
    rf"[/.\-](?:(?<=\d[/.\-])\d|(?<=\d-){_MONTH_ABBREVIATION}|(?<={_MONTH_ABBREVIATION}-)\d)"
)
#: Every driver's licence shape has a letter or digit right before a digit ("A1234", "123456").
LICENSE_HINT = searches(r"[0-9](?<=[^\W_][0-9])")
#: An IBAN starts with a country code and two check digits; some countries' BBANs are all
#: letters, so no count of digits is a safe pre-check ("LC55 HEMM..." has two).
_IBAN_HINT = r"[0-9](?<=[^\W\d_]{2}[0-9])[0-9]"
#: A wallet address: "1", "3" or "bc1" and at least 25 more letters or digits.
_CRYPTO_HINT = r"[13]\w{25}"


def presidio_recognizers() -> list[EntityRecognizer]:
    """The Presidio recognizers guard runs, each with its pre-check."""
    return [
        _prechecked(GuardEmailRecognizer(), contains_any("@")),
        _prechecked(GuardIbanRecognizer(), all_of(digit_count_at_least(2), searches(_IBAN_HINT))),
        _prechecked(GuardIpRecognizer(), searches_folded(_IP_HINT)),
        _prechecked(GuardUrlRecognizer(), searches_folded(_URL_HINT)),
        _prechecked(
            GuardCryptoRecognizer(), all_of(digit_count_at_least(1), searches(_CRYPTO_HINT))
        ),
        _prechecked(GuardMacAddressRecognizer(), searches_folded(_MAC_HINT)),
        _prechecked(
            GuardDateRecognizer(),
            all_of(digit_count_at_least(1), searches_folded(_DATE_HINT)),
        ),
        _prechecked(GuardUsSsnRecognizer(), digit_count_at_least(9)),
        _prechecked(GuardUsItinRecognizer(), digit_count_at_least(9)),
        _prechecked(GuardUsPassportRecognizer(), digit_count_at_least(8)),
        _prechecked(GuardUsLicenseRecognizer(), all_of(digit_count_at_least(1), LICENSE_HINT)),
        _prechecked(GuardUsBankRecognizer(), digit_count_at_least(8)),
    ]
