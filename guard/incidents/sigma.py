"""Sigma detection rules over guard's audit trail: load, validate, evaluate incrementally, export.

Rules are data in the open Sigma format, parsed by pySigma; guard evaluates them itself, one
audit event at a time in sequence order, so detection needs no SIEM and a replay of the same
events gives the same hits (windows run on the events' ``ts``, never on the wall clock).

Threat: a detection rule that silently never fires is a gap in breach detection nobody sees. So a
rule is refused at load, with its file, rule id and field, when it names a field guard does not
log (see :mod:`guard.incidents.logsource`) or uses a Sigma feature this engine does not evaluate
(keyword searches, ``lt`` correlation conditions, unsupported modifiers). Rule regular
expressions run on RE2 (time linear in the text) and wildcards on a linear matcher, so a rule
cannot make the scanner backtrack for minutes on one event.

Speed: each rule is compiled once into closures. Events reach only the rules whose condition can
match their ``action`` (derived from the condition and memoised per action), ``details`` and
``entity_counts`` JSON is decoded only when a rule reads it, once per event, and ``hour`` /
``weekday`` are computed only when a rule reads them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import re2  # type: ignore[import-untyped] # google-re2 ships no type information
import yaml
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.exceptions import SigmaError
from sigma.modifiers import (
    SigmaAllModifier,
    SigmaCaseSensitiveModifier,
    SigmaContainsModifier,
    SigmaEndswithModifier,
    SigmaExistsModifier,
    SigmaGreaterThanEqualModifier,
    SigmaGreaterThanModifier,
    SigmaLessThanEqualModifier,
    SigmaLessThanModifier,
    SigmaNegateModifier,
    SigmaNotEqualModifier,
    SigmaRegularExpressionDotAllFlagModifier,
    SigmaRegularExpressionIgnoreCaseFlagModifier,
    SigmaRegularExpressionModifier,
    SigmaRegularExpressionMultilineFlagModifier,
    SigmaStartswithModifier,
    reverse_modifier_mapping,
)
from sigma.plugins import InstalledSigmaPlugins
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.rule.base import SigmaYAMLLoader
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCompareExpression,
    SigmaExists,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from guard.incidents import logsource
from guard.incidents.errors import IncidentPolicyError, RuleError, RuleExportError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from sigma.conversion.base import Backend
    from sigma.modifiers import SigmaModifier
    from sigma.rule.base import SigmaRuleBase

#: Contributing event seqs a hit carries at most (the newest are kept).
MAX_HIT_SEQS = 1000
#: Events one correlation group keeps in its window at most; older ones are dropped first.
MAX_WINDOW_EVENTS = 100_000
LEVELS = ("informational", "low", "medium", "high", "critical")
#: Distinct index keys (action, decision, outcome) whose candidate rules are remembered.
_KEY_CACHE_SIZE = 4096


# ------------------------------------------------------------------------------ public records


@dataclass(frozen=True)
class RuleInfo:
    """What guard knows of one rule (detection or correlation)."""

    id: str
    name: str | None
    title: str
    description: str
    level: str
    kind: str
    tags: tuple[str, ...]
    runbook: str | None
    generates: bool
    source: str


@dataclass(frozen=True)
class Hit:
    """A rule matched: the events that made it match, summarised (never their content)."""

    rule: RuleInfo
    group: tuple[tuple[str, str | None], ...]
    tenant: str | None
    seqs: tuple[int, ...]
    customers: frozenset[str]
    entity_types: frozenset[str]
    actions: frozenset[str]
    first_ts: datetime
    last_ts: datetime
    count: int


# ------------------------------------------------------------------------------ event access

_EMPTY: Mapping[str, object] = MappingProxyType({})


def _decode(raw: object) -> Mapping[str, object]:
    """``details`` / ``entity_counts`` as a mapping, whether stored JSON text or a dict."""
    if raw is None:
        return _EMPTY
    if isinstance(raw, str):
        if raw == "{}":
            return _EMPTY
        try:
            value = json.loads(raw)
        except ValueError:
            return _EMPTY
        return value if isinstance(value, dict) else _EMPTY
    if isinstance(raw, dict):
        return raw
    return _EMPTY


def _positive_types(counts: Mapping[str, object]) -> frozenset[str]:
    return frozenset(
        name
        for name, count in counts.items()
        if isinstance(count, int) and not isinstance(count, bool) and count > 0
    )


@functools.lru_cache(maxsize=4096)
def _types_of_text(text: str) -> frozenset[str]:
    return _positive_types(_decode(text))


def _entity_key(raw: object) -> str | frozenset[str] | None:
    """A hashable stand-in for an event's entity counts (its JSON text, or its types)."""
    if raw is None or raw == "{}":
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        return _positive_types(raw) or None
    return None


def _types_of_key(key: str | frozenset[str]) -> frozenset[str]:
    return _types_of_text(key) if isinstance(key, str) else key


def _timestamp(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    msg = "audit event 'ts' must be a datetime or ISO 8601 text"
    raise TypeError(msg)


class _Event:
    """One event being evaluated; decodes JSON columns and local time at most once, on demand."""

    __slots__ = ("_counts", "_details", "_local", "_ts", "row", "zone")

    def __init__(self, row: Mapping[str, Any], zone: ZoneInfo | None) -> None:
        self.row = row
        self.zone = zone
        self._details: Mapping[str, object] | None = None
        self._counts: Mapping[str, object] | None = None
        self._ts: datetime | None = None
        self._local: datetime | None = None

    def column(self, name: str) -> object:
        try:
            return self.row[name]
        except KeyError:
            return None

    def details(self) -> Mapping[str, object]:
        found = self._details
        if found is None:
            found = self._details = _decode(self.column("details"))
        return found

    def counts(self) -> Mapping[str, object]:
        found = self._counts
        if found is None:
            found = self._counts = _decode(self.column("entity_counts"))
        return found

    def ts(self) -> datetime:
        found = self._ts
        if found is None:
            found = self._ts = _timestamp(self.column("ts"))
        return found

    def local(self) -> datetime:
        found = self._local
        if found is None:
            ts = self.ts()
            if self.zone is not None:
                found = ts.astimezone(self.zone)
            else:
                found = ts if ts.tzinfo is UTC else ts.astimezone(UTC)
            self._local = found
        return found


def _getter(field: str) -> Callable[[_Event], object]:
    """How to read ``field`` (already validated) from an event."""
    if field == "hour":
        return lambda event: event.local().hour
    if field == "weekday":
        return lambda event: event.local().isoweekday()
    if field.startswith(logsource.DETAILS_PREFIX):
        key = field.removeprefix(logsource.DETAILS_PREFIX)
        return lambda event: event.details().get(key)
    if field.startswith(logsource.ENTITY_COUNTS_PREFIX):
        entity = field.removeprefix(logsource.ENTITY_COUNTS_PREFIX)
        return lambda event: event.counts().get(entity)

    def column(event: _Event) -> object:
        try:
            return event.row[field]
        except KeyError:
            return None

    return column


def _field_cost(field: str) -> int:
    """Relative cost of reading a field: AND terms are checked cheapest first."""
    if field in logsource.COLUMNS:
        return 0
    if field in logsource.DERIVED:
        return 1
    return 2


# ------------------------------------------------------------------------------ value matchers


def _text(value: object) -> str | None:
    """An event value as Sigma compares it to a string: 403 -> '403', True -> 'true'."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _number(value: object) -> int | float | None:
    """An event value as a number: 403 and '403' both; booleans are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class _Segment:
    """A run of a Sigma string between ``*`` wildcards: text, or literals and ``?`` as a regex."""

    text: str | None
    regex: re.Pattern[str] | None
    length: int

    @classmethod
    def of(cls, parts: Sequence[str | SpecialChars], *, lower: bool) -> _Segment:
        chars = [part.lower() if lower and isinstance(part, str) else part for part in parts]
        length = sum(len(c) if isinstance(c, str) else 1 for c in chars)
        if all(isinstance(c, str) for c in chars):
            return cls("".join(c for c in chars if isinstance(c, str)), None, length)
        # literals and '.' only, no quantifier: a search is linear in the text per position
        pattern = "".join(re.escape(c) if isinstance(c, str) else "." for c in chars)
        return cls(None, re.compile(pattern, re.DOTALL), length)

    def at(self, text: str, pos: int) -> bool:
        if self.text is not None:
            return text.startswith(self.text, pos)
        assert self.regex is not None  # noqa: S101 - one of the two is set
        return self.regex.match(text, pos) is not None

    def find(self, text: str, pos: int) -> int:
        """End of the leftmost occurrence at or after ``pos``, or -1."""
        if self.text is not None:
            found = text.find(self.text, pos)
            return -1 if found < 0 else found + self.length
        assert self.regex is not None  # noqa: S101 - one of the two is set
        match = self.regex.search(text, pos)
        return -1 if match is None else match.end()


def _glob(segments: Sequence[_Segment], text: str) -> bool:
    """Whether ``text`` matches the segments joined by ``*``: greedy leftmost, linear, exact."""
    first, *middle = segments
    if len(segments) == 1:
        return len(text) == first.length and first.at(text, 0)
    last = middle.pop()
    if not first.at(text, 0):
        return False
    pos = first.length
    for segment in middle:
        pos = segment.find(text, pos)
        if pos < 0:
            return False
    start = len(text) - last.length
    return start >= pos and last.at(text, start)


def _tokens(value: SigmaString) -> list[str | SpecialChars]:
    """The parts of a Sigma string with adjacent text merged and repeated ``*`` collapsed."""
    tokens: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, str):
            if tokens and isinstance(tokens[-1], str):
                tokens[-1] += part
            elif part:
                tokens.append(part)
        elif isinstance(part, SpecialChars) and not (
            part is SpecialChars.WILDCARD_MULTI and tokens and tokens[-1] is part
        ):
            tokens.append(part)
    return tokens


