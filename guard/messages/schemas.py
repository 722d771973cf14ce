"""Request and response bodies of ``POST /v1/messages/check``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["allow", "redact", "block"]
Reason = Literal["other_customer", "secret", "own_data", "pii"]


class MessageCheckRequest(BaseModel):
    """A draft message to a customer (``message``) or an internal note (``note``)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        description="The draft, at most GUARD_MAX_MESSAGE_CHARS characters (413 over it)."
    )
    channel: Literal["message", "note"] = Field(
        default="message", description="`message` to a customer, `note` internal."
    )
    customer_id: str | None = Field(
        default=None,
        max_length=64,
        description="Record id of the customer the conversation is about; their own data "
        "follows policies/messages.yaml, anyone else's blocks.",
    )
    conversation_id: str = Field(
        default="", max_length=200, description="Pseudonym scope of the redacted text."
    )
    customer_last_message: str | None = Field(
        default=None, description="The customer's last message, for the tone advice only."
    )


class MessageFindingOut(BaseModel):
    """A flagged region of the draft; never its value, nor whose it is."""

    entity_type: str
    start: int
    end: int
    reason: Reason = Field(
        description="`other_customer` and `secret` block; `own_data` follows the message "
        "policy; `pii` is redacted per the channel."
    )
    action: str = Field(description="`block`, `keep`, or the redaction operator applied.")


class ToneFindingOut(BaseModel):
    """Advice on one region of the draft: a category and a suggestion (never blocks)."""

    start: int
    end: int
    category: str
    rule: str
    suggestion: str


class ReadabilityOut(BaseModel):
    """Readability of the draft (textstat's Flesch reading ease and grade level)."""

    flesch_reading_ease: float
    grade: float
    words: int
    sentences: int


class ToneAdviceOut(BaseModel):
    """Tone advice: findings, and readability when the draft is long enough to score."""

    findings: list[ToneFindingOut]
    readability: ReadabilityOut | None = None


class MessageCheckResponse(BaseModel):
    """The verdict, the text to send (absent when blocked), findings and tone advice."""

    verdict: Verdict
    text: str | None = Field(default=None, description="What to send; absent when blocked.")
    findings: list[MessageFindingOut]
    advice: ToneAdviceOut
    request_id: str
