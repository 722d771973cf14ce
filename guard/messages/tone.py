r"""Tone advice for replies to customers: rules as data, advisory only, never blocking.

``policies/tone.yaml`` holds the rules. Each category (negative language, blame, over-promising,
jargon, long sentences, no empathy, no next step, shouting) lists rules with phrases, patterns or
thresholds and a suggestion for the agent, and the channels it applies to; ``tenants`` overrides
them per tenant (disable a category or rule, change a threshold, add phrases), merged over the
defaults. The file is validated on load and every error names the file and the entry, e.g.
``policies/tone.yaml: tenants.acme.categories.jargon.rules.phrase: unknown rule (rules of
jargon: unexplained_acronym, jargon_phrase)``. Each tenant's rules are merged and compiled once,
when the ToneAdvisor is made.

Threats. A reply may be hostile: an AI agent's output, a pasted log, a megabyte of one character.
Every pattern from the file runs on RE2, whose time is linear in the text, or, where RE2 refuses
it (lookarounds, backreferences), only if guard.detection.custom proves its backtracking bounded
at each position, and then with a time limit whose expiry drops that rule's advice for the text.
guard's own tokenisers (sentences, words, capitals) are written so that each character is looked
at a bounded number of times. On top of that, rules read at most ``limits.max_chars`` characters
(100,000) and the readability formula ``readability.max_chars`` (5,000), so a hostile megabyte
costs tens of milliseconds. A finding holds a span, a category, a rule id and a suggestion, never
the matched text: the reply may hold personal data.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import regex
import textstat  # type: ignore[import-untyped] # textstat ships no type information
import textstat.backend.counts  # type: ignore[import-untyped]
import textstat.backend.metrics  # type: ignore[import-untyped]
import textstat.backend.selections  # type: ignore[import-untyped]
import textstat.backend.transformations  # type: ignore[import-untyped]
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from guard.detection.custom import _check_bounded_backtracking, _re2
from guard.detection.recognizers.base import REGEX_TIMEOUT_SECONDS
from guard.errors import InvalidInputError, PolicyError
from guard.policyfiles import describe_validation_error, read_policy_yaml

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from pathlib import Path

TONE_FILENAME = "tone.yaml"

#: The categories of advice (the ids of issue 9); a policy may configure any subset.
CATEGORIES: tuple[str, ...] = (
    "negative_language",
    "blame",
    "over_promise",
    "jargon",
    "long_sentences",
    "no_empathy",
    "no_next_step",
    "shouting",
)
#: Where a reply goes: to a customer, or into an internal note.
CHANNELS: tuple[str, ...] = ("message", "note")

Channel = Literal["message", "note"]
_NAME = r"^[a-z][a-z0-9_]{0,63}$"
_TENANT = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
_CAPS_WORD = r"^[0-9]?[A-Z][A-Z0-9'\u2019&]{0,15}$"
_REGEX_SPECIALS = frozenset(r".^$*+?{}[]\|()")
_APOSTROPHES = "'\u2019"  # the straight and the typographic apostrophe


# --- validation of phrases and patterns ---------------------------------------------------------


def _valid_phrase(value: str) -> str:
    if not any(ch.isalnum() for ch in value):
        raise ValueError("a phrase needs at least one letter or digit")
    return " ".join(value.split())


def _valid_pattern(value: str) -> str:
    """Accept a pattern RE2 runs, or one whose backtracking is provably bounded."""
    compiled = _re2(value, ignore_case=True)
    if compiled is None:
        try:
            fallback = regex.compile(value, regex.IGNORECASE | regex.VERSION0)
        except regex.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        _check_bounded_backtracking(value)
        matches_empty = fallback.match("") is not None
    else:
        matches_empty = compiled.match("") is not None
    if matches_empty:
        raise ValueError("the regular expression matches the empty string")
    return value


Phrase = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_valid_phrase)]
Pattern = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_valid_pattern)]
CapsWord = Annotated[str, Field(pattern=_CAPS_WORD)]
LexiconName = Annotated[str, Field(pattern=_NAME)]


# --- the policy file ----------------------------------------------------------------------------


class Lexicon(BaseModel):
    """Phrases (whole words, any case) and patterns, plus named lexicons of the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phrases: list[Phrase] = Field(default_factory=list)
    patterns: list[Pattern] = Field(default_factory=list)
    include: list[LexiconName] = Field(default_factory=list)

    def is_empty(self) -> bool:
        """Whether the lexicon names nothing at all."""
        return not (self.phrases or self.patterns or self.include)


class _RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_NAME)
    suggestion: str = Field(min_length=1, max_length=300)
    enabled: bool = True


