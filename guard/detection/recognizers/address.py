"""Street addresses, unit designators, post-office boxes and postal codes.

The NER model finds cities and countries but not "777 Brockton Avenue" or "Suite 286", and
Presidio has no street-address recognizer. These patterns cover the common shapes: a house
number with a street name and type (US, UK, Commonwealth), a street type first with a number
after (Romance languages: "via Mameli 149", "Rua Cruz 1615"), a compound street name with a
number (Nordic, Germanic, Dutch: "Vesturgata 66", "Lille Vibyvej 8"), units, PO boxes and
military addresses, and whatever follows "my address is" / "lives at" up to the end of the
clause. Postal codes need a state, a street before them, or a context word.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from functools import lru_cache
from typing import TYPE_CHECKING

import regex
from spacy.lang.en.stop_words import STOP_WORDS

from guard.detection.recognizers.base import (
    Finding,
    GuardRecognizer,
    all_of,
    alternation,
    contains_any,
    digit_count,
    digit_count_at_least,
    has_upper,
    has_word,
    prefix_tree,
    searches,
    searches_folded,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

_STREET_TYPES = (
    r"street|st|avenue|ave|av|road|rd|drive|dr|lane|ln|boulevard|blvd|way|court|ct|place|pl|"
    r"terrace|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl|crescent|cres|close|"
    r"row|alley|plaza|loop|path|pike|route|rte|expressway|expy|freeway|fwy|gardens|gdns|grove|"
    r"heights|hts|hill|mews|walk|park|point|pt|ridge|run|view|vista|crossing|xing|center|ctr|"
    r"green|manor|meadow|meadows|pass|bend|creek|cove|estates|glen|harbor|hollow|island|junction|"
    r"landing|mall|mill|orchard|shore|spring|springs|station|summit|valley|village|wharf|wynd|"
    r"quay|rise|parade|esplanade|broadway|str"
)


_STREET_TYPE_TREE = prefix_tree(_STREET_TYPES.split("|"))
#: Words that end a clause's run of words rather than name a street: "3 items at 12 Main
#: Street" is not one address ("at" parts the count from the street).
_NOT_STREET_WORD = (
    r"(?!(?:at|for|in|on|to|from|by|with|and|or|is|are|was|were|i|we|you|he|she|they|it|me|"
    r"my|our|your|his|her|their)\b)"
)
_WORD = rf"(?i:{_NOT_STREET_WORD})[A-Za-zÀ-ÖØ-öø-ÿ0-9][\w'’.\-]*"
_HOUSE = r"\d{1,6}[A-Za-z]?(?:[-/]\d{1,5}[A-Za-z]?)?"
_UNIT = (
    r"(?:suite|ste\.?|apt\.?|apartment|unit|flat|room|rm\.?|floor|fl\.?|bldg\.?|building|"
    r"lot|\#)\s*\#?\s*\d+[A-Za-z]?"
)
_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|"
    "NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC|PR|GU|VI|AS|MP|AA|AE|AP"
)
_POSTAL = r"(?:\d{5}(?:-\d{4})?|\d{4}|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}|[A-Z]\d[A-Z]\s?\d[A-Z]\d)"
#: ", Abington MA 2351" / ", Springfield, IL 62704" / " Calgary AB"
_CITY_TAIL = (
    rf"(?:,?\s+(?:{_UNIT}))?"
    rf"(?:,?\s+(?:[A-Z][\w'’.\-]*\s+){{0,3}}?(?:[A-Z][\w'’.\-]*),?\s+(?:{_US_STATES}|[A-Z]{{2}})\b(?:\s+{_POSTAL})?)?"
)

_STREET_TYPE_LAST = re.compile(
    rf"""\b{_HOUSE}\s+(?:(?:[NSEW]|north|south|east|west|n\.|s\.|e\.|w\.)\s+)?
         (?:{_WORD}\s+){{0,4}}?{_STREET_TYPE_TREE}\b\.?(?!\w){_CITY_TAIL}""",
    re.VERBOSE | re.IGNORECASE,
)
#: Street types written before the name (the "." of "av." and "ul." is added in the pattern).
_LEADING_TYPES = (
    "via viale vicolo corso piazza largo rua avenida av calle camino camiño carrer paseo plaza "
    "rue boulevard chemin allée place trg ulica ul aleja utca c/"
).split()
_LEADING_TYPE = "|".join(w + r"\." if w in {"av", "ul"} else re.escape(w) for w in _LEADING_TYPES)
_STREET_TYPE_FIRST = re.compile(
    rf"""\b(?:{_HOUSE}\s+)?(?:{_LEADING_TYPE})\s+
         (?:{_WORD}\s+){{0,5}}?\d{{1,5}}[A-Za-z]?\b""",
    re.VERBOSE | re.IGNORECASE,
)
#: A house number, a street type, then the street's name with no number after it (French,
#: Belgian, Maghreb practice): "33 rue de la Paix", "03 33 Rue Ibn Al Jazzar", "5 boulevard
#: Saint-Michel". The name is capitalised words and the particles between them.
#: Each particle is followed by a blank, or ends in an apostrophe ("l'", "d'"): one way only
#: to read a run of them, so a long run that fails to end in a name fails in linear time.
_NAME_PARTICLES = (
    r"(?:(?:de|du|des|la|le|les|di|del|della|da|do|dos|van|von|der|al|el|ibn|bin|y|e)[ \t]+"
    r"|[ld]['’])"
)
_HOUSE_TYPE_NAME = regex.compile(
    rf"""(?<![\w'’\-]){_HOUSE}[ \t]+(?i:{_LEADING_TYPE})[ \t]+
         (?i:{_NAME_PARTICLES})*+\p{{Lu}}[\w'’\-]*
         (?:[ \t]+(?i:{_NAME_PARTICLES})*+\p{{Lu}}[\w'’\-]*){{0,4}}""",
    regex.VERBOSE,
)
#: A match starts where a word starts, not after a hyphen inside one, and its words are bounded
#: (``{0,40}``): before, every hyphen of a long run ("a-a-a-...") started a scan to the run's
#: end, quadratic in its length.
#: Endings of compound street names (the "." of "str." is added in the pattern).
_STREET_ENDINGS = (
    "strasse straße str gasse weg laan straat plein gata gatan gade vej vägen veien väg vei tie "
    "katu utca út steenweg dreef kade gracht allee ring damm platz torget stræde stræti braut vegur"
).split()
_STREET_ENDING = "|".join(w + r"\." if w == "str" else w for w in _STREET_ENDINGS)
_COMPOUND_STREET = re.compile(
    rf"""(?<![\w'’\-])(?:{_HOUSE}\s+)?(?:[A-ZÀ-Þ][\w'’\-]{{0,40}}\s+)?[A-Za-zÀ-ÿ][\w'’\-]{{0,40}}?
         (?:{_STREET_ENDING})
         \s+\d{{1,5}}[A-Za-z]?\b""",
    re.VERBOSE | re.IGNORECASE,
)
#: Street types written as a word of their own after the name, the number after them
#: (German, Dutch, Nordic, Hungarian, Slavic practice): "Gumpendorfer Strasse 44", "Nordahl
#: Rolfsens vei 187", "Dózsa György út 78.", "Erzsébet tér 92.", "Király u. 15.". The name
#: is one to three capitalised words.
_TYPES_AFTER_NAME = (
    "strasse straße str weg gasse allee platz ring damm ufer laan straat plein kade gracht "
    "vei veien vegen vej gate gata gatan gade väg vägen utca u út útja tér körút krt rakpart "
    "köz sor fasor sétány ulica ul ulice trg"
).split()
_TYPE_AFTER_NAME = "|".join(
    w + r"\." if w in {"u", "krt", "ul"} else w + r"\.?" if w == "str" else w
    for w in _TYPES_AFTER_NAME
)
#: A street's name is not "The" or "I" ("Turn The Ring 3 times").
_NAME_WORD_START = rf"(?i:{_NOT_STREET_WORD}(?!(?:the|a|an|this|that)\b))"
_NAME_THEN_TYPE = regex.compile(
    rf"""(?<![\w'’\-])(?:{_NAME_WORD_START}\p{{Lu}}[\w'’\-]{{0,40}}[ \t]+){{1,3}}
         (?i:{_TYPE_AFTER_NAME})[ \t]+\d{{1,5}}[A-Za-z]?(?![\w\-/])\.?""",
    regex.VERBOSE,
)
#: "the corner of Eötvös út 10 and Sinko Street", "corner of 5th and Main"
_CORNER = re.compile(
    r"\b(?:the\s+)?corner\s+of\s+[^\n,;!?]{2,60}?\s+(?:and|&)\s+[^\n,;!?.]{2,40}?(?=[.,;!?\n]|\s+(?:in|at|on|last|next|is|was)\b|$)",
    re.IGNORECASE,
)
#: A form or invitation line: "Where: ...", "Address: ...", "Location: ..."
_LABELED_LINE = re.compile(
    r"(?im)^[ \t>]*(?:where|address|location|venue|home|billing\s+address|shipping\s+address)"
    r"[ \t]*:[ \t]*(?P<value>[^\n]{2,120})$"
)
#: A line made of a house number, street words and a number: "78 Camiño Ancho 91"
_NUMBER_WORDS_NUMBER = re.compile(
    r"(?m)^[^\w\n]*(?P<value>\d{1,5}[ \t]+(?:[^\W\d_][\w'’.\-]*[ \t]+){1,4}"
    r"\d{1,5}[A-Za-z]?)\.?[ \t]*$"
)
_PLACE_WORD = r"[^\W\d_][\w'’\-∆]*"
_PLACE_JOINER = r"(?:de|di|del|della|la|le|du|da|von|am|im|upon|on|sur|an|der)"
#: "I live in Springfield", "grew up in TRÄSLÖVSLÄGE", "moved here from Station Nord"
_LOCATED_PLACE = re.compile(
    rf"""\b(?i:(?:i|we)(?:'m|\s+am|'re|\s+are)|live[sd]?|living|grew\s+up|born|raised
         |moved(?:\s+here)?|relocated|based|located|staying|reside[sd]?|travell?ing|trip
         |arrived|year|home\s+city|city\s+of|town\s+of)
         \s+(?i:in|at|from|to|near)?\s*
         (?P<value>{_PLACE_WORD}(?:[ \t]+(?:{_PLACE_WORD}|{_PLACE_JOINER})){{0,4}})""",
    re.VERBOSE,
)
_UNIT_ALONE = re.compile(rf"\b{_UNIT}\b", re.IGNORECASE)
#: A numbered street line of any naming ("780 Lynnway", "250 Rt 59") followed by its city, a
#: US state and a postal code: the region and postal code make it an address whatever the
#: street is called.
_NUMBERED_LINE_WITH_REGION = re.compile(
    rf"\b\d{{1,6}}[A-Za-z]?(?:[ \t]+(?:[A-Z][\w'’.\-]*|\d{{1,5}}[A-Za-z]?)){{1,5}},[ \t]*"
    rf"(?:[A-Z][\w'’.\-]*[ \t]+){{0,3}}[A-Z][\w'’.\-]*,?[ \t]+(?:{_US_STATES})[ \t]+{_POSTAL}\b"
)
_PO_BOX = re.compile(
    r"""\b(?:p\.?\s?o\.?\s*box|post\s+office\s+box|(?:psc|unit|cmr)\s+\d{3,5},?\s*box)\s+\d{1,6}\b
      |\b(?:apo|fpo|dpo)\s+(?:aa|ae|ap)\s+\d{5}\b
      |\b(?:uss|usns|usnv|uscgc)\s+[A-Z][\w'’\-]+(?=\s*(?:\n|,)\s*[afd]po\b)""",
    re.VERBOSE | re.IGNORECASE,
)
#: An address introduction; the address is what follows it, up to the end of the clause.
_ADDRESS_INTRO = re.compile(
    r"""\b(?:(?<!ip\s)(?<!e-mail\s)(?<!email\s)(?<!mac\s)(?<!web\s)(?<!wallet\s)
         address(?:es)?(?:\s+is|\s+are|\s+was|\s+were|\s+will\s+be)?|lives?\s+at|living\s+at|located\s+at|moved\s+to
         |(?:ship|send|deliver|mail)(?:ped|ed)?\s+(?:it\s+|them\s+)?to|reside[sd]?\s+at|resides\s+at)
         \b\s*[:\-]?\s*""",
    re.VERBOSE | re.IGNORECASE,
)
_CLAUSE_STOP = re.compile(r"[\n.;!?]")
#: Where an introduced address ends: a line end, or ``.;!?`` before a space or the end; a
#: ``;!?`` inside a word ends the clause without ending an address (no match).
_ADDRESS_END = re.compile(r"(?P<end>\n|[.;!?](?=\s|\Z))|[;!?]")
_DIGIT = re.compile(r"\d")


class _NextMatch:
    """The first match of a regex at or after a position, for positions that only grow.

    A match found for one position is reused for every later position up to it, so each part
    of the text is searched once however many introductions share one long clause.
    """

    def __init__(self, pattern: re.Pattern[str], text: str) -> None:
        self.pattern = pattern
        self.text = text
        self.match: re.Match[str] | None = None
        self.searched_from = -1

    def at_or_after(self, position: int) -> re.Match[str] | None:
        if (
            self.searched_from < 0
            or (self.match is not None and self.match.start() < position)
            or (self.match is None and self.searched_from > position)
        ):
            self.match = self.pattern.search(self.text, position)
            self.searched_from = position
        return self.match


def introduced_address_values(text: str) -> Iterator[tuple[int, int]]:
    """Spans of what follows "my address is", "ship it to"... up to the end of the clause.

    The value holds a digit before its first ``.``, and ends at a line end or at ``.;!?``
    followed by a space or the end of the text. Many introductions before one long unfinished
    clause ("address 1 address 1 ... ?x") once made the regex that did this cubic; here each
    part of the text is searched a bounded number of times.
    """
    stops = _NextMatch(_CLAUSE_STOP, text)
    digits = _NextMatch(_DIGIT, text)
    ends = _NextMatch(_ADDRESS_END, text)
    resume = 0
    for intro in _ADDRESS_INTRO.finditer(text):
        start = intro.end()
        if intro.start() < resume:
            continue
        stop = stops.at_or_after(start)
        stop_at = stop.start() if stop is not None else len(text)
        digit = digits.at_or_after(start)
        if digit is None or digit.start() >= stop_at:
            continue
        end = ends.at_or_after(stop_at)
        if end is None:
            end_at = len(text)
        elif end.group("end") is not None:
            end_at = end.start()
        else:
            continue
        yield start, end_at
        resume = end_at


#: "address" followed by an IP, an email or a URL is not a postal address.
_NOT_POSTAL = re.compile(
    r"@|://|\bwww\.|\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-f]{1,4}:[0-9a-f]{1,4}:", re.IGNORECASE
)
_ZIP_WITH_CONTEXT = re.compile(
    r"\b(?:zip|postal|post)\s*(?:code)?\s*(?:is|was|:)?\s*(?P<value>\d{5}(?:-\d{4})?|\d{4})\b"
    r"|\bpostcode\s*(?:is|was|:)?\s*(?P<uk>[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})\b",
    re.IGNORECASE,
)
_STATE_ZIP = re.compile(rf"\b(?:{_US_STATES})\s+(?P<value>\d{{5}}(?:-\d{{4}})?)\b")
_UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b")


class StreetAddressRecognizer(GuardRecognizer):
    """STREET_ADDRESS: streets with numbers, units, PO boxes, introduced addresses."""

    def __init__(self) -> None:
        super().__init__(
            entity="STREET_ADDRESS",
            name="GuardStreetAddressRecognizer",
            context=("address", "street", "live", "lives", "ship", "deliver", "mail", "moved"),
            precheck=_may_hold_an_address,
        )

    def find(self, text: str) -> Iterable[Finding]:
        """Every address-shaped span, then the block around it (city, region, country lines)."""
        base = _pattern_spans(text)
        base.extend(_line_blocks(text))
        base.extend(_comma_addresses(text))
        yield from base
        breaks = _LineBreaks(text) if base else None
        for start, end, _ in base:
            block = _extend_block(text, start, end, breaks)
            if block != (start, end) or _ends_in_city_and_region(text, start, end):
                yield block[0], block[1], self.BLOCK_SCORE

    #: Above the NER's 0.85: inside an anchored address block, a "name" is a street's name.
    BLOCK_SCORE = 0.9


#: ", Abington MA 2351" at the end of an address: a street line that runs on to its city and
#: region (and postal code) is an address block on one line.
_CITY_AND_REGION_END = re.compile(
    rf",[ \t]*(?:[A-Z][\w'’.\-]*[ \t]+){{0,3}}[A-Z][\w'’.\-]*,?[ \t]+"
    rf"(?:{_US_STATES}|[A-Z]{{2}})\b(?:[ \t]+{_POSTAL})?$"
)
#: Longest city-and-region tail read (a few words, a code, a postal code).
_CITY_TAIL_CHARS = 96


def _ends_in_city_and_region(text: str, start: int, end: int) -> bool:
    """Whether the span [start, end) ends with ", City ST [postal]" (its last few words only)."""
    return _CITY_AND_REGION_END.search(text, max(start, end - _CITY_TAIL_CHARS), end) is not None


_POSTAL_IN_LINE = re.compile(rf"(?:\b{_POSTAL}|\b\d{{4,6}})\b")
_POSTAL_END = re.compile(rf"(?:\b{_POSTAL}|\b\d{{4,6}})\s*[.,]?\s*$")
_DIGIT_START = re.compile(r"^\d{1,6}\b")


#: For each pattern, keywords one of which every match holds (tests/detection: a property
#: test checks it). A pattern whose keywords are all absent is not run: on hostile text
#: ("1 1 1 ...") each of them tries a match at every digit, and together they took seconds.
_UNIT_WORDS = (
    "suite", "ste", "apt", "apartment", "unit", "flat", "room", "rm", "floor", "fl", "bldg",
    "building", "lot", "#",
)  # fmt: skip
#: The unit designators as words (lower case): written after a name on an envelope line they
#: begin the address, never the name (``guard.detection.nlp``, the gazetteer's surnames).
UNIT_WORDS = frozenset(word for word in _UNIT_WORDS if word.isalpha())
#: The street types stand whole in every match (between blanks, a "." or a "/"): the text's
#: word set (``has_word``) answers first, and the regex gate runs only where one is.
_HAS_STREET_TYPE = has_word(*_STREET_TYPES.split("|"))
_HAS_LEADING_TYPE = has_word(*(word.rstrip("/") for word in _LEADING_TYPES))
_HAS_TYPE_AFTER_NAME = has_word(*_TYPES_AFTER_NAME)
#: The cue words of ``_LOCATED_PLACE``, each whole in a match ("i'm" holds the word "m"); as
#: substrings, "am" (in "name") and "are" (in "care") opened its gate for most texts.
_PLACE_CUES = (
    "m", "am", "re", "are", "live", "lives", "lived", "living", "grew", "born", "raised",
    "moved", "relocated", "based", "located", "staying", "reside", "resides", "resided",
    "traveling", "travelling", "trip", "arrived", "year", "home", "city", "town",
)  # fmt: skip
PATTERN_GATES: dict[re.Pattern[str] | regex.Pattern[str], Callable[[str], bool]] = {
    _STREET_TYPE_LAST: all_of(_HAS_STREET_TYPE, searches_folded(rf"\s{_STREET_TYPE_TREE}")),
    _STREET_TYPE_FIRST: all_of(
        _HAS_LEADING_TYPE, searches_folded(alternation(_LEADING_TYPES) + r"\.?\s")
    ),
    _HOUSE_TYPE_NAME: all_of(
        _HAS_LEADING_TYPE, searches_folded(r"\d[a-z]?[ \t]+" + alternation(_LEADING_TYPES))
    ),
    _COMPOUND_STREET: searches_folded(alternation(_STREET_ENDINGS) + r"\.?\s+\d"),
    _NAME_THEN_TYPE: all_of(
        _HAS_TYPE_AFTER_NAME,
        searches_folded(r"[ \t]" + alternation(_TYPES_AFTER_NAME) + r"\.?[ \t]+\d"),
    ),
    _PO_BOX: contains_any("box", "po"),
    _NUMBERED_LINE_WITH_REGION: searches(rf"\b(?:{_US_STATES})[ \t]+\d"),
    _UNIT_ALONE: contains_any(*_UNIT_WORDS),
    _CORNER: contains_any("corner"),
    _LABELED_LINE: contains_any(":"),
    _LOCATED_PLACE: has_word(*_PLACE_CUES),
    _ADDRESS_INTRO: contains_any(
        "address", "liv", "located", "moved", "ship", "send", "deliver", "mail", "reside"
    ),
}


def _gate_open(pattern: re.Pattern[str] | regex.Pattern[str], text: str) -> bool:
    gate = PATTERN_GATES.get(pattern)
    return gate is None or gate(text)


#: What the patterns that match without a digit need: "the corner of Main and Elm", a
#: labelled line ("Address: Elm Street"), a ship's name above its FPO line ("USS Nimitz").
_DIGITLESS_GATES = (
    contains_any("corner"),
    searches_folded(r"(?:where|address|location|venue|home)[ \t]*:"),
    all_of(contains_any("us"), contains_any("po")),
)


def _may_hold_an_address(text: str) -> bool:
    """The street recognizer's pre-check: a digit, or what a digitless pattern needs.

    A digit alone skipped every address written without a house number (issue 15: a
    pre-check must never be stricter than its recognizer, tests/detection/test_prechecks.py).
    """
    return digit_count(text) > 0 or any(gate(text) for gate in _DIGITLESS_GATES)


def _pattern_spans(text: str) -> list[Finding]:
    """Spans of the street, unit, PO box, corner, labelled-line and introduced patterns."""
    base: list[Finding] = []
    for pattern, score in (
        # above the NER's 0.85: in "56 Main St" the NER's PERSON "Main St" is the street
        (_STREET_TYPE_LAST, 0.86),
        (_STREET_TYPE_FIRST, 0.6),
        # a house number and a street type: the NER's PERSON "Rue Ibn Al Jazzar" is a street
        (_HOUSE_TYPE_NAME, 0.86),
        (_COMPOUND_STREET, 0.6),
        # a street type makes the NER's PERSON in "Gumpendorfer Strasse 44" a street's name
        (_NAME_THEN_TYPE, 0.86),
        (_PO_BOX, 0.7),
        (_NUMBERED_LINE_WITH_REGION, 0.7),
        (_UNIT_ALONE, 0.5),
    ):
        if not _gate_open(pattern, text):
            continue
        for match in pattern.finditer(text):
            start, end = _strip_span(text, *match.span())
            if end > start:
                base.append((start, end, score))
    for pattern, group, score in (
        (_CORNER, 0, 0.7),
        (_LABELED_LINE, "value", 0.7),
        (_NUMBER_WORDS_NUMBER, "value", 0.6),
    ):
        if not _gate_open(pattern, text):
            continue
        for match in pattern.finditer(text):
            start, end = _strip_span(text, *match.span(group))
            if end - start >= 4:  # noqa: PLR2004
                base.append((start, end, score))
    base.extend(_introduced_spans(text))
    return base


def _introduced_spans(text: str) -> list[Finding]:
    """Introduced addresses ("ship it to ..."), less fillers and IPs, emails, URLs."""
    found: list[Finding] = []
    if not _gate_open(_ADDRESS_INTRO, text):
        return found
    for value_start, value_end in introduced_address_values(text):
        start, end = _strip_span(text, value_start, value_end)
        lead = _LEADING_FILLER.match(text, start, end)
        if lead is not None:
            start = lead.end()
        end = _trim_trailing_filler(text, start, end)
        if end - start >= 4 and not _NOT_POSTAL.search(text, start, end):  # noqa: PLR2004
            found.append((start, end, 0.55))
    return found


def place_spans(text: str) -> list[Finding]:
    """Places named after "I live in", "grew up in", "moved here from"."""
    found: list[Finding] = []
    if not _gate_open(_LOCATED_PLACE, text):
        return found
    lower_text = not has_upper(text)
    position = 0
    while (match := _LOCATED_PLACE.search(text, position)) is not None:
        start = match.start("value")
        # the next search starts at the value, not after it: words read as a value here and
        # refused ("a 50 year old man who grew up in Lund") may hold the next cue; each
        # position is read a bounded number of times (a value is at most five words)
        position = max(start, match.start() + 1)
        end = start
        for word in re.finditer(r"\S+", match.group("value")):
            bare = word.group().rstrip(",.;:!?")
            proper = bare[:1].isupper() or (lower_text and bare.lower() not in _NOT_PLACES)
            if not proper and bare.lower() not in _JOINERS:
                break
            end = start + word.start() + len(bare)
            if bare != word.group():
                break
        value = text[start:end].split()
        while value and value[-1].lower() in _JOINERS:
            end -= len(value.pop()) + 1
        if end - start >= 3 and text[start].isalpha():  # noqa: PLR2004
            found.append((start, end, 0.6))
            position = max(position, end)
    return found


_JOINERS = frozenset("de di del della la le du da von am im upon on sur an der".split())
#: Words after "I am in" / "arrived at" that are not places.
_NOT_PLACES = frozenset(STOP_WORDS) | frozenset(
    """a the my our your this that town city home work school office hospital hurry rush
    meeting trouble touch charge line queue store shop mall airport station conference
    morning evening night today tomorrow week weekend month year time""".split()
)


def _line_blocks(text: str) -> list[Finding]:
    r"""Blocks of short lines from a numbered street line down to a postcode or country line.

    "52 Chorophilakis\nSchuders\n, nan\n Bangladesh 71366" is an address as written on an
    envelope; no single line of it is recognisable on its own.
    """
    if "\n" not in text:
        return []
    lines = []
    offset = 0
    for raw in text.split("\n"):
        content = raw.strip(_LINE_MARKERS)
        lead = len(raw) - len(raw.lstrip(_LINE_MARKERS))
        lines.append((offset + lead, offset + lead + len(content), content))
        offset += len(raw) + 1
    found: list[Finding] = []
    for first, (line_start, _, content) in enumerate(lines):
        street = _street_line_start(content)
        if street is None:
            continue
        for last in range(first + 1, min(first + 5, len(lines))):
            line = _SENTENCE_CUT.split(lines[last][2], maxsplit=1)[0].strip(" ,")
            if not line or not _address_line(line):
                break
            closing = _block_end(line)
            if closing is not None:
                end = lines[last][0] + lines[last][2].find(line) + closing
                found.append((line_start + street, end, 0.85))
                break
    return found


_SENTENCE_CUT = re.compile(r"[?!.](?=\s|$)")
_NUMBER_START = re.compile(r"(?:^|(?<=\s))\d{1,6}[A-Za-z]?\s")


def _street_line_start(content: str) -> int | None:
    """Where a street begins on a line ("... send it to 37 Thingvallastraeti 36"), if it does.

    Only numbers close enough to the line's end can start an address line (at most
    ``_MAX_LINE`` characters); the rest of a long line is not copied for each number on it
    ("1 1 1 ..." on one line made this quadratic).
    """
    close = len(content.rstrip(_LINE_MARKERS + ",")) - _MAX_LINE
    for match in _NUMBER_START.finditer(content, max(0, close)):
        if _address_line(content[match.start() :]):
            return match.start()
    return None


def _block_end(line: str) -> int | None:
    """Where a postcode or a country closes an address block on this line, if one does.

    Cached for short lines: each line is read as the possible last line of the four street
    lines above it, and a list of addresses repeats its cities and countries.
    """
    return _block_closing(line) if len(line) > _CACHED_LINE else _cached_block_closing(line)


def _block_closing(line: str) -> int | None:
    from guard.detection.recognizers.places import COUNTRY  # noqa: PLC0415 - no cycle

    ends = [m.end() for m in _POSTAL_IN_LINE.finditer(line) if m.start() > 0]
    ends += [m.end() for m in COUNTRY.finditer(line)]
    if _POSTAL_END.search(line):
        ends.append(len(line))
    return max(ends) if ends else None


_cached_block_closing = lru_cache(maxsize=1024)(_block_closing)


def _comma_addresses(text: str) -> list[Finding]:
    """One-line addresses that end in a country: "18 Zona Estação 75, Rogers, Barbados"."""
    from guard.detection.recognizers.places import COMMA_ADDRESS  # noqa: PLC0415 - no cycle

    return [(m.start(), m.end(), 0.8) for m in COMMA_ADDRESS.finditer(text)]


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while end > start and text[end - 1] in ",.;: \t\n":
        end -= 1
    return start, end


#: Words and punctuation between an introduction and its address: "my addresses, here they
#: are: 78 ...", "address is as follows - 12 ...".
_LEADING_FILLER = re.compile(
    r"(?:[,:;\-][ \t]*|(?:with|to|is|are|as|at|of|the|new|my|our|here|now|they|it|follows)"
    r"(?:[ \t]*[,:;\-])?\s+)+",
    re.IGNORECASE,
)
_TRAILING_FILLER = re.compile(
    r"(?:\s+(?:instead|please|thanks|thank\s+you|asap|today|tomorrow|now|too|as\s+well|"
    r"if\s+possible|for\s+me|for\s+now))+\s*$",
    re.IGNORECASE,
)


def _trim_trailing_filler(text: str, start: int, end: int) -> int:
    match = _TRAILING_FILLER.search(text, start, end)
    return match.start() if match is not None else end


_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z]|$)")
_LINE_MARKERS = " \t>?*•|-"
_PARTICLES = r"(?:de|di|del|della|da|do|dos|la|le|van|von|der|den|du|nad|upon|on|am|im|sur|en|y|e)"
_TAIL_TOKEN = regex.compile(
    rf"""(?:,?[ \t]+|,)(?:{_UNIT}|{_POSTAL}|(?:{_US_STATES})\b|nan\b|{_PARTICLES}\b
        |\p{{Lu}}[\w'’.\-]*)""",
    regex.VERBOSE,
)
#: In text written wholly in lower case, place names are lower case too.
_LOWER_TAIL_TOKEN = regex.compile(r"(?:,?[ \t]+|,)\p{Ll}[\p{Ll}'’.\-]*")
_HOUSE_BEFORE = re.compile(
    rf"(?:^|(?<=\s))\d{{1,5}}[A-Za-z]?(?:[ \t]+(?i:{_NOT_STREET_WORD})[\w'’.\-]+){{1,4}}[ \t]+$"
)
_MAX_BLOCK_LINES = 4
#: The longest line that continues an address block.
_MAX_LINE = 60
_NOT_IN_ADDRESS_LINE = frozenset("@:?!")
#: Lines up to this long are cached by the line checks (longer ones are not address lines).
_CACHED_LINE = 4 * _MAX_LINE


def _address_line(line: str) -> bool:
    """A short line that can continue an address block: city, region, country and code.

    Cached for short lines: each line of a text is asked about up to ten times (as a street
    line, as the continuation of the four lines above it), and a list of addresses repeats its
    lines. Long lines are never kept by the cache (it would hold whole texts).
    """
    if len(line) > _CACHED_LINE:
        return _is_address_line(line)
    return _cached_address_line(line)


def _is_address_line(line: str) -> bool:
    content = line.strip(_LINE_MARKERS + ",")
    if not content or len(content) > _MAX_LINE or not _NOT_IN_ADDRESS_LINE.isdisjoint(content):
        return False
    # map keeps the per-character tests in C: a list of addresses calls this for every line
    if sum(map(str.isdigit, content)) > 6 or len(content.split()) > 6:  # noqa: PLR2004
        return False
    return any(map(str.isalnum, content))


_cached_address_line = lru_cache(maxsize=4096)(_is_address_line)


class _LineBreaks:
    """The positions of a text's line breaks, found once for all the findings in it.

    Each finding looks up its line here: searching back for the line break from each of
    100,000 findings on one long line read the line 100,000 times.
    """

    def __init__(self, text: str) -> None:
        self.breaks = array("q", (m.start() for m in _NEWLINE.finditer(text)))

    def line_start(self, position: int) -> int:
        """Where the line holding ``position`` starts (0, or just after a line break)."""
        index = bisect_left(self.breaks, position)
        return self.breaks[index - 1] + 1 if index else 0


_NEWLINE = re.compile("\n")
#: Line markers right before a position, read backwards.
_MARKERS_BEFORE = regex.compile(r"(?r)[ \t>?*•|\-]*+")
#: The house number and up to four words before a street span are at most five runs of
#: non-blanks, each followed by blanks; read backwards from the span, they bound the search.
_TOKENS_BEFORE = regex.compile(r"(?r)(?:[^ \t\n]++[ \t]++){1,5}+")
_HOUSE_START = re.compile(r"(?:^|(?<=\s))\d")
#: A number of up to five digits and a blank, right before an address, the number starting a
#: line or after a blank: a building number before the house number.
_NUMBER_BEFORE = re.compile(r"(?:^|(?<=\s))\d{1,5}[A-Za-z]?[ \t]+$", re.MULTILINE)
_NUMBER_BEFORE_CHARS = 8


def _house_before(text: str, line_start: int, start: int) -> int | None:
    """Where ``_HOUSE_BEFORE`` (searched in ``text[line_start:start]``) first matches.

    Its match ends at ``start`` and holds at most five blank-separated tokens, so it begins
    within the last five before ``start``: only those are tried, where searching the line from
    its start read the whole line for each finding on it.
    """
    tokens = _TOKENS_BEFORE.match(text, line_start, start)
    if tokens is None:
        return None
    for candidate in _HOUSE_START.finditer(text, tokens.start(), start):
        if _HOUSE_BEFORE.match(text, candidate.start(), start) is not None:
            return candidate.start()
    return None


def _extend_block(
    text: str, start: int, end: int, breaks: _LineBreaks | None = None
) -> tuple[int, int]:
    """Grow an address span over its house number, the rest of its line and following lines."""
    line_start = (breaks or _LineBreaks(text)).line_start(start)
    house = _house_before(text, line_start, start)
    if house is not None:
        start = house
    # a building or unit number written before the house number ("03 33 Rue Ibn Al Jazzar",
    # "Flat 2" as "2 14 Elm Street")
    number = _NUMBER_BEFORE.search(text, max(line_start, start - _NUMBER_BEFORE_CHARS), start)
    if number is not None:
        start = number.start()
    end = _following_lines(text, _same_line_tail(text, end))
    # the line before, when the span starts a line and that line looks like a street line
    markers = _MARKERS_BEFORE.match(text, line_start, start)
    if markers is not None and markers.start() == line_start and line_start > 0:
        previous_start = text.rfind("\n", 0, line_start - 1) + 1
        previous = text[previous_start : line_start - 1]
        content = previous.lstrip(_LINE_MARKERS)
        if _address_line(previous) and content[:1].isdigit():
            start = previous_start + (len(previous) - len(content))
    return start, end


def _same_line_tail(text: str, end: int) -> int:
    """Units, capitalised place names, particles, state and postal codes after a street."""
    position = end
    lower_text = not has_upper(text)
    for _ in range(10):
        match = _TAIL_TOKEN.match(text, position)
        if match is None and lower_text:
            match = _LOWER_TAIL_TOKEN.match(text, position)
            if match is not None and match.group().strip(" ,").lower() in STOP_WORDS:
                match = None
        if match is None:
            break
        position = match.end()
    return position


#: Blanks and commas to the end of the line.
_BLANK_TO_LINE_END = re.compile(r"[ \t,]*\n")


def _following_lines(text: str, end: int) -> int:
    """Short address-like lines after the one the span ends, while it ends that line."""
    # the rest of the line must be blank; read only as far as that holds
    blank = _BLANK_TO_LINE_END.match(text, end)
    line_end = blank.end() - 1 if blank is not None else -1
    lines = 0
    while line_end != -1 and not text[end:line_end].strip(" \t,") and lines < _MAX_BLOCK_LINES:
        next_end = text.find("\n", line_end + 1)
        line = text[line_end + 1 : next_end if next_end != -1 else len(text)]
        sentence_end = _SENTENCE_END.search(line)
        if sentence_end is not None:
            line = line[: sentence_end.start()]
        if not _address_line(line):
            break
        end = line_end + 1 + len(line.rstrip(" \t,."))
        if sentence_end is not None:
            break
        line_end = next_end
        lines += 1
    return end


#: A postal code written beside its place, as most countries write it: after the town, region
#: or country ("Teruel 44001", "Australia 08198", "London SW1A 1AA") or before the town
#: ("75008 Paris", "1011 AB Amsterdam", "114 55 Stockholm"). Read only where a place was found.
_POSTAL_CODE = (
    r"(?:\d{5}(?:-\d{4})?|\d{4}(?:[ \t]?[A-Z]{2}(?![A-Za-z]))?|\d{3}[ \t]\d{2}"
    r"|[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2}|[A-Z]\d[A-Z][ \t]?\d[A-Z]\d)"
)
#: After the place: blanks or one comma, then the code (on the place's line or starting the
#: next), then no more of a word, a number, a decimal, a time or a range ("Paris 12:30",
#: "Texas 1000-2000" are not postal codes).
_POSTAL_AFTER_PLACE = re.compile(
    rf"[ \t]*,?[ \t]*(?:\n[ \t]*)?(?P<code>{_POSTAL_CODE})(?![\w\-/:]|[.,]\d)"
)
#: Before the place: the code starts a line or follows a blank or a comma, blanks after it.
_POSTAL_BEFORE_PLACE = re.compile(rf"(?:^|(?<=[\s,]))(?P<code>{_POSTAL_CODE})[ \t]+$", re.MULTILINE)
#: Four digits that read as a year ("Paris 2024") are not taken for a postal code.
_YEAR = re.compile(r"(?:19|20)\d\d")
#: The longest postal code read before a place ("1011 AB " is 8).
_POSTAL_BEFORE_CHARS = 12


def postal_codes_beside(text: str, places: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans of postal codes written right after or right before one of the ``places``.

    A town or country that the NER model or the gazetteer found, followed on its line by a
    five-digit code ("Australia 08198"), is the last line of an address; its code is as much
    the address as the name. Four digits that read as a year are not taken.
    """
    found: set[tuple[int, int]] = set()
    for start, end in places:
        after = _POSTAL_AFTER_PLACE.match(text, end)
        if after is not None and not _YEAR.fullmatch(after.group("code")):
            found.add(after.span("code"))
        window = max(0, start - _POSTAL_BEFORE_CHARS)
        # the code and its blanks end right before the place, or (``$`` in MULTILINE) before
        # a line break in the window: without either, the search cannot match
        if start == 0 or (text[start - 1] not in " \t" and "\n" not in text[window:start]):
            continue
        before = _POSTAL_BEFORE_PLACE.search(text, window, start)
        if before is not None and not _YEAR.fullmatch(before.group("code")):
            found.add(before.span("code"))
    return sorted(found)


class ZipCodeRecognizer(GuardRecognizer):
    """ZIP_CODE: postal codes after a state code or a context word; UK postcodes."""

    def __init__(self) -> None:
        super().__init__(
            entity="ZIP_CODE",
            name="GuardZipCodeRecognizer",
            context=("zip", "postal", "postcode"),
            precheck=digit_count_at_least(1),
        )

    def find(self, text: str) -> Iterable[Finding]:
        """Postal codes with enough around them to be sure."""
        for match in _ZIP_WITH_CONTEXT.finditer(text):
            group = "value" if match.group("value") else "uk"
            yield *match.span(group), 0.7
        for match in _STATE_ZIP.finditer(text):
            # a state code then five digits is the last line of a USPS address: as sure as
            # a ZIP introduced by "zip code"
            yield *match.span("value"), 0.7
        for match in _UK_POSTCODE.finditer(text):
            yield *match.span(), 0.5
