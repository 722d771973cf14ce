"""Redaction of text and JSON documents with a policy and the tenant's key material.

Results report where each replacement happened (offsets in the input and in the output, or a
JSON pointer) and which operator was used, never the values replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guard.config import Settings, get_settings
from guard.crypto.keys import RedactionKeys
from guard.detection.entities import DetectedEntity
from guard.errors import InvalidInputError
from guard.redaction.operators import OperatorContext
from guard.redaction.operators import reveal_text as _reveal_text
from guard.redaction.policy import (
    POLICY_FILENAME,
    ChannelRules,
    RedactionPolicy,
    load_redaction_policy,
)

if TYPE_CHECKING:
    from guard.redaction.operators import Operator

#: Nesting allowed in a JSON document by default (GUARD_MAX_JSON_DEPTH in the API).
DEFAULT_MAX_JSON_DEPTH = 64
#: Batch detection supplied by the caller: one list of entities per input string.
Detect = Callable[[list[str]], Sequence[Sequence[DetectedEntity]]]
JsonValue = Any


@dataclass(frozen=True, slots=True)
class RedactedItem:
    """One replacement: original offsets, output offsets, type and operator; never the value."""

    start: int
    end: int
    entity_type: str
    operator: str
    new_start: int
    new_end: int

    def to_dict(self) -> dict[str, object]:
        """Return the item as plain data."""
        return {
            "start": self.start,
            "end": self.end,
            "entity_type": self.entity_type,
            "operator": self.operator,
            "new_start": self.new_start,
            "new_end": self.new_end,
        }


@dataclass(frozen=True, slots=True)
class JsonRedactedItem:
    """A replacement inside a JSON document: the string's JSON pointer plus its item."""

    path: str
    item: RedactedItem
    #: True when the whole value was redacted because of its field name.
    by_field_name: bool = False
    #: True when the replacement is in the object key of the member ``path`` points to.
    in_key: bool = False

    def to_dict(self) -> dict[str, object]:
        """Return the item as plain data, with its JSON pointer under ``path``."""
        return {
            "path": self.path,
            "by_field_name": self.by_field_name,
            "in_key": self.in_key,
            **self.item.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class RedactionResult:
    """Redacted text and what was replaced where."""

    text: str
    items: tuple[RedactedItem, ...]


def _pointer_token(key: str | int) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _check_entities(text: str, entities: Sequence[DetectedEntity]) -> list[DetectedEntity]:
    ordered = sorted(entities, key=lambda e: (e.start, e.end))
    previous_end = 0
    for index, entity in enumerate(ordered):
        if not 0 <= entity.start < entity.end <= len(text):
            raise InvalidInputError(
                f"entity {index} ({entity.entity_type}) has offsets "
                f"[{entity.start}, {entity.end}) outside the text of length {len(text)}"
            )
        if entity.start < previous_end:
            raise InvalidInputError(
                f"entity {index} ({entity.entity_type}) at [{entity.start}, {entity.end}) "
                "overlaps the previous entity"
            )
        previous_end = entity.end
    return ordered


class Redactor:
    """Apply a redaction policy to text and JSON; built from a policy and key material."""

    def __init__(
        self,
        policy: RedactionPolicy | None = None,
        keys: RedactionKeys | None = None,
        settings: Settings | None = None,
    ) -> None:
        if policy is None or keys is None:
            resolved = settings or get_settings()
            if policy is None:
                policy = load_redaction_policy(resolved.policies_dir / POLICY_FILENAME)
            if keys is None:
                # Loaded eagerly: a missing production key fails at start-up, not mid-request.
                keys = RedactionKeys.from_settings(resolved)
        self.policy = policy
        self.keys = keys

    def _apply(
        self, operator: Operator, value: str, entity_type: str, tenant: str, scope: str
    ) -> str:
        context = OperatorContext(
            entity_type=entity_type, tenant=tenant, scope=scope, keys=self.keys
        )
        return operator.operate(value, context)

    def redact_text(
        self,
        text: str,
        entities: Sequence[DetectedEntity],
        *,
        channel: str = "message",
        tenant: str = "default",
        scope: str = "",
        overrides: Mapping[tuple[int, int], Operator] | None = None,
    ) -> RedactionResult:
        """Replace every entity in ``text`` as the channel's policy says.

        ``overrides``: the operator for particular entities, by ``(start, end)``, in place of
        the channel's (the message guard applies its own-data rules this way).
        """
        rules = self.policy.rules_for(channel)
        if not tenant:
            raise InvalidInputError("tenant must not be empty")
        ordered = _check_entities(text, entities)
        # Replacements are computed against the original offsets and assembled in one pass,
        # which keeps every reported offset valid (equivalent to replacing right to left).
        pieces: list[str] = []
        items: list[RedactedItem] = []
        cursor = 0
        out_len = 0
        for entity in ordered:
            operator = (overrides or {}).get((entity.start, entity.end)) or rules.operator_for(
                entity.entity_type
            )
            replacement = self._apply(
                operator, text[entity.start : entity.end], entity.entity_type, tenant, scope
            )
            gap = text[cursor : entity.start]
            pieces.append(gap)
            out_len += len(gap)
            pieces.append(replacement)
            items.append(
                RedactedItem(
                    start=entity.start,
                    end=entity.end,
                    entity_type=entity.entity_type,
                    operator=operator.name,
                    new_start=out_len,
                    new_end=out_len + len(replacement),
                )
            )
            out_len += len(replacement)
            cursor = entity.end
        pieces.append(text[cursor:])
        return RedactionResult(text="".join(pieces), items=tuple(items))

    def redact_json(
        self,
        document: JsonValue,
        detect: Detect,
        *,
        channel: str = "message",
        tenant: str = "default",
        scope: str = "",
        max_depth: int = DEFAULT_MAX_JSON_DEPTH,
    ) -> tuple[JsonValue, list[JsonRedactedItem]]:
        """Redact every string and object key of a JSON document; field rules override detection.

        Keys are detected like values (a key can be an email address). When two keys of one
        object redact to the same text, the later ones (in the object's order) get ``#2``,
        ``#3``... appended; keys that need no redaction keep their names. Item paths are JSON
        pointers into the *redacted* document, so they never carry a redacted value. Nesting
        deeper than ``max_depth`` (``[]`` is one level) is refused.
        """
        rules = self.policy.rules_for(channel)
        if not tenant:
            raise InvalidInputError("tenant must not be empty")
        collector = _JsonCollector(self.policy, max_depth=max_depth)
        tree = collector.collect(document, None, 0)
        texts = collector.texts
        found = detect(list(texts)) if texts else []
        if len(found) != len(texts):
            raise InvalidInputError(
                f"detect returned {len(found)} results for {len(texts)} strings"
            )
        builder = _JsonBuilder(
            self, found, texts, rules=rules, channel=channel, tenant=tenant, scope=scope
        )
        result = builder.build(tree, "")
        items = sorted(builder.items, key=lambda it: (it.path, it.in_key, it.item.start))
        return result, items

    def reveal_text(self, text: str, *, tenant: str) -> str:
        """Return ``text`` with every reversible token turned back into its value."""
        if not tenant:
            raise InvalidInputError("tenant must not be empty")
        return _reveal_text(text, tenant=tenant, keys=self.keys)

    def __repr__(self) -> str:
        return f"Redactor(policy={self.policy!r}, keys={self.keys!r})"


@dataclass(frozen=True, slots=True)
class _Text:
    """A string to detect: its index in the batch sent to ``detect``."""

    slot: int


@dataclass(frozen=True, slots=True)
class _FieldValue:
    """A value redacted whole because of its field name."""

    entity_type: str
    value: str


@dataclass(frozen=True, slots=True)
class _Object:
    """An object: per member, the key's slot (None: not detected), the key, the value."""

    members: tuple[tuple[int | None, Any, _Node], ...]


@dataclass(frozen=True, slots=True)
class _Array:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Literal:
    value: JsonValue


_Node = _Text | _FieldValue | _Object | _Array | _Literal


class _JsonCollector:
    """First pass: the document's shape, every string and key to detect, field-rule values."""

    def __init__(self, policy: RedactionPolicy, *, max_depth: int) -> None:
        self.policy = policy
        self.max_depth = max_depth
        self.texts: list[str] = []

    def _slot(self, text: str) -> int:
        self.texts.append(text)
        return len(self.texts) - 1

    def collect(self, node: JsonValue, forced_type: str | None, depth: int) -> _Node:
        """The node's tree; numbers under a field rule become strings."""
        if isinstance(node, Mapping | list | tuple):
            if depth >= self.max_depth:
                raise InvalidInputError(
                    f"document: nested more than {self.max_depth} levels deep "
                    "(GUARD_MAX_JSON_DEPTH)"
                )
            if isinstance(node, Mapping):
                members = []
                for key, child in node.items():
                    is_text = isinstance(key, str)
                    rule = self.policy.entity_type_for_field(key) if is_text else None
                    slot = self._slot(key) if is_text and key else None
                    members.append((slot, key, self.collect(child, rule or forced_type, depth + 1)))
                return _Object(tuple(members))
            return _Array(tuple(self.collect(child, forced_type, depth + 1) for child in node))
        if isinstance(node, bool) or node is None:
            return _Literal(node)
        if forced_type is not None and isinstance(node, str | int | float):
            value = node if isinstance(node, str) else str(node)
            return _FieldValue(forced_type, value) if value else _Literal(value)
        if isinstance(node, str) and node:
            return _Text(self._slot(node))
        return _Literal(node)


class _JsonBuilder:
    """Second pass: the redacted copy, with redacted keys made unique, and its items."""

    def __init__(
        self,
        redactor: Redactor,
        found: Sequence[Sequence[DetectedEntity]],
        texts: Sequence[str],
        *,
        rules: ChannelRules,
        channel: str,
        tenant: str,
        scope: str,
    ) -> None:
        self.redactor = redactor
        self.found = found
        self.texts = texts
        self.rules = rules
        self.channel = channel
        self.tenant = tenant
        self.scope = scope
        self.items: list[JsonRedactedItem] = []

    def _redact(self, slot: int, where: str) -> RedactionResult | None:
        entities = self.found[slot]
        if not entities:
            return None
        try:
            return self.redactor.redact_text(
                self.texts[slot],
                entities,
                channel=self.channel,
                tenant=self.tenant,
                scope=self.scope,
            )
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where or '/'}: {exc.message}") from None

    def _keys(self, node: _Object, pointer: str) -> list[Any]:
        """The members' output keys: redacted ones made unique, unchanged ones kept."""
        redacted = [
            self._redact(slot, f"{pointer or '/'} (key {index})") if slot is not None else None
            for index, (slot, _, _) in enumerate(node.members)
        ]
        taken = {
            key for (_, key, _), done in zip(node.members, redacted, strict=True) if done is None
        }
        keys: list[Any] = []
        for (_, key, _), done in zip(node.members, redacted, strict=True):
            if done is None:
                keys.append(key)
                continue
            candidate, count = done.text, 1
            while candidate in taken:
                count += 1
                candidate = f"{done.text}#{count}"
            taken.add(candidate)
            keys.append(candidate)
            member_pointer = f"{pointer}/{_pointer_token(candidate)}"
            self.items.extend(
                JsonRedactedItem(path=member_pointer, item=item, in_key=True) for item in done.items
            )
        return keys

    def build(self, node: _Node, pointer: str) -> JsonValue:
        """The redacted copy of ``node``, found at ``pointer`` in the output."""
        if isinstance(node, _Object):
            copy: dict[Any, JsonValue] = {}
            for key, (_, _, child) in zip(self._keys(node, pointer), node.members, strict=True):
                copy[key] = self.build(child, f"{pointer}/{_pointer_token(key)}")
            return copy
        if isinstance(node, _Array):
            return [self.build(child, f"{pointer}/{i}") for i, child in enumerate(node.items)]
        if isinstance(node, _FieldValue):
            operator = self.rules.operator_for(node.entity_type)
            replacement = self.redactor._apply(  # noqa: SLF001 - the builder is the redactor's
                operator, node.value, node.entity_type, self.tenant, self.scope
            )
            self.items.append(
                JsonRedactedItem(
                    path=pointer,
                    item=RedactedItem(
                        0, len(node.value), node.entity_type, operator.name, 0, len(replacement)
                    ),
                    by_field_name=True,
                )
            )
            return replacement
        if isinstance(node, _Text):
            done = self._redact(node.slot, pointer)
            if done is None:
                return self.texts[node.slot]
            self.items.extend(JsonRedactedItem(path=pointer, item=item) for item in done.items)
            return done.text
        return node.value