class MatchRule(_RuleBase):
    """Every match of the phrases and patterns is a finding, unless an exception holds."""

    kind: Literal["match"] = "match"
    phrases: list[Phrase] = Field(default_factory=list)
    patterns: list[Pattern] = Field(default_factory=list)
    #: A match overlapped by one of these is not advice ("can't wait", "not your fault").
    unless_overlapping: Lexicon = Field(default_factory=Lexicon)
    #: A match whose sentence also holds one of these is not advice.
    unless_in_sentence: Lexicon = Field(default_factory=Lexicon)
    #: No finding at all when the reply holds one of these (e.g. a timeline).
    unless_in_reply: Lexicon = Field(default_factory=Lexicon)
    #: When set, the rule applies only if the customer's last message matches it.
    when_customer: Lexicon | None = None

    @model_validator(mode="after")
    def _looks_for_something(self) -> MatchRule:
        if not (self.phrases or self.patterns):
            raise ValueError("a match rule needs phrases or patterns")
        return self


class MissingRule(_RuleBase):
    """A finding when the customer's message matches and the reply lacks what is expected."""

    kind: Literal["missing"]
    when_customer: Lexicon
    expect_in_reply: Lexicon
    #: Where the finding points: the first or last sentence (where the missing words belong).
    at: Literal["first_sentence", "last_sentence", "reply"] = "reply"

    @model_validator(mode="after")
    def _both_sides(self) -> MissingRule:
        if self.when_customer.is_empty() or self.expect_in_reply.is_empty():
            raise ValueError("a missing rule needs when_customer and expect_in_reply")
        return self


class SentenceLengthRule(_RuleBase):
    """A finding for each sentence longer than ``max_words`` words."""

    kind: Literal["sentence_length"]
    max_words: int = Field(ge=5, le=500)


class AcronymRule(_RuleBase):
    """Acronyms not explained in the reply (per the file's ``capitals`` section)."""

    kind: Literal["acronym"]


class AllCapsRule(_RuleBase):
    """Words in capitals that are not acronyms (per the file's ``capitals`` section)."""

    kind: Literal["all_caps"]


def _rule_kind(value: Any) -> str:  # noqa: ANN401 - raw YAML or a model
    if isinstance(value, dict):
        return str(value.get("kind", "match"))
    return str(getattr(value, "kind", "match"))


RuleSpec = Annotated[
    Annotated[MatchRule, Tag("match")]
    | Annotated[MissingRule, Tag("missing")]
    | Annotated[SentenceLengthRule, Tag("sentence_length")]
    | Annotated[AcronymRule, Tag("acronym")]
    | Annotated[AllCapsRule, Tag("all_caps")],
    Discriminator(_rule_kind),
]
_RULE_KINDS = ("match", "missing", "sentence_length", "acronym", "all_caps")


def _known_category(value: str) -> str:
    if value not in CATEGORIES:
        raise ValueError(f"unknown category {value!r} (expected one of: {', '.join(CATEGORIES)})")
    return value


CategoryName = Annotated[str, AfterValidator(_known_category)]


def _message_only() -> list[Channel]:
    return ["message"]


class CategorySpec(BaseModel):
    """One category: where it applies and its rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    channels: list[Channel] = Field(default_factory=_message_only)
    rules: list[RuleSpec] = Field(min_length=1)

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, value: list[RuleSpec]) -> list[RuleSpec]:
        seen: set[str] = set()
        for rule in value:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice")
            seen.add(rule.id)
        return value


class ReadabilitySpec(BaseModel):
    """When a readability figure is given, and on how much of the text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_words: int = Field(default=5, ge=1, le=1000)
    max_chars: int = Field(default=5000, ge=100, le=100_000)


class LimitsSpec(BaseModel):
    """How much of a text the rules read, and how much advice one rule gives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Rules read the first this-many characters of the reply and of the customer's message:
    #: advice is for chat replies, and a bound keeps a hostile megabyte cheap.
    max_chars: int = Field(default=100_000, ge=1000, le=10_000_000)
    #: At most this many findings per rule and reply (the first ones).
    max_findings_per_rule: int = Field(default=20, ge=1, le=10_000)


class CapitalsSpec(BaseModel):
    """How a word in capitals is read: a plain acronym, a jargon acronym, or shouting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Understood by everyone: neither jargon nor shouting.
    plain_acronyms: list[CapsWord] = Field(default_factory=list)
    #: Always acronyms, whatever their length.
    known_acronyms: list[CapsWord] = Field(default_factory=list)
    #: Short words that, in capitals, are emphasis rather than acronyms.
    emphasis_words: list[CapsWord] = Field(default_factory=list)
    #: A lone word in capitals longer than this is shouting (unless a known acronym).
    max_acronym_letters: int = Field(default=4, ge=2, le=10)
    #: Words in capitals at least this long with two or more vowels read as names said as
    #: words (IKEA, NASA), not initialisms (SKU, GDPR): neither jargon nor shouting. None: off.
    word_like_min_letters: int | None = Field(default=None, ge=2, le=10)