def _string_matcher(value: SigmaString) -> Callable[[object], bool]:  # noqa: PLR0911 - one per shape
    """Sigma string equality: case-insensitive unless ``cased``; ``*`` and ``?`` wildcards."""
    lower = not isinstance(value, SigmaCasedString)
    norm: Callable[[str], str] = str.lower if lower else str
    tokens = _tokens(value)
    multi = SpecialChars.WILDCARD_MULTI
    shape = tuple("*" if t is multi else "s" if isinstance(t, str) else "?" for t in tokens)
    literal = next((norm(t) for t in tokens if isinstance(t, str)), "")
    if shape == ():
        return lambda v: _text(v) == ""
    if shape == ("*",):
        return lambda v: v is not None
    if shape == ("s",):
        return lambda v: (t := _text(v)) is not None and norm(t) == literal
    if shape == ("*", "s"):
        return lambda v: (t := _text(v)) is not None and norm(t).endswith(literal)
    if shape == ("s", "*"):
        return lambda v: (t := _text(v)) is not None and norm(t).startswith(literal)
    if shape == ("*", "s", "*"):
        return lambda v: (t := _text(v)) is not None and literal in norm(t)
    runs: list[list[str | SpecialChars]] = [[]]
    for token in tokens:
        if token is multi:
            runs.append([])
        else:
            runs[-1].append(token)
    segments = tuple(_Segment.of(run, lower=lower) for run in runs)

    def glob(v: object) -> bool:
        t = _text(v)
        return t is not None and _glob(segments, norm(t))

    return glob


def _literal_of(value: object) -> str | None:
    """The lower-cased literal of a plain case-insensitive Sigma string, else None."""
    if type(value) is SigmaString and all(isinstance(p, str) for p in value.s):
        return "".join(p for p in value.s if isinstance(p, str)).lower()
    return None


def _re2_subject(text: str) -> str | bytes:
    # ASCII as bytes spares the binding its UTF-8 offset conversion (see guard.messages.tone)
    return text.encode("ascii") if text.isascii() else text


def _regex_matcher(value: SigmaRegularExpression) -> Callable[[object], bool]:
    """``re``: an unanchored search on RE2 (case-sensitive unless ``|i``)."""
    flags = "".join(
        flag
        for sigma_flag, flag in (
            (SigmaRegularExpressionFlag.IGNORECASE, "i"),
            (SigmaRegularExpressionFlag.MULTILINE, "m"),
            (SigmaRegularExpressionFlag.DOTALL, "s"),
        )
        if sigma_flag in value.flags
    )
    pattern = str(value.regexp)
    compiled = re2.compile(f"(?{flags}){pattern}" if flags else pattern)
    search = compiled.search

    def matcher(v: object) -> bool:
        t = _text(v)
        return t is not None and search(_re2_subject(t)) is not None

    return matcher


_COMPARE: dict[CompareOperators, Callable[[float, float], bool]] = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
    CompareOperators.NEQ: lambda a, b: a != b,
}


def _compare_matcher(value: SigmaCompareExpression) -> Callable[[object], bool]:
    op = _COMPARE[value.op]
    bound = value.number.number

    def matcher(v: object) -> bool:
        number = _number(v)
        return number is not None and op(number, bound)

    return matcher


def _number_matcher(value: SigmaNumber) -> Callable[[object], bool]:
    target = value.number

    def matcher(v: object) -> bool:
        number = _number(v)
        return number is not None and number == target

    return matcher


def _bool_matcher(value: SigmaBool) -> Callable[[object], bool]:
    target = value.boolean
    text = "true" if target else "false"

    def matcher(v: object) -> bool:
        if isinstance(v, bool):
            return v is target
        return isinstance(v, str) and v.lower() == text

    return matcher


def _matcher(value: object) -> Callable[[object], bool]:  # noqa: PLR0911 - one per type
    """A predicate on an event value for one Sigma value (types checked at load)."""
    if isinstance(value, SigmaString):
        return _string_matcher(value)
    if isinstance(value, SigmaRegularExpression):
        return _regex_matcher(value)
    if isinstance(value, SigmaCompareExpression):
        return _compare_matcher(value)
    if isinstance(value, SigmaNumber):
        return _number_matcher(value)
    if isinstance(value, SigmaBool):
        return _bool_matcher(value)
    if isinstance(value, SigmaNull):
        return lambda v: v is None
    if isinstance(value, SigmaExists):
        return (lambda v: v is not None) if value.exists else (lambda v: v is None)
    msg = f"unsupported Sigma value type {type(value).__name__}"  # pragma: no cover - refused
    raise TypeError(msg)  # pragma: no cover - refused at load


def _any_matcher(values: Sequence[object]) -> Callable[[object], bool]:
    """One predicate for a list of values (OR): plain strings become one set lookup."""
    literals = frozenset(lit for v in values if (lit := _literal_of(v)) is not None)
    others = tuple(_matcher(v) for v in values if _literal_of(v) is None)
    if not others:

        def in_set(v: object) -> bool:
            t = v if type(v) is str else _text(v)
            return t is not None and t.lower() in literals

        return in_set

    def any_of(v: object) -> bool:
        if literals:
            t = v if type(v) is str else _text(v)
            if t is not None and t.lower() in literals:
                return True
        return any(matcher(v) for matcher in others)

    return any_of


# ------------------------------------------------------------------------------ conditions


def _all_of(preds: list[Callable[[_Event], bool]]) -> Callable[[_Event], bool]:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:  # noqa: PLR2004 - the common cases, unrolled
        a, b = preds
        return lambda event: a(event) and b(event)
    if len(preds) == 3:  # noqa: PLR2004 - same
        a, b, c = preds
        return lambda event: a(event) and b(event) and c(event)
    ordered = tuple(preds)

    def every(event: _Event) -> bool:
        for pred in ordered:  # noqa: SIM110 - a plain loop is twice as fast as all(genexpr)
            if not pred(event):
                return False
        return True

    return every


def _any_of(preds: list[Callable[[_Event], bool]]) -> Callable[[_Event], bool]:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:  # noqa: PLR2004 - the common cases, unrolled
        a, b = preds
        return lambda event: a(event) or b(event)
    if len(preds) == 3:  # noqa: PLR2004 - same
        a, b, c = preds
        return lambda event: a(event) or b(event) or c(event)
    ordered = tuple(preds)

    def some(event: _Event) -> bool:
        for pred in ordered:  # noqa: SIM110 - a plain loop is twice as fast as any(genexpr)
            if pred(event):
                return True
        return False

    return some


#: Distinct text values whose match result one field test remembers.
_MEMO_SIZE = 4096


def _field_pred(field: str, values: Sequence[object]) -> tuple[Callable[[_Event], bool], int]:
    """A test of one field against one value (or any of several), and its relative cost.

    Text values are mostly few and repeated (actions, decisions, reasons, statuses): the result
    for each is remembered, so a rule usually costs one dict lookup per test.
    """
    match = _matcher(values[0]) if len(values) == 1 else _any_matcher(values)
    slow = any(isinstance(v, SigmaRegularExpression) for v in values)
    cost = _field_cost(field) + (3 if slow else 0)
    memo: dict[str, bool] = {}

    def remembered(v: object) -> bool:
        if type(v) is not str:
            return match(v)
        found = memo.get(v)
        if found is None:
            found = match(v)
            if len(memo) < _MEMO_SIZE:
                memo[v] = found
        return found

    if field in logsource.COLUMNS:
        return _column_pred(field, match, memo), cost
    get = _getter(field)
    return (lambda event: remembered(get(event))), cost


