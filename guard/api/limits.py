"""Request limits beyond the body size: batch size and text length."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard.errors import InputTooLargeError, InvalidInputError

if TYPE_CHECKING:
    from guard.config import Settings


def check_texts(texts: list[str], settings: Settings, *, field: str = "texts") -> None:
    """Refuse an empty or oversized batch (422) or an oversized text (413), naming the field."""
    if not texts:
        raise InvalidInputError(f"body.{field}: give at least one text")
    if len(texts) > settings.max_batch_size:
        raise InvalidInputError(
            f"body.{field}: {len(texts)} texts is over the batch limit of "
            f"{settings.max_batch_size} (GUARD_MAX_BATCH_SIZE)"
        )
    check_lengths(texts, settings, field=field)


def check_lengths(texts: list[str], settings: Settings, *, field: str) -> None:
    """Refuse any text over GUARD_MAX_TEXT_BYTES with 413, naming where it is."""
    limit = settings.max_text_bytes
    for index, text in enumerate(texts):
        if len(text) > limit // 4 and len(text.encode("utf-8")) > limit:
            where = f"body.{field}" if field == "text" else f"body.{field}.{index}"
            raise InputTooLargeError(
                f"{where}: text is over the limit of {limit} bytes (GUARD_MAX_TEXT_BYTES)"
            )
