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

#: The score of a value in an identifier's shape that the identifier's validity check rejects
#: (a sample SSN, a card number with a wrong check digit): under any threshold on its own, and
#: lifted to exactly the threshold (0.4, ``guard.detection.context``) by a context word before
#: it. Introduced as an SSN or a card number, a value is redacted whatever its check digits
#: say, since a typo in a real number is still that person's number; alone, it is not reported.
CONTEXT_ONLY_SCORE = 0.01


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


@lru_cache(maxsize=4)
def has_upper(text: str) -> bool:
    """Whether ``text`` holds an upper-case character; cached, several recognizers ask.

    Text wholly in lower case changes how names and places are read. ``map`` keeps the scan
    in C: a generator over a 1 MB text took 0.3 s in each recognizer that asked.
    """
    return any(map(str.isupper, text))


def searches(pattern: str, flags: int = 0) -> Callable[[str], bool]:
    """A pre-check: a small regex that every match of the recognizer's own must contain.

    A recognizer whose anchor (a keyword, a digit pair) is nowhere in the text is skipped
    without running its costly pattern, which on hostile text tries a match at every position.
    """
    compiled = re.compile(pattern, flags)

    def check(text: str) -> bool:
        return compiled.search(text) is not None

    return check


#: Letters that Python's case-insensitive regexes match to an ASCII letter though ``lower()``
#: does not give it (dotless i, long s; capital dotted I lowers to two characters): mapped
#: first, so that a keyword check never misses what an ``re.IGNORECASE`` pattern matches, and
#: the folded text keeps the length of the text.
_REGEX_FOLDS = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s"})


@lru_cache(maxsize=4)
def folded(text: str) -> str:
    """``text`` in lower case, as case-insensitive patterns read it; cached per text."""
    return text.lower() if text.isascii() else text.translate(_REGEX_FOLDS).lower()


_WORD_RUN = re.compile(r"\w+")


@lru_cache(maxsize=4)
def words(text: str) -> frozenset[str]:
    """The words of the folded text (its maximal runs of word characters); cached per text.

    One pass over the text answers every "is this word in it" gate of every recognizer: a
    word that a pattern needs whole (between word boundaries, or between blanks) is in this
    set exactly when it stands in the text.
    """
    return frozenset(_WORD_RUN.findall(folded(text)))


def has_word(*keywords: str) -> Callable[[str], bool]:
    """A pre-check: one of ``keywords`` (lower-case words) stands whole in the text."""
    wanted = frozenset(k.lower() for k in keywords)

    def check(text: str) -> bool:
        return not wanted.isdisjoint(words(text))

    return check


#: Above this many keywords, ``contains_any`` searches for all of them in one regex pass.
_LOOP_NEEDLES = 3


def contains_any(*needles: str) -> Callable[[str], bool]:
    """A pre-check: the folded text contains one of ``needles`` (lower-case keywords).

    A few keywords are looked for one by one (``in`` is a C search); more, by one regex of
    them factored by prefix (``prefix_tree``), which reads the text once. A generator over the
    keywords cost more than the searches themselves: these checks run on every text.
    """
    lowered = tuple(dict.fromkeys(n.lower() for n in needles))
    if len(lowered) > _LOOP_NEEDLES:
        search = re.compile(prefix_tree(lowered)).search

        def check_all(text: str) -> bool:
            return search(folded(text)) is not None

        return check_all

    def check(text: str) -> bool:
        low = folded(text)
        for needle in lowered:  # noqa: SIM110 - a generator here cost more than the searches
            if needle in low:
                return True
        return False

    return check


def alternation(words: Iterable[str]) -> str:
    """A regex group matching any of ``words`` literally."""
    return "(?:" + "|".join(re.escape(w) for w in words) + ")"


def prefix_tree(words: Iterable[str]) -> str:
    """An alternation of ``words`` factored by common prefixes ("st(?:r(?:eet)?)?"...).

    The same words match; the engine tests a handful of first letters at each position
    instead of every word, which makes a long word list many times faster to search.
    """
    tree: dict[str, dict[str, Any]] = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        group = "(?:" + "|".join(branches) + ")"
        return group + "?" if "" in node else group

    return emit(tree)


def searches_folded(pattern: str) -> Callable[[str], bool]:
    """A pre-check: the regex ``pattern`` (lower-case letters) is found in the folded text.

    Case-sensitive on folded text, an alternation of keywords gives the regex engine the first
    letters to skip to, which makes it many times faster than the same with ``re.IGNORECASE``.
    """
    compiled = re.compile(pattern)

    def check(text: str) -> bool:
        return compiled.search(folded(text)) is not None

    return check


