r"""Organisation-specific identifiers and per-tenant allow/deny lists, configured in YAML.

``policies/recognizers.yaml`` declares identifiers such as account ids, order ids, usernames
and member numbers (regex + context words + score) without code. ``policies/tenants.yaml``
holds each tenant's allow-list (the company's own name and support address are not PII) and
deny-list (values always redacted). Both are validated on load; an error names the entry.

Time: a user's regex must not let one text hold a worker (a backtracking regex can take
exponential or polynomial time in the text). Each pattern runs on one of two engines:

- RE2 (``google-re2``), which guarantees time linear in the text, for every pattern it accepts:
  named groups and ``(?i)`` included, but not lookarounds or backreferences. Its ``\d``,
  ``\w`` and ``\b`` are ASCII, where Python's are Unicode.
- Patterns RE2 refuses (lookarounds, backreferences, possessive or atomic groups) run on the
  ``regex`` module only if a static check proves the backtracking bounded at every start
  position: no unbounded repetition (``*``, ``+``, ``{n,}``) and at most
  MAX_BACKTRACKING_PATHS ways of reading the pattern. Otherwise loading fails with a
  message naming the file, the recognizer and the pattern index. They also run with a time
  limit, and running out of it fails closed (DetectionFailedError), never open.
"""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING, Annotated, Any

import re2  # type: ignore[import-untyped] # google-re2 ships no type information
import regex
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from guard.detection.recognizers.base import (
    REGEX_TIMEOUT_SECONDS,
    Finding,
    GuardRecognizer,
    digit_count_at_least,
    regex_timed_out,
)
from guard.errors import PolicyError
from guard.policyfiles import describe_validation_error, read_policy_yaml

if TYPE_CHECKING:
    import sre_parse as _parser  # the typed name of the module below
    from collections.abc import Iterable, Iterator, Sequence
    from pathlib import Path
else:
    from re import _parser  # Python's own regex parser; ``sre_parse`` is its deprecated alias

#: Most ways a pattern that RE2 cannot run may be read at one start position (the product of
#: its repetition counts and alternatives); past it backtracking can explode, so it is refused.
MAX_BACKTRACKING_PATHS = 10_000

ENTITY_NAME = r"^[A-Z][A-Z0-9_]{1,63}$"


class PatternSpec(BaseModel):
    """One regex of a custom recognizer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regex: str = Field(min_length=1, max_length=2000)
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    ignore_case: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if compiled.match(""):
            raise ValueError("the regular expression matches the empty string")
        if _re2(value, ignore_case=False) is None:
            _check_bounded_backtracking(value)
        return value


class RecognizerSpec(BaseModel):
    """A custom recognizer: one entity type, one or more patterns, optional context words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    entity: str = Field(pattern=ENTITY_NAME)
    patterns: list[PatternSpec] = Field(min_length=1)
    context: list[str] = Field(default_factory=list)
    description: str = ""


class RecognizersFile(BaseModel):
    """The whole of ``policies/recognizers.yaml``."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=1)
    recognizers: list[RecognizerSpec] = Field(default_factory=list)

    @field_validator("recognizers")
    @classmethod
    def _unique_names(cls, value: list[RecognizerSpec]) -> list[RecognizerSpec]:
        seen: set[str] = set()
        for spec in value:
            if spec.name in seen:
                raise ValueError(f"recognizer name {spec.name!r} is used twice")
            seen.add(spec.name)
        return value


class DenyEntry(BaseModel):
    """A value a tenant always redacts, and the entity type it is reported as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str = Field(min_length=1, max_length=500)
    entity: str = Field(default="DENY_LIST", pattern=ENTITY_NAME)


class TenantLists(BaseModel):
    """A tenant's allow-list and deny-list (matched case-insensitively, as whole words)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(default_factory=list)
    deny: list[DenyEntry | Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list
    )

    def deny_entries(self) -> list[DenyEntry]:
        """Deny entries with their entity types filled in."""
        return [e if isinstance(e, DenyEntry) else DenyEntry(value=e) for e in self.deny]

    def merged(self, other: TenantLists) -> TenantLists:
        """A new list: these entries and ``other``'s (defaults + tenant)."""
        return TenantLists(allow=[*self.allow, *other.allow], deny=[*self.deny, *other.deny])


class TenantsFile(BaseModel):
    """The whole of ``policies/tenants.yaml``."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=1)
    default: TenantLists = Field(default_factory=TenantLists)
    tenants: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")], TenantLists] = (
        Field(default_factory=dict)
    )

    def lists_for(self, tenant: str | None) -> TenantLists:
        """The default lists plus the tenant's own."""
        if tenant is None or tenant not in self.tenants:
            return self.default
        return self.default.merged(self.tenants[tenant])