class ToneRules(BaseModel):
    """The rules in force for one tenant (the defaults, or the defaults merged with overrides)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    readability: ReadabilitySpec = Field(default_factory=ReadabilitySpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    capitals: CapitalsSpec = Field(default_factory=CapitalsSpec)
    lexicons: dict[LexiconName, Lexicon] = Field(default_factory=dict)
    categories: dict[CategoryName, CategorySpec] = Field(default_factory=dict)

    @field_validator("lexicons")
    @classmethod
    def _flat(cls, value: dict[str, Lexicon]) -> dict[str, Lexicon]:
        nested = [name for name, lexicon in value.items() if lexicon.include]
        if nested:
            raise ValueError(f"a named lexicon cannot include others: {', '.join(nested)}")
        return value


class RuleOverride(BaseModel):
    """A tenant's change to one rule; each field applies to the rule kinds that have it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    suggestion: str | None = Field(default=None, min_length=1, max_length=300)
    add_phrases: list[Phrase] = Field(default_factory=list)
    add_patterns: list[Pattern] = Field(default_factory=list)
    max_words: int | None = Field(default=None, ge=5, le=500)


class CategoryOverride(BaseModel):
    """A tenant's change to one category."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    channels: list[Channel] | None = None
    rules: dict[Annotated[str, Field(pattern=_NAME)], RuleOverride] = Field(default_factory=dict)


class CapitalsOverride(BaseModel):
    """A tenant's additions to the reading of capitals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    add_plain_acronyms: list[CapsWord] = Field(default_factory=list)
    add_known_acronyms: list[CapsWord] = Field(default_factory=list)
    add_emphasis_words: list[CapsWord] = Field(default_factory=list)
    max_acronym_letters: int | None = Field(default=None, ge=2, le=10)


class ReadabilityOverride(BaseModel):
    """A tenant's readability settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_words: int | None = Field(default=None, ge=1, le=1000)
    max_chars: int | None = Field(default=None, ge=100, le=100_000)


class TenantOverride(BaseModel):
    """Everything a tenant may change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: dict[CategoryName, CategoryOverride] = Field(default_factory=dict)
    capitals: CapitalsOverride = Field(default_factory=CapitalsOverride)
    readability: ReadabilityOverride = Field(default_factory=ReadabilityOverride)


class TonePolicyFile(ToneRules):
    """The whole of ``policies/tone.yaml``."""

    version: Literal[1]
    tenants: dict[Annotated[str, Field(pattern=_TENANT)], TenantOverride] = Field(
        default_factory=dict
    )


@dataclass(frozen=True, slots=True)
class TonePolicy:
    """A validated tone policy: the default rules and each tenant's merged rules."""

    source: str
    default: ToneRules
    tenants: Mapping[str, ToneRules]

    def rules_for(self, tenant: str | None) -> ToneRules:
        """The rules in force for ``tenant`` (the defaults for an unknown or absent tenant)."""
        if tenant is None:
            return self.default
        return self.tenants.get(tenant, self.default)


# --- loading ------------------------------------------------------------------------------------


def _where(loc: Sequence[int | str], data: Any) -> str:  # noqa: ANN401 - raw YAML
    """A readable path to an entry, naming rules by id: ``categories.blame.rules[0] ('x')``."""
    parts: list[str] = []
    node = data
    after_rule = False
    for part in loc:
        if after_rule and part in _RULE_KINDS:  # the rule union's tag, not a key of the file
            after_rule = False
            continue
        after_rule = False
        if part == "[key]":  # pydantic's marker for an invalid dictionary key
            continue
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"
            if parts[-1].startswith("rules["):
                child = _child(node, part)
                rule_id = child.get("id") if isinstance(child, dict) else None
                if rule_id is not None:
                    parts[-1] += f" (rule {rule_id!r})"
                after_rule = True
        else:
            parts.append(str(part))
        node = _child(node, part)
    return ".".join(parts) or "(top level)"


def _child(node: Any, key: int | str) -> Any:  # noqa: ANN401 - raw YAML
    try:
        return node[key]
    except (IndexError, KeyError, TypeError):
        return None


def _describe(source: str, exc: ValidationError, data: Any, prefix: str = "") -> str:  # noqa: ANN401
    return describe_validation_error(
        source, exc, where=lambda loc: _where(loc, data), prefix=prefix
    )


def _rule_lexicons(rule: RuleSpec) -> Iterator[tuple[str, Lexicon]]:
    for name in (
        "unless_overlapping",
        "unless_in_sentence",
        "unless_in_reply",
        "when_customer",
        "expect_in_reply",
    ):
        lexicon = getattr(rule, name, None)
        if isinstance(lexicon, Lexicon):
            yield name, lexicon


def _check_includes(rules: ToneRules, source: str, prefix: str = "") -> None:
    """Every ``include`` names a lexicon of the file."""
    for category, spec in rules.categories.items():
        for index, rule in enumerate(spec.rules):
            for name, lexicon in _rule_lexicons(rule):
                for include in lexicon.include:
                    if include not in rules.lexicons:
                        raise PolicyError(
                            f"{source}: {prefix}categories.{category}.rules[{index}] "
                            f"(rule {rule.id!r}).{name}.include: unknown lexicon {include!r}"
                        )


