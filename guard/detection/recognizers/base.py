"""The base of guard's own recognizers: compiled regexes, a cheap pre-check, Presidio results."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

#: (start, end, score) of one finding, before it becomes a RecognizerResult.
Finding = tuple[int, int, float]


_DIGIT = re.compile(r"\d")


@lru_cache(maxsize=4)
def digit_count(text: str) -> int:
    """How many digits ``text`` holds; cached, since every recognizer asks about one text."""
    return len(_DIGIT.findall(text))


def digit_count_at_least(n: int) -> Callable[[str], bool]:
    """A pre-check: the text holds at least ``n`` digits (a phone needs 7, a card 13)."""

    def check(text: str) -> bool:
        return digit_count(text) >= n

    return check


def contains_any(*needles: str) -> Callable[[str], bool]:
    """A pre-check: the lower-cased text contains one of ``needles``."""
    lowered = tuple(n.lower() for n in needles)

    def check(text: str) -> bool:
        low = text.lower()
        return any(n in low for n in lowered)

    return check


class GuardRecognizer(LocalRecognizer):
    """A recognizer for one entity type, skipped outright when its pre-check fails.

    Subclasses implement ``find``; context words (``context``) raise the score of findings
    they stand before (guard.detection.context).
    """

    name: str

    def __init__(
        self,
        *,
        entity: str,
        name: str,
        context: Sequence[str] = (),
        precheck: Callable[[str], bool] | None = None,
    ) -> None:
        self.precheck = precheck
        super().__init__(
            supported_entities=[entity],
            name=name,
            supported_language="en",
            context=list(context),
        )
        self.entity = entity

    def load(self) -> None:
        """Nothing to load: patterns are compiled at import."""

    def find(self, text: str) -> Iterable[Finding]:
        """Yield (start, end, score) for every match in ``text``."""
        raise NotImplementedError

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: Any = None,  # noqa: ANN401 - Presidio's signature
    ) -> list[RecognizerResult]:
        """Presidio's entry point: the pre-check, then ``find``."""
        del nlp_artifacts
        if self.entity not in entities or (self.precheck is not None and not self.precheck(text)):
            return []
        return [self.result(start, end, score) for start, end, score in self.find(text)]

    def result(self, start: int, end: int, score: float) -> RecognizerResult:
        """A RecognizerResult carrying this recognizer's identity (for context enhancement)."""
        return RecognizerResult(
            entity_type=self.entity,
            start=start,
            end=end,
            score=score,
            analysis_explanation=AnalysisExplanation(
                recognizer=self.name, original_score=score, textual_explanation=""
            ),
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


class RegexRecognizer(GuardRecognizer):
    """Findings are a regex's matches (or one named group of them) with a fixed score."""

    def __init__(
        self,
        *,
        entity: str,
        name: str,
        pattern: re.Pattern[str],
        score: float,
        group: str | int = 0,
        context: Sequence[str] = (),
        precheck: Callable[[str], bool] | None = None,
        validate: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(entity=entity, name=name, context=context, precheck=precheck)
        self.pattern = pattern
        self.score = score
        self.group = group
        self.validate = validate

    def find(self, text: str) -> Iterable[Finding]:
        """Every match of the pattern that passes ``validate``."""
        for match in self.pattern.finditer(text):
            start, end = match.span(self.group)
            if start < 0 or start == end:
                continue
            if self.validate is not None and not self.validate(text[start:end]):
                continue
            yield start, end, self.score
