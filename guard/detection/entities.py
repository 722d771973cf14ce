"""What detection returns: typed spans with offsets into the input text, never the value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass(frozen=True, slots=True, order=True)
class DetectedEntity:
    """One region of text recognised as ``entity_type``; offsets are Python string indices."""

    start: int
    end: int
    entity_type: str
    score: float

    def to_dict(self) -> dict[str, object]:
        """The detection output format: start, end, entity_type, score."""
        return {
            "start": self.start,
            "end": self.end,
            "entity_type": self.entity_type,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True, slots=True)
class Candidate:
    """A recognizer's finding before overlaps are resolved."""

    start: int
    end: int
    entity_type: str
    score: float


#: When two findings tie on score, the more specific type wins the region.
TYPE_PRIORITY = {
    "CREDIT_CARD": 10,
    "IBAN_CODE": 10,
    "US_SSN": 9,
    "EMAIL_ADDRESS": 9,
    "API_KEY": 9,
    "PASSWORD": 9,
    "PIN": 8,
    "SECURITY_ANSWER": 8,
    "IP_ADDRESS": 8,
    "PHONE_NUMBER": 7,
    "STREET_ADDRESS": 6,
    "URL": 5,
    "PERSON": 5,
    "DATE_TIME": 4,
    "ZIP_CODE": 4,
    "LOCATION": 3,
    "ORGANIZATION": 2,
    "TITLE": 2,
    "NRP": 1,
    "US_BANK_NUMBER": 0,
    "US_DRIVER_LICENSE": 0,
}


def resolve_overlaps(
    candidates: Iterable[Candidate], text: str, *, min_piece: int = 2
) -> list[DetectedEntity]:
    """One label per region of text: the highest score wins, then the longer span, then type.

    A losing candidate is not dropped whole: the parts of it that no winner covers are kept
    under its own label (when they still hold ``min_piece`` alphanumeric characters), so that
    resolving a conflict never un-redacts a character a recognizer found.
    """
    ordered = sorted(
        candidates,
        key=lambda c: (-c.score, -(c.end - c.start), -TYPE_PRIORITY.get(c.entity_type, 3), c.start),
    )
    taken: list[tuple[int, int]] = []
    kept: list[DetectedEntity] = []
    for cand in ordered:
        for p_start, p_end in _uncovered(cand.start, cand.end, taken):
            start, end = p_start, p_end
            if (start, end) != (cand.start, cand.end):
                start, end = _trim_to_alnum(text, start, end)
                piece = text[start:end]
                if sum(ch.isalnum() for ch in piece) < min_piece or piece.lower() in _FILLER_WORDS:
                    continue
            kept.append(DetectedEntity(start, end, cand.entity_type, cand.score))
            taken.append((start, end))
    return _merge_adjacent(sorted(kept), text)


def _uncovered(start: int, end: int, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [start, end) that no taken region covers."""
    pieces = [(start, end)]
    for t_start, t_end in taken:
        next_pieces = []
        for p_start, p_end in pieces:
            if t_end <= p_start or p_end <= t_start:
                next_pieces.append((p_start, p_end))
                continue
            if p_start < t_start:
                next_pieces.append((p_start, t_start))
            if t_end < p_end:
                next_pieces.append((t_end, p_end))
        pieces = next_pieces
        if not pieces:
            break
    return pieces


def _trim_to_alnum(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return start, end


#: What is left of a losing span that is not worth a label of its own.
_FILLER_WORDS = frozenset("and or of the a an in on at to for with by from".split())

#: Types that make up one postal address when they stand next to each other.
_ADDRESS_PARTS = frozenset({"STREET_ADDRESS", "LOCATION", "ZIP_CODE"})


def _merge_adjacent(entities: list[DetectedEntity], text: str) -> list[DetectedEntity]:
    """Join the parts of one address split only by spaces, line breaks or commas.

    "<LOCATION>, <LOCATION>" ("Abington, MA") becomes one LOCATION, and a street address next
    to a city, region or postal code one STREET_ADDRESS. Other neighbours stay apart: two
    names side by side are two people, each with a pseudonym of their own, unless only a
    space parts them ("Rodriguez" + "Domingo" is one name).
    """
    merged: list[DetectedEntity] = []
    for entity in entities:
        if merged:
            last = merged[-1]
            gap = text[last.end : entity.start]
            same = last.entity_type == entity.entity_type and (
                entity.entity_type in _ADDRESS_PARTS or (gap and not gap.strip(" \t"))
            )
            address = {
                last.entity_type,
                entity.entity_type,
            } <= _ADDRESS_PARTS and "STREET_ADDRESS" in (last.entity_type, entity.entity_type)
            if (same or address) and not gap.strip(" \t\n\r,"):
                kind = "STREET_ADDRESS" if address else last.entity_type
                merged[-1] = DetectedEntity(
                    last.start, entity.end, kind, max(last.score, entity.score)
                )
                continue
        merged.append(entity)
    return merged
