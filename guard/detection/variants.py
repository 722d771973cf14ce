"""Format variants: every notation of every fixed-format entity type, in neutral sentences.

A recognizer tested on the notations its author thought of passes its tests and misses the
others (issue 15: compressed IPv6, Cisco-dotted MACs, "21-May" dates were skipped outright).
This module writes values of each pattern entity type in every notation its standard or
common practice allows, each labelled (entity type, notation), and embeds them in a few
carrier sentences (value at the start, middle and end, before punctuation, in parentheses,
after a colon). ``guard eval --by-format`` reports recall per notation on them, and the
pre-check invariant test (tests/detection/test_prechecks.py) uses them as part of its corpus.

Values are synthetic and deterministic: each notation draws from its own ``random.Random``
seeded with the seed and the notation's name, so adding a notation never changes the values
of another. Check digits are computed (Luhn for cards, ISO 7064 mod 97-10 for IBANs, base58
double-SHA-256 and bech32 for Bitcoin addresses) and phone numbers are valid by libphonenumber's
metadata, so a value a validating recognizer rejects is the recognizer's miss, not the
generator's error.

Where a notation is only PII with a word that introduces it (a bare nine-digit SSN, a ZIP
code, a phone number written as bare digits), the notation carries that word as its ``lead``
and the word is part of the sentence but not of the value. Notations deliberately left out,
because without context they are indistinguishable from ordinary numbers or words: IPv6
unspecified ``::``, bare 12-hex-digit MACs, compact ISO dates ``20210521``, ``mm/yy``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

#: Sentences a value is embedded in: ``{}`` is the value (after its notation's lead). Neutral:
#: no context word of any recognizer, so the notation alone decides.
CARRIERS: tuple[tuple[str, str], ...] = (
    ("start", "{} is the one on file."),
    ("middle", "I checked {} again yesterday."),
    ("end", "The value we have is {}."),
    ("comma", "We have {}, as agreed."),
    ("parentheses", "Please confirm ({}) before Friday."),
    ("colon", "Reference: {}"),
    ("question", "Is it {}?"),
)

DEFAULT_SEED = 15
DEFAULT_PER_NOTATION = 3


@dataclass(frozen=True)
class Notation:
    """One way of writing values of ``entity_type``; ``make`` writes the ``index``-th value.

    ``description`` says what the notation is and which standard or practice it comes from;
    ``lead`` is the word that must introduce the value for it to be PII at all; ``count`` is
    the least number of values (a notation that cycles through countries writes one each).
    """

    entity_type: str
    name: str
    description: str
    make: Callable[[random.Random, int], str]
    lead: str = ""
    count: int = 0


@dataclass(frozen=True)
class Variant:
    """One value written in one notation."""

    entity_type: str
    notation: str
    value: str
    lead: str = ""


@dataclass(frozen=True)
class VariantText:
    """A variant in a carrier sentence; ``text[start:end]`` is the value."""

    text: str
    start: int
    end: int
    entity_type: str
    notation: str
    carrier: str


# ------------------------------------------------------------------------------- helpers
def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _word(rng: random.Random, syllables: int = 3) -> str:
    """A pronounceable made-up word ("kolbrenti"): names no real person or company."""
    onsets = ("b", "br", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
    vowels = ("a", "e", "i", "o", "u")
    return "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables))


def _group(value: str, sizes: Sequence[int], separator: str) -> str:
    parts, position = [], 0
    for size in sizes:
        parts.append(value[position : position + size])
        position += size
    if position < len(value):
        parts.append(value[position:])
    return separator.join(p for p in parts if p)


def luhn_check_digit(payload: str) -> str:
    """The ISO/IEC 7812 (Luhn) check digit that completes ``payload``."""
    total = 0
    for index, char in enumerate(reversed(payload)):
        digit = int(char)
        if index % 2 == 0:  # doubled: these are the odd positions once the check digit is on
            digit = digit * 2 - 9 if digit > 4 else digit * 2  # noqa: PLR2004 - Luhn doubling
        total += digit
    return str((10 - total % 10) % 10)


def _chunks(value: str, size: int) -> list[str]:
    return [value[i : i + size] for i in range(0, len(value), size)]


# ---------------------------------------------------------------------------------- email
def _email(
    local: Callable[[random.Random], str], domain: Callable[[random.Random], str]
) -> Callable[[random.Random, int], str]:
    return lambda rng, _: f"{local(rng)}@{domain(rng)}"


def _dotted_name(rng: random.Random) -> str:
    return f"{_word(rng, 2)}.{_word(rng, 3)}"


def _plain_domain(rng: random.Random) -> str:
    return f"{_word(rng)}.{rng.choice(('com', 'org', 'net', 'io', 'de', 'fr'))}"


EMAIL_NOTATIONS = (
    Notation(
        "EMAIL_ADDRESS",
        "dotted local part",
        "first.last@domain.tld (RFC 5322 dot-atom)",
        _email(_dotted_name, _plain_domain),
    ),
    Notation(
        "EMAIL_ADDRESS",
        "plus tag",
        "local+tag@domain (sub-addressing, RFC 5233)",
        _email(lambda r: f"{_word(r)}+{_word(r, 2)}", _plain_domain),
    ),
    Notation(
        "EMAIL_ADDRESS",
        "subdomain",
        "local@mail.domain.co.uk (host in a subdomain, two-label public suffix)",
        _email(_word, lambda r: f"mail.{_word(r)}.co.uk"),
    ),
    Notation(
        "EMAIL_ADDRESS",
        "digits and underscore",
        "first_last84@domain (atext digits and underscore)",
        _email(lambda r: f"{_word(r, 2)}_{_word(r, 2)}{_digits(r, 2)}", _plain_domain),
    ),
    Notation(
        "EMAIL_ADDRESS",
        "hyphenated domain",
        "local@my-domain.com (LDH labels, RFC 1035)",
        _email(_dotted_name, lambda r: f"{_word(r, 2)}-{_word(r, 2)}.com"),
    ),
    Notation(
        "EMAIL_ADDRESS",
        "mixed case",
        "First.Last@Domain.COM (domains are case-insensitive, RFC 4343)",
        _email(
            lambda r: _dotted_name(r).title(),
            lambda r: f"{_word(r).title()}.{r.choice(('COM', 'Org', 'NET'))}",
        ),
    ),
)


# ------------------------------------------------------------------------------------ URL
def _host(rng: random.Random) -> str:
    return f"{_word(rng)}.{rng.choice(('com', 'org', 'net', 'io', 'co.uk', 'de'))}"


def _path(rng: random.Random) -> str:
    return f"/{_word(rng, 2)}/{_word(rng, 3)}"


URL_NOTATIONS = (
    Notation(
        "URL",
        "https with www",
        "https://www.host.tld (RFC 3986 scheme and authority)",
        lambda r, _: f"https://www.{_host(r)}",
    ),
    Notation("URL", "http", "http://host.tld", lambda r, _: f"http://{_host(r)}"),
    Notation(
        "URL",
        "IPv4 host",
        "http://192.0.2.10/path (RFC 3986 IPv4address host)",
        lambda r, _: f"http://{_ipv4(r)}{_path(r)}",
    ),
    Notation(
        "URL", "with path", "https://host/a/b.html", lambda r, _: f"https://{_host(r)}{_path(r)}"
    ),
    Notation(
        "URL",
        "with query",
        "https://host/path?key=value&k2=v2 (RFC 3986 query)",
        lambda r, _: f"https://{_host(r)}{_path(r)}?id={_digits(r, 4)}&ref={_word(r, 2)}",
    ),
    Notation(
        "URL",
        "query without path",
        "https://host?key=value (empty path, RFC 3986 path-abempty)",
        lambda r, _: f"https://{_host(r)}?ref={_word(r, 2)}",
    ),
    Notation(
        "URL",
        "with port",
        "https://host:8443/path (RFC 3986 port)",
        lambda r, _: f"https://{_host(r)}:{r.randint(1025, 65535)}{_path(r)}",
    ),
    Notation(
        "URL",
        "with fragment",
        "https://host/path#section (RFC 3986 fragment)",
        lambda r, _: f"https://{_host(r)}{_path(r)}#{_word(r, 2)}",
    ),
    Notation("URL", "www without scheme", "www.host.tld", lambda r, _: f"www.{_host(r)}"),
    Notation(
        "URL",
        "host and path without scheme",
        "host.tld/path (as typed in a browser's address bar)",
        lambda r, _: f"{_host(r)}{_path(r)}",
    ),
    Notation(
        "URL",
        "subdomain without scheme",
        "shop.host.tld",
        lambda r, _: f"{_word(r, 2)}.{_host(r)}",
    ),
)


# ----------------------------------------------------------------------------------- IP
def _ipv4(rng: random.Random) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(
        f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    )


def _ipv6(rng: random.Random, zero_run: bool = False) -> ipaddress.IPv6Address:
    groups = [rng.randint(1, 0xFFFF) for _ in range(8)]
    groups[0], groups[1] = 0x2001, 0x0DB8  # the documentation prefix, RFC 3849
    if zero_run:  # a run of zero groups in the middle: what "::" compresses
        first = rng.randint(2, 4)
        for index in range(first, first + rng.randint(2, 3)):
            groups[index] = 0
    return ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups))


def _unpadded(address: ipaddress.IPv6Address) -> str:
    return ":".join(f"{int(g, 16):x}" for g in address.exploded.split(":"))


IP_NOTATIONS = (
    Notation("IP_ADDRESS", "IPv4", "dotted decimal (RFC 791)", lambda r, _: str(_ipv4(r))),
    Notation(
        "IP_ADDRESS",
        "IPv4 CIDR",
        "address/prefix length (RFC 4632)",
        lambda r, _: f"{_ipv4(r)}/{r.choice((8, 16, 24, 28, 32))}",
    ),
    Notation(
        "IP_ADDRESS",
        "IPv6 full",
        "eight groups of four hex digits (RFC 4291 2.2 form 1)",
        lambda r, _: _ipv6(r).exploded,
    ),
    Notation(
        "IP_ADDRESS",
        "IPv6 full unpadded",
        "eight groups, leading zeros dropped (RFC 4291 2.2 form 1)",
        lambda r, _: _unpadded(_ipv6(r, zero_run=True)),
    ),
    Notation(
        "IP_ADDRESS",
        "IPv6 compressed",
        "a run of zero groups as :: (RFC 4291 2.2 form 2, RFC 5952)",
        lambda r, _: _ipv6(r, zero_run=True).compressed,
    ),
    Notation("IP_ADDRESS", "IPv6 loopback", "::1 (RFC 4291 2.5.3)", lambda _r, _i: "::1"),
    Notation(
        "IP_ADDRESS",
        "IPv6 link-local",
        "fe80::/10 addresses, e.g. fe80::1 (RFC 4291 2.5.6)",
        lambda r, i: (
            "fe80::1" if i == 0 else f"fe80::{r.randint(1, 0xFFFF):x}:{r.randint(1, 0xFFFF):x}"
        ),
    ),
    Notation(
        "IP_ADDRESS",
        "IPv6 trailing ::",
        "a prefix with the zero tail compressed, e.g. 2001:db8:: (RFC 4291 2.2)",
        lambda r, _: f"2001:db8:{r.randint(1, 0xFFFF):x}::",
    ),
    Notation(
        "IP_ADDRESS",
        "IPv6 zone index",
        "fe80::1%eth0, a scoped address with its zone (RFC 4007 11)",
        lambda r, _: f"fe80::{r.randint(1, 0xFFFF):x}%{r.choice(('eth0', 'en0', 'wlan0', '3'))}",
    ),
    Notation(
        "IP_ADDRESS",
        "IPv6 prefix",
        "address/prefix length, e.g. 2001:db8::/32 or /64 (RFC 4291 2.3)",
        lambda r, _: f"2001:db8:{r.randint(1, 0xFFFF):x}::/{r.choice((32, 48, 56, 64))}",
    ),
    Notation(
        "IP_ADDRESS",
        "IPv4-mapped IPv6",
        "::ffff:192.0.2.1 (RFC 4291 2.5.5.2)",
        lambda r, _: f"::ffff:{_ipv4(r)}",
    ),
    Notation(
        "IP_ADDRESS",
        "IPv4-embedded IPv6",
        "64:ff9b::192.0.2.33, the NAT64 well-known prefix (RFC 6052)",
        lambda r, _: f"64:ff9b::{_ipv4(r)}",
    ),
    Notation(
        "IP_ADDRESS",
        "IPv6 upper case",
        "compressed, hex digits in upper case (allowed on input, RFC 4291 2.2)",
        lambda r, _: _ipv6(r, zero_run=True).compressed.upper(),
    ),
)


# ---------------------------------------------------------------------------------- MAC
def _mac_octets(rng: random.Random) -> list[str]:
    return [f"{rng.randint(0, 255):02x}" for _ in range(6)]


def _mac(separator: str, *, upper: bool) -> Callable[[random.Random, int], str]:
    def make(rng: random.Random, _: int) -> str:
        value = separator.join(_mac_octets(rng))
        return value.upper() if upper else value

    return make


def _cisco(*, upper: bool) -> Callable[[random.Random, int], str]:
    def make(rng: random.Random, _: int) -> str:
        value = ".".join(_chunks("".join(_mac_octets(rng)), 4))
        return value.upper() if upper else value

    return make


MAC_NOTATIONS = (
    Notation(
        "MAC_ADDRESS", "colon lower", "00:1a:2b:3c:4d:5e (IEEE 802, Unix)", _mac(":", upper=False)
    ),
    Notation("MAC_ADDRESS", "colon upper", "00:1A:2B:3C:4D:5E", _mac(":", upper=True)),
    Notation(
        "MAC_ADDRESS", "dash upper", "00-1A-2B-3C-4D-5E (IEEE 802 canonical)", _mac("-", upper=True)
    ),
    Notation("MAC_ADDRESS", "dash lower", "00-1a-2b-3c-4d-5e", _mac("-", upper=False)),
    Notation(
        "MAC_ADDRESS", "Cisco dotted lower", "001a.2b3c.4d5e (Cisco IOS)", _cisco(upper=False)
    ),
    Notation("MAC_ADDRESS", "Cisco dotted upper", "001A.2B3C.4D5E", _cisco(upper=True)),
)


# -------------------------------------------------------------------------------- dates
_MONTHS = (
    "January February March April May June July August September October November December"
).split()


def _date(rng: random.Random) -> tuple[int, int, int]:
    """(year, month, day): a real calendar date between 1950 and 2025."""
    year, month = rng.randint(1950, 2025), rng.randint(1, 12)
    return year, month, rng.randint(1, 28)


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")  # noqa: PLR2004
    return f"{day}{suffix}"


def _date_notation(name: str, description: str, write: Callable[[int, int, int], str]) -> Notation:
    return Notation("DATE_TIME", name, description, lambda r, _: write(*_date(r)))


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"


def _iso_datetime(rng: random.Random, offset: str) -> str:
    year, month, day = _date(rng)
    return f"{year}-{month:02d}-{day:02d}T{_time(rng)}:{rng.randint(0, 59):02d}{offset}"


DATE_NOTATIONS = (
    _date_notation(
        "ISO 8601", "2021-05-21 (ISO 8601 calendar date)", lambda y, m, d: f"{y}-{m:02d}-{d:02d}"
    ),
    Notation(
        "DATE_TIME",
        "ISO 8601 with time",
        "2021-05-21T14:30:00Z or with an offset (ISO 8601, RFC 3339)",
        lambda r, i: _iso_datetime(r, ("Z", "+02:00", "-05:00")[i % 3]),
    ),
    Notation(
        "DATE_TIME",
        "date and time",
        "2021-05-21 14:30 (ISO 8601 with a space, as logs write it)",
        lambda r, _: "{}-{:02d}-{:02d} {}".format(*_date(r), _time(r)),
    ),
    _date_notation("US m/d/yyyy", "5/21/2021 (US order)", lambda y, m, d: f"{m}/{d}/{y}"),
    _date_notation("US mm/dd/yyyy", "05/21/2021", lambda y, m, d: f"{m:02d}/{d:02d}/{y}"),
    _date_notation(
        "US m/d/yy", "5/21/21 (two-digit year)", lambda y, m, d: f"{m}/{d}/{y % 100:02d}"
    ),
    _date_notation(
        "dd/mm/yyyy", "21/05/2021 (day first, UK/EU)", lambda y, m, d: f"{d:02d}/{m:02d}/{y}"
    ),
    _date_notation(
        "dd.mm.yyyy",
        "21.05.2021 (DIN 5008, much of Europe)",
        lambda y, m, d: f"{d:02d}.{m:02d}.{y}",
    ),
    _date_notation("dd-mm-yyyy", "21-05-2021", lambda y, m, d: f"{d:02d}-{m:02d}-{y}"),
    _date_notation(
        "yyyy/mm/dd", "2021/05/21 (East Asian order)", lambda y, m, d: f"{y}/{m:02d}/{d:02d}"
    ),
    _date_notation(
        "yyyy.mm.dd",
        "2021.05.21 (year first with dots: Korea, China, Hungary)",
        lambda y, m, d: f"{y}.{m:02d}.{d:02d}",
    ),
    _date_notation("mm/yyyy", "05/2021 (month and year)", lambda y, m, _: f"{m:02d}/{y}"),
    _date_notation(
        "dd-Mon", "21-May (day and abbreviated month)", lambda _, m, d: f"{d}-{_MONTHS[m - 1][:3]}"
    ),
    _date_notation(
        "Mon-yy",
        "May-21 (month and two-digit year, spreadsheet style)",
        lambda y, m, _: f"{_MONTHS[m - 1][:3]}-{y % 100:02d}",
    ),
    _date_notation(
        "dd-Mon-yyyy",
        "21-May-2021 (Oracle, military)",
        lambda y, m, d: f"{d:02d}-{_MONTHS[m - 1][:3]}-{y}",
    ),
    _date_notation(
        "DD-MON-YYYY",
        "21-MAY-2021 (upper case, as systems print it)",
        lambda y, m, d: f"{d:02d}-{_MONTHS[m - 1][:3].upper()}-{y}",
    ),
    _date_notation(
        "Month d, yyyy", "May 21, 2021 (US prose)", lambda y, m, d: f"{_MONTHS[m - 1]} {d}, {y}"
    ),
    _date_notation(
        "d Month yyyy", "21 May 2021 (UK prose)", lambda y, m, d: f"{d} {_MONTHS[m - 1]} {y}"
    ),
    _date_notation(
        "dth of Month yyyy",
        "21st of May 2021",
        lambda y, m, d: f"{_ordinal(d)} of {_MONTHS[m - 1]} {y}",
    ),
    _date_notation(
        "Mon. d, yyyy",
        "Sep. 21, 2021 (abbreviated month with a period)",
        lambda y, m, d: f"{_MONTHS[m - 1][:3]}. {d}, {y}",
    ),
    _date_notation("Month yyyy", "May 2021", lambda y, m, _: f"{_MONTHS[m - 1]} {y}"),
    _date_notation(
        "Month dth", "May 21st (no year)", lambda _, m, d: f"{_MONTHS[m - 1]} {_ordinal(d)}"
    ),
)


# ------------------------------------------------------------------------------- phones
#: Regions whose numbering plans differ in length and grouping (libphonenumber metadata).
PHONE_REGIONS = (
    "US",
    "GB",
    "DE",
    "FR",
    "IN",
    "AU",
    "BR",
    "JP",
    "ES",
    "IT",
    "NL",
    "MX",
    "CH",
    "SE",
    "PL",
    "ZA",
    "SG",
    "IE",
)


def _phone(rng: random.Random, region: str, kind: int) -> phonenumbers.PhoneNumber:
    """A valid number of ``region``: its example number with the last digits redrawn."""
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None  # noqa: S101 - every region above has examples
    national = str(example.national_number)
    for _ in range(20):
        candidate = phonenumbers.PhoneNumber(
            country_code=example.country_code,
            national_number=int(national[:-3] + _digits(rng, 3)),
            italian_leading_zero=example.italian_leading_zero,
        )
        if phonenumbers.is_valid_number(candidate):
            return candidate
    return example


def _phone_notation(
    name: str,
    description: str,
    write: Callable[[phonenumbers.PhoneNumber, random.Random], str],
    *,
    kind: int = PhoneNumberType.MOBILE,
    regions: Sequence[str] = PHONE_REGIONS,
    lead: str = "",
) -> Notation:
    return Notation(
        "PHONE_NUMBER",
        name,
        description,
        lambda r, i: write(_phone(r, regions[i % len(regions)], kind), r),
        lead=lead,
        count=len(regions),
    )


def _us(rng: random.Random) -> tuple[str, str, str]:
    number = str(_phone(rng, "US", PhoneNumberType.FIXED_LINE).national_number)
    return number[:3], number[3:6], number[6:]


def _us_notation(
    name: str,
    description: str,
    write: Callable[[str, str, str, random.Random], str],
    lead: str = "",
) -> Notation:
    return Notation("PHONE_NUMBER", name, description, lambda r, _: write(*_us(r), r), lead=lead)


PHONE_NOTATIONS = (
    _phone_notation(
        "E.164",
        "+447400123456 (ITU-T E.164)",
        lambda n, _: phonenumbers.format_number(n, PhoneNumberFormat.E164),
    ),
    _phone_notation(
        "international",
        "+44 7400 123456 (ITU-T E.123, national grouping)",
        lambda n, _: phonenumbers.format_number(n, PhoneNumberFormat.INTERNATIONAL),
    ),
    _phone_notation(
        "international with 00",
        "00 44 7400 123456 (dialled from abroad)",
        lambda n, _: phonenumbers.format_out_of_country_calling_number(
            n, "DE" if phonenumbers.region_code_for_number(n) != "DE" else "FR"
        ),
    ),
    _phone_notation(
        "national mobile",
        "07400 123456 (national trunk prefix)",
        lambda n, _: phonenumbers.format_number(n, PhoneNumberFormat.NATIONAL),
    ),
    _phone_notation(
        "national fixed line",
        "(02) 1234 5678, 030 123456",
        lambda n, _: phonenumbers.format_number(n, PhoneNumberFormat.NATIONAL),
        kind=PhoneNumberType.FIXED_LINE,
    ),
    _phone_notation(
        "RFC 3966",
        "tel:+44-7400-123456 (tel URI)",
        lambda n, _: phonenumbers.format_number(n, PhoneNumberFormat.RFC3966).removeprefix("tel:"),
        lead="tel:",
    ),
    _us_notation("NANP parentheses", "(201) 555-0123", lambda a, b, c, _: f"({a}) {b}-{c}"),
    _us_notation("NANP dashes", "201-555-0123", lambda a, b, c, _: f"{a}-{b}-{c}"),
    _us_notation("NANP dots", "201.555.0123", lambda a, b, c, _: f"{a}.{b}.{c}"),
    _phone_notation(
        "national dotted",
        "06.12.34.56.78 (French practice: pairs of digits between dots)",
        lambda n, _: phonenumbers.format_number(n, PhoneNumberFormat.NATIONAL).replace(" ", "."),
        regions=("FR",),
    ),
    _us_notation("NANP spaces", "201 555 0123", lambda a, b, c, _: f"{a} {b} {c}"),
    _us_notation("NANP 1-prefix", "1-201-555-0123", lambda a, b, c, _: f"1-{a}-{b}-{c}"),
    _us_notation(
        "NANP +1 parentheses", "+1 (201) 555-0123", lambda a, b, c, _: f"+1 ({a}) {b}-{c}"
    ),
    _us_notation(
        "extension ext.",
        "(201) 555-0123 ext. 45",
        lambda a, b, c, r: f"({a}) {b}-{c} ext. {r.randint(2, 999)}",
    ),
    _us_notation(
        "extension x", "201-555-0123 x45", lambda a, b, c, r: f"{a}-{b}-{c} x{r.randint(2, 9999)}"
    ),
    _us_notation(
        "bare digits after 'phone'",
        "2015550123 introduced as a phone",
        lambda a, b, c, _: f"{a}{b}{c}",
        lead="phone ",
    ),
)


# -------------------------------------------------------------------------------- cards
#: (name, issuer prefixes, length, printed grouping) per ISO/IEC 7812 issuer ranges.
CARD_BRANDS: tuple[tuple[str, tuple[str, ...], int, tuple[int, ...]], ...] = (
    ("Visa 16", ("4",), 16, (4, 4, 4, 4)),
    ("Visa 13", ("4",), 13, (4, 4, 5)),
    ("Visa 19", ("4",), 19, (4, 4, 4, 4, 3)),
    ("Mastercard", ("51", "52", "53", "54", "55", "2221", "2720"), 16, (4, 4, 4, 4)),
    ("American Express", ("34", "37"), 15, (4, 6, 5)),
    ("Discover", ("6011", "65", "644"), 16, (4, 4, 4, 4)),
    ("Diners Club", ("36", "300", "38"), 14, (4, 6, 4)),
    ("JCB", ("3528", "3589"), 16, (4, 4, 4, 4)),
    ("UnionPay 19", ("62",), 19, (4, 4, 4, 4, 3)),
)


def card_number(rng: random.Random, prefixes: Sequence[str], length: int) -> str:
    """A Luhn-valid number of ``length`` digits starting with one of ``prefixes``."""
    prefix = rng.choice(prefixes)
    payload = prefix + _digits(rng, length - len(prefix) - 1)
    return payload + luhn_check_digit(payload)


def _card_maker(
    prefixes: Sequence[str], length: int, grouping: Sequence[int], separator: str
) -> Callable[[random.Random, int], str]:
    return lambda rng, _: _group(card_number(rng, prefixes, length), grouping, separator)


def _card_notations() -> Iterator[Notation]:
    for brand, prefixes, length, grouping in CARD_BRANDS:
        for style, separator in (("compact", ""), ("spaces", " "), ("dashes", "-")):
            yield Notation(
                "CREDIT_CARD",
                f"{brand} {style}",
                f"{length} digits, issuer prefix {'/'.join(prefixes)}, printed grouping "
                f"{'-'.join(map(str, grouping))} (ISO/IEC 7812, Luhn)",
                _card_maker(prefixes, length, grouping, separator),
            )
    yield Notation(
        "CREDIT_CARD",
        "Luhn-invalid after 'card number'",
        "a 16-digit number with a wrong check digit, introduced as a card number",
        lambda r, _: _luhn_broken(r),
        lead="card number ",
    )


def _luhn_broken(rng: random.Random) -> str:
    valid = card_number(rng, ("4",), 16)
    wrong = str((int(valid[-1]) + rng.randint(1, 9)) % 10)
    return _group(valid[:-1] + wrong, (4, 4, 4, 4), " ")


CARD_NOTATIONS = tuple(_card_notations())


# ------------------------------------------------------------------------------ SSN, ITIN
def ssn_digits(rng: random.Random) -> str:
    """A nine-digit SSN the SSA could issue: area not 000/666/9xx, group and serial not 0."""
    area = rng.choice([a for a in range(1, 900) if a != 666])  # noqa: PLR2004
    return f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"


def _ssn(separator: str) -> Callable[[random.Random, int], str]:
    return lambda r, _: _group(ssn_digits(r), (3, 2, 4), separator)


#: Numbers the SSA never issues or published as samples: shaped like an SSN, invalid.
_SAMPLE_SSNS = (
    "078-05-1120",
    "123-45-6789",
    "219-09-9999",
    "000-12-3456",
    "666-12-3456",
    "432-00-1234",
    "512-34-0000",
)

SSN_NOTATIONS = (
    Notation("US_SSN", "dashes", "123-45-6789 (SSA's printed form)", _ssn("-")),
    Notation("US_SSN", "spaces", "123 45 6789", _ssn(" ")),
    Notation("US_SSN", "dots", "123.45.6789 (accepted by Presidio's SSN pattern)", _ssn(".")),
    Notation(
        "US_SSN", "compact after 'SSN'", "123456789 introduced as an SSN", _ssn(""), lead="SSN "
    ),
    Notation(
        "US_SSN",
        "sample or invalid after 'social security number'",
        "a sample or never-issued number (078-05-1120, area 000/666) introduced as an SSN",
        lambda _, i: _SAMPLE_SSNS[i % len(_SAMPLE_SSNS)],
        lead="social security number ",
        count=len(_SAMPLE_SSNS),
    ),
)


def itin_digits(rng: random.Random) -> str:
    """A nine-digit ITIN: 9, two digits, a group in 50-65/70-88/90-92/94-99, four digits."""
    group = rng.choice([*range(50, 66), *range(70, 89), 90, 91, 92, *range(94, 100)])
    return f"9{_digits(rng, 2)}{group}{_digits(rng, 4)}"


ITIN_NOTATIONS = (
    Notation(
        "US_ITIN",
        "dashes",
        "912-70-1234 (IRS form)",
        lambda r, _: _group(itin_digits(r), (3, 2, 4), "-"),
    ),
    Notation(
        "US_ITIN",
        "spaces",
        "912 70 1234",
        lambda r, _: _group(itin_digits(r), (3, 2, 4), " "),
    ),
    Notation("US_ITIN", "compact", "912701234", lambda r, _: itin_digits(r), lead="ITIN "),
)


# ---------------------------------------------------------------------------------- IBAN
#: Country -> BBAN structure in SWIFT's IBAN registry notation (n digits, a letters, c both).
IBAN_STRUCTURES = {
    "DE": "8n10n",
    "GB": "4a6n8n",
    "FR": "5n5n11c2n",
    "ES": "4n4n2n10n",
    "IT": "1a5n5n12c",
    "NL": "4a10n",
    "BE": "3n7n2n",
    "CH": "5n12c",
    "AT": "5n11n",
    "PL": "8n16n",
    "NO": "4n6n1n",
    "IE": "4a6n8n",
    "PT": "4n4n11n2n",
    "SA": "2n18c",
    "BR": "8n5n10n1a1c",
}


def iban(rng: random.Random, country: str) -> str:
    """A checksum-valid IBAN of ``country`` (ISO 13616, check digits by ISO 7064 mod 97-10)."""
    alphabets = {
        "n": string.digits,
        "a": string.ascii_uppercase,
        "c": string.digits + string.ascii_uppercase,
    }
    bban, count = "", ""
    for char in IBAN_STRUCTURES[country]:
        if char.isdigit():
            count += char
        else:
            bban += "".join(rng.choice(alphabets[char]) for _ in range(int(count)))
            count = ""
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


_COUNTRIES = tuple(IBAN_STRUCTURES)

IBAN_NOTATIONS = (
    Notation(
        "IBAN_CODE",
        "electronic",
        "compact, upper case (ISO 13616 electronic format)",
        lambda r, i: iban(r, _COUNTRIES[i % len(_COUNTRIES)]),
        count=len(_COUNTRIES),
    ),
    Notation(
        "IBAN_CODE",
        "print",
        "groups of four separated by spaces (ISO 13616 paper format)",
        lambda r, i: " ".join(_chunks(iban(r, _COUNTRIES[i % len(_COUNTRIES)]), 4)),
        count=len(_COUNTRIES),
    ),
)


# ---------------------------------------------------------------------------- postal codes
def _uk_postcode(rng: random.Random, index: int) -> str:
    """A UK postcode in one of its six outward shapes (A9, A99, AA9, AA99, A9A, AA9A)."""
    letters = "ABCDEFGHJKLMNOPRSTUWYZ"
    unit = "ABDEFGHJLNPQRSTUWXYZ"  # the letters the inward code's unit uses
    inward = f"{rng.randint(0, 9)}{rng.choice(unit)}{rng.choice(unit)}"
    shapes = ("a9", "a99", "aa9", "aa99", "a9a", "aa9a")
    outward = "".join(
        rng.choice(letters) if ch == "a" else str(rng.randint(1, 9))
        for ch in shapes[index % len(shapes)]
    )
    if shapes[index % len(shapes)].endswith("9a"):
        outward = outward[:-1] + rng.choice("ABCDEFGHJKPSTUW")
    return f"{outward} {inward}"


ZIP_NOTATIONS = (
    Notation(
        "ZIP_CODE",
        "ZIP after 'zip code'",
        "five-digit US ZIP code (USPS)",
        lambda r, _: f"{r.randint(501, 99950):05d}",
        lead="zip code ",
    ),
    Notation(
        "ZIP_CODE",
        "ZIP+4 after 'ZIP'",
        "12345-6789 (USPS ZIP+4)",
        lambda r, _: f"{r.randint(501, 99950):05d}-{_digits(r, 4)}",
        lead="ZIP ",
    ),
    Notation(
        "ZIP_CODE",
        "ZIP after a state",
        "Springfield, IL 62704 (USPS address line)",
        lambda r, _: f"{r.randint(10000, 99950):05d}",
        lead="Springfield, IL ",
    ),
    Notation(
        "ZIP_CODE",
        "four-digit postal code",
        "1234 after 'postal code' (AT, AU, BE, CH, DK...)",
        lambda r, _: f"{r.randint(1000, 9999)}",
        lead="postal code ",
    ),
    Notation(
        "ZIP_CODE",
        "UK postcode",
        "SW1A 1AA, every outward shape (Royal Mail)",
        _uk_postcode,
        count=6,
    ),
)


# ------------------------------------------------------------------------------ API keys
def _alnum(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


API_KEY_NOTATIONS = (
    Notation(
        "API_KEY",
        "AWS access key id",
        "AKIA + 16 upper-case letters and digits (AWS IAM)",
        lambda r, _: "AKIA" + _alnum(r, 16, string.ascii_uppercase + string.digits),
    ),
    Notation(
        "API_KEY",
        "GitHub token",
        "ghp_ + 36 letters and digits (GitHub token format)",
        lambda r, _: "ghp_" + _alnum(r, 36),
    ),
    Notation(
        "API_KEY",
        "Stripe secret key",
        "sk_live_ + 24 letters and digits (Stripe)",
        lambda r, _: "sk_live_" + _alnum(r, 24),
    ),
    Notation(
        "API_KEY",
        "Slack bot token",
        "xoxb- and dash-separated digits and letters (Slack)",
        lambda r, _: f"xoxb-{_digits(r, 11)}-{_digits(r, 12)}-{_alnum(r, 24)}",
    ),
    Notation(
        "API_KEY",
        "Google API key",
        "AIza + 35 characters (Google Cloud)",
        lambda r, _: "AIza" + _alnum(r, 35, string.ascii_letters + string.digits + "_-"),
    ),
)


# ---------------------------------------------------------------------------------- crypto
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def bitcoin_address(rng: random.Random, version: int) -> str:
    """A Base58Check address: version byte, 20 random bytes, double-SHA-256 checksum."""
    payload = bytes([version]) + bytes(rng.randint(0, 255) for _ in range(20))
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    number, out = int.from_bytes(data, "big"), ""
    while number:
        number, remainder = divmod(number, 58)
        out = _BASE58[remainder] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_polymod(values: Sequence[int]) -> int:
    generators = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(generators):
            checksum ^= generator if (top >> bit) & 1 else 0
    return checksum


def segwit_address(rng: random.Random) -> str:
    """A BIP 173 bech32 address: "bc1", witness version 0, a 20-byte program, checksum."""
    program = bytes(rng.randint(0, 255) for _ in range(20))
    bits = "".join(f"{byte:08b}" for byte in program)
    data = [0] + [int(bits[i : i + 5].ljust(5, "0"), 2) for i in range(0, len(bits), 5)]
    hrp = [ord(c) >> 5 for c in "bc"] + [0] + [ord(c) & 31 for c in "bc"]
    polymod = _bech32_polymod([*hrp, *data, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return "bc1" + "".join(_BECH32[d] for d in data + checksum)


CRYPTO_NOTATIONS = (
    Notation(
        "CRYPTO",
        "Bitcoin P2PKH",
        "1... Base58Check, version 0 (Bitcoin)",
        lambda r, _: bitcoin_address(r, 0),
    ),
    Notation(
        "CRYPTO",
        "Bitcoin P2SH",
        "3... Base58Check, version 5 (BIP 13)",
        lambda r, _: bitcoin_address(r, 5),
    ),
    Notation(
        "CRYPTO",
        "Bitcoin bech32",
        "bc1q... native SegWit, witness version 0 (BIP 173)",
        lambda r, _: segwit_address(r),
    ),
)


#: Every notation, by entity type in the order above.
NOTATIONS: tuple[Notation, ...] = (
    *EMAIL_NOTATIONS,
    *URL_NOTATIONS,
    *IP_NOTATIONS,
    *MAC_NOTATIONS,
    *DATE_NOTATIONS,
    *PHONE_NOTATIONS,
    *CARD_NOTATIONS,
    *SSN_NOTATIONS,
    *ITIN_NOTATIONS,
    *IBAN_NOTATIONS,
    *ZIP_NOTATIONS,
    *API_KEY_NOTATIONS,
    *CRYPTO_NOTATIONS,
)


def generate_variants(
    *, seed: int = DEFAULT_SEED, per_notation: int = DEFAULT_PER_NOTATION
) -> list[Variant]:
    """``per_notation`` values (or the notation's ``count``, if more) of every notation."""
    out: list[Variant] = []
    for notation in NOTATIONS:
        rng = random.Random(f"{seed}:{notation.entity_type}:{notation.name}")  # noqa: S311 - test data
        for index in range(max(per_notation, notation.count)):
            value = notation.make(rng, index)
            out.append(Variant(notation.entity_type, notation.name, value, notation.lead))
    return out


def variant_texts(
    *, seed: int = DEFAULT_SEED, per_notation: int = DEFAULT_PER_NOTATION
) -> list[VariantText]:
    """Every variant in every carrier sentence, with the value's offsets."""
    out: list[VariantText] = []
    for variant in generate_variants(seed=seed, per_notation=per_notation):
        for carrier, template in CARRIERS:
            before, after = template.split("{}")
            if not before and variant.lead:
                before = variant.lead[0].upper() + variant.lead[1:]
            else:
                before += variant.lead
            text = before + variant.value + after
            out.append(
                VariantText(
                    text,
                    len(before),
                    len(before) + len(variant.value),
                    variant.entity_type,
                    variant.notation,
                    carrier,
                )
            )
    return out
