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
from guard.redaction.policy import POLICY_FILENAME, RedactionPolicy, load_redaction_policy

if TYPE_CHECKING:
    from guard.redaction.operators import Operator

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

    def to_dict(self) -> dict[str, object]:
        """Return the item as plain data, with its JSON pointer under ``path``."""
        return {"path": self.path, "by_field_name": self.by_field_name, **self.item.to_dict()}


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
    ) -> RedactionResult:
        """Replace every entity in ``text`` as the channel's policy says."""
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
            operator = rules.operator_for(entity.entity_type)
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
    ) -> tuple[JsonValue, list[JsonRedactedItem]]:
        """Redact every string in a JSON document; field-name rules override detection."""
        rules = self.policy.rules_for(channel)
        if not tenant:
            raise InvalidInputError("tenant must not be empty")
        walker = _JsonWalker(self.policy)
        result = walker.walk(document, "", None)
        to_detect, field_values = walker.to_detect, walker.field_values

        found = detect([text for _, text in to_detect]) if to_detect else []
        if len(found) != len(to_detect):
            raise InvalidInputError(
                f"detect returned {len(found)} results for {len(to_detect)} strings"
            )

        replacements: dict[str, str] = {}
        items: list[JsonRedactedItem] = []
        for pointer, (entity_type, value) in field_values.items():
            operator = rules.operator_for(entity_type)
            replacement = self._apply(operator, value, entity_type, tenant, scope)
            replacements[pointer] = replacement
            items.append(
                JsonRedactedItem(
                    path=pointer,
                    item=RedactedItem(
                        0, len(value), entity_type, operator.name, 0, len(replacement)
                    ),
                    by_field_name=True,
                )
            )
        for (pointer, text), entities in zip(to_detect, found, strict=True):
            if not entities:
                continue
            try:
                redacted = self.redact_text(
                    text, entities, channel=channel, tenant=tenant, scope=scope
                )
            except InvalidInputError as exc:
                raise InvalidInputError(f"{pointer or '/'}: {exc.message}") from None
            replacements[pointer] = redacted.text
            items.extend(JsonRedactedItem(path=pointer, item=item) for item in redacted.items)

        items.sort(key=lambda it: (it.path, it.item.start))
        return _replace_at(result, "", replacements), items

    def reveal_text(self, text: str, *, tenant: str) -> str:
        """Return ``text`` with every reversible token turned back into its value."""
        if not tenant:
            raise InvalidInputError("tenant must not be empty")
        return _reveal_text(text, tenant=tenant, keys=self.keys)

    def __repr__(self) -> str:
        return f"Redactor(policy={self.policy!r}, keys={self.keys!r})"


class _JsonWalker:
    """Copy a JSON document, collecting strings to detect and values named by field rules."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self.to_detect: list[tuple[str, str]] = []  # (pointer, text)
        self.field_values: dict[str, tuple[str, str]] = {}  # pointer -> (entity_type, text)

    def walk(self, node: JsonValue, pointer: str, forced_type: str | None) -> JsonValue:
        """Return a copy of ``node``; numbers under a field rule become strings."""
        if isinstance(node, Mapping):
            copy: dict[Any, JsonValue] = {}
            for key, child in node.items():
                rule = self.policy.entity_type_for_field(key) if isinstance(key, str) else None
                child_pointer = f"{pointer}/{_pointer_token(key)}"
                copy[key] = self.walk(child, child_pointer, rule or forced_type)
            return copy
        if isinstance(node, list | tuple):
            return [self.walk(child, f"{pointer}/{i}", forced_type) for i, child in enumerate(node)]
        if isinstance(node, bool) or node is None:
            return node
        if forced_type is not None and isinstance(node, str | int | float):
            value = node if isinstance(node, str) else str(node)
            if value:
                self.field_values[pointer] = (forced_type, value)
            return value
        if isinstance(node, str) and node:
            self.to_detect.append((pointer, node))
        return node


def _replace_at(node: JsonValue, pointer: str, replacements: Mapping[str, str]) -> JsonValue:
    """Substitute redacted strings into the (already copied) document, in place."""
    if not replacements:
        return node
    if pointer in replacements:
        return replacements[pointer]
    if isinstance(node, dict):
        for key in node:
            node[key] = _replace_at(node[key], f"{pointer}/{_pointer_token(key)}", replacements)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            node[index] = _replace_at(child, f"{pointer}/{index}", replacements)
    return node
