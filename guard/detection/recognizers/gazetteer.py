"""Person names by a first-name gazetteer: "christine fiorentino", "Shannon Blomqvist".

The NER model reads capitalisation and sentence shape; in lower-case chat, in lists and in
signature blocks it misses names a person sees at once. A first name from the US Census
first-name lists (the ``names`` package: 5,494 names, public-domain data) followed by a
surname-shaped word is a name in any case. Names that are also common words ("Bill", "Grace",
"Mark", "June") are left out of the gazetteer, so "bill payment" and "grace period" stay text.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import regex
from spacy.lang.en.stop_words import STOP_WORDS

from guard.detection.recognizers.address import UNIT_WORDS
from guard.detection.recognizers.base import Finding, GuardRecognizer, has_upper

if TYPE_CHECKING:
    from collections.abc import Iterable

#: First names that are everyday English words (or brands, months, places) first.
COMMON_WORD_NAMES = frozenset(
    """
    bill mark will may june april august grant rose hope joy faith art don ray jack sue guy
    chase dawn pat rob summer gene max sandy ivy lily daisy holly violet iris ruby pearl amber
    crystal jade olive hazel autumn destiny harmony melody charity grace patience honor prince
    king duke earl major sterling rich rusty buck cliff dale glen lane miles wade sky storm
    river brook forest woody penny carol chance price page case cash clay colt dash drew gay
    jean jewel kay kit love mercy misty nick norm pierce rex rocky royal sage star sunny tad
    van vera win young long black white brown green gray grey bell hunter porter baker carter
    cook mason parker taylor tyler walker young king lord may major marsh hall fox wolf bear
    angel angela? christian christmas easter noel tuesday monday sunday ginger candy candi
    brandy sherry sugar honey cherry berry apple melody lucky sonny sunshine precious tiny
    gaylord dusty stormy rain raven robin jay wren sparrow swan starling drake lark
    an ok sir madam miss mister del la le de van von al el so in is it on or to at
    """.replace("?", "").split()
)

#: A word in any alphabet ("Červenková", "Łukasz", "O'Brien"): a letter, then letters,
#: apostrophes and hyphens, read possessively.
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’\-])*+")
_PARTICLES = frozenset("van von der den de da di du la le del della dos das bin ibn al el".split())
#: Words that follow a first name without being a surname.
NOT_SURNAMES = (
    frozenset(STOP_WORDS)
    | frozenset(
        """
    said says asked told wrote called thanks thank please hi hello dear and or but version
    account accounts concert fan fans novel book song songs album band team office store
    here there today tomorrow yesterday now then just also still really very again
    """.split()
    )
    | UNIT_WORDS
)


@cache
def first_names() -> frozenset[str]:
    """The gazetteer: lower-cased census first names, less the common words."""
    package = resources.files("names")
    found: set[str] = set()
    for filename in ("dist.male.first", "dist.female.first"):
        for line in (package / filename).read_text(encoding="ascii").splitlines():
            if line.strip():
                found.add(line.split()[0].lower())
    return frozenset(n for n in found if len(n) > 2 and n not in STOP_WORDS) - COMMON_WORD_NAMES  # noqa: PLR2004


#: How far down the census surname list (by frequency) a word counts as a surname: the rare
#: end of the list holds common words that are also someone's name ("Arts" ranks 32,459th,
#: "Crafts" 18,750th, "Bath" 17,052nd; "Decker" 637th, "Wesson" 5,139th).
SURNAME_MAX_RANK = 15_000


@cache
def surnames() -> frozenset[str]:
    """Lower-cased US Census 1990 surnames (the ``names`` package) up to ``SURNAME_MAX_RANK``."""
    found: set[str] = set()
    text = (resources.files("names") / "dist.all.last").read_text(encoding="ascii")
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4 and int(fields[3]) <= SURNAME_MAX_RANK:  # noqa: PLR2004 - name, %, cum. %, rank
            found.add(fields[0].lower())
    return frozenset(found - STOP_WORDS)


@lru_cache(maxsize=4096)
def _surname_like(word: str, first_is_title: bool) -> bool:
    # cached: a name list repeats its words ("Ann Ann Ann ...": three checks per word)
    bare = word.partition("'")[0].partition("’")[0]
    if len(bare) < 2 or bare.lower() in NOT_SURNAMES:  # noqa: PLR2004
        return False
    if first_is_title:
        return bare[0].isupper()
    return bare.islower()


class FirstNameRecognizer(GuardRecognizer):
    """PERSON: a gazetteer first name with a surname after it, or a capitalised first name."""

    PAIR_SCORE = 0.7
    LOWER_PAIR_SCORE = 0.6
    SINGLE_SCORE = 0.55
    #: A list made mostly of known first names outweighs the NER's reading of one item.
    LIST_SCORE = 0.86

    def __init__(self) -> None:
        super().__init__(entity="PERSON", name="GuardFirstNameRecognizer")
        self.names = first_names()

    def find(self, text: str) -> Iterable[Finding]:
        """First name + surname in the same case style; single first names where unambiguous.

        A capitalised first name alone counts wherever it stands (the gazetteer holds no
        common words). A lower-case first name alone counts only in text written wholly in
        lower case, where capitals carry no signal. In a list of words where two or more are
        first names ("Rasmus, Jeremy, Saidali and Sara") every item is taken for a name.
        """
        yield from self._name_lists(text)
        all_lower = not has_upper(text)
        # words are read as a stream, never held in a list: a list of every word of a long
        # text grew slower than the text (memory), and only the words after a name matter
        for match in _WORD.finditer(text):
            word = match.group()
            if word.lower() not in self.names:
                continue
            titled = word[0].isupper() and word[1:].islower()
            if not titled and not word.islower():
                continue
            end = self._surname_end(text, match, titled)
            if end is not None:
                yield match.start(), end, self.PAIR_SCORE if titled else self.LOWER_PAIR_SCORE
            elif titled or (all_lower and word.islower()):
                yield match.start(), _possessive_end(text, match), self.SINGLE_SCORE

    def _name_lists(self, text: str) -> Iterable[Finding]:
        # two passes over each list, holding no list of its words: one list can be the whole
        # text ("Ann, Ann, ..."), and a match object per word of it weighed on memory
        for match in _LIST.finditer(text):
            start, end = match.span()
            items = known = 0
            for item in _WORD.finditer(text, start, end):
                lowered = item.group().lower()
                if lowered != "and":
                    items += 1
                    known += lowered in self.names
            if known < 2 or known * 2 < items:  # noqa: PLR2004 - half names: a list of names
                continue
            for item in _WORD.finditer(text, start, end):
                lowered = item.group().lower()
                if lowered in NOT_SURNAMES:  # "and" is one of them
                    continue
                # "Surprisingly, John, Shaun and Ron": an adverb opens the sentence; names
                # ending in "-ly" (Emily, Kelly) are in the gazetteer
                if lowered.endswith("ly") and lowered not in self.names:
                    continue
                yield item.start(), item.end(), self.LIST_SCORE

    @staticmethod
    def _surname_end(text: str, first: re.Match[str], titled: bool) -> int | None:
        end = None
        position = first.end()
        for _ in range(3):
            follower = _next_word(text, position)
            if follower is None:
                break
            word = follower.group()
            if end is None and word.lower() in _PARTICLES:
                position = follower.end()
                continue
            if not _surname_like(word, titled):
                break
            position = end = follower.end()
            if word.endswith(("'s", "’s")):
                end -= 2
                break
            if not titled:
                break
        return end


#: A list item is a word of at most 41 letters, read possessively: unbounded, every word
#: boundary of a long hyphenated run ("a-a-a-...") started a scan to its end (quadratic).
_ITEM = r"\p{L}[\p{Ll}'’\-]{1,40}+"
#: "Rasmus, Jeremy, Jacqueline and Sara": three or more single words in a comma list.
#: (``regex``, for its classes of letters and lower-case letters in every alphabet.)
_LIST = regex.compile(rf"\b{_ITEM}(?:,[ \t]+(?!and\b){_ITEM}){{2,}}(?:,?[ \t]+and[ \t]+{_ITEM})?")


def _next_word(text: str, position: int) -> re.Match[str] | None:
    """The word one or two spaces after ``position``, if that is what follows it."""
    if not text.startswith(" ", position):
        return None
    return _WORD.match(text, position + 2 if text.startswith("  ", position) else position + 1)


def _possessive_end(text: str, match: re.Match[str]) -> int:
    end = match.end()
    return end - 2 if text[match.start() : end].endswith(("'s", "’s")) else end