def _describe(path: Path, data: Any, exc: ValidationError) -> str:  # noqa: ANN401
    """Name the bad entry by its index and, where it has one, its name."""

    def where(loc: Sequence[int | str]) -> str:
        place = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "recognizers" and isinstance(loc[1], int):  # noqa: PLR2004
            try:
                name = data["recognizers"][loc[1]].get("name")
            except (KeyError, IndexError, TypeError, AttributeError):
                name = None
            if name:
                place = f"recognizer {name!r} ({place})"
        return place

    return describe_validation_error(path, exc, where=where)


def load_recognizers_file(path: Path) -> RecognizersFile:
    """Read and validate ``recognizers.yaml``; a missing file means no custom recognizers."""
    if not path.exists():
        return RecognizersFile(version=1)
    data = read_policy_yaml(path)
    try:
        return RecognizersFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_describe(path, data, exc)) from None


def load_tenants_file(path: Path) -> TenantsFile:
    """Read and validate ``tenants.yaml``; a missing file means empty lists."""
    if not path.exists():
        return TenantsFile(version=1)
    data = read_policy_yaml(path)
    try:
        return TenantsFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_describe(path, data, exc)) from None


def _re2(pattern: str, *, ignore_case: bool) -> Any:  # noqa: ANN401 - re2 is untyped
    """The pattern compiled by RE2, or None when RE2 does not accept its syntax."""
    options = re2.Options()
    options.log_errors = False  # a refused pattern is an answer here, not an error to log
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(pattern, options)
    except re2.error:
        return None


def _check_bounded_backtracking(pattern: str) -> None:
    """Refuse a pattern whose backtracking is not bounded at each start position."""
    paths = _paths(_parser.parse(pattern).data)
    if paths > MAX_BACKTRACKING_PATHS:
        raise ValueError(
            "the regular expression can backtrack too much: it uses lookarounds or "
            "backreferences, so it cannot run on the linear-time engine (RE2), and it "
            f"can be read in more than {MAX_BACKTRACKING_PATHS} ways at one position; "
            "bound or remove nested repetitions, or drop the lookarounds"
        )


def _paths(items: Iterable[Any]) -> int:
    r"""How many ways ``items`` (a parsed pattern) can be read at one position, capped.

    Raises ValueError on an unbounded repetition: with lookarounds or backreferences such a
    pattern has no bound on its work per position (``(?=\w*x)`` scans to the end of the text
    from every position: quadratic).
    """
    total = 1
    for op, argument in items:
        total = min(total * _item_paths(op, argument), MAX_BACKTRACKING_PATHS + 1)
    return total


def _item_paths(op: Any, argument: Any) -> int:  # noqa: ANN401, PLR0911 - one case per opcode
    constants = _parser
    if op in (constants.MAX_REPEAT, constants.MIN_REPEAT, constants.POSSESSIVE_REPEAT):
        low, high, body = argument
        if high == constants.MAXREPEAT:
            raise ValueError(
                "the regular expression has an unbounded repetition (*, + or {n,}) and "
                "lookarounds or backreferences: RE2 cannot run it, and on the backtracking "
                "engine it may take time quadratic in the text; bound it, e.g. {0,40}"
            )
        inner = _paths(body)
        ways = sum(min(inner**count, MAX_BACKTRACKING_PATHS + 1) for count in range(low, high + 1))
        return int(min(ways, MAX_BACKTRACKING_PATHS + 1))
    if op is constants.BRANCH:
        return min(sum(_paths(branch) for branch in argument[1]), MAX_BACKTRACKING_PATHS + 1)
    if op is constants.SUBPATTERN:
        return _paths(argument[-1])
    if op in (constants.ASSERT, constants.ASSERT_NOT):
        return _paths(argument[1])
    if op is constants.ATOMIC_GROUP:
        return _paths(argument)
    if op is constants.GROUPREF_EXISTS:
        return _paths(argument[1]) + (_paths(argument[2]) if argument[2] is not None else 1)
    return 1


_DIGITS = frozenset("0123456789")
_HAS_A_DIGIT = digit_count_at_least(1)


