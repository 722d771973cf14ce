"""Role views of a tool's response: what one role may see of an upstream's JSON document.

An upstream answers with everything it holds about a customer; the caller's role sees only
what serving that customer needs. Rules by JSON pointer (``*`` matches any array index or
object member) keep a value clear, mask it, pseudonymise it (keyed, stable per tenant), redact
it to a tag, or drop it. Every string no rule names is treated as possibly holding PII: all of
them go, in one batch, through the caller-supplied ``redact_strings`` (detection + redaction
for the view's channel), or are replaced by ``null`` when the view says ``drop``. Nothing of
the document passes unexamined, and the input is never modified.

When several rules match one place, the first in the policy wins; a rule on a member applies
to all that it contains (a ``clear`` object is kept whole, a ``mask`` masks each of its
leaves), so rules below it are not consulted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from guard.errors import GuardError, InvalidInputError
from guard.proxy.policy import DEFAULT_PSEUDONYM_ENTITY, PSEUDONYM_SCOPE, FieldRule, RoleView
from guard.redaction.operators import OperatorContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from guard.crypto.keys import RedactionKeys

#: Deepest nesting of a response guard walks; deeper documents are refused, not truncated.
MAX_DEPTH = 64


@dataclass(slots=True)
class _Node:
    """A trie of rule pointers: literal children, a wildcard child, the first rule ending here."""

    children: dict[str, _Node] = field(default_factory=dict)
    wildcard: _Node | None = None
    rule: tuple[int, FieldRule] | None = None


@lru_cache(maxsize=512)
def _compile(view: RoleView) -> _Node:
    root = _Node()
    for index, rule in enumerate(view.fields):
        node = root
        for segment in rule.segments:
            if segment == "*":
                node.wildcard = node.wildcard or _Node()
                node = node.wildcard
            else:
                node = node.children.setdefault(segment, _Node())
        if node.rule is None:
            node.rule = (index, rule)
    return root


def _step(nodes: tuple[_Node, ...], key: str) -> tuple[_Node, ...]:
    following: list[_Node] = []
    for node in nodes:
        child = node.children.get(key)
        if child is not None:
            following.append(child)
        if node.wildcard is not None:
            following.append(node.wildcard)
    return tuple(following)


def _first_rule(nodes: tuple[_Node, ...]) -> FieldRule | None:
    found: tuple[int, FieldRule] | None = None
    for node in nodes:
        if node.rule is not None and (found is None or node.rule[0] < found[0]):
            found = node.rule
    return None if found is None else found[1]


class _Dropped:
    """Marks a member or element a rule removed."""


_DROPPED = _Dropped()


@dataclass(slots=True)
class _Pending:
    """A string waiting for the batch scan: where it goes once redacted."""

    index: int


def _too_deep() -> InvalidInputError:
    return InvalidInputError(f"response: nested deeper than {MAX_DEPTH} levels")


def _not_json() -> InvalidInputError:
    return InvalidInputError("response: holds a value that is not JSON")


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(slots=True)
class _Walk:
    """One application of a view: the strings to scan, where they go, and the counts."""

    view: RoleView
    tenant: str
    keys: RedactionKeys
    strings: list[str] = field(default_factory=list)
    slots: list[tuple[dict[str, Any] | list[Any], Any, int]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def visit(self, value: object, nodes: tuple[_Node, ...], depth: int) -> Any:  # noqa: ANN401 - JSON
        if depth > MAX_DEPTH:
            raise _too_deep()
        rule = _first_rule(nodes) if nodes else None
        if rule is not None:
            return self.apply_rule(rule, value, depth)
        if isinstance(value, dict):
            shown: dict[str, Any] = {}
            for key, member in value.items():
                result = self.visit(member, _step(nodes, str(key)) if nodes else (), depth + 1)
                self.place(shown, key, result)
            return shown
        if isinstance(value, list):
            items: list[Any] = []
            for position, element in enumerate(value):
                result = self.visit(
                    element, _step(nodes, str(position)) if nodes else (), depth + 1
                )
                self.place(items, None, result)
            return items
        if isinstance(value, str):
            if self.view.other_strings == "drop":
                return None
            self.strings.append(value)
            return _Pending(len(self.strings) - 1)
        if value is None or isinstance(value, bool | int | float):
            return value
        raise _not_json()

    def place(self, container: dict[str, Any] | list[Any], key: Any, result: Any) -> None:  # noqa: ANN401 - JSON
        if result is _DROPPED:
            return
        if isinstance(result, _Pending):
            if isinstance(container, list):
                key = len(container)
                container.append(None)
            self.slots.append((container, key, result.index))
            return
        if isinstance(container, list):
            container.append(result)
        else:
            container[key] = result

    def apply_rule(self, rule: FieldRule, value: object, depth: int) -> Any:  # noqa: ANN401 - JSON
        if rule.action == "drop":
            self.counts[rule.counted_as] += 1
            return _DROPPED
        if rule.action == "clear":
            return _copy(value, depth)
        return self.transform(rule, value, depth)

    def transform(self, rule: FieldRule, value: object, depth: int) -> Any:  # noqa: ANN401 - JSON
        if depth > MAX_DEPTH:
            raise _too_deep()
        if isinstance(value, dict):
            return {key: self.transform(rule, member, depth + 1) for key, member in value.items()}
        if isinstance(value, list):
            return [self.transform(rule, element, depth + 1) for element in value]
        if value is None:
            return None
        if not isinstance(value, str | bool | int | float):
            raise _not_json()
        if rule.operator is None:  # pragma: no cover - the loader builds one for these actions
            raise GuardError(f"rule {rule.pointer!r}: action {rule.action!r} has no operator")
        entity = rule.entity or (DEFAULT_PSEUDONYM_ENTITY if rule.action == "pseudonym" else "")
        context = OperatorContext(
            entity_type=entity, tenant=self.tenant, scope=PSEUDONYM_SCOPE, keys=self.keys
        )
        self.counts[rule.counted_as] += 1
        return rule.operator.operate(_scalar_text(value), context)


def _copy(value: object, depth: int) -> Any:  # noqa: ANN401 - JSON
    """A deep copy of JSON (so the caller may change the result), refusing anything else."""
    if depth > MAX_DEPTH:
        raise _too_deep()
    if isinstance(value, dict):
        return {key: _copy(member, depth + 1) for key, member in value.items()}
    if isinstance(value, list):
        return [_copy(element, depth + 1) for element in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise _not_json()


def apply_view(
    document: Any,  # noqa: ANN401 - an upstream's JSON
    view: RoleView,
    *,
    redact_strings: Callable[[list[str]], list[tuple[str, list[str]]]],
    tenant: str,
    keys: RedactionKeys,
) -> tuple[Any, Counter[str]]:
    """``document`` as ``view`` shows it, and the count of values replaced per entity type.

    ``redact_strings`` receives every string no rule names in one call (not called when there
    are none) and returns, per string, its redacted form and the entity types replaced. Field
    rules count as their ``entity`` param, else their action. A result of the wrong shape, an
    operator failure or a document nested deeper than :data:`MAX_DEPTH` fails the whole call:
    nothing of a half-redacted document is returned.
    """
    walk = _Walk(view=view, tenant=tenant, keys=keys)
    root = _compile(view) if view.fields else None
    shown = walk.visit(document, (root,) if root is not None else (), 0)
    if shown is _DROPPED:  # pragma: no cover - the root pointer cannot be named
        shown = None
    if walk.strings:
        redacted = redact_strings(list(walk.strings))
        if len(redacted) != len(walk.strings):
            raise GuardError("redaction returned a different number of strings than it was given")
        for text, entity_types in redacted:
            if not isinstance(text, str):
                raise GuardError("redaction returned a value that is not a string")
            walk.counts.update(entity_types)
        if isinstance(shown, _Pending):
            shown = redacted[shown.index][0]
        for container, key, index in walk.slots:
            container[key] = redacted[index][0]
    return shown, walk.counts
