"""Context words raise a finding's score: "phone" before a digit run makes it a phone.

The same rule as Presidio's lemma-based enhancer (a recognizer's context word found in one of
the five words before the finding adds 0.35, to at least 0.4), computed on the lower-cased
words of the text itself. Presidio's version deep-copies every result and needs lemmas, which
would need the tagger and lemmatizer: a third of detection time for the same decisions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from presidio_analyzer import EntityRecognizer, RecognizerResult

if TYPE_CHECKING:
    from collections.abc import Sequence

_WORDS = re.compile(r"[^\W_]+", re.UNICODE)

WINDOW_WORDS = 5
WINDOW_CHARS = 80
SIMILARITY_FACTOR = 0.35
MIN_SCORE_WITH_CONTEXT = 0.4


class ContextBooster:
    """Applies each recognizer's context words to its own findings."""

    def __init__(self, recognizers: Sequence[EntityRecognizer]) -> None:
        self._context: dict[str, tuple[str, ...]] = {
            r.id: tuple(word.lower() for word in r.context) for r in recognizers if r.context
        }

    def boost(self, text: str, results: list[RecognizerResult]) -> None:
        """Raise, in place, the score of results with a context word just before them."""
        lowered: str | None = None
        for result in results:
            if result.score >= 1.0:
                continue
            meta = result.recognition_metadata or {}
            words = self._context.get(meta.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY, ""))
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
