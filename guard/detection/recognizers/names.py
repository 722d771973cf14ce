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
)

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

_NAME_WORD = r"[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ'’\-]+"
_CAP_WORD = r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ'’\-]+"

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

_TITLED = re.compile(
    rf"""\b(?:mr|mrs|ms|miss|mx|dr|prof|sir|madam|mister)\.?[ \t]+
         (?P<name>{_CAP_WORD}(?:[ \t]+(?:{_CAP_WORD}|van|von|de|der|den|da|di|du|la|le)){{0,3}})""",
    re.VERBOSE | re.IGNORECASE,
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


_GREETINGS = (
    "hi", "hello", "hey", "dear", "thank", "thx", "ty", "bye", "morning", "evening", "afternoon",
    "welcome", "sorry", "great", "okay", "ok", "sure", "cheers", "regards", "sincerely", "best",
)  # fmt: skip
#: For each pattern, keywords one of which every match holds (a property test checks it); a
#: pattern whose keywords are all absent is not run (on hostile text each one tries a match at
#: every word boundary).
PATTERN_GATES: dict[re.Pattern[str], Callable[[str], bool]] = {
    _TITLED: contains_any("mr", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "mister"),
    _INTRODUCED: contains_any("name", "call", "under", "holder"),
    _ADDRESSED: contains_any(*_GREETINGS),
    _SPEAKER: all_of(contains_any(":"), contains_any('"', "“")),
}


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

    def find(self, text: str) -> Iterable[Finding]:
        """Names after introducing phrases, greetings and titles."""
        lower_text = not has_upper(text)
        titled = _TITLED.finditer(text) if PATTERN_GATES[_TITLED](text) else ()
        for match in titled:
            start, end = match.span("name")
            if not text[start].isupper() and not lower_text:
                continue
            trimmed = _trim_name(text, start, end)
            if trimmed is not None:
                # the honorific goes with the name: "Mrs." says as much as a first name
                yield match.start(), trimmed[1], self.TITLED_SCORE
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
                if pattern is _SPEAKER and text[start:end].lower() in _ROLES:
                    continue
                trimmed = _trim_name(text, start, end)
                if trimmed is not None:
                    yield trimmed[0], trimmed[1], score
