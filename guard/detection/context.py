"""Context words raise a finding's score: "phone" before a digit run makes it a phone.

The same rule as Presidio's lemma-based enhancer (a recognizer's context word found in one of
the five words before the finding adds 0.35, to at least 0.4), computed on the lower-cased
words of the text itself. Presidio's version deep-copies every result and needs lemmas, which
would need the tagger and lemmatizer: a third of detection time for the same decisions.

The same words work the other way for the NER: a span it tags that is nothing but a field
label ("SSN", "DOB", "IBAN": a recognizer's context word, or a word of an entity type's
name, such as "PIN") introduces a value; it is not one. Such NER findings are dropped.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

_WORDS = re.compile(r"[^\W_]+", re.UNICODE)

WINDOW_WORDS = 5
WINDOW_CHARS = 80
SIMILARITY_FACTOR = 0.35
MIN_SCORE_WITH_CONTEXT = 0.4


#: NER types a field label can be mistaken for at any case ("SSN" as an organisation). For
#: names and places only a label in lower case is dropped: "US" is a country, and a passport
#: recognizer's context word too, but "us" is a pronoun.
LABEL_PRONE_TYPES = frozenset({"ORGANIZATION", "NRP"})


def field_labels(recognizers: Sequence[EntityRecognizer]) -> frozenset[str]:
    """The words and phrases that label a field of the recognizers' entities (lower case).

    Each pattern recognizer's context words ("ssn", "dob", "mac address") and the words of
    the entity types it reports ("PIN", "IBAN_CODE": "iban", "code"). The NER's own entity
    types are left out: "person" or "location" label nothing a pattern finds.
    """
    ner = [r for r in recognizers if isinstance(r, SpacyRecognizer)]
    ner_types = {entity for r in ner for entity in r.supported_entities}
    labels: set[str] = set()
    for recognizer in recognizers:
        if isinstance(recognizer, SpacyRecognizer):
            continue
        labels.update(" ".join(word.lower().split()) for word in recognizer.context or ())
        for entity in recognizer.supported_entities:
            if entity not in ner_types:
                labels.update(part for part in entity.lower().split("_") if part)
    labels.discard("")
    return frozenset(labels)


def is_field_label(value: str, entity_type: str, labels: frozenset[str]) -> bool:
    """Whether an NER finding ``value`` of ``entity_type`` is only a field label.

    Punctuation at its ends ("SSN:", "PIN#") and a plural "s" are ignored.
    """
    if entity_type not in LABEL_PRONE_TYPES and not value.islower():
        return False
    words = " ".join(_WORDS.findall(value.lower()))
    return words in labels or (len(words) > 2 and words.endswith("s") and words[:-1] in labels)  # noqa: PLR2004


class ContextBooster:
    """Applies each recognizer's context words to its own findings, and to the NER's."""

    def __init__(self, recognizers: Sequence[EntityRecognizer]) -> None:
        self._context: dict[str, tuple[str, ...]] = {
            r.id: tuple(word.lower() for word in r.context) for r in recognizers if r.context
        }
        self._ner = frozenset(r.id for r in recognizers if isinstance(r, SpacyRecognizer))
        self._labels = field_labels(recognizers)

    def boost(self, text: str, results: list[RecognizerResult]) -> None:
        """Raise, in place, the score of results with a context word just before them.

        An NER finding that is only a field label gets the score 0 (below any threshold).
        """
        lowered: str | None = None
        for result in results:
            meta = result.recognition_metadata or {}
            identifier = meta.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY, "")
            if identifier in self._ner:
                if is_field_label(
                    text[result.start : result.end], result.entity_type, self._labels
                ):
                    result.score = 0.0
                continue
            if result.score >= 1.0:
                continue
            words = self._context.get(identifier)
            if not words:
                continue
            if lowered is None:
                lowered = text.lower()
            before = _WORDS.findall(lowered, max(0, result.start - WINDOW_CHARS), result.start)
            window = before[-WINDOW_WORDS:]
            if any(word in token for token in window for word in words):
                result.score = min(
                    1.0, max(result.score + SIMILARITY_FACTOR, MIN_SCORE_WITH_CONTEXT)
                )


def context_gate(recognizer: EntityRecognizer, threshold: float) -> Callable[[str], bool] | None:
    """For a recognizer that reaches ``threshold`` only with context: a test for its words.

    A pattern recognizer whose patterns all score below the threshold, and whose validation
    cannot raise a score (Presidio's ``validate_result`` left as it is), reports nothing that
    survives the threshold unless ``ContextBooster`` raises it, which needs one of its context
    words inside a word of the lower-cased text. Where none is a substring of that text, the
    recognizer need not run at all: the US driver's licence patterns (0.3 and 0.01) try
    every word of every text. None for every other recognizer.
    """
    if not isinstance(recognizer, PatternRecognizer) or not recognizer.context:
        return None
    if type(recognizer).validate_result is not PatternRecognizer.validate_result:
        return None
    patterns: list[Pattern] = getattr(recognizer, "patterns", None) or []  # Presidio's, unannotated
    if max((p.score for p in patterns), default=1.0) >= threshold:
        return None
    words = tuple(dict.fromkeys(word.lower() for word in recognizer.context))

    def has_context_word(text: str) -> bool:
        lowered = text.lower()
        return any(word in lowered for word in words)

    return has_context_word