def needs_a_digit(pattern: str) -> bool:
    r"""Whether every match of ``pattern`` holds a digit: then text without one is skipped.

    Read off Python's parse of the pattern: a digit literal or a class of digits only (``\d``,
    ``[0-9]``), repeated at least once, in every branch, or in a positive lookaround (the text
    holds what it looks at). A pattern Python's parser cannot read, or reads with a warning
    (syntax only RE2 or ``regex`` knows) gets no pre-check: it runs on every text, as before.
    The pre-check invariant (tests/detection/test_prechecks.py) holds the result to what the
    recognizer finds.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            items = _parser.parse(pattern).data
        except (re.error, RecursionError, OverflowError, ValueError):
            return False
    if caught:  # "possible nested set": another engine may read the pattern otherwise
        return False
    return _sequence_needs_a_digit(items)


def _sequence_needs_a_digit(items: Iterable[Any]) -> bool:
    return any(_item_needs_a_digit(op, argument) for op, argument in items)


def _item_needs_a_digit(op: Any, argument: Any) -> bool:  # noqa: ANN401, PLR0911 - per opcode
    constants = _parser
    if op is constants.LITERAL:
        return chr(argument) in _DIGITS
    if op is constants.IN:
        return _digits_only(argument)
    if op in (constants.MAX_REPEAT, constants.MIN_REPEAT, constants.POSSESSIVE_REPEAT):
        low, _, body = argument
        return bool(low >= 1 and _sequence_needs_a_digit(body))
    if op is constants.SUBPATTERN:
        return _sequence_needs_a_digit(argument[-1])
    if op is constants.ATOMIC_GROUP:
        return _sequence_needs_a_digit(argument)
    if op is constants.BRANCH:
        return all(_sequence_needs_a_digit(branch) for branch in argument[1])
    if op is constants.ASSERT:  # a positive lookahead or lookbehind
        return _sequence_needs_a_digit(argument[1])
    return False


def _digits_only(items: Sequence[tuple[Any, Any]]) -> bool:
    """Whether a character class matches nothing but digits (and is not negated)."""
    constants = _parser
    for op, argument in items:
        if op is constants.LITERAL and chr(argument) in _DIGITS:
            continue
        if op is constants.RANGE and ord("0") <= argument[0] and argument[1] <= ord("9"):
            continue
        if op is constants.CATEGORY and argument is constants.CATEGORY_DIGIT:
            continue
        return False
    return bool(items)


class UserPatternRecognizer(GuardRecognizer):
    """A pattern from ``recognizers.yaml``, on RE2 if it can, else on ``regex`` with a limit."""

    def __init__(
        self,
        *,
        entity: str,
        name: str,
        pattern: str,
        score: float,
        ignore_case: bool,
        context: Sequence[str],
    ) -> None:
        super().__init__(
            entity=entity,
            name=name,
            context=context,
            precheck=_HAS_A_DIGIT if needs_a_digit(pattern) else None,
        )
        self.score = score
        self.regex_timeout_seconds = REGEX_TIMEOUT_SECONDS
        self._re2 = _re2(pattern, ignore_case=ignore_case)
        self._regex = (
            None
            if self._re2 is not None
            else regex.compile(pattern, regex.IGNORECASE if ignore_case else 0)
        )
        groups = self._re2.groupindex if self._re2 is not None else self._regex_groups()
        self.group: int = int(groups.get("value", 0))

    def _regex_groups(self) -> dict[str, int]:
        assert self._regex is not None  # noqa: S101 - called only when RE2 refused the pattern
        return dict(self._regex.groupindex)

    @property
    def engine(self) -> str:
        """Which engine runs the pattern: "re2" (linear time) or "regex" (bounded, limited)."""
        return "re2" if self._re2 is not None else "regex"

    def find(self, text: str) -> Iterable[Finding]:
        """Every match (or its ``value`` group); a time-out raises DetectionFailedError."""
        for start, end in self._spans(text):
            if 0 <= start < end:
                yield start, end, self.score

    def _spans(self, text: str) -> Iterator[tuple[int, int]]:
        if self._re2 is not None:
            for match in self._re2.finditer(text):
                yield match.span(self.group)
            return
        assert self._regex is not None  # noqa: S101 - one of the two engines is always set
        try:
            for match in self._regex.finditer(text, timeout=self.regex_timeout_seconds):
                yield match.span(self.group)
        except TimeoutError:
            raise regex_timed_out(self.name, self.regex_timeout_seconds) from None


def build_custom_recognizers(spec_file: RecognizersFile) -> list[UserPatternRecognizer]:
    """One recognizer per pattern, named after its recognizer entry and the pattern's index."""
    return [
        UserPatternRecognizer(
            entity=spec.entity,
            name=f"custom:{spec.name}:{index}",
            pattern=pattern.regex,
            score=pattern.score,
            ignore_case=pattern.ignore_case,
            context=spec.context,
        )
        for spec in spec_file.recognizers
        for index, pattern in enumerate(spec.patterns)
    ]
