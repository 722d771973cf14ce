"""The message policy: which entity types are secrets, and what happens to the customer's own data.

``policies/messages.yaml`` is validated with pydantic on load and its operators are built then,
so a typo stops start-up with a message naming the entry, e.g.
``channels.message.own.phone: unknown operator 'maks'``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from guard.errors import PolicyError
from guard.policyfiles import describe_validation_error, read_policy_yaml
from guard.redaction.operators import Operator, OperatorParamsError, default_registry
from guard.redaction.policy import OperatorSpec

if TYPE_CHECKING:
    from pathlib import Path

POLICY_FILENAME = "messages.yaml"
#: The channels a message is checked for: to a customer, or an internal note.
CHANNELS: tuple[str, ...] = ("message", "note")
#: Identifier kinds looked up through blind indexes, and the entity type each is reported as.
KIND_ENTITY: dict[str, str] = {
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "account_id": "ACCOUNT_ID",
    "full_name": "PERSON",
}
_ENTITY_TYPE = re.compile(r"[A-Z][A-Z0-9_]*")

OwnRule = Literal["keep"] | OperatorSpec


class ChannelSpec(BaseModel):
    """One channel: what happens to each kind of the conversation customer's own data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    own: dict[Literal["email", "phone", "account_id", "full_name"], OwnRule] = Field(
        default_factory=dict
    )


class ChannelsSpec(BaseModel):
    """Both channels; an unknown channel name is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message: ChannelSpec = Field(default_factory=ChannelSpec)
    note: ChannelSpec = Field(default_factory=ChannelSpec)


class MessagePolicyFile(BaseModel):
    """The whole of ``policies/messages.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    secrets: list[str] = Field(min_length=1)
    channels: ChannelsSpec = Field(default_factory=ChannelsSpec)

    @field_validator("secrets")
    @classmethod
    def _entity_types(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _ENTITY_TYPE.fullmatch(name)]
        if bad:
            raise ValueError(f"entity types must be UPPER_SNAKE_CASE: {', '.join(bad)}")
        return value


@dataclass(frozen=True, slots=True)
class MessagePolicy:
    """The validated policy: secret types, and per channel the own-data rule of each kind.

    ``own[channel][kind]`` is ``None`` for ``keep`` (left in clear) or the operator to apply.
    A kind a channel does not name is kept: it is the customer's own data, and redacting it
    would only be the redaction policy's default applied to a value already matched exactly.
    """

    secrets: frozenset[str]
    own: dict[str, dict[str, Operator | None]]

    def own_rule(self, channel: str, kind: str) -> Operator | None:
        """The operator for the customer's own ``kind`` in ``channel`` (``None``: keep)."""
        return self.own.get(channel, {}).get(kind)


def parse_message_policy(data: object, *, source: str = "message policy") -> MessagePolicy:
    """Validate already-parsed policy data and build its operators."""
    try:
        spec = MessagePolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(describe_validation_error(source, exc)) from None
    registry = default_registry()
    own: dict[str, dict[str, Operator | None]] = {}
    for channel in CHANNELS:
        rules: dict[str, Operator | None] = {}
        channel_spec: ChannelSpec = getattr(spec.channels, channel)
        for kind, rule in channel_spec.own.items():
            if rule == "keep":
                rules[kind] = None
                continue
            assert isinstance(rule, OperatorSpec)  # noqa: S101 - the union has two members
            try:
                rules[kind] = registry.create(rule.operator, rule.params)
            except OperatorParamsError as exc:
                raise PolicyError(
                    f"{source}: channels.{channel}.own.{kind}: {exc.message}"
                ) from None
        own[channel] = rules
    return MessagePolicy(secrets=frozenset(spec.secrets), own=own)


def load_message_policy(path: Path) -> MessagePolicy:
    """Read, validate and build ``policies/messages.yaml`` (or another file)."""
    return parse_message_policy(read_policy_yaml(path), source=str(path))