def _apply_rule_override(
    rule: dict[str, Any], override: RuleOverride, where: str, source: str
) -> None:
    kind = rule.get("kind", "match")
    if override.enabled is not None:
        rule["enabled"] = override.enabled
    if override.suggestion is not None:
        rule["suggestion"] = override.suggestion
    for field_name in ("add_phrases", "add_patterns"):
        added = getattr(override, field_name)
        if added:
            if kind != "match":
                raise PolicyError(
                    f"{source}: {where}.{field_name}: applies to match rules only, "
                    f"not to this {kind} rule"
                )
            target = field_name.removeprefix("add_")
            rule[target] = [*rule.get(target, []), *added]
    if override.max_words is not None:
        if kind != "sentence_length":
            raise PolicyError(
                f"{source}: {where}.max_words: applies to sentence_length rules only, "
                f"not to this {kind} rule"
            )
        rule["max_words"] = override.max_words


def _apply_settings_override(data: dict[str, Any], override: TenantOverride) -> None:
    capitals = data["capitals"]
    capitals["plain_acronyms"] += override.capitals.add_plain_acronyms
    capitals["known_acronyms"] += override.capitals.add_known_acronyms
    capitals["emphasis_words"] += override.capitals.add_emphasis_words
    if override.capitals.max_acronym_letters is not None:
        capitals["max_acronym_letters"] = override.capitals.max_acronym_letters
    for field_name in ("min_words", "max_chars"):
        value = getattr(override.readability, field_name)
        if value is not None:
            data["readability"][field_name] = value


def _merge(defaults: ToneRules, tenant: str, override: TenantOverride, source: str) -> ToneRules:
    """The defaults with ``override`` applied, validated like the defaults."""
    data = defaults.model_dump()
    prefix = f"tenants.{tenant}."
    for category, change in override.categories.items():
        where = f"{prefix}categories.{category}"
        spec = data["categories"].get(category)
        if spec is None:
            raise PolicyError(f"{source}: {where}: the default rules have no such category")
        if change.enabled is not None:
            spec["enabled"] = change.enabled
        if change.channels is not None:
            spec["channels"] = list(change.channels)
        by_id = {rule["id"]: rule for rule in spec["rules"]}
        for rule_id, rule_change in change.rules.items():
            rule = by_id.get(rule_id)
            if rule is None:
                known = ", ".join(by_id)
                raise PolicyError(
                    f"{source}: {where}.rules.{rule_id}: unknown rule (rules of {category}: "
                    f"{known})"
                )
            _apply_rule_override(rule, rule_change, f"{where}.rules.{rule_id}", source)
    _apply_settings_override(data, override)
    try:
        merged = ToneRules.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_describe(source, exc, data, prefix)) from None
    _check_includes(merged, source, prefix)
    return merged


def parse_tone_policy(data: object, *, source: str = "tone policy") -> TonePolicy:
    """Validate already-parsed tone rules and merge each tenant's overrides."""
    try:
        spec = TonePolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_describe(source, exc, data)) from None
    default = ToneRules(
        readability=spec.readability,
        limits=spec.limits,
        capitals=spec.capitals,
        lexicons=spec.lexicons,
        categories=spec.categories,
    )
    _check_includes(default, source)
    tenants = {
        name: _merge(default, name, override, source) for name, override in spec.tenants.items()
    }
    return TonePolicy(source=source, default=default, tenants=tenants)


def load_tone_policy(path: Path) -> TonePolicy:
    """Read, validate and merge ``policies/tone.yaml`` (or another file)."""
    return parse_tone_policy(read_policy_yaml(path), source=str(path))


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToneFinding:
    """One piece of advice: where (offsets into the reply), which category and rule, and what to do.

    It never holds the matched text, which may be personal data.
    """

    start: int
    end: int
    category: str
    rule: str
    suggestion: str

    def to_dict(self) -> dict[str, Any]:
        """The finding as plain JSON-able data."""
        return {
            "start": self.start,
            "end": self.end,
            "category": self.category,
            "rule": self.rule,
            "suggestion": self.suggestion,
        }