def _column_pred(
    field: str, match: Callable[[object], bool], memo: dict[str, bool]
) -> Callable[[_Event], bool]:
    def column(event: _Event) -> bool:
        # the memo lookup inlined: this is the hottest function of a scan
        try:
            v = event.row[field]
        except KeyError:
            return match(None)
        if type(v) is not str:
            return match(v)
        found = memo.get(v)
        if found is None:
            found = match(v)
            if len(memo) < _MEMO_SIZE:
                memo[v] = found
        return found

    return column


def _flatten(node: object, kind: type) -> list[object]:
    """The operands of nested ANDs (or ORs) as one list: each is then ordered by cost."""
    if isinstance(node, kind):
        return [leaf for arg in getattr(node, "args", ()) for leaf in _flatten(arg, kind)]
    return [node]


def _compile(node: object) -> tuple[Callable[[_Event], bool], int]:
    """A condition tree (pySigma's parsed condition) as a predicate and its relative cost."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_pred(node.field, [node.value])
    if isinstance(node, ConditionNOT):
        inner, cost = _compile(node.args[0])
        # a negation rarely narrows much: test it after the positive terms of the same cost
        return (lambda event: not inner(event)), cost + 1
    if isinstance(node, ConditionAND):
        compiled = sorted(
            (_compile(arg) for arg in _flatten(node, ConditionAND)), key=lambda pc: pc[1]
        )
        return _all_of([pred for pred, _ in compiled]), sum(cost for _, cost in compiled)
    if isinstance(node, ConditionOR):
        compiled = _compile_or(_flatten(node, ConditionOR))
        return _any_of([pred for pred, _ in compiled]), sum(cost for _, cost in compiled)
    # keyword searches are refused at load; anything else is a pySigma shape we do not know
    msg = f"unsupported condition element {type(node).__name__}"
    raise _UnsupportedError(msg)


def _compile_or(args: Sequence[object]) -> list[tuple[Callable[[_Event], bool], int]]:
    """OR terms, with equality tests of one field merged into one read and one set lookup."""
    by_field: dict[str, list[object]] = {}
    rest: list[object] = []
    for arg in args:
        if isinstance(arg, ConditionFieldEqualsValueExpression):
            by_field.setdefault(arg.field, []).append(arg.value)
        else:
            rest.append(arg)
    compiled = [_field_pred(field, values) for field, values in by_field.items()]
    compiled.extend(_compile(arg) for arg in rest)
    return sorted(compiled, key=lambda pc: pc[1])


#: The columns events are indexed by: a rule reaches only the events whose values of these its
#: condition can match. They have few values, and most rules name at least one of them.
INDEX_FIELDS = ("action", "decision", "outcome")
_IndexKey = tuple[object, ...]


def _index_gate(node: object) -> Callable[[_IndexKey], bool] | None:  # noqa: PLR0911 - per node
    """A test on the index key that every event the condition matches passes (None: none).

    Events whose key fails it never reach the rule; over-approximating is always safe.
    """
    if isinstance(node, ConditionFieldEqualsValueExpression):
        if node.field not in INDEX_FIELDS:
            return None
        position = INDEX_FIELDS.index(node.field)
        match = _matcher(node.value)
        return lambda key: match(key[position])
    if isinstance(node, ConditionAND):
        gates = [gate for arg in node.args if (gate := _index_gate(arg)) is not None]
        if not gates:
            return None
        if len(gates) == 1:
            return gates[0]
        return lambda key: all(gate(key) for gate in gates)
    if isinstance(node, ConditionOR):
        optional = [_index_gate(arg) for arg in node.args]
        if any(gate is None for gate in optional):
            return None
        sure = [gate for gate in optional if gate is not None]
        return lambda key: any(gate(key) for gate in sure)
    return None


def _is_index_test(node: object) -> bool:
    return isinstance(node, ConditionFieldEqualsValueExpression) and node.field in INDEX_FIELDS


def _always(_event: _Event) -> bool:
    return True


def _condition_pred(
    node: object,
) -> tuple[Callable[[_Event], bool], Callable[[_IndexKey], bool] | None]:
    """A condition as (predicate, index gate).

    Terms of a top-level AND that test an index field are decided by the gate alone (an event
    only reaches the rule when they hold), so the predicate leaves them out.
    """
    gate = _index_gate(node)
    if _is_index_test(node):
        return _always, gate
    if isinstance(node, ConditionAND):
        terms = _flatten(node, ConditionAND)
        rest = [term for term in terms if not _is_index_test(term)]
        if not rest:
            return _always, gate
        compiled = sorted((_compile(term) for term in rest), key=lambda pc: pc[1])
        return _all_of([pred for pred, _ in compiled]), gate
    return _compile(node)[0], gate


class _UnsupportedError(Exception):
    """A rule uses something this engine does not evaluate (turned into a RuleError)."""


# ------------------------------------------------------------------------------ compiled rules


@dataclass(frozen=True)
class _Detection:
    info: RuleInfo
    pred: Callable[[_Event], bool]
    gate: Callable[[_IndexKey], bool] | None
    feeds: tuple[tuple[int, int, None], ...]  # (correlation index, member index, no origin)


@dataclass(frozen=True)
class _Correlation:
    info: RuleInfo
    kind: SigmaCorrelationType
    code: int  # _EVENT_COUNT, _VALUE_COUNT, _TEMPORAL or _ORDERED (cheaper to test than kind)
    span: timedelta
    members: tuple[str, ...]  # referenced rule ids, in the rule's order
    group_fields: tuple[str, ...]  # sorted
    group_of: tuple[Callable[[_Event], tuple[object, ...]], ...]  # per member: its group key
    value_getter: Callable[[_Event], object] | None
    check: Callable[[int], bool]  # the condition on the measured count
    feeds: tuple[tuple[int, int, None], ...]  # correlations over this one: (index, member, -)


_EVENT_COUNT, _VALUE_COUNT, _TEMPORAL, _ORDERED = range(4)
_CODES = {
    SigmaCorrelationType.EVENT_COUNT: _EVENT_COUNT,
    SigmaCorrelationType.VALUE_COUNT: _VALUE_COUNT,
    SigmaCorrelationType.TEMPORAL: _TEMPORAL,
    SigmaCorrelationType.TEMPORAL_ORDERED: _ORDERED,
}


def _key_of(
    getters: Sequence[Callable[[_Event], object]],
) -> Callable[[_Event], tuple[object, ...]]:
    """The group key of an event: its values of the group-by fields (unrolled for 0-2)."""
    if not getters:
        return lambda _event: ()
    if len(getters) == 1:
        (a,) = getters
        return lambda event: (a(event),)
    if len(getters) == 2:  # noqa: PLR2004 - unrolled
        a, b = getters
        return lambda event: (a(event), b(event))
    every = tuple(getters)
    return lambda event: tuple(get(event) for get in every)


def _check(op: SigmaCorrelationConditionOperator, threshold: float) -> Callable[[int], bool]:
    if op is SigmaCorrelationConditionOperator.GT:
        return lambda n: n > threshold
    if op is SigmaCorrelationConditionOperator.EQ:
        return lambda n: n == threshold
    return lambda n: n >= threshold


#: Correlation conditions a stream can decide when an event arrives.
_CONDITION_OPS = frozenset(
    {
        SigmaCorrelationConditionOperator.GT,
        SigmaCorrelationConditionOperator.GTE,
        SigmaCorrelationConditionOperator.EQ,
    }
)

_SUPPORTED_MODIFIERS: frozenset[type[SigmaModifier[Any, Any]]] = frozenset(
    {
        SigmaAllModifier,
        SigmaNegateModifier,
        SigmaCaseSensitiveModifier,
        SigmaContainsModifier,
        SigmaStartswithModifier,
        SigmaEndswithModifier,
        SigmaExistsModifier,
        SigmaRegularExpressionModifier,
        SigmaRegularExpressionIgnoreCaseFlagModifier,
        SigmaRegularExpressionMultilineFlagModifier,
        SigmaRegularExpressionDotAllFlagModifier,
        SigmaLessThanModifier,
        SigmaLessThanEqualModifier,
        SigmaGreaterThanModifier,
        SigmaGreaterThanEqualModifier,
        SigmaNotEqualModifier,
    }
)
_CORRELATION_KINDS = {
    SigmaCorrelationType.EVENT_COUNT: "event_count",
    SigmaCorrelationType.VALUE_COUNT: "value_count",
    SigmaCorrelationType.TEMPORAL: "temporal",
    SigmaCorrelationType.TEMPORAL_ORDERED: "temporal_ordered",
}


def _value_problem(value: object) -> str | None:
    if isinstance(value, SigmaTimestampPart):
        return (
            "timestamp modifiers (hour, day, ...) are not supported: use the fields hour, weekday"
        )
    if isinstance(value, SigmaString):
        if any(not isinstance(p, str | SpecialChars) for p in value.s):
            return "placeholders (expand) are not supported"
        return None
    if isinstance(
        value,
        SigmaNumber | SigmaBool | SigmaNull | SigmaRegularExpression | SigmaExists,
    ):
        return None
    if isinstance(value, SigmaCompareExpression):
        return None
    return f"values of type {type(value).__name__.removeprefix('Sigma')} are not supported"


def _detection_problems(detection: SigmaDetection | SigmaDetectionItem) -> Iterator[str]:
    if isinstance(detection, SigmaDetection):
        for item in detection.detection_items:
            yield from _detection_problems(item)
        return
    if detection.field is None:
        yield "keyword search (a value without a field) is not supported: name the field"
    else:
        problem = logsource.field_problem(detection.field)
        if problem is not None:
            yield problem
    for modifier in detection.modifiers:
        if modifier not in _SUPPORTED_MODIFIERS:
            name = reverse_modifier_mapping.get(modifier.__name__, modifier.__name__)
            yield f"modifier '{name}' is not supported"
    for value in detection.value:
        problem = _value_problem(value)
        if problem is not None:
            yield problem


def _walk(node: object) -> Iterator[object]:
    yield node
    for arg in getattr(node, "args", ()):
        yield from _walk(arg)


# ------------------------------------------------------------------------------ loading


@dataclass(frozen=True)
class _Source:
    name: str
    text: str


@dataclass
class _Parsed:
    source: str
    label: str
    rule: SigmaRule | SigmaCorrelationRule
    fields: set[str]


def _display_name(path: Path) -> str:
    """A rule file's path as messages show it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _message(error: BaseException) -> str:
    """A pySigma error's message without its location suffixes."""
    text = str(error.args[0]) if error.args else type(error).__name__
    text = re.sub(r" \(while [^()]* rule [^()]*\)$", "", text.strip())
    return text or type(error).__name__


