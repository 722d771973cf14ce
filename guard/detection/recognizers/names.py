"""Person names the way they appear in chats, where the NER model is weakest.

The NER model finds names in well-formed sentences. Customers and agents write "thanks david",
"my name is joseph banter", or answer "Joseph Banter" on its own. These recognizers anchor on
the phrases that introduce or address a person and report the name after them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from spacy.lang.en.stop_words import STOP_WORDS

from guard.detection.recognizers.base import (
    Finding,
    GuardRecognizer,
    all_of,
    contains_any,
    has_upper,
    has_word,
)
from guard.detection.recognizers.gazetteer import NOT_SURNAMES
from guard.detection.recognizers.organizations import job_head

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

#: Capitalised words that follow "Hi" or "Thanks" without being names.
_NOT_NAMES = frozenset(STOP_WORDS) | frozenset(
    """
    again all there guys team everyone everybody folks sir madam maam ma'am friend
    friends so much lot lots for you very good great morning afternoon evening day night
    dear okay ok sure yes yeah yep no nope please thanks thank hello hi hey bye goodbye
    welcome sorry support service customer customers agent team admin user account order
    help mr mrs ms dr miss mister again anyway though then now today tomorrow yesterday
    monday tuesday wednesday thursday friday saturday sunday january february march
    april june july august september october november december
    """.split()
)

_NAME_WORD = r"[^\W\d_](?:[^\W\d_]|['’\-])++"
#: A name word in any alphabet ("Łukasz", "Núñez-García", "O'Neill"): a letter, then letters,
#: apostrophes and hyphens, read possessively. Whether it is capitalised is checked on the
#: match (the patterns are case-insensitive, and ``re`` has no class of upper-case letters).
_CAP_WORD = r"[^\W\d_](?:[^\W\d_]|['’\-])++"

_INTRODUCED = re.compile(
    rf"""\b(?:my\s+name\s+is|my\s+name's|name\s*[:=]|name\s+is|i\s+am\s+called|call\s+me
         |my\s+(?:full\s+)?name\s+is|it'?s\s+under|under\s+the\s+name(?:\s+of)?|account\s+holder\s+is
         |the\s+name\s+on\s+the\s+(?:account|card|order)\s+is
         |name(?:\s+on\s+the\s+(?:account|card|order))?\s*\?\s*(?:(?:user|customer|me|client)\s*:\s*)?)\s*
         (?P<name>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,3}})""",
    re.VERBOSE | re.IGNORECASE,
)

_ADDRESSED = re.compile(
    rf"""\b(?:hi|hello|hey|dear|thanks|thank\s+you|thx|ty|bye|goodbye|morning|evening|afternoon
         |welcome|sorry|great|okay|ok|sure|cheers|regards|sincerely|best)\b[,!.]?[ \t]+
         (?P<name>{_CAP_WORD}(?:[ \t]+{_CAP_WORD})?)(?![\w'])""",
    re.VERBOSE | re.IGNORECASE,
)

#: Honorifics before a surname, in English and the languages of Western Europe: Mr, Mrs, Ms,
#: Mx, Dr, Prof; Herr, Frau (de); Sr, Sra, Srta, Doña (es, pt); M., Mme, Mlle (fr); Sig.,
#: Sig.ra (it). "M" counts only as "M." in capitals: a lone "m" is a unit. "Don" is left out:
#: in chat it is mostly "don't" without its apostrophe.
_HONORIFIC = (
    r"(?:mrs|mr|ms|miss|mx|dr|prof|sir|madam|mister|herr|frau|sra|srta|sr|doña"
    r"|mme|mlle|sig(?:\.ra|ra)?|(?-i:M)(?=\.))"
)
#: The honorifics as words: each stands whole before its "." or blank (the gate of
#: ``_TITLED``, with "M." in capitals looked for apart: the word "m" is in every "I'm").
_HONORIFIC_WORDS = (
    "mrs", "mr", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "mister", "herr", "frau",
    "sra", "srta", "sr", "doña", "mme", "mlle", "sig", "sigra",
)  # fmt: skip
_HAS_HONORIFIC_WORD = has_word(*_HONORIFIC_WORDS)


def _may_hold_an_honorific(text: str) -> bool:
    return _HAS_HONORIFIC_WORD(text) or "M." in text


_TITLED = re.compile(
    rf"""\b(?P<honorific>{_HONORIFIC})\.?(?:[ \t]+{_HONORIFIC}\.?){{0,2}}[ \t]+
         (?P<name>{_CAP_WORD}(?:[ \t]+{_CAP_WORD}){{0,3}})""",
    re.VERBOSE | re.IGNORECASE,
)
#: Lower-case words inside a surname ("Mr. van der Berg", "Sra. de la Fuente").
_SURNAME_PARTICLES = frozenset(
    "van von der den de da di du la le del della dos das do ter ten op bin ibn al el y".split()
)
#: Where a name after an honorific ends, in an address block: the secondary unit designators
#: of USPS Publication 28 (appendix C2) and their spelled-out forms ("Mrs. Diana Weöres Apt.
#: 434"), and the street suffixes that follow a name in "Dr. King Blvd".
_ADDRESS_WORDS = frozenset(
    """apt apartment bsmt basement bldg building dept department fl floor frnt front hngr hangar
    key lbby lobby lot lowr lower ofc office ph penthouse pier rear rm room side slip spc space
    stop ste suite trlr trailer unit uppr upper box po blvd ave avenue st street rd road""".split()
)

#: A whole message that is only a name, as a reply to "may I have your name?".
_WHOLE_MESSAGE = re.compile(
    rf"""^\s*(?:(?:ok|okay|sure|yes|yeah|yep|hi|hello|it'?s|this\s+is)[.,!]?\s+)?
         (?P<name>{_CAP_WORD}(?:\s+{_CAP_WORD}){{1,2}})\s*[.!]?\s*$""",
    re.VERBOSE | re.IGNORECASE,
)


#: "Mary: ..." at the start of a line, in a transcript; role labels are not names.
_SPEAKER = re.compile(
    rf"""(?m)^[ \t>]*(?P<name>{_CAP_WORD}(?:[ \t]+{_CAP_WORD})?)[ \t]*:[ \t]*[\\]*["“]"""
)
_ROLES = frozenset(
    """agent customer user bot system support assistant note subject re from to cc date
    time question answer operator manager supervisor rep representative admin client
    caller host guest moderator""".split()
)


#: The words of ``_ADDRESSED``'s greetings, each whole between word boundaries.
_GREETINGS = (
    "hi", "hello", "hey", "dear", "thanks", "thank", "thx", "ty", "bye", "goodbye", "morning",
    "evening", "afternoon", "welcome", "sorry", "great", "okay", "ok", "sure", "cheers",
    "regards", "sincerely", "best",
)  # fmt: skip
#: For each pattern, words one of which every match holds whole (a property test checks it);
#: a pattern whose words are all absent is not run (on hostile text each one tries a match at
#: every word boundary). Whole words, looked up in the text's word set (``has_word``): as
#: substrings, "ty" (in "city") and "dr" (in "address") opened the gates of most texts.
PATTERN_GATES: dict[re.Pattern[str], Callable[[str], bool]] = {
    _TITLED: _may_hold_an_honorific,
    _INTRODUCED: has_word("name", "call", "under", "holder"),
    _ADDRESSED: has_word(*_GREETINGS),
    _SPEAKER: all_of(contains_any(":"), contains_any('"', "“")),
}


def _titled_name_end(text: str, match: re.Match[str], lower_text: bool) -> int | None:
    """Where the surname after an honorific ends; None when no name follows it.

    Capitalised words in any alphabet ("Mr. Pavlović", "Sra. Núñez-García", "Dr. McDonald")
    with lower-case particles between them ("Mr. van der Berg"); in text wholly in lower case,
    any words that are not common ones. The name stops at a common word and, after its first
    word, at an address word ("Mrs. Diana Weöres Apt. 434"). "Sr." is also "Senior": before a
    job title ("Sr. Software Engineer") it is not an honorific.
    """
    end = None  # a particle counts only before a capitalised word: ``end`` stays before it
    for word in re.finditer(r"\S+", match.group("name")):
        bare = word.group()
        low = bare.lower()
        if low in _SURNAME_PARTICLES and (bare.islower() or lower_text):
            continue
        capitalised = bare[0].isupper() or (lower_text and low not in NOT_SURNAMES)
        if not capitalised or re.split(r"['’]", low)[0] in _NOT_NAMES:
            break
        if end is not None and low in _ADDRESS_WORDS:  # "Mr. Key" is a name, "Key" alone
            break
        end = match.start("name") + word.end()
    if end is None:
        return None
    honorific = match.group("honorific").lower()
    if honorific == "sr" and any(job_head(w) for w in text[match.start("name") : end].split()):
        return None
    return end


def _trim_name(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Cut trailing words that are not names ("John and" -> "John"); None if nothing is left."""
    words = list(re.finditer(r"\S+", text[start:end]))
    kept = []
    for word in words:
        bare = word.group().lower().strip(".,!?")
        if bare in _NOT_NAMES or re.split(r"['’]", bare)[0] in _NOT_NAMES:
            break
        kept.append(word)
    if not kept:
        return None
    return start + kept[0].start(), start + kept[-1].end()


class ChatNameRecognizer(GuardRecognizer):
    """PERSON: names introduced ("my name is"), addressed ("thanks David"), titled, or alone."""

    INTRODUCED_SCORE = 0.9
    TITLED_SCORE = 0.85
    ADDRESSED_SCORE = 0.6
    WHOLE_MESSAGE_SCORE = 0.5

    def __init__(self) -> None:
        super().__init__(entity="PERSON", name="GuardChatNameRecognizer")

    def _titled(self, text: str, lower_text: bool) -> Iterable[Finding]:
        """Surnames after honorifics, in order.

        Where no name follows an honorific the search resumes right after it, so that
        "Mr. and Mrs. Smith" still finds "Mrs. Smith".
        """
        if not PATTERN_GATES[_TITLED](text):
            return
        position = 0
        while (match := _TITLED.search(text, position)) is not None:
            end = _titled_name_end(text, match, lower_text)
            if end is None:
                position = match.end("honorific")
                continue
            # the honorific goes with the name: "Mrs." tells the gender, "Dr." often the job,
            # and data sets label it as part of the name or as a PREFIX of its own
            yield match.start(), end, self.TITLED_SCORE
            position = end

    def find(self, text: str) -> Iterable[Finding]:
        """Names after introducing phrases, greetings and titles."""
        lower_text = not has_upper(text)
        yield from self._titled(text, lower_text)
        for pattern, score, case_sensitive_name in (
            (_INTRODUCED, self.INTRODUCED_SCORE, False),
            (_ADDRESSED, self.ADDRESSED_SCORE, True),
            (_WHOLE_MESSAGE, self.WHOLE_MESSAGE_SCORE, True),
            (_SPEAKER, self.ADDRESSED_SCORE, True),
        ):
            gate = PATTERN_GATES.get(pattern)
            if gate is not None and not gate(text):
                continue
            for match in pattern.finditer(text):
                start, end = match.span("name")
                if case_sensitive_name and not text[start].isupper():
                    continue
                # a label in capitals ("URGENT:", "NOTE:") is not a speaker's name
                if pattern is _SPEAKER and (
                    text[start:end].lower() in _ROLES or text[start:end].isupper()
                ):
                    continue
                trimmed = _trim_name(text, start, end)
                if trimmed is not None:
                    yield trimmed[0], trimmed[1], score
