"""Request and response bodies of the redaction endpoints."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Channel = Literal["message", "note", "export"]


class TextsIn(BaseModel):
    """One text (``text``) or a batch (``texts``), not both."""

    # The contract says what the validator below enforces: exactly one of the two is given
    # (a JSON null counts as not given), so `{}` is not a valid body in the schema either.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["text"], "properties": {"text": {"type": "string"}}},
                {"required": ["texts"], "properties": {"texts": {"type": "array"}}},
            ]
        },
    )

    text: str | None = Field(default=None, description="A single text.")
    texts: list[str] | None = Field(
        default=None,
        description="A batch of texts (at most GUARD_MAX_BATCH_SIZE).",
        json_schema_extra={"minItems": 1},
    )

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' or 'texts'")
        return self

    def as_list(self) -> list[str]:
        """The texts, a single one as a batch of one."""
        return [self.text] if self.text is not None else list(self.texts or [])


class RedactRequest(TextsIn):
    """``POST /v1/redact``."""

    channel: Channel = "message"
    scope: str = Field(
        default="", max_length=200, description="Pseudonym scope, e.g. a conversation id."
    )


class RedactedEntity(BaseModel):
    """Where a value was and what replaced it; never the value."""

    entity_type: str
    start: int
    end: int
    operator: str


class RedactedText(BaseModel):
    """One redacted text."""

    text: str
    entities: list[RedactedEntity]


class RedactResponse(BaseModel):
    """Results in the order of the request's texts."""

    results: list[RedactedText]
    request_id: str


class RedactJsonRequest(BaseModel):
    """``POST /v1/redact/json``: every string value and object key of ``document`` is redacted.

    ``document`` may nest at most GUARD_MAX_JSON_DEPTH (64) levels of objects and arrays.
    """

    model_config = ConfigDict(extra="forbid")

    document: Any
    channel: Channel = "export"
    scope: str = Field(default="", max_length=200)


class RedactedJsonItem(BaseModel):
    """A replacement inside the document, by JSON pointer into the redacted document."""

    path: str
    entity_type: str
    operator: str
    by_field_name: bool
    in_key: bool = Field(
        default=False, description="The replacement is in the key of the member at path."
    )


class RedactJsonResponse(BaseModel):
    """The redacted document and what was replaced where."""

    document: Any
    items: list[RedactedJsonItem]
    request_id: str


class RevealRequest(BaseModel):
    """``POST /v1/reveal``: turn reversible tokens back, with a reason that is audited."""

    model_config = ConfigDict(extra="forbid")

    text: str
    reason: str = Field(min_length=10, max_length=500, description="Why the values are needed.")


class RevealResponse(BaseModel):
    """The text with its tokens revealed."""

    text: str
    request_id: str