def _label(document: Mapping[str, object], index: int) -> str:
    rule_id = document.get("id")
    if isinstance(rule_id, str) and rule_id.strip():
        return rule_id.strip()
    title = document.get("title")
    return f"#{index} ({title!r})" if isinstance(title, str) else f"#{index}"


def _documents(source: _Source, problems: list[str]) -> list[dict[str, Any]]:
    try:
        documents = list(yaml.load_all(source.text, Loader=SigmaYAMLLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        problems.append(f"{source.name}: not valid YAML{where}: {problem}")
        return []
    found: list[dict[str, Any]] = []
    for index, document in enumerate(documents, 1):
        if document is None:
            continue
        if not isinstance(document, dict):
            problems.append(f"{source.name}: document #{index} is not a Sigma rule (a mapping)")
        elif "action" in document:
            problems.append(
                f"{source.name}: rule {_label(document, index)}: collection actions "
                "(global, repeat, reset) are not supported: write each rule in full"
            )
        elif "filter" in document:
            problems.append(
                f"{source.name}: rule {_label(document, index)}: Sigma filters are not supported"
            )
        else:
            found.append(document)
    return found


def _parse(source: _Source, problems: list[str]) -> list[_Parsed]:
    parsed: list[_Parsed] = []
    for index, document in enumerate(_documents(source, problems), 1):
        label = _label(document, index)
        where = f"{source.name}: rule {label}"
        try:
            rule: SigmaRule | SigmaCorrelationRule = (
                SigmaCorrelationRule.from_dict(document, collect_errors=True)
                if "correlation" in document
                else SigmaRule.from_dict(document, collect_errors=True)
            )
        except Exception as exc:  # noqa: BLE001 - pySigma raises TypeError & co on odd shapes
            problems.append(f"{where}: not valid Sigma: {_message(exc)}")
            continue
        if rule.errors:
            problems.extend(f"{where}: not valid Sigma: {_message(e)}" for e in rule.errors)
            continue
        if rule.id is None:
            problems.append(f"{where}: a rule needs an id (a UUID)")
            continue
        parsed.append(_Parsed(source=source.name, label=str(rule.id), rule=rule, fields=set()))
    return parsed


def _common_problems(item: _Parsed) -> Iterator[str]:
    rule = item.rule
    runbook = rule.custom_attributes.get("runbook")
    if runbook is not None and (not isinstance(runbook, str) or not runbook.strip()):
        yield "runbook must be the name of a runbook template (text)"
    if rule.level is None:
        yield f"a rule needs a level ({', '.join(LEVELS)})"


def _detection_rule_problems(item: _Parsed) -> Iterator[str]:
    rule = item.rule
    assert isinstance(rule, SigmaRule)  # noqa: S101 - only called for detection rules
    source = rule.logsource
    if (
        source.product != logsource.PRODUCT
        or source.service != logsource.SERVICE
        or source.category is not None
    ):
        yield (
            f"logsource must be product: {logsource.PRODUCT}, service: {logsource.SERVICE} "
            "(guard's audit trail)"
        )
    for detection in rule.detection.detections.values():
        yield from _detection_problems(detection)
        item.fields.update(_fields_of(detection))
    try:
        conditions = [condition.parsed for condition in rule.detection.parsed_condition]
    except SigmaError as exc:
        yield f"condition: {_message(exc)}"
        return
    for condition in conditions:
        if any(isinstance(node, ConditionValueExpression) for node in _walk(condition)):
            yield "keyword search (a value without a field) is not supported: name the field"


def _fields_of(detection: SigmaDetection | SigmaDetectionItem) -> Iterator[str]:
    if isinstance(detection, SigmaDetection):
        for item in detection.detection_items:
            yield from _fields_of(item)
    elif detection.field is not None:
        yield detection.field


def _correlation_problems(item: _Parsed, known: Mapping[str, _Parsed]) -> Iterator[str]:
    rule = item.rule
    assert isinstance(rule, SigmaCorrelationRule)  # noqa: S101 - only called for correlations
    if rule.type not in _CORRELATION_KINDS:
        yield f"correlation type '{rule.type.name.lower()}' is not supported"
        return
    references = [ref.reference for ref in rule.rules or []]
    if not isinstance(rule.condition, SigmaCorrelationCondition) or rule.rules is None:
        yield "extended correlation conditions (and/or/not of rules) are not supported"
        return
    yield from _reference_problems(rule, references, known)
    yield from _group_problems(rule, references, item)
    yield from _condition_problems(rule, len(references), item)


def _reference_problems(
    rule: SigmaCorrelationRule, references: list[str], known: Mapping[str, _Parsed]
) -> Iterator[str]:
    if len(set(references)) != len(references):
        yield "a correlation references the same rule twice"
    for reference in references:
        target = _find(known, reference)
        if target is None:
            yield f"correlation references unknown rule '{reference}'"
        elif isinstance(target.rule, SigmaCorrelationRule):
            # a correlation over a correlation sees its firings, which carry only its group
            inner = set(target.rule.group_by or [])
            for field in _member_fields(rule, reference):
                if field not in inner:
                    yield (
                        f"a correlation over correlation '{reference}' may only use fields "
                        f"'{reference}' groups by, not '{field}'"
                    )


def _member_fields(rule: SigmaCorrelationRule, reference: str) -> list[str]:
    """The event fields a correlation reads from the events of one referenced rule."""
    aliases = {alias.alias: alias for alias in rule.aliases}
    fields: list[str] = []
    for field in rule.group_by or []:
        alias = aliases.get(field)
        if alias is None:
            fields.append(field)
        else:
            fields.extend(f for ref, f in alias.mapping.items() if ref.reference == reference)
    condition = rule.condition
    if (
        rule.type is SigmaCorrelationType.VALUE_COUNT
        and isinstance(condition, SigmaCorrelationCondition)
        and isinstance(condition.fieldref, str)
    ):
        fields.append(condition.fieldref)
    return fields


def _cycle_problems(parsed: list[_Parsed], known: Mapping[str, _Parsed]) -> Iterator[str]:
    """Correlations that reference themselves, directly or through others."""
    edges: dict[str, list[str]] = {}
    for item in parsed:
        if isinstance(item.rule, SigmaCorrelationRule):
            targets = (_find(known, ref.reference) for ref in item.rule.rules or [])
            edges[item.label] = [t.label for t in targets if t is not None]
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def cyclic(node: str) -> bool:
        if state.get(node) == 1:
            return True
        if state.get(node) == 2:  # noqa: PLR2004 - the "done" mark
            return False
        state[node] = 1
        found = any(cyclic(nxt) for nxt in edges.get(node, ()))
        state[node] = 2
        return found

    for item in parsed:
        if item.label in edges and item.label not in state and cyclic(item.label):
            yield f"{item.source}: rule {item.label}: correlations reference each other in a cycle"


def _group_problems(
    rule: SigmaCorrelationRule, references: list[str], item: _Parsed
) -> Iterator[str]:
    aliases = {alias.alias: alias for alias in rule.aliases}
    for field in rule.group_by or []:
        if field in aliases:
            continue
        problem = logsource.field_problem(field)
        if problem is not None:
            yield f"group-by: {problem}"
        item.fields.add(field)
    for alias in aliases.values():
        for reference, field in alias.mapping.items():
            if reference.reference not in references:
                yield (
                    f"alias '{alias.alias}' maps rule '{reference.reference}', "
                    "which the correlation does not reference"
                )
            problem = logsource.field_problem(field)
            if problem is not None:
                yield f"alias '{alias.alias}': {problem}"
            item.fields.add(field)
        missing = set(references) - {ref.reference for ref in alias.mapping}
        if missing:
            yield f"alias '{alias.alias}' has no field for rule(s) {', '.join(sorted(missing))}"


def _condition_problems(rule: SigmaCorrelationRule, members: int, item: _Parsed) -> Iterator[str]:
    condition = rule.condition
    assert isinstance(condition, SigmaCorrelationCondition)  # noqa: S101 - checked by the caller
    if condition.op not in _CONDITION_OPS:
        op = condition.op.name.lower()
        yield (
            f"correlation condition '{op}' is not supported: streaming detection fires when "
            "something happens (gt, gte, eq), not on what has not happened yet"
        )
    if condition.count > MAX_WINDOW_EVENTS:
        yield f"condition count above the {MAX_WINDOW_EVENTS} events a window keeps"
    if rule.type is SigmaCorrelationType.VALUE_COUNT:
        field = condition.fieldref
        if not isinstance(field, str):
            yield "value_count needs one condition field"
        else:
            problem = logsource.field_problem(field)
            if problem is not None:
                yield f"condition field: {problem}"
            item.fields.add(field)
    if rule.type is SigmaCorrelationType.TEMPORAL_ORDERED and (
        condition.op is not SigmaCorrelationConditionOperator.GTE or condition.count != members
    ):
        yield "temporal_ordered needs every referenced rule in order (condition gte: rule count)"


def _info(item: _Parsed, generates: bool) -> RuleInfo:
    rule = item.rule
    runbook = rule.custom_attributes.get("runbook")
    kind = _CORRELATION_KINDS[rule.type] if isinstance(rule, SigmaCorrelationRule) else "detection"
    return RuleInfo(
        id=str(rule.id),
        name=rule.name,
        title=rule.title,
        description=rule.description or "",
        level=str(rule.level),
        kind=kind,
        tags=tuple(str(tag) for tag in rule.tags),
        runbook=runbook.strip() if isinstance(runbook, str) else None,
        generates=generates,
        source=item.source,
    )


class RuleSet:
    """A validated set of Sigma rules over guard's audit log source, compiled for evaluation."""

    def __init__(
        self,
        *,
        sources: tuple[_Source, ...],
        lookback: timedelta,
        detections: tuple[_Detection, ...],
        correlations: tuple[_Correlation, ...],
        rules: tuple[RuleInfo, ...],
        fields: frozenset[str],
    ) -> None:
        self._sources = sources
        self._fingerprint: str | None = None
        self._detections = detections
        self._correlations = correlations
        self._fields = fields
        self.rules = rules
        #: How far before an event a replay must start to rebuild every window as it was: the
        #: longest timespan, or for correlations over correlations the chained timespans.
        self.max_timespan = lookback
        self.by_id: Mapping[str, RuleInfo] = MappingProxyType({r.id: r for r in rules})

    @classmethod
    def load(cls, directory: Path) -> RuleSet:
        """Every ``*.yml`` / ``*.yaml`` file in ``directory``; RuleError on any problem."""
        if not directory.is_dir():
            raise RuleError(f"{_display_name(directory)}: not a folder of rule files")
        sources: list[_Source] = []
        for path in sorted(directory.iterdir()):
            if path.suffix not in {".yml", ".yaml"} or not path.is_file():
                continue
            name = _display_name(path)
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise RuleError(f"{name}: not UTF-8 text") from None
            except OSError as exc:
                raise RuleError(f"{name}: cannot be read ({exc.strerror})") from None
            sources.append(_Source(name, text))
        return cls._build(tuple(sources))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<string>") -> RuleSet:
        """The rules in one YAML text (one or more documents); RuleError on any problem."""
        return cls._build((_Source(source, text),))

    @classmethod
    def _build(cls, sources: tuple[_Source, ...]) -> RuleSet:
        problems: list[str] = []
        parsed = [item for source in sources for item in _parse(source, problems)]
        known = _index(parsed, problems)
        for item in parsed:
            rule_problems = list(_common_problems(item))
            if isinstance(item.rule, SigmaCorrelationRule):
                rule_problems.extend(_correlation_problems(item, known))
            else:
                rule_problems.extend(_detection_rule_problems(item))
            problems.extend(f"{item.source}: rule {item.label}: {p}" for p in rule_problems)
        if not problems:
            problems.extend(_cycle_problems(parsed, known))
        if problems:
            raise RuleError("; ".join(problems))
        try:
            # pySigma's own resolution (backreferences, order): the export relies on it
            SigmaCollection(init_rules=[i.rule for i in parsed], resolve_references=True)
        except SigmaError as exc:  # pragma: no cover - references were checked above
            raise RuleError(f"rule references: {_message(exc)}") from None
        try:
            return cls._compile(sources, parsed, known)
        except (_UnsupportedError, SigmaError) as exc:  # pragma: no cover - checked above
            raise RuleError(str(exc)) from None

    @classmethod
    def _compile(
        cls, sources: tuple[_Source, ...], parsed: list[_Parsed], known: Mapping[str, _Parsed]
    ) -> RuleSet:
        correlations = [i for i in parsed if isinstance(i.rule, SigmaCorrelationRule)]
        feeds: dict[str, list[tuple[int, int]]] = {}
        silenced: set[str] = set()
        for index, item in enumerate(correlations):
            rule = item.rule
            assert isinstance(rule, SigmaCorrelationRule)  # noqa: S101 - filtered above
            for position, ref in enumerate(rule.rules or []):
                target = str(_lookup(known, ref.reference).rule.id)
                feeds.setdefault(target, []).append((index, position))
                if not rule.generate:
                    silenced.add(target)
        # as pySigma decides it for export: a rule a correlation references alerts on its own
        # only if every correlation referencing it says `generate: true`
        infos = {
            str(item.rule.id): _info(item, str(item.rule.id) not in silenced) for item in parsed
        }
        detections = tuple(
            _compile_detection(item, infos[str(item.rule.id)], feeds.get(str(item.rule.id), []))
            for item in parsed
            if isinstance(item.rule, SigmaRule)
        )
        compiled_correlations = tuple(
            _compile_correlation(
                item, infos[str(item.rule.id)], known, feeds.get(str(item.rule.id), [])
            )
            for item in correlations
        )
        return cls(
            sources=sources,
            lookback=max((_lookback(item, known) for item in correlations), default=timedelta(0)),
            detections=detections,
            correlations=compiled_correlations,
            rules=tuple(infos[str(item.rule.id)] for item in parsed),
            fields=frozenset(field for item in parsed for field in item.fields),
        )

    def sigma_collection(self) -> SigmaCollection:
        """The rules as a fresh pySigma collection (for SIEM backends; conversion mutates it)."""
        collections = [
            SigmaCollection.from_yaml(source.text, resolve_references=False)
            for source in self._sources
        ]
        return SigmaCollection.merge(collections, resolve_references=True)

    def fingerprint(self) -> str:
        """SHA-256 over the rule files' names and texts: changes when any rule changes."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for source in self._sources:
                digest.update(source.name.encode("utf-8") + b"\x00")
                digest.update(source.text.encode("utf-8") + b"\x00")
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @property
    def fields(self) -> frozenset[str]:
        """Every field the rules read (detections, group-by, aliases, value_count fields)."""
        return self._fields

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"RuleSet({len(self.rules)} rules, fingerprint={self.fingerprint()[:12]})"


def _lookback(item: _Parsed, known: Mapping[str, _Parsed]) -> timedelta:
    """A correlation's timespan plus the longest lookback of the correlations it counts."""
    rule = item.rule
    assert isinstance(rule, SigmaCorrelationRule)  # noqa: S101 - only correlations
    inner = [
        _lookback(target, known)
        for ref in rule.rules or []
        if isinstance((target := _lookup(known, ref.reference)).rule, SigmaCorrelationRule)
    ]
    return timedelta(seconds=rule.timespan.seconds) + max(inner, default=timedelta(0))


def _find(known: Mapping[str, _Parsed], reference: str) -> _Parsed | None:
    """The rule a correlation names, by id (any UUID spelling) or by name."""
    found = known.get(reference)
    if found is None:
        try:
            found = known.get(str(UUID(reference)))
        except ValueError:
            return None
    return found


def _lookup(known: Mapping[str, _Parsed], reference: str) -> _Parsed:
    found = _find(known, reference)
    if found is None:  # pragma: no cover - references are checked before compiling
        raise _UnsupportedError(f"unknown rule '{reference}'")
    return found


def _index(parsed: list[_Parsed], problems: list[str]) -> dict[str, _Parsed]:
    """Rules by id and by name; duplicates are problems."""
    known: dict[str, _Parsed] = {}
    names: dict[str, _Parsed] = {}
    for item in parsed:
        rule_id = str(item.rule.id)
        if rule_id in known:
            first = known[rule_id]
            problems.append(f"{item.source}: rule {rule_id}: id already used in {first.source}")
            continue
        known[rule_id] = item
        name = item.rule.name
        if name is not None:
            if name in names:
                problems.append(
                    f"{item.source}: rule {rule_id}: name '{name}' already used by rule "
                    f"{names[name].label} in {names[name].source}"
                )
            names[name] = item
    known.update({name: item for name, item in names.items() if name not in known})
    return known


def _compile_detection(item: _Parsed, info: RuleInfo, feeds: list[tuple[int, int]]) -> _Detection:
    rule = item.rule
    assert isinstance(rule, SigmaRule)  # noqa: S101 - only detection rules
    conditions = [condition.parsed for condition in rule.detection.parsed_condition]
    if len(conditions) == 1:
        pred, gate = _condition_pred(conditions[0])
    else:  # several conditions are OR-ed: each keeps its own index tests in its predicate
        pred = _any_of([_compile(condition)[0] for condition in conditions])
        gates = [_index_gate(condition) for condition in conditions]
        sure = [g for g in gates if g is not None]
        gate = (lambda key: any(g(key) for g in sure)) if len(sure) == len(gates) else None
    return _Detection(info=info, pred=pred, gate=gate, feeds=tuple((i, p, None) for i, p in feeds))


def _compile_correlation(
    item: _Parsed, info: RuleInfo, known: Mapping[str, _Parsed], feeds: list[tuple[int, int]]
) -> _Correlation:
    rule = item.rule
    assert isinstance(rule, SigmaCorrelationRule)  # noqa: S101 - only correlations
    condition = rule.condition
    assert isinstance(condition, SigmaCorrelationCondition)  # noqa: S101 - checked at load
    references = [ref.reference for ref in rule.rules or []]
    aliases = {alias.alias: alias for alias in rule.aliases}
    group_fields = tuple(sorted(rule.group_by or []))
    getters: list[Callable[[_Event], tuple[object, ...]]] = []
    for reference in references:
        row: list[Callable[[_Event], object]] = []
        for field in group_fields:
            alias = aliases.get(field)
            if alias is not None:
                mapped = {ref.reference: name for ref, name in alias.mapping.items()}
                row.append(_getter(mapped[reference]))
            else:
                row.append(_getter(field))
        getters.append(_key_of(row))
    value_field = condition.fieldref if rule.type is SigmaCorrelationType.VALUE_COUNT else None
    return _Correlation(
        info=info,
        kind=rule.type,
        code=_CODES[rule.type],
        span=timedelta(seconds=rule.timespan.seconds),
        members=tuple(str(_lookup(known, ref).rule.id) for ref in references),
        group_fields=group_fields,
        group_of=tuple(getters),
        value_getter=_getter(value_field) if isinstance(value_field, str) else None,
        check=_check(condition.op, condition.count),
        feeds=tuple((i, p, None) for i, p in feeds),
    )


# ------------------------------------------------------------------------------ evaluation


class _Tally:
    """A multiset of keys with a cached frozenset of the keys present."""

    __slots__ = ("counts", "frozen")

    def __init__(self) -> None:
        self.counts: dict[object, int] = {}
        self.frozen: frozenset[Any] | None = None

    def add(self, key: object) -> None:
        counts = self.counts
        n = counts.get(key)
        if n is None:
            counts[key] = 1
            self.frozen = None
        else:
            counts[key] = n + 1

    def remove(self, key: object) -> None:
        counts = self.counts
        n = counts[key]
        if n == 1:
            del counts[key]
            self.frozen = None
        else:
            counts[key] = n - 1

    def present(self) -> frozenset[Any]:
        found = self.frozen
        if found is None:
            found = self.frozen = frozenset(self.counts)
        return found


#: Where an event fed to a correlation came from when it is the firing of another correlation
#: (correlations over correlations): (that correlation's index, its group).
_Origin = tuple[int, tuple[object, ...]]
#: A window entry: (ts, seq, value key, customer, entity key, action, tenant, origins).
_Entry = tuple[
    datetime,
    int,
    object,
    "str | None",
    "str | frozenset[str] | None",
    "str | None",
    "str | None",
    "tuple[_Origin, ...] | None",
]


class _Summary:
    """What a window's hits report, tallied incrementally once the window has fired.

    A correlation that keeps holding makes a hit on every further event; rescanning the window
    for each would cost its length per event.
    """

    __slots__ = ("actions", "customers", "entities", "origins", "seqs", "tenants", "types")

    def __init__(self, entries: Iterable[_Entry]) -> None:
        self.seqs: deque[int] = deque()
        self.customers = _Tally()
        self.entities = _Tally()
        self.actions = _Tally()
        self.tenants = _Tally()
        self.origins = _Tally()
        self.types: tuple[frozenset[Any], frozenset[str]] | None = None
        for entry in entries:
            self.add(entry)

    def add(self, entry: _Entry) -> None:
        self.seqs.append(entry[1])
        if entry[3] is not None:
            self.customers.add(entry[3])
        if entry[4] is not None:
            self.entities.add(entry[4])
        if entry[5] is not None:
            self.actions.add(entry[5])
        self.tenants.add(entry[6])
        if entry[7] is not None:
            for origin in entry[7]:
                self.origins.add(origin)

    def remove(self, entry: _Entry) -> None:
        self.seqs.popleft()
        if entry[3] is not None:
            self.customers.remove(entry[3])
        if entry[4] is not None:
            self.entities.remove(entry[4])
        if entry[5] is not None:
            self.actions.remove(entry[5])
        self.tenants.remove(entry[6])
        if entry[7] is not None:
            for origin in entry[7]:
                self.origins.remove(origin)

    def entity_types(self) -> frozenset[str]:
        keys = self.entities.present()
        cached = self.types
        if cached is None or cached[0] is not keys:
            union: frozenset[str] = frozenset().union(*(_types_of_key(key) for key in keys))
            cached = self.types = (keys, union)
        return cached[1]

    def newest_seqs(self) -> tuple[int, ...]:
        seqs = self.seqs
        n = len(seqs)
        return tuple(seqs) if n <= MAX_HIT_SEQS else tuple(islice(seqs, n - MAX_HIT_SEQS, n))


class _Window:
    """One correlation group's events within the timespan.

    Only what the condition needs is tallied for every window (the distinct values or rules);
    what hits report is tallied from the first hit on (see _Summary).
    """

    __slots__ = ("chain", "entries", "summary", "values")

    def __init__(self, chain_length: int) -> None:
        self.entries: deque[_Entry] = deque()
        self.values = _Tally()
        self.summary: _Summary | None = None
        # temporal_ordered: per position, the latest start ts of a chain through that position
        self.chain: list[datetime | None] = [None] * chain_length

    def add(self, entry: _Entry) -> None:
        self.entries.append(entry)
        key = entry[2]
        if key is not None:
            if type(key) is tuple:
                for position in key:
                    self.values.add(position)
            else:
                self.values.add(key)
        if self.summary is not None:
            self.summary.add(entry)
        if len(self.entries) > MAX_WINDOW_EVENTS:
            self._drop_oldest()

    def evict_before(self, cutoff: datetime) -> None:
        entries = self.entries
        while entries and entries[0][0] < cutoff:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        entry = self.entries.popleft()
        key = entry[2]
        if key is not None:
            if type(key) is tuple:
                for position in key:
                    self.values.remove(position)
            else:
                self.values.remove(key)
        if self.summary is not None:
            self.summary.remove(entry)

    def summarised(self) -> _Summary:
        found = self.summary
        if found is None:
            found = self.summary = _Summary(self.entries)
        return found


class _State:
    __slots__ = ("groups", "next_sweep")

    def __init__(self) -> None:
        self.groups: dict[tuple[object, ...], _Window] = {}
        # when to next evict expired events from every group (and drop the empty groups)
        self.next_sweep: datetime | None = None


_Fed = tuple[int, int, "_Origin | None"]
_Candidate = tuple[
    "Callable[[_Event], bool]", "RuleInfo | None", "tuple[tuple[int, int, None], ...]"
]


class Evaluator:
    """Feeds audit events, in seq order, through a RuleSet; returns the hits each event causes.

    Correlation windows run on the events' ``ts``: a replay gives the same hits, and
    ``feed(..., emit=False)`` over the events of the last ``rules.max_timespan`` rebuilds the
    windows after a restart. A correlation whose condition keeps holding returns a hit on each
    further event that contributes to it (callers deduplicate them into one incident).
    """

    def __init__(self, rules: RuleSet, *, timezone: str = "UTC") -> None:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise IncidentPolicyError(f"timezone: unknown IANA time zone '{timezone}'") from None
        self._zone: ZoneInfo | None = None if timezone in {"UTC", "Etc/UTC"} else zone
        self._rules = rules
        self._detections = rules._detections  # noqa: SLF001 - the evaluator is RuleSet's peer
        self._correlations = rules._correlations  # noqa: SLF001 - same
        self._states = [_State() for _ in self._correlations]
        # per index key: (predicate, RuleInfo if it alerts else None, correlations it feeds)
        self._by_key: dict[_IndexKey, tuple[_Candidate, ...]] = {}

    @property
    def rules(self) -> RuleSet:
        """The rules this evaluator runs."""
        return self._rules

    def window_events(self) -> int:
        """How many events the correlation windows hold (a measure of memory in use)."""
        return sum(len(w.entries) for state in self._states for w in state.groups.values())

    def _candidates(self, key: _IndexKey) -> tuple[_Candidate, ...]:
        found = tuple(
            (d.pred, d.info if d.info.generates else None, d.feeds)
            for d in self._detections
            if d.gate is None or d.gate(key)
        )
        try:
            if len(self._by_key) < _KEY_CACHE_SIZE:
                self._by_key[key] = found
        except TypeError:  # an unhashable value: nothing to remember it by
            pass
        return found

    def _rules_for(self, event: Mapping[str, Any]) -> tuple[_Candidate, ...]:
        """The detection rules an event can match, by its index key."""
        try:
            key: _IndexKey = (event["action"], event["decision"], event["outcome"])
        except KeyError:
            key = tuple(event.get(field) for field in INDEX_FIELDS)
        try:
            candidates = self._by_key.get(key)
        except TypeError:  # an unhashable value
            candidates = None
        return self._candidates(key) if candidates is None else candidates

    def feed(self, event: Mapping[str, Any], *, emit: bool = True) -> list[Hit]:
        """Evaluate one event (the next in seq order); the hits it causes, or [] if emit=False."""
        candidates = self._rules_for(event)
        if not candidates:
            return []
        ctx = _Event(event, self._zone)
        hits: list[Hit] = []
        fed: list[_Fed] | None = None
        for pred, alerts, feeds in candidates:
            if not pred(ctx):
                continue
            if emit and alerts is not None:
                hits.append(_detection_hit(alerts, ctx))
            if feeds:
                if fed is None:
                    fed = list(feeds)
                else:
                    fed.extend(feeds)
        if fed is not None:
            self._correlate(fed, ctx, emit, hits)
        return hits

    def _correlate(self, fed: list[_Fed], ctx: _Event, emit: bool, hits: list[Hit]) -> None:
        if len(fed) == 1:
            index, member, origin = fed[0]
            group = self._group_key(index, member, ctx)
            single = None if origin is None else (origin,)
            self._update(index, group, (member,), single, ctx, emit=emit, hits=hits)
            return
        by_group: dict[tuple[int, tuple[object, ...]], tuple[list[int], list[_Origin]]] = {}
        for index, member, origin in sorted(fed, key=lambda f: (f[0], f[1])):
            positions, sources = by_group.setdefault(
                (index, self._group_key(index, member, ctx)), ([], [])
            )
            positions.append(member)
            if origin is not None:
                sources.append(origin)
        for (index, group), (positions, sources) in by_group.items():
            found = tuple(sources) or None
            self._update(index, group, tuple(positions), found, ctx, emit=emit, hits=hits)

    def _group_key(self, index: int, member: int, ctx: _Event) -> tuple[object, ...]:
        return self._correlations[index].group_of[member](ctx)

    def _update(
        self,
        index: int,
        group: tuple[object, ...],
        positions: tuple[int, ...],
        origins: tuple[_Origin, ...] | None,
        ctx: _Event,
        *,
        emit: bool,
        hits: list[Hit],
    ) -> None:
        spec = self._correlations[index]
        ts = ctx.ts()
        cutoff = ts - spec.span
        window = self._window(index, group, ts, cutoff)
        code = spec.code
        if code == _EVENT_COUNT:
            value: object = None
        elif code == _VALUE_COUNT:
            assert spec.value_getter is not None  # noqa: S101 - set for value_count
            value = _text(spec.value_getter(ctx))
        else:
            value = positions
        window.add(_entry(ctx, ts, value, origins))
        if code == _ORDERED:  # state: advanced whether or not anyone looks at the result
            _advance_chain(window.chain, positions, ts)
        if not (emit or spec.feeds) or not _held(spec, window, cutoff):
            return
        if emit and spec.info.generates:
            hits.append(self._correlation_hit(spec, group, window))
        if spec.feeds:
            # this correlation fired: that is an event for the correlations over it
            origin: _Origin = (index, group)
            self._correlate([(o, p, origin) for o, p, _ in spec.feeds], ctx, emit, hits)

    def _window(
        self, index: int, group: tuple[object, ...], ts: datetime, cutoff: datetime
    ) -> _Window:
        """The group's window, without the events before ``cutoff``.

        Once per timespan every group is swept, so groups that went quiet hold no memory.
        """
        state = self._states[index]
        next_sweep = state.next_sweep
        if next_sweep is None or ts >= next_sweep:
            _sweep(state, cutoff)
            state.next_sweep = ts + self._correlations[index].span
        window = state.groups.get(group)
        if window is None:
            spec = self._correlations[index]
            length = len(spec.members) if spec.code == _ORDERED else 0
            window = state.groups[group] = _Window(length)
        elif window.entries and window.entries[0][0] < cutoff:
            window.evict_before(cutoff)
        return window

    def _contributing(self, window: _Window) -> list[_Window]:
        """The window, and those of the correlations whose firings it counted.

        A correlation over correlations counts their firings; the events behind those are in
        the inner correlations' windows.
        """
        found = [window]
        seen = {id(window)}
        stack = [window]
        while stack:
            for index, group in stack.pop().summarised().origins.present():
                inner = self._states[index].groups.get(group)
                if inner is not None and inner.entries and id(inner) not in seen:
                    seen.add(id(inner))
                    found.append(inner)
                    stack.append(inner)
        return found

    def _correlation_hit(
        self, spec: _Correlation, group: tuple[object, ...], window: _Window
    ) -> Hit:
        windows = self._contributing(window)
        summaries = [w.summarised() for w in windows]
        count = len(window.values.counts) if spec.code == _VALUE_COUNT else len(window.entries)
        if len(summaries) == 1:
            (summary,) = summaries
            seqs = summary.newest_seqs()
            tenants = summary.tenants.present()
            customers = summary.customers.present()
            entity_types = summary.entity_types()
            actions = summary.actions.present()
        else:
            newest = {seq for s in summaries for seq in s.newest_seqs()}
            seqs = tuple(sorted(newest)[-MAX_HIT_SEQS:])
            tenants = frozenset().union(*(s.tenants.present() for s in summaries))
            customers = frozenset().union(*(s.customers.present() for s in summaries))
            entity_types = frozenset().union(*(s.entity_types() for s in summaries))
            actions = frozenset().union(*(s.actions.present() for s in summaries))
        return Hit(
            rule=spec.info,
            group=tuple(
                (field, _text(value)) for field, value in zip(spec.group_fields, group, strict=True)
            ),
            tenant=_only_text(tenants),
            seqs=seqs,
            customers=customers,
            entity_types=entity_types,
            actions=actions,
            first_ts=min(w.entries[0][0] for w in windows),
            last_ts=max(w.entries[-1][0] for w in windows),
            count=count,
        )


def _only_text(values: frozenset[object]) -> str | None:
    """The one value if all are the same text, else None."""
    if len(values) == 1:
        (value,) = values
        return value if isinstance(value, str) else None
    return None


def _entry(ctx: _Event, ts: datetime, value: object, origins: tuple[_Origin, ...] | None) -> _Entry:
    """What a window keeps of an event: only the fields a hit reports."""
    row = ctx.row
    try:
        seq, customer, counts = row["seq"], row["customer"], row["entity_counts"]
        action, tenant = row["action"], row["tenant"]
    except KeyError:
        seq, customer, counts = (
            ctx.column("seq"),
            ctx.column("customer"),
            ctx.column("entity_counts"),
        )
        action, tenant = ctx.column("action"), ctx.column("tenant")
    return (
        ts,
        seq if type(seq) is int else 0,
        value,
        customer if type(customer) is str else None,
        None if counts == "{}" else _entity_key(counts),
        action if type(action) is str else None,
        tenant if type(tenant) is str else None,
        origins,
    )


def _sweep(state: _State, cutoff: datetime) -> None:
    """Evict expired events from every group and drop the empty groups."""
    for group in list(state.groups):
        window = state.groups[group]
        window.evict_before(cutoff)
        if not window.entries:
            del state.groups[group]


def _advance_chain(chain: list[datetime | None], positions: tuple[int, ...], ts: datetime) -> None:
    # highest position first: one event never serves as two consecutive steps
    for position in sorted(positions, reverse=True):
        if position == 0:
            chain[0] = ts
            continue
        before = chain[position - 1]
        if before is not None:
            current = chain[position]
            chain[position] = before if current is None or before > current else current


def _held(spec: _Correlation, window: _Window, cutoff: datetime) -> bool:
    """Whether the correlation's condition holds for the window now."""
    code = spec.code
    if code == _ORDERED:
        start = window.chain[-1]
        return start is not None and start >= cutoff
    return spec.check(len(window.entries if code == _EVENT_COUNT else window.values.counts))


def _detection_hit(info: RuleInfo, ctx: _Event) -> Hit:
    ts = ctx.ts()
    customer = ctx.column("customer")
    action = ctx.column("action")
    tenant = ctx.column("tenant")
    seq = ctx.column("seq")
    return Hit(
        rule=info,
        group=(),
        tenant=tenant if isinstance(tenant, str) else None,
        seqs=(seq,) if isinstance(seq, int) else (),
        customers=frozenset((customer,)) if isinstance(customer, str) else frozenset(),
        entity_types=_positive_types(ctx.counts()),
        actions=frozenset((action,)) if isinstance(action, str) else frozenset(),
        first_ts=ts,
        last_ts=ts,
        count=1,
    )


# ------------------------------------------------------------------------------ export

#: The flattened view the SQLite backend's queries read (one column per Sigma field).
SQLITE_VIEW = "guard_audit"
_SQLITE_OPTIONS: dict[str, object] = {
    "table": SQLITE_VIEW,
    "timestamp_field": "ts",
    "event_id_field": "seq",
    # the view's columns are not COLLATE NOCASE: Sigma's equality is case-insensitive
    "collate_nocase": True,
}


def sqlite_view(fields: Iterable[str], *, table: str = "audit_events") -> str:
    """``CREATE TEMP VIEW guard_audit`` over guard's audit table, flattening the given fields.

    ``details.<key>`` and ``entity_counts.<TYPE>`` become columns read with ``json_extract``;
    ``hour`` and ``weekday`` are computed in UTC (SQLite has no time zone database).
    """
    columns = [*logsource.COLUMNS]
    columns.append("CAST(strftime('%H', ts) AS INTEGER) AS hour")
    columns.append("(CAST(strftime('%w', ts) AS INTEGER) + 6) % 7 + 1 AS weekday")
    for field in sorted(set(fields)):
        for prefix, column in (
            (logsource.DETAILS_PREFIX, "details"),
            (logsource.ENTITY_COUNTS_PREFIX, "entity_counts"),
        ):
            if field.startswith(prefix) and logsource.is_known_field(field):
                key = field.removeprefix(prefix)
                columns.append(f"json_extract({column}, '$.{key}') AS \"{field}\"")
    body = ",\n  ".join(columns)
    return f"CREATE TEMP VIEW IF NOT EXISTS {SQLITE_VIEW} AS SELECT\n  {body}\nFROM {table}"


def installed_backends() -> dict[str, type[Backend]]:
    """The pySigma backends installed, by target name."""
    plugins = InstalledSigmaPlugins.autodiscover(include_validators=False)
    return dict(plugins.backends)  # type: ignore[arg-type] # pySigma types the classes loosely


def export_rules(rules: RuleSet, target: str, *, pipeline: str | None = None) -> str:
    """The rules converted for a SIEM by the installed pySigma backend ``target``.

    For ``sqlite`` the output is a script: a view flattening guard's ``audit_events`` table into
    one column per field the rules use, then one query per rule (``;``-terminated).
    """
    plugins = InstalledSigmaPlugins.autodiscover(include_validators=False)
    backends: Mapping[str, Any] = plugins.backends
    backend_class = backends.get(target)
    if backend_class is None:
        installed = ", ".join(sorted(backends)) or "none"
        raise RuleExportError(
            f"no Sigma backend '{target}' is installed (installed: {installed}); "
            "install one, e.g. pip install pysigma-backend-sqlite"
        )
    processing = None
    if pipeline is not None and pipeline not in plugins.pipelines:
        installed = ", ".join(sorted(plugins.pipelines)) or "none"
        raise RuleExportError(
            f"no Sigma processing pipeline '{pipeline}' is installed (installed: {installed})"
        )
    options = _SQLITE_OPTIONS if target == "sqlite" else {}
    try:
        if pipeline is not None:
            processing = plugins.get_pipeline_resolver().resolve([pipeline])
        backend = backend_class(processing_pipeline=processing, **options)
    except (SigmaError, ValueError, TypeError) as exc:
        raise RuleExportError(
            f"Sigma backend '{target}' cannot be set up: {_message(exc)}"
        ) from None
    queries = _convert(rules, backend, target)
    if target == "sqlite":
        statements = [sqlite_view(rules.fields), *(str(q) for q in queries)]
        return "".join(f"{statement};\n\n" for statement in statements)
    return (
        "\n".join(q if isinstance(q, str) else json.dumps(q, default=str) for q in queries) + "\n"
    )


def _convert(rules: RuleSet, backend: Backend, target: str) -> list[Any]:
    """Every rule through ``backend``, rule by rule, so that a failure names its rule."""
    collection = rules.sigma_collection()
    fmt = backend.default_format
    try:
        backend.init_processing_pipeline(fmt)
    except (SigmaError, ValueError, TypeError) as exc:
        raise RuleExportError(
            f"Sigma backend '{target}' cannot be set up: {_message(exc)}"
        ) from None
    queries: list[Any] = []
    for rule in collection.rules:
        try:
            if isinstance(rule, SigmaRule):
                queries.extend(backend.convert_rule(rule, fmt))
            else:
                queries.extend(backend.convert_correlation_rule(rule, fmt))
        except (SigmaError, NotImplementedError, ValueError, TypeError) as exc:
            raise RuleExportError(
                f"{_where(rules, rule)}: cannot be converted for {target}: {_message(exc)}"
            ) from None
    result = backend.finalize(queries, fmt)
    return list(result) if isinstance(result, list) else [result]


def _where(rules: RuleSet, rule: SigmaRuleBase) -> str:
    info = rules.by_id.get(str(rule.id))
    source = info.source if info is not None else "<rules>"
    return f"{source}: rule {rule.id}"


__all__ = [
    "LEVELS",
    "MAX_HIT_SEQS",
    "MAX_WINDOW_EVENTS",
    "SQLITE_VIEW",
    "Evaluator",
    "Hit",
    "RuleInfo",
    "RuleSet",
    "export_rules",
    "installed_backends",
    "sqlite_view",
]