@dataclass(frozen=True, slots=True)
class Readability:
    """Flesch reading ease (higher is easier; 60-70 is plain English) and Flesch-Kincaid grade."""

    flesch_reading_ease: float
    grade: float
    words: int
    sentences: int

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain JSON-able data."""
        return {
            "flesch_reading_ease": self.flesch_reading_ease,
            "grade": self.grade,
            "words": self.words,
            "sentences": self.sentences,
        }


@dataclass(frozen=True, slots=True)
class ToneAdvice:
    """The advice on one reply: findings sorted by start, and readability (None when too short)."""

    findings: tuple[ToneFinding, ...]
    readability: Readability | None

    def to_dict(self) -> dict[str, Any]:
        """The advice as plain JSON-able data."""
        return {
            "findings": [finding.to_dict() for finding in self.findings],
            "readability": None if self.readability is None else self.readability.to_dict(),
        }


# --- matching -----------------------------------------------------------------------------------

Span = tuple[int, int]


def phrase_pattern(phrase: str) -> str:
    """The RE2 pattern of a phrase: whole words, any run of spaces, either apostrophe."""
    pieces: list[str] = []
    for word in phrase.split():
        escaped = "".join(
            f"[{_APOSTROPHES}]"
            if ch in _APOSTROPHES
            else ("\\" + ch if ch in _REGEX_SPECIALS else ch)
            for ch in word
        )
        pieces.append(escaped)
    body = r"\s+".join(pieces)
    start = r"\b" if phrase[0].isascii() and phrase[0].isalnum() else ""
    end = r"\b" if phrase[-1].isascii() and phrase[-1].isalnum() else ""
    return f"{start}{body}{end}"


class _Matcher:
    """A lexicon compiled: one RE2 alternation for all it can, bounded ``regex`` for the rest."""

    __slots__ = ("_bounded", "_engines")

    def __init__(self, phrases: Iterable[str], patterns: Iterable[str]) -> None:
        sources = [phrase_pattern(phrase) for phrase in phrases]
        bounded: list[Any] = []
        for pattern in patterns:
            if _re2(pattern, ignore_case=True) is not None:
                sources.append(pattern)
            else:  # validated on load: bounded backtracking, so it may run on ``regex``
                bounded.append(regex.compile(pattern, regex.IGNORECASE | regex.VERSION0))
        engines: list[Any] = []
        if sources:
            combined = _re2("|".join(f"(?:{source})" for source in sources), ignore_case=True)
            if combined is not None:
                engines.append(combined)
            else:  # e.g. two patterns that use one group name: run them one by one
                engines.extend(_re2(source, ignore_case=True) for source in sources)
        self._engines: tuple[Any, ...] = tuple(engines)
        self._bounded: tuple[Any, ...] = tuple(bounded)

    def __bool__(self) -> bool:
        return bool(self._engines or self._bounded)

    def spans(self, text: str, subject: str | bytes | None = None) -> list[Span]:
        """Every non-empty match, sorted by start; ``subject`` is ``text`` as RE2 input."""
        found: list[Span] = []
        for engine in self._engines:
            for match in engine.finditer(text if subject is None else subject):
                start, end = match.span()
                if start < end:
                    found.append((start, end))
        for pattern in self._bounded:
            try:
                spans = [
                    match.span()
                    for match in pattern.finditer(text, timeout=REGEX_TIMEOUT_SECONDS)
                    if match.start() < match.end()
                ]
            except TimeoutError:  # advice only: a pattern that runs out of time says nothing
                continue
            found.extend(spans)
        if len(self._engines) + len(self._bounded) > 1:
            found.sort()
        return found

    def search(self, text: str, subject: str | bytes | None = None) -> bool:
        """Whether anything matches; ``subject`` is ``text`` as RE2 input."""
        subject = text if subject is None else subject
        if any(engine.search(subject) is not None for engine in self._engines):
            return True
        for pattern in self._bounded:
            try:
                if pattern.search(text, timeout=REGEX_TIMEOUT_SECONDS) is not None:
                    return True
            except TimeoutError:
                continue
        return False


def _re2_subject(text: str) -> str | bytes:
    """What RE2 is given: ASCII text as bytes, other text as it is.

    ASCII bytes have the string's offsets, which spares the binding its per-match conversion of
    UTF-8 offsets to string offsets.
    """
    return text.encode("ascii") if text.isascii() else text


def _lexicon_matcher(lexicon: Lexicon | None, lexicons: Mapping[str, Lexicon]) -> _Matcher:
    if lexicon is None:
        return _Matcher((), ())
    phrases = list(lexicon.phrases)
    patterns = list(lexicon.patterns)
    for name in lexicon.include:
        phrases += lexicons[name].phrases
        patterns += lexicons[name].patterns
    return _Matcher(phrases, patterns)


# Sentence ends: a run of . ! ? (then closing quotes or brackets) before a space or the end, or a
# line break. The look-behind starts a run only at its first character and the possessive
# quantifiers never give back, so each character is scanned a bounded number of times.
_SENTENCE_END = re.compile(r"(?<![.!?\u2026])[.!?\u2026]++[\"'\u201d\u2019)\]]*+(?=\s|\Z)|\n")
_NON_SPACE = re.compile(r"\S")
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
# Words in capitals (2FA, RMA, SLAs, DON'T); a leading \b means only word starts are tried.
_CAPS_TOKEN = re.compile(r"\b[0-9]?[A-Z][A-Z'\u2019]*[A-Z]s?\b")
_EXPLAINED_AFTER = re.compile(r",?\s{1,3}(?:which\s+)?(?:stands\s+for|means|is\s+short\s+for)\b")
_CAPS_RUN_GAP = re.compile(r"[\s,&/\u2013-]{1,3}")
_LINKED = frozenset("-/#@_.:")
_VOWELS = frozenset("AEIOU")


class _Reply:
    """One reply and its customer's message, with what rules share computed once."""

    __slots__ = (
        "_caps",
        "_customer_subject",
        "_sentence_starts",
        "_sentences",
        "customer",
        "subject",
        "text",
    )

    def __init__(self, text: str, customer: str | None) -> None:
        self.text = text
        self.subject = _re2_subject(text)
        self.customer = customer
        self._customer_subject: str | bytes | None = None
        self._sentences: list[Span] | None = None
        self._sentence_starts: list[int] = []
        self._caps: dict[int, tuple[list[Span], list[Span]]] = {}

    @property
    def sentences(self) -> list[Span]:
        """Sentence spans, without surrounding white space."""
        if self._sentences is None:
            text = self.text
            spans: list[Span] = []
            position = 0
            for boundary in _SENTENCE_END.finditer(text):
                end = boundary.start() if text[boundary.start()] == "\n" else boundary.end()
                self._add_sentence(spans, position, end)
                position = boundary.end()
            self._add_sentence(spans, position, len(text))
            self._sentences = spans
            self._sentence_starts = [start for start, _ in spans]
        return self._sentences

    def _add_sentence(self, spans: list[Span], start: int, end: int) -> None:
        first = _NON_SPACE.search(self.text, start, end)
        if first is None:
            return
        start = first.start()
        while end > start and self.text[end - 1].isspace():
            end -= 1
        spans.append((start, end))

    def sentence_index(self, offset: int) -> int:
        """The index of the sentence holding ``offset`` (or the one before a gap)."""
        sentences = self.sentences
        return max(0, bisect.bisect_right(self._sentence_starts, offset) - 1) if sentences else 0

    def customer_says(self, matcher: _Matcher) -> bool:
        """Whether the customer's last message matches (no message: no)."""
        if self.customer is None:
            return False
        if self._customer_subject is None:
            self._customer_subject = _re2_subject(self.customer)
        return matcher.search(self.customer, self._customer_subject)

    def spans(self, matcher: _Matcher) -> list[Span]:
        """``matcher``'s matches in the reply."""
        return matcher.spans(self.text, self.subject)

    def says(self, matcher: _Matcher) -> bool:
        """Whether ``matcher`` matches anywhere in the reply."""
        return matcher.search(self.text, self.subject)

    def capitals(self, reading: _Capitals) -> tuple[list[Span], list[Span]]:
        """(shouting spans, unexplained acronym spans) under ``reading``; computed once."""
        key = id(reading)
        if key not in self._caps:
            self._caps[key] = reading.read(self.text)
        return self._caps[key]


