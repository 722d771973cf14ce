"""The NLP engine guard hands to Presidio: one loaded spaCy pipeline, batched, NER only.

Hostile input: spaCy's tokenizer strips prefixes and suffixes off a whitespace-delimited
chunk one character at a time, copying the rest each time, so a long run of punctuation is
quadratic ("!" * 16000: 20 s), and one absurdly long "word" is one absurd token. The NER
therefore reads a *view* of the text (``ner_view``) in which such runs are cut short by
spaces of the same length: offsets are shared with the text, and the recognizers still read
the text itself.

The view also blanks long runs of chunks without a letter (phone numbers, card numbers, digit
tables): the NER labels only names, places, organisations and groups, none of which is made of
digits and punctuation alone, and such runs are where token-dense hostile text spends the
NER's time (``"555-123-4567 " * N``: 4 tokens per 13 characters).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from presidio_analyzer.nlp_engine import (
    NerModelConfiguration,
    NlpArtifacts,
    NlpEngine,
    SpacyNlpEngine,
)
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Span

from guard.detection.recognizers.address import UNIT_WORDS

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from spacy.language import Language
    from spacy.tokens import Doc

#: spaCy labels guard keeps, and the Presidio entity each becomes. DATE/TIME are left out on
#: purpose: the NER tags "today" or "the end of the month" as dates, which are not personal
#: data; real dates are found by guard's date recognizers. CARDINAL, MONEY etc. are not PII.
NER_TO_ENTITY = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "ORG": "ORGANIZATION",
    "NORP": "NRP",
}


#: The NER is sure of people and places more often than of organisations and groups.
NER_SCORES = {"PERSON": 0.85, "LOCATION": 0.85, "ORGANIZATION": 0.6, "NRP": 0.6}

#: Longest run of symbols (neither letter, digit nor space; "_" counts as a symbol) the NER
#: sees: "!!!", "...", ":-)" read as before, "!!!!!!!!" as "!!!" and spaces. The rest of a run
#: would be one token per character and tells the NER nothing more.
MAX_SYMBOL_RUN = 3
#: Longest chunk without whitespace the NER sees. Longer English words are rare (the longest
#: in dictionaries is 45 letters); longer chunks are URLs, keys, base64 or hostile input, which
#: guard's pattern recognizers find on the text itself.
MAX_CHUNK_CHARS = 64
_DEGENERATE = re.compile(
    rf"(?P<symbols>(?:[^\w\s]|_){{{MAX_SYMBOL_RUN + 1},}})|\S{{{MAX_CHUNK_CHARS + 1},}}"
)
#: Fewest consecutive letterless chunks the view blanks. A phone number is 1-3 chunks, a card
#: number 4, a date or an amount 1-3; prose puts a word with a letter between such chunks far
#: sooner than every 8. Below this, digits stay as context for the NER.
MIN_LETTERLESS_RUN = 8
#: A whitespace-delimited chunk without a letter: digits, "_" and symbols only. Possessive, and
#: anchored at chunk starts, so each chunk is scanned a bounded number of times: linear.
_LETTERLESS = r"(?:[^\w\s]|[\d_])++"
_LETTERLESS_RUN = re.compile(
    rf"(?<!\S){_LETTERLESS}(?:\s++{_LETTERLESS}){{{MIN_LETTERLESS_RUN - 1},}}(?!\S)"
)


def ner_view(text: str) -> str:
    """``text`` as the NER reads it: letterless runs blanked, long symbol runs and chunks cut.

    The view has the same length as the text, character for character outside the cut
    parts, so every offset into it is an offset into the text. Time is linear in the text.
    """
    return _cut_degenerate(_blank_letterless_runs(text))


def _blank_letterless_runs(text: str) -> str:
    """Spaces in place of every run of ``MIN_LETTERLESS_RUN`` or more letterless chunks."""
    return _LETTERLESS_RUN.sub(lambda match: " " * len(match.group()), text)


def _cut_degenerate(text: str) -> str:
    """Long symbol runs and long chunks cut short by spaces of the same length."""
    parts: list[str] = []
    position = 0
    for match in _DEGENERATE.finditer(text):
        keep = MAX_SYMBOL_RUN if match.group("symbols") is not None else MAX_CHUNK_CHARS
        cut = match.start() + keep
        parts.append(text[position:cut])
        parts.append(" " * (match.end() - cut))
        position = match.end()
    if not parts:
        return text
    parts.append(text[position:])
    return "".join(parts)


#: Nouns for the part a person plays in a conversation or a service. Written before a name
#: ("Customer Joseph", "agent Maria Lopez") they say who the person is, not what they are
#: called; the NER often takes them into the name. Honorifics (Mr, Dr) are left alone.
ROLE_NOUNS = frozenset(
    """
    customer customers client clients agent agents user users caller callers member members
    representative rep patient patients employee employees staff manager supervisor operator
    technician consultant advisor adviser associate specialist guest visitor buyer seller
    vendor tenant landlord applicant subscriber cardholder
    """.split()
)

#: A name, place, organisation or group has at least this many letters.
MIN_LETTERS = 2
#: A chunk of this many letters or more made of one repeated letter ("xxxx").
MIN_REPEATED_RUN = 4
#: A chunk of this many letters or more made of at most two distinct ones ("hahaha").
MIN_TWO_LETTER_RUN = 6
#: A chunk of this many letters or more without a vowel ("qwrtzpsdf"). Shorter vowelless
#: words are acronyms ("HSBC", "KPMG") or names written without vowels in their language.
MIN_VOWELLESS_RUN = 6
_VOWELS = frozenset("aeiouy")


def ner_entity(doc: Doc, start: int, end: int, label: str) -> Span | None:
    """The NER's entity over tokens [start, end) as guard reads it, or None if it is none.

    - A PERSON's leading role nouns are not part of the name ("Customer Joseph": "Joseph"),
      nor a trailing unit designator ("Holly Prošková Apt": "Holly Prošková").
    - A degenerate span is no entity (``degenerate``): a run of "x"s, a lone symbol.
    - Nor is one of lower-case function words only (``function_words_only``): "me", "same".
    """
    if label == "PERSON":
        while end - start > 1 and doc[start].lower_ in ROLE_NOUNS:
            start += 1
        # "Ms. Holly Prošková Apt. 370 ...": the NER takes the unit after a name into the name;
        # it starts the address
        while end - start > 1 and doc[end - 1].lower_.rstrip(".") in UNIT_WORDS:
            end -= 1
    span = Span(doc, start, end, label=label)
    text = span.text
    return None if degenerate(text) or function_words_only(text) else span


_LETTER_RUNS = re.compile(r"[^\W\d_]+")


def function_words_only(text: str) -> bool:
    """Whether an NER span is, in lower case, nothing but function words ("me", "same").

    A proper noun written in lower case is rarely made of pronouns and particles only; in
    capitals ("US", "May", "Will") it may be a name, so only all-lower-case spans count. A
    letter on its own is the tail of a contraction ("i'm").
    """
    if not text.islower():
        return False
    words = _LETTER_RUNS.findall(text)
    return bool(words) and all(len(word) == 1 or word in STOP_WORDS for word in words)


def degenerate(text: str) -> bool:
    """Whether an NER span's text cannot be a name, a place, an organisation or a group.

    It has fewer than two letters ("____", "€"); or a word of it is one letter repeated, two
    letters repeated, or a long run of letters without a vowel. Letters outside ASCII count
    as vowels: the rule must not reject names in other scripts or with diacritics.
    """
    letters = 0
    for chunk in text.split():
        if len(chunk) < MIN_REPEATED_RUN and chunk.isascii():
            # too short for any rule, and casefold keeps an ASCII chunk's length
            letters += len(chunk) if chunk.isalpha() else sum(ch.isalpha() for ch in chunk)
            continue
        lowered = chunk.casefold()
        distinct = set(lowered)
        alphabetic = lowered.isalpha()
        if alphabetic and len(lowered) >= MIN_REPEATED_RUN and len(distinct) == 1:
            return True
        if alphabetic and len(lowered) >= MIN_TWO_LETTER_RUN and len(distinct) <= 2:  # noqa: PLR2004
            return True
        if (
            alphabetic
            and len(lowered) >= MIN_VOWELLESS_RUN
            and lowered.isascii()
            and not distinct & _VOWELS
        ):
            return True
        letters += len(chunk) if chunk.isalpha() else sum(ch.isalpha() for ch in chunk)
    return letters < MIN_LETTERS


class DetectionArtifacts(NlpArtifacts):
    """NlpArtifacts without lemmas and keywords, which guard's context booster does not need.

    Presidio's constructor looks every token up in the vocabulary to list keywords; for the
    NER-only pipeline that is pure overhead.
    """

    def __init__(
        self,
        *,
        entities: list[Span],
        tokens: Doc,
        scores: list[float],
        nlp_engine: NlpEngine,
        language: str,
    ) -> None:
        self.entities = entities
        self.tokens = tokens
        self.lemmas: list[str] = []
        self.keywords: list[str] = []
        self.nlp_engine = nlp_engine
        self.language = language
        self.scores = scores

    @property
    def tokens_indices(self) -> list[int]:  # type: ignore[override] # an attribute in Presidio
        """Each token's offset, listed when asked: only Presidio's lemma enhancer asks."""
        return [token.idx for token in self.tokens]


class GuardNlpEngine(SpacyNlpEngine):
    """A ``SpacyNlpEngine`` around a pipeline guard already loaded (never downloads).

    The pipeline keeps only tok2vec and ner; context words are matched on the text itself
    (guard.detection.context), so no lemmas are needed.
    """

    def __init__(self, nlp: Language, *, language: str = "en", ner_score: float = 0.85) -> None:
        super().__init__(
            models=[{"lang_code": language, "model_name": nlp.meta.get("name", "guard")}],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping=dict(NER_TO_ENTITY),
                labels_to_ignore=[],
                default_score=ner_score,
            ),
        )
        self.pipeline = nlp
        self.nlp = {language: nlp}  # type: ignore[assignment] # Presidio declares None
        self.language = language

    def load(self) -> None:
        """Nothing to load: the pipeline was handed in."""

    def process_docs(self, texts: Iterable[str], *, batch_size: int = 64) -> Iterator[NlpArtifacts]:
        """Run the pipeline over many texts at once (``nlp.pipe``) and yield artifacts.

        The docs are of each text's ``ner_view``; their offsets are the text's.
        """
        views = (ner_view(text) for text in texts)
        for doc in self.pipeline.pipe(views, batch_size=batch_size):
            yield self.artifacts(doc)

    def artifacts(self, doc: Doc) -> NlpArtifacts:
        """NlpArtifacts for one document, with lower-cased tokens as lemmas.

        The NER's entities are read as ``ner_entity`` reads them: role nouns trimmed off the
        front of a name, degenerate chunks dropped. An entity that runs over a line break is
        read as one per line: a name, a place or an organisation is written on one line, and
        the NER's span across lines (a name, then a job title on the next line) would cut into
        what the next line holds.
        """
        entities = []
        for ent in doc.ents:
            label = NER_TO_ENTITY.get(ent.label_)
            if label is None:
                continue
            for start, end in _line_pieces(doc, ent.start, ent.end):
                span = ner_entity(doc, start, end, label)
                if span is not None:
                    entities.append(span)
        return DetectionArtifacts(
            entities=entities,
            tokens=doc,
            scores=[NER_SCORES.get(ent.label_, 0.85) for ent in entities],
            nlp_engine=self,
            language=self.language,
        )

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        del language
        return self.artifacts(doc)


def _line_pieces(doc: Doc, start: int, end: int) -> list[tuple[int, int]]:
    """The token ranges of [start, end) between tokens that hold a line break."""
    pieces: list[tuple[int, int]] = []
    piece_start = start
    for index in range(start, end):
        if "\n" in doc[index].text_with_ws:
            if "\n" in doc[index].text:  # a whitespace token of its own: not in either piece
                if index > piece_start:
                    pieces.append((piece_start, index))
                piece_start = index + 1
            else:  # the break follows the token: it ends the piece
                pieces.append((piece_start, index + 1))
                piece_start = index + 1
    if end > piece_start:
        pieces.append((piece_start, end))
    return pieces