def all_of(*checks: Callable[[str], bool]) -> Callable[[str], bool]:
    """A pre-check that passes when every one of ``checks`` does."""

    def check(text: str) -> bool:
        return all(c(text) for c in checks)

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
        shared: dict[float, tuple[AnalysisExplanation, dict[str, str]]] = {}
        return [self.result(start, end, score, shared) for start, end, score in self.find(text)]

    def result(
        self,
        start: int,
        end: int,
        score: float,
        shared: dict[float, tuple[AnalysisExplanation, dict[str, str]]] | None = None,
    ) -> RecognizerResult:
        """A RecognizerResult carrying this recognizer's identity (for context enhancement).

        Results of one call with one score share their explanation and metadata (``shared``),
        which only say which recognizer found them and are never changed afterwards: hostile
        text makes 400,000 findings a MB, and three objects fewer for each took half the time
        the garbage collector spent on them.
        """
        parts = shared.get(score) if shared is not None else None
        if parts is None:
            explanation = AnalysisExplanation(
                recognizer=self.name, original_score=score, textual_explanation=""
            )
            metadata = {
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            }
            parts = (explanation, metadata)
            if shared is not None:
                shared[score] = parts
        return RecognizerResult(
            entity_type=self.entity,
            start=start,
            end=end,
            score=score,
            analysis_explanation=parts[0],
            recognition_metadata=parts[1],
        )


def unchecked(
    recognizer: EntityRecognizer,
) -> tuple[Callable[[str], bool], Callable[[str], int]] | None:
    """A recognizer's pre-check and a count of its findings with the pre-check bypassed.

    None for a recognizer without a pre-check. Guard's recognizers keep theirs in
    ``precheck`` and find with ``find``; the Presidio ones wrapped by
    ``guard.detection.recognizers.presidio`` keep theirs in ``precheck`` and their own
    ``analyze`` in ``unchecked_analyze``. The pre-check invariant (a pre-check never says
    "skip" where the recognizer would find something) is tested through this.
    """
    precheck: Callable[[str], bool] | None = getattr(recognizer, "precheck", None)
    if precheck is None:
        return None
    if isinstance(recognizer, GuardRecognizer):
        find = recognizer.find
        return precheck, lambda text: sum(1 for _ in find(text))
    # set by guard.detection.recognizers.presidio's wrapper, per instance
    analyze: Callable[[str, list[str]], list[RecognizerResult]]
    analyze = recognizer.unchecked_analyze  # type: ignore[attr-defined]
    entities = list(recognizer.supported_entities)
    return precheck, lambda text: len(analyze(text, entities))


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


#: (id of the pattern, matched value) -> (score, explanation, metadata) of its results in a text.
Readings = dict[tuple[int, str], tuple[float, AnalysisExplanation, dict[str, str]]]


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
    #: The score of a match its validity checks reject; None drops it, as Presidio does.
    #: ``CONTEXT_ONLY_SCORE`` keeps it for a context word to lift (identifiers with check rules).
    invalid_score: float | None = None
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
        readings: Readings = {}
        for pattern in self.patterns:
            compiled = _compiled(pattern.regex, flags)
            try:
                for match in compiled.finditer(text, timeout=self.regex_timeout_seconds):
                    results.extend(self.match_results(text, match, pattern, flags, readings))
            except TimeoutError:
                raise regex_timed_out(self.name, self.regex_timeout_seconds) from None
        return EntityRecognizer.remove_duplicates(results)

    def match_results(
        self,
        text: str,
        match: regex.Match[str],
        pattern: Pattern,
        flags: int,
        readings: Readings,
    ) -> Iterator[RecognizerResult]:
        """Presidio's reading of one match: validation raises or drops its score.

        ``readings`` holds the score and explanation of every (pattern, value) already read in
        this text: hostile text repeats one value ("1.1.1.1" 125,000 times in 1 MB), and
        parsing each again (``ipaddress`` for IPs) cost seconds. Presidio's validators read the
        value alone; the results of one reading share its explanation and metadata, which
        nothing changes afterwards.
        """
        start, end = match.span()
        if start == end:
            return
        value = text[start:end]
        reading = readings.get((id(pattern), value))
        if reading is None:
            validation = self.validate_result(value)
            explanation = self.build_regex_explanation(
                self.name, pattern.name, pattern.regex, pattern.score, bool(validation), flags
            )
            score = pattern.score
            if validation is not None:
                score = EntityRecognizer.MAX_SCORE if validation else EntityRecognizer.MIN_SCORE
            if self.invalidate_result(value):
                score = EntityRecognizer.MIN_SCORE
            if score == EntityRecognizer.MIN_SCORE and self.invalid_score is not None:
                score = min(pattern.score, self.invalid_score)
            explanation.score = score
            reading = readings[id(pattern), value] = (score, explanation, self._metadata())
        score, explanation, metadata = reading
        if score > EntityRecognizer.MIN_SCORE:
            yield self._result(start, end, score, explanation, metadata)

    def _metadata(self) -> dict[str, str]:
        return {
            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
        }

    def _result(
        self,
        start: int,
        end: int,
        score: float,
        explanation: AnalysisExplanation,
        metadata: dict[str, str] | None = None,
    ) -> RecognizerResult:
        return RecognizerResult(
            entity_type=self.supported_entities[0],
            start=start,
            end=end,
            score=score,
            analysis_explanation=explanation,
            recognition_metadata=metadata if metadata is not None else self._metadata(),
        )