class _Capitals:
    """Reads words in capitals as plain acronyms, jargon acronyms or shouting."""

    __slots__ = ("_emphasis", "_known", "_max_letters", "_plain", "_word_like")

    def __init__(self, spec: CapitalsSpec) -> None:
        self._plain = frozenset(_caps_key(word) for word in spec.plain_acronyms)
        self._known = frozenset(_caps_key(word) for word in spec.known_acronyms)
        self._emphasis = frozenset(_caps_key(word) for word in spec.emphasis_words)
        self._max_letters = spec.max_acronym_letters
        self._word_like = spec.word_like_min_letters

    def _kind(self, key: str) -> str:
        if key in self._plain:
            return "plain"
        if key in self._known:
            return "acronym"
        if key in self._emphasis:
            return "emphasis"
        letters = sum(1 for ch in key if ch.isalpha())
        if letters > self._max_letters and not key[0].isdigit():
            return "long"
        if (
            self._word_like is not None
            and letters >= self._word_like
            and sum(1 for ch in key if ch in _VOWELS) >= 2  # noqa: PLR2004 - two vowels
        ):
            return "name"
        return "acronym"

    def read(self, text: str) -> tuple[list[Span], list[Span]]:
        """Shouting spans (runs and lone emphatic words) and first unexplained acronyms."""
        tokens: list[tuple[int, int, str, str]] = []  # start, end, key, kind
        for match in _CAPS_TOKEN.finditer(text):
            start, end = match.span()
            if _linked(text, start, end):  # part of an id, a code or an address: ORD-1234
                continue
            key = _caps_key(match.group())
            tokens.append((start, end, key, self._kind(key)))
        shouting: list[Span] = []
        in_shouting: set[int] = set()
        index = 0
        while index < len(tokens):
            run_end = index
            while run_end + 1 < len(tokens) and _CAPS_RUN_GAP.fullmatch(
                text, tokens[run_end][1], tokens[run_end + 1][0]
            ):
                run_end += 1
            run = tokens[index : run_end + 1]
            loud = any(kind in {"emphasis", "long"} for *_, kind in run)
            if loud and (len(run) > 1 or run[0][3] != "plain"):
                shouting.append((run[0][0], run[-1][1]))
                in_shouting.update(range(index, run_end + 1))
            index = run_end + 1
        occurrences: dict[str, list[Span]] = {}
        for position, (start, end, key, kind) in enumerate(tokens):
            if kind == "acronym" and position not in in_shouting:
                occurrences.setdefault(key, []).append((start, end))
        unexplained = [
            spans[0]
            for spans in occurrences.values()
            if not any(_explained(text, start, end) for start, end in spans)
        ]
        unexplained.sort()
        return shouting, unexplained


