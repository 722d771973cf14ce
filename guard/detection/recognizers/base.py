"""The base of guard's own recognizers: compiled regexes, a cheap pre-check, Presidio results.

Time: every regex here must run in time linear in the text (tests/detection/test_linear_time.py
feeds each recognizer adversarial inputs of growing size). Where a regex is run with a time
limit (Presidio-derived patterns, users' patterns), running out of time fails *closed*: the
recognizer raises DetectionFailedError and the request fails, instead of Presidio's default of
logging a warning and skipping the recognizer, which lets the value through unredacted.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import regex
from presidio_analyzer import (
    AnalysisExplanation,
    EntityRecognizer,
    LocalRecognizer,
    PatternRecognizer,
    RecognizerResult,
)

from guard.errors import DetectionFailedError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from presidio_analyzer import Pattern

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


#: Time limit of one regex over one text, for the patterns run with a limit (Presidio-derived
#: and users'). Linear patterns take well under a second on the largest text guard accepts;
#: past the limit the recognizer fails closed (DetectionFailedError), never open.
REGEX_TIMEOUT_SECONDS = 10.0


def regex_timed_out(recognizer_name: str, seconds: float) -> DetectionFailedError:
    """The error for a regex that ran out of time: names the recognizer, never the text."""
    return DetectionFailedError(
        f"recognizer {recognizer_name!r} did not finish within its regex time limit of "
        f"{seconds:g} s; the text was not analysed completely, so it is refused"
    )


@lru_cache(maxsize=256)
def _compiled(pattern: str, flags: int) -> regex.Pattern[str]:
    return regex.compile(pattern, flags=flags)


class FailClosedPatternRecognizer(PatternRecognizer):
    """A Presidio PatternRecognizer whose regex time-out raises instead of skipping.

    Presidio's own ``analyze`` catches the ``regex`` module's TimeoutError, logs a warning and
    returns what it found so far; a value that should be redacted is then silently let through.
    Put this class first in the bases of a Presidio recognizer (``class X(
    FailClosedPatternRecognizer, UrlRecognizer)``): its patterns, context and validation stay
    Presidio's, only the matching loop is this one.
    """

    regex_timeout_seconds: float = REGEX_TIMEOUT_SECONDS
    # Presidio assigns these in __init__ without annotations
    name: str
    patterns: list[Pattern]
    global_regex_flags: int

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: Any = None,  # noqa: ANN401 - Presidio's signature
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """Every pattern over ``text``; a time-out raises DetectionFailedError."""
        del entities, nlp_artifacts
        flags = regex_flags or self.global_regex_flags
        results: list[RecognizerResult] = []
        for pattern in self.patterns:
            compiled = _compiled(pattern.regex, flags)
            try:
                for match in compiled.finditer(text, timeout=self.regex_timeout_seconds):
                    results.extend(self.match_results(text, match, pattern, flags))
            except TimeoutError:
                raise regex_timed_out(self.name, self.regex_timeout_seconds) from None
        return EntityRecognizer.remove_duplicates(results)

    def match_results(
        self, text: str, match: regex.Match[str], pattern: Pattern, flags: int
    ) -> Iterator[RecognizerResult]:
        """Presidio's reading of one match: validation raises or drops its score."""
        start, end = match.span()
        if start == end:
            return
        value = text[start:end]
        validation = self.validate_result(value)
        explanation = self.build_regex_explanation(
            self.name, pattern.name, pattern.regex, pattern.score, bool(validation), flags
        )
        result = self._result(start, end, pattern.score, explanation)
        if validation is not None:
            result.score = EntityRecognizer.MAX_SCORE if validation else EntityRecognizer.MIN_SCORE
        if self.invalidate_result(value):
            result.score = EntityRecognizer.MIN_SCORE
        explanation.score = result.score
        if result.score > EntityRecognizer.MIN_SCORE:
            yield result

    def _result(
        self, start: int, end: int, score: float, explanation: AnalysisExplanation
    ) -> RecognizerResult:
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
