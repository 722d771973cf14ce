"""The redaction policy: per channel and entity type, which operator with which parameters.

``policies/redaction.yaml`` is validated with pydantic on load, and every operator is built
then, so a typo or a bad parameter stops start-up with a message naming the entry, e.g.
``channels.message.entities.PHONE_NUMBER: unknown operator 'maks'``. Field-name rules map JSON
keys (``email``, ``e-mail``, ``firstName``...) to an entity type; names are compared casefolded
with everything but letters and digits removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from guard.errors import InvalidInputError, PolicyError
from guard.policyfiles import describe_validation_error, read_policy_yaml
from guard.redaction.operators import (
    Operator,
    OperatorParamsError,
    OperatorRegistry,
    default_registry,
)

if TYPE_CHECKING:
    from pathlib import Path

#: The channels a policy covers: outgoing messages, internal notes, analytics exports.
CHANNELS: tuple[str, ...] = ("message", "note", "export")
POLICY_FILENAME = "redaction.yaml"
_ENTITY_TYPE = re.compile(r"[A-Z][A-Z0-9_]*")
_NOT_ALNUM = re.compile(r"[\W_]+")


def normalise_field_name(name: str) -> str:
    """Compare field names casefolded, ignoring separators: ``E-Mail`` == ``e_mail``."""
    return _NOT_ALNUM.sub("", name.casefold())


class OperatorSpec(BaseModel):
    """One policy entry: an operator name and its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operator: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class ChannelSpec(BaseModel):
    """A channel's rules: one operator per entity type, and a default for the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: OperatorSpec = Field(default_factory=lambda: OperatorSpec(operator="tag"))
    entities: dict[str, OperatorSpec] = Field(default_factory=dict)

    @field_validator("entities")
    @classmethod
    def _entity_type_names(cls, value: dict[str, OperatorSpec]) -> dict[str, OperatorSpec]:
        bad = [name for name in value if not _ENTITY_TYPE.fullmatch(name)]
        if bad:
            raise ValueError(f"entity types must be UPPER_SNAKE_CASE: {', '.join(bad)}")
        return value


class ChannelsSpec(BaseModel):
    """All channels; an unknown channel name is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message: ChannelSpec = Field(default_factory=ChannelSpec)
    note: ChannelSpec = Field(default_factory=ChannelSpec)
    export: ChannelSpec = Field(default_factory=ChannelSpec)


class RedactionPolicyFile(BaseModel):
    """The whole of ``policies/redaction.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    channels: ChannelsSpec = Field(default_factory=ChannelsSpec)
    #: entity type -> JSON field names whose values are always that entity type.
    fields: dict[str, list[str]] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChannelRules:
    """A channel's built operators."""

    default: Operator
    entities: dict[str, Operator]

    def operator_for(self, entity_type: str) -> Operator:
        """Return the operator for ``entity_type``, or the channel default."""
        return self.entities.get(entity_type, self.default)


class RedactionPolicy:
    """A validated policy with its operators built; immutable once made."""

    def __init__(self, channels: dict[str, ChannelRules], field_rules: dict[str, str]) -> None:
        self._channels = dict(channels)
        self._field_rules = dict(field_rules)

    @classmethod
    def from_spec(
        cls,
        spec: RedactionPolicyFile,
        *,
        source: str = "redaction policy",
        registry: OperatorRegistry | None = None,
    ) -> RedactionPolicy:
        """Build every operator of ``spec``; errors name the entry in ``source``."""
        registry = registry or default_registry()

        def build(where: str, entry: OperatorSpec) -> Operator:
            try:
                return registry.create(entry.operator, entry.params)
            except OperatorParamsError as exc:
                raise PolicyError(f"{source}: {where}: {exc.message}") from None

        channels: dict[str, ChannelRules] = {}
        for name in CHANNELS:
            channel: ChannelSpec = getattr(spec.channels, name)
            channels[name] = ChannelRules(
                default=build(f"channels.{name}.default", channel.default),
                entities={
                    entity_type: build(f"channels.{name}.entities.{entity_type}", entry)
                    for entity_type, entry in channel.entities.items()
                },
            )

        field_rules: dict[str, str] = {}
        for entity_type, names in spec.fields.items():
            if not _ENTITY_TYPE.fullmatch(entity_type):
                raise PolicyError(
                    f"{source}: fields.{entity_type}: entity types must be UPPER_SNAKE_CASE"
                )
            for field_name in names:
                key = normalise_field_name(field_name)
                if not key:
                    raise PolicyError(
                        f"{source}: fields.{entity_type}: field name {field_name!r} is empty "
                        "once separators are removed"
                    )
                previous = field_rules.setdefault(key, entity_type)
                if previous != entity_type:
                    raise PolicyError(
                        f"{source}: fields.{entity_type}: field {field_name!r} is already "
                        f"mapped to {previous}"
                    )
        return cls(channels, field_rules)

    @property
    def channels(self) -> tuple[str, ...]:
        """Return the channel names."""
        return tuple(self._channels)

    def rules_for(self, channel: str) -> ChannelRules:
        """Return a channel's rules; an unknown channel is invalid input."""
        rules = self._channels.get(channel)
        if rules is None:
            raise InvalidInputError(
                f"unknown channel {channel!r} (expected one of: {', '.join(CHANNELS)})"
            )
        return rules

    def operator_for(self, channel: str, entity_type: str) -> Operator:
        """Return the operator that ``channel`` applies to ``entity_type``."""
        return self.rules_for(channel).operator_for(entity_type)

    def entity_type_for_field(self, field_name: str) -> str | None:
        """Return the entity type a JSON field name always holds, if a rule names it."""
        return self._field_rules.get(normalise_field_name(field_name))

    def __repr__(self) -> str:
        return f"RedactionPolicy(channels={self.channels!r}, field_rules={len(self._field_rules)})"


def parse_redaction_policy(
    data: object, *, source: str = "redaction policy", registry: OperatorRegistry | None = None
) -> RedactionPolicy:
    """Validate already-parsed policy data and build its operators."""
    try:
        spec = RedactionPolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(describe_validation_error(source, exc)) from None
    return RedactionPolicy.from_spec(spec, source=source, registry=registry)


def load_redaction_policy(
    path: Path, *, registry: OperatorRegistry | None = None
) -> RedactionPolicy:
    """Read, validate and build ``policies/redaction.yaml`` (or another file)."""
    return parse_redaction_policy(read_policy_yaml(path), source=str(path), registry=registry)