def _caps_key(word: str) -> str:
    key = word.replace("\u2019", "'")
    return key[:-1] if key.endswith("s") and len(key) > 2 else key  # noqa: PLR2004 - "IDs"


def _linked(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    if before in _LINKED:
        return True
    if after in "-/#@_":
        return True
    return after in ".:" and end + 1 < len(text) and text[end + 1].isalnum()


def _explained(text: str, start: int, end: int) -> bool:
    """``expansion (ACR)``, ``ACR (expansion)``, or ``ACR stands for / means ...``."""
    if start > 0 and text[start - 1] == "(" and text[end : end + 1] == ")":
        return True
    following = text[end : end + 4].lstrip(" ")
    if following.startswith("("):
        return True
    return _EXPLAINED_AFTER.match(text, end) is not None


# --- compiled rules -----------------------------------------------------------------------------


class _Rule:
    """A compiled rule: finds spans in one reply."""

    __slots__ = ("category", "rule_id", "suggestion")

    def __init__(self, category: str, rule_id: str, suggestion: str) -> None:
        self.category = category
        self.rule_id = rule_id
        self.suggestion = suggestion

    def spans(self, reply: _Reply) -> Iterable[Span]:
        """Where this rule's advice applies, sorted by start."""
        raise NotImplementedError


class _MatchRule(_Rule):
    __slots__ = ("_main", "_not_in_reply", "_not_in_sentence", "_not_overlapping", "_when")

    def __init__(self, category: str, spec: MatchRule, lexicons: Mapping[str, Lexicon]) -> None:
        super().__init__(category, spec.id, spec.suggestion)
        self._main = _Matcher(spec.phrases, spec.patterns)
        self._not_overlapping = _lexicon_matcher(spec.unless_overlapping, lexicons)
        self._not_in_sentence = _lexicon_matcher(spec.unless_in_sentence, lexicons)
        self._not_in_reply = _lexicon_matcher(spec.unless_in_reply, lexicons)
        self._when = (
            None if spec.when_customer is None else _lexicon_matcher(spec.when_customer, lexicons)
        )

    def spans(self, reply: _Reply) -> Iterable[Span]:
        if self._when is not None and not reply.customer_says(self._when):
            return ()
        found = reply.spans(self._main)
        if not found:
            return ()
        if self._not_in_reply and reply.says(self._not_in_reply):
            return ()
        if self._not_overlapping:
            found = _without_overlaps(found, reply.spans(self._not_overlapping))
        if found and self._not_in_sentence:
            excused = {
                reply.sentence_index(start) for start, _ in reply.spans(self._not_in_sentence)
            }
            found = [span for span in found if reply.sentence_index(span[0]) not in excused]
        return found


def _without_overlaps(found: list[Span], exceptions: list[Span]) -> list[Span]:
    """``found`` less every span that overlaps one of ``exceptions`` (both sorted by start)."""
    if not exceptions:
        return found
    kept: list[Span] = []
    starts = [start for start, _ in exceptions]
    # Exceptions' ends, as a running maximum, so one bisect answers "does any end after s?".
    reach: list[int] = []
    furthest = -1
    for _, end in exceptions:
        furthest = max(furthest, end)
        reach.append(furthest)
    for start, end in found:
        before = bisect.bisect_left(starts, end)  # exceptions starting before this span ends
        if before == 0 or reach[before - 1] <= start:
            kept.append((start, end))
    return kept


class _MissingRule(_Rule):
    __slots__ = ("_at", "_expect", "_when")

    def __init__(self, category: str, spec: MissingRule, lexicons: Mapping[str, Lexicon]) -> None:
        super().__init__(category, spec.id, spec.suggestion)
        self._when = _lexicon_matcher(spec.when_customer, lexicons)
        self._expect = _lexicon_matcher(spec.expect_in_reply, lexicons)
        self._at = spec.at

    def spans(self, reply: _Reply) -> Iterable[Span]:
        if not reply.customer_says(self._when) or reply.says(self._expect):
            return ()
        sentences = reply.sentences
        if not sentences:
            return ()
        if self._at == "first_sentence":
            return (sentences[0],)
        if self._at == "last_sentence":
            return (sentences[-1],)
        return ((sentences[0][0], sentences[-1][1]),)


class _SentenceLengthRule(_Rule):
    __slots__ = ("_max_words",)

    def __init__(self, category: str, spec: SentenceLengthRule) -> None:
        super().__init__(category, spec.id, spec.suggestion)
        self._max_words = spec.max_words

    def spans(self, reply: _Reply) -> Iterable[Span]:
        text = reply.text
        return [
            (start, end)
            for start, end in reply.sentences
            if end - start > self._max_words  # cannot hold more words than characters
            and len(_WORD.findall(text, start, end)) > self._max_words
        ]


class _CapitalsRule(_Rule):
    __slots__ = ("_reading", "_shouting")

    def __init__(self, category: str, spec: AcronymRule | AllCapsRule, reading: _Capitals) -> None:
        super().__init__(category, spec.id, spec.suggestion)
        self._reading = reading
        self._shouting = isinstance(spec, AllCapsRule)

    def spans(self, reply: _Reply) -> Iterable[Span]:
        shouting, acronyms = reply.capitals(self._reading)
        return shouting if self._shouting else acronyms


def _compile_rule(category: str, spec: RuleSpec, rules: ToneRules, reading: _Capitals) -> _Rule:
    if isinstance(spec, MatchRule):
        return _MatchRule(category, spec, rules.lexicons)
    if isinstance(spec, MissingRule):
        return _MissingRule(category, spec, rules.lexicons)
    if isinstance(spec, SentenceLengthRule):
        return _SentenceLengthRule(category, spec)
    return _CapitalsRule(category, spec, reading)


@dataclass(frozen=True, slots=True)
class _CompiledRules:
    by_channel: Mapping[str, tuple[_Rule, ...]]
    readability: ReadabilitySpec
    limits: LimitsSpec


def _compile(rules: ToneRules) -> _CompiledRules:
    reading = _Capitals(rules.capitals)
    by_channel: dict[str, list[_Rule]] = {channel: [] for channel in CHANNELS}
    for category in CATEGORIES:  # a fixed order, whatever the file's
        spec = rules.categories.get(category)
        if spec is None or not spec.enabled:
            continue
        compiled = [
            _compile_rule(category, rule, rules, reading) for rule in spec.rules if rule.enabled
        ]
        for channel in spec.channels:
            by_channel[channel].extend(compiled)
    return _CompiledRules(
        by_channel={channel: tuple(found) for channel, found in by_channel.items()},
        readability=rules.readability,
        limits=rules.limits,
    )


# --- readability --------------------------------------------------------------------------------

# textstat memoises every step on the text (lru_cache, 128 texts each): clear those memos after
# each reply, so they hold neither customers' words nor megabytes. Its loaded dictionaries
# (textstat.backend.utils) stay cached.
_TEXTSTAT_MEMOS: tuple[Any, ...] = tuple(
    value
    for module in (
        textstat.backend.counts,
        textstat.backend.metrics,
        textstat.backend.selections,
        textstat.backend.transformations,
    )
    for value in vars(module).values()
    if callable(getattr(value, "cache_clear", None))
)


def measure_readability(text: str, spec: ReadabilitySpec | None = None) -> Readability | None:
    """Flesch reading ease and Flesch-Kincaid grade (textstat), or None for very short text."""
    spec = spec or ReadabilitySpec()
    sample = text[: spec.max_chars]
    try:
        words = int(textstat.lexicon_count(sample))
        if words < spec.min_words:
            return None
        return Readability(
            flesch_reading_ease=round(float(textstat.flesch_reading_ease(sample)), 1),
            grade=round(float(textstat.flesch_kincaid_grade(sample)), 1),
            words=words,
            sentences=int(textstat.sentence_count(sample)),
        )
    finally:
        for memo in _TEXTSTAT_MEMOS:
            memo.cache_clear()


def _warm_up() -> None:
    """Load textstat's pronouncing dictionary now (~0.5 s) rather than in the first request."""
    measure_readability("Warm up the syllable counter with a few plain words.")


# --- the advisor --------------------------------------------------------------------------------


class ToneAdvisor:
    """Advice on the tone of replies, from a tone policy compiled once (per tenant) on creation."""

    def __init__(self, policy: TonePolicy, *, warm_up: bool = True) -> None:
        self._policy = policy
        self._default = _compile(policy.default)
        self._tenants = {name: _compile(rules) for name, rules in policy.tenants.items()}
        if warm_up:
            _warm_up()

    @property
    def policy(self) -> TonePolicy:
        """The policy the advisor was built from."""
        return self._policy

    def advise(
        self,
        text: str,
        *,
        tenant: str | None = None,
        channel: str = "message",
        customer_last_message: str | None = None,
    ) -> ToneAdvice:
        """Advice on ``text``: findings (span, category, rule, suggestion) and readability."""
        compiled = self._tenants.get(tenant, self._default) if tenant else self._default
        rules = compiled.by_channel.get(channel)
        if rules is None:
            raise InvalidInputError(
                f"channel: unknown channel {channel!r} (expected one of: {', '.join(CHANNELS)})"
            )
        if not text or text.isspace():
            return ToneAdvice(findings=(), readability=None)
        limit = compiled.limits.max_chars
        customer = customer_last_message
        reply = _Reply(text[:limit], None if customer is None else customer[:limit])
        most = compiled.limits.max_findings_per_rule
        findings = {
            ToneFinding(start, end, rule.category, rule.rule_id, rule.suggestion)
            for rule in rules
            for start, end in itertools.islice(rule.spans(reply), most)
        }
        ordered = tuple(sorted(findings, key=lambda f: (f.start, f.end, f.category, f.rule)))
        return ToneAdvice(
            findings=ordered, readability=measure_readability(text, compiled.readability)
        )

    def __repr__(self) -> str:
        return f"ToneAdvisor(source={self._policy.source!r}, tenants={len(self._tenants)})"
