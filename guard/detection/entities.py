"""What detection returns: typed spans with offsets into the input text, never the value."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from sortedcontainers import SortedDict

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

    from presidio_analyzer import RecognizerResult


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
    """A recognizer's finding before overlaps are resolved.

    ``validated``: the finding passed a checksum or a strict format check of its recognizer;
    overlap resolution keeps such a region's label and bounds against guesses.
    """

    start: int
    end: int
    entity_type: str
    score: float
    validated: bool = False


class Validation(NamedTuple):
    """How a recognizer validates its findings, and from which score that is enough."""

    check: str
    #: The lowest score at which a finding counts as validated. 0 for a checksum or a
    #: parse, which settle it alone; for a digit format that only rules values out (an SSN),
    #: the score its context word gives: "536 22 1234" alone may be an address or a phone.
    min_score: float = 0.0


#: With a context word a score of at least this: Presidio's medium SSN (0.5) or weak ITIN
#: (0.3) pattern plus the 0.35 a context word adds, never their bare patterns.
_WITH_CONTEXT = 0.6

#: The recognizers whose findings have passed a checksum or a strict format check, by name
#: (``RecognizerResult.recognition_metadata``). Their findings are ``Candidate.validated``: a
#: guess (the NER's names and places, a phone-shaped digit run, a weak pattern) can no longer
#: cut through them or take them over. A recognizer belongs here only if it drops what fails
#: its check; one that merely lowers the score does not.
#: tests/detection/test_labels.py checks that each name is one the detector registers.
VALIDATING_RECOGNIZERS: dict[str, Validation] = {
    # at 0.5 and above: a Luhn-invalid card-shaped number (score 0.01, lifted to 0.4 by a
    # context word) is redacted but not validated
    "GuardCreditCardRecognizer": Validation("Luhn check digit", 0.5),
    "GuardIbanRecognizer": Validation("ISO 13616 mod-97 check digits"),
    "GuardIpRecognizer": Validation("parsed by ipaddress.ip_interface"),
    "GuardMacAddressRecognizer": Validation("12 hex digits, one separator, not all-0 or all-F"),
    "GuardEmailRecognizer": Validation("a domain with a public suffix"),
    "GuardUrlRecognizer": Validation("a host with a known top-level domain"),
    "GuardCryptoRecognizer": Validation("Base58Check or Bech32 checksum"),
    "GuardZipCodeRecognizer": Validation(
        "a UK postcode's outward and inward code, or a US ZIP after its state", 0.5
    ),
    "GuardUsSsnRecognizer": Validation(
        "3-2-4 digits, no zero group, area not 000 or 666, not a sample", _WITH_CONTEXT
    ),
    "GuardUsItinRecognizer": Validation(
        "area 9xx, group 50-65, 70-88, 90-92 or 94-99", _WITH_CONTEXT
    ),
}

#: A validated finding of the first type whose exact span a recognizer of the second type
#: also found is of the second, more specific type: every ITIN is shaped like an SSN (the
#: SSN rules accept the 9xx area), but the SSA never issues area 9xx, so "My SSN is
#: 912-70-1234" holds an ITIN.
REFINEMENTS: dict[str, str] = {"US_SSN": "US_ITIN"}

_NAME_KEY = "recognizer_name"  # RecognizerResult.RECOGNIZER_NAME_KEY, without the import


def candidate_from(result: RecognizerResult, offset: int = 0) -> Candidate:
    """The candidate for one recognizer result, its offsets shifted by ``offset``.

    It is ``validated`` when a recognizer of ``VALIDATING_RECOGNIZERS`` found it with at
    least that recognizer's ``min_score``.
    """
    metadata = result.recognition_metadata
    validation = VALIDATING_RECOGNIZERS.get(metadata.get(_NAME_KEY, "")) if metadata else None
    validated = validation is not None and result.score >= validation.min_score
    return Candidate(
        offset + result.start, offset + result.end, result.entity_type, result.score, validated
    )


def refine(candidates: list[Candidate]) -> list[Candidate]:
    """``candidates``, each validated one that a more specific finding matches exactly retyped.

    It takes the specific type (``REFINEMENTS``) and the higher of the two scores, and stays
    validated: the specific pattern's ranges hold inside the general one's validation.
    """
    specific = {
        (c.start, c.end, c.entity_type): c.score
        for c in candidates
        if c.entity_type in _REFINED_TYPES
    }
    if not specific:
        return candidates
    refined = []
    for cand in candidates:
        target = REFINEMENTS.get(cand.entity_type) if cand.validated else None
        score = specific.get((cand.start, cand.end, target)) if target is not None else None
        if target is not None and score is not None:
            refined.append(
                Candidate(cand.start, cand.end, target, max(score, cand.score), validated=True)
            )
        else:
            refined.append(cand)
    return refined


_REFINED_TYPES = frozenset(REFINEMENTS.values())


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
    """One label per region of text: validated findings first, then by score, length, type.

    A validated candidate (``Candidate.validated``: a checksum or strict format passed) is
    placed before every guess, so that it keeps its label and its exact bounds: the NER's
    0.85 for a "PERSON" inside an IPv6 address, or a phone reading of ``10.0.0.0/8``, no
    longer wins the region. A validated finding that a more specific recognizer found with
    the same bounds takes its type (``REFINEMENTS``: an SSN in the ITIN ranges is an ITIN).
    Between validated candidates, and between guesses, the usual order: the highest score,
    the longer span, then type.
    Validated findings are never merged with their neighbours (two cards side by side stay
    two cards).

    A losing candidate is not dropped whole: the parts of it that no winner covers are kept
    under its own label (when they still hold ``min_piece`` alphanumeric characters), so that
    resolving a conflict never un-redacts a character a recognizer found. Empty candidates
    (``end <= start``) are ignored.

    Time is O(n log n) in the number of candidates, plus the characters trimmed off the edges
    of losing pieces: the regions already labelled are a sorted interval set, and a candidate
    visits only the gaps it can still claim (see ``_Taken``).
    """
    if min_piece < 1:
        msg = "min_piece must be at least 1"
        raise ValueError(msg)
    kept, contested, fixed = _split_isolated(c for c in candidates if c.end > c.start)
    contested = refine(contested)
    ordered = sorted(contested, key=resolution_order)
    taken = _Taken(len(ordered))
    for cand in ordered:
        untouched, pieces = taken.pieces(cand.start, cand.end)
        if untouched:  # no winner overlaps it: the whole candidate, as found, untrimmed
            kept.append(DetectedEntity(cand.start, cand.end, cand.entity_type, cand.score))
            taken.add(cand.start, cand.end, pieces[0])
            if cand.validated:
                fixed.add((cand.start, cand.end))
            continue
        for piece in pieces:
            start, end = _trim_to_alnum(text, piece.start, piece.end)
            if not _worth_a_label(text, start, end, min_piece):
                if piece.whole_gap:
                    taken.reject(piece)
                continue
            kept.append(DetectedEntity(start, end, cand.entity_type, cand.score))
            taken.add(start, end, piece)
    return _merge_adjacent(sorted(kept), text, fixed)


def resolution_order(cand: Candidate) -> tuple[bool, float, int, int, int]:
    """The sort key of ``resolve_overlaps``: earlier candidates win the regions they cover."""
    return (
        not cand.validated,
        -cand.score,
        -(cand.end - cand.start),
        -TYPE_PRIORITY.get(cand.entity_type, 3),
        cand.start,
    )


def _split_isolated(
    candidates: Iterable[Candidate],
) -> tuple[list[DetectedEntity], list[Candidate], set[tuple[int, int]]]:
    """Candidates that overlap no other (kept whole, as found), the others, validated spans.

    A candidate that overlaps no other is never touched by another's region and touches
    none: whatever the order, it is kept as it is. Most findings are of this kind, so the
    interval set is built for the contested few only. The third part holds the bounds of
    the isolated validated candidates (``_merge_adjacent`` leaves them as they are).
    """
    by_start = sorted(candidates, key=lambda c: (c.start, c.end))
    isolated: list[DetectedEntity] = []
    contested: list[Candidate] = []
    fixed: set[tuple[int, int]] = set()
    reach = -1  # the furthest end of the candidates before this one
    for index, cand in enumerate(by_start):
        following = by_start[index + 1] if index + 1 < len(by_start) else None
        if cand.start >= reach and (following is None or following.start >= cand.end):
            isolated.append(DetectedEntity(cand.start, cand.end, cand.entity_type, cand.score))
            if cand.validated:
                fixed.add((cand.start, cand.end))
        else:
            contested.append(cand)
        reach = max(reach, cand.end)
    return isolated, contested, fixed


#: Up to this many contested candidates, the interval set lives in plain sorted lists: their
#: inserts move memory (linear, but in C and tiny here) and beat SortedDict's bookkeeping.
SMALL_SETS = 512


class _SortedMap(Protocol):
    """What ``_Taken`` needs of a sorted int -> int map (SortedDict's names)."""

    def __len__(self) -> int: ...
    def __contains__(self, key: object) -> bool: ...
    def __setitem__(self, key: int, value: int) -> None: ...
    def __delitem__(self, key: int) -> None: ...
    def pop(self, key: int) -> int: ...
    def bisect_left(self, key: int) -> int: ...
    def bisect_right(self, key: int) -> int: ...
    def peekitem(self, index: int) -> tuple[int, int]: ...


class _SmallSortedMap:
    """A sorted int -> int map in a list of keys and a dict, for small sets."""

    __slots__ = ("_keys", "_values")

    def __init__(self) -> None:
        self._keys: list[int] = []
        self._values: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __setitem__(self, key: int, value: int) -> None:
        if key not in self._values:
            insort(self._keys, key)
        self._values[key] = value

    def __delitem__(self, key: int) -> None:
        del self._values[key]
        del self._keys[bisect_left(self._keys, key)]

    def pop(self, key: int) -> int:
        value = self._values.pop(key)
        del self._keys[bisect_left(self._keys, key)]
        return value

    def bisect_left(self, key: int) -> int:
        return bisect_left(self._keys, key)

    def bisect_right(self, key: int) -> int:
        return bisect_right(self._keys, key)

    def peekitem(self, index: int) -> tuple[int, int]:
        key = self._keys[index]
        return key, self._values[key]


@dataclass(frozen=True, slots=True)
class _Piece:
    """A part of a candidate that no winner covers, inside the free gap [gap_start, gap_end).

    ``None`` bounds are the open ends before the first and after the last taken region.
    ``whole_gap``: the piece is the whole gap, with taken regions on both sides; any later
    candidate that covers that gap gets exactly this piece again.
    """

    start: int
    end: int
    gap_start: int | None
    gap_end: int | None
    whole_gap: bool


class _Taken:
    """The regions already labelled, for ``resolve_overlaps``.

    ``_regions`` maps start to end of the taken regions (disjoint, never touching: touching
    ones are joined, since only their union matters). A gap between two regions that was
    offered whole and refused (too few alphanumerics, a filler word) would be refused again
    by every later candidate covering it, so it is *closed*: ``_chains`` joins regions across
    closed gaps, and a candidate walks the gaps between chains only. Every gap walked is then
    taken or closed, which joins two chains: each gap costs one walk in all, and the whole
    resolution stays O(n log n) even when many long losers cover many small winners.
    """

    def __init__(self, candidates: int) -> None:
        # a few candidates (the usual case): plain sorted lists are faster; many: SortedDict
        kind: type[_SortedMap] = _SmallSortedMap if candidates <= SMALL_SETS else SortedDict
        self._regions: _SortedMap = kind()
        self._chains: _SortedMap = kind()
        self._closed: set[tuple[int, int]] = set()

    def _gap_at(self, position: int) -> tuple[int | None, int | None] | None:
        """The free gap holding ``position`` as (start, end), or None if it is taken."""
        regions = self._regions
        index = regions.bisect_right(position) - 1
        gap_start: int | None = None
        if index >= 0:
            region_end: int = regions.peekitem(index)[1]
            if region_end > position:
                return None
            gap_start = region_end
        gap_end: int | None = regions.peekitem(index + 1)[0] if index + 1 < len(regions) else None
        return gap_start, gap_end

    def pieces(self, start: int, end: int) -> tuple[bool, list[_Piece]]:
        """The parts of [start, end) still free, left to right; (True, [whole]) if all is.

        Closed gaps wholly inside [start, end) are left out: they would be refused.
        """
        first = self._gap_at(start)
        if first is not None and (first[1] is None or first[1] >= end):
            return True, [_Piece(start, end, first[0], first[1], whole_gap=False)]
        out: list[_Piece] = []
        if first is not None:  # [start, gap end) is free; the gap ends inside the candidate
            gap_start, gap_end = first
            assert gap_end is not None  # noqa: S101 - it ends before ``end`` (checked above)
            if gap_start != start:
                out.append(_Piece(start, gap_end, gap_start, gap_end, whole_gap=False))
            elif (gap_start, gap_end) not in self._closed:
                out.append(_Piece(start, gap_end, gap_start, gap_end, whole_gap=True))
        # the open gaps between the chains that meet [start, end]: all whole, all inside
        chains = self._chains
        index = chains.bisect_right(start) - 1
        if index < 0 or chains.peekitem(index)[1] <= start:
            index += 1
        previous_end: int | None = None
        while index < len(chains):
            chain_start, chain_end = chains.peekitem(index)
            if chain_start > end:
                break
            if previous_end is not None:
                out.append(
                    _Piece(previous_end, chain_start, previous_end, chain_start, whole_gap=True)
                )
            previous_end = chain_end
            index += 1
        last = self._gap_at(end - 1)
        if last is not None and (last[1] is None or last[1] > end):
            # a free gap that starts inside the candidate and runs on past its end
            assert last[0] is not None  # noqa: S101 - else [start, end) would be all free
            out.append(_Piece(last[0], end, last[0], last[1], whole_gap=False))
        return False, out

    def _chain_with(self, position: int) -> tuple[int, int]:
        """The chain that holds ``position`` (a taken position or a closed gap's)."""
        chain: tuple[int, int] = self._chains.peekitem(self._chains.bisect_right(position) - 1)
        return chain

    def reject(self, piece: _Piece) -> None:
        """A whole gap was refused: close it, joining the chains on either side."""
        gap_start, gap_end = piece.gap_start, piece.gap_end
        assert gap_start is not None  # noqa: S101 - a whole gap has regions on both sides
        assert gap_end is not None  # noqa: S101
        self._closed.add((gap_start, gap_end))
        left_start, _ = self._chain_with(gap_start - 1)
        right_end = self._chains.pop(gap_end)
        self._chains[left_start] = right_end

    def add(self, start: int, end: int, piece: _Piece) -> None:
        """Mark [start, end) taken; it lies inside ``piece``'s free gap."""
        self._add_region(start, end, piece)
        self._rechain(start, end, piece)

    def _add_region(self, start: int, end: int, piece: _Piece) -> None:
        regions = self._regions
        region_start, region_end = start, end
        if piece.gap_start == start:  # joins the region before it
            region_start = regions.peekitem(regions.bisect_left(start) - 1)[0]
            del regions[region_start]
        if piece.gap_end == end:  # and the one after it
            region_end = regions.pop(end)
        regions[region_start] = region_end

    def _rechain(self, start: int, end: int, piece: _Piece) -> None:
        """Split the gap's chain (or join its two neighbours) around the new region."""
        gap_start, gap_end = piece.gap_start, piece.gap_end
        chains = self._chains
        # the gap was closed (inside one chain) or open (between two chains, or at an end)
        left = self._chain_with(gap_start - 1) if gap_start is not None else None
        right = self._chain_with(gap_end) if gap_end is not None else None
        if gap_start is not None and gap_end is not None:
            self._closed.discard((gap_start, gap_end))
        for chain in (left, right):
            if chain is not None and chain[0] in chains:
                del chains[chain[0]]
        chain_start, chain_end = start, end
        # what is left of the gap on either side is closed when it is only characters trimmed
        # off this piece (no alphanumeric: any later candidate would have it refused)
        if left is not None and gap_start is not None:
            if gap_start in (start, piece.start):
                chain_start = left[0]
                if start > gap_start:
                    self._closed.add((gap_start, start))
            else:
                chains[left[0]] = gap_start
        if right is not None and gap_end is not None:
            if gap_end in (end, piece.end):
                chain_end = right[1]
                if end < gap_end:
                    self._closed.add((end, gap_end))
            else:
                chains[gap_end] = right[1]
        chains[chain_start] = chain_end


def _trim_to_alnum(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return start, end


def _worth_a_label(text: str, start: int, end: int, min_piece: int) -> bool:
    """A trimmed piece keeps its label if it has ``min_piece`` alphanumerics, not a filler word.

    Trimmed pieces begin and end with an alphanumeric, so the usual ``min_piece`` of 2 is
    decided by the length alone, without reading a long piece.
    """
    length = end - start
    if length <= 0:
        return False
    if length <= _LONGEST_FILLER and text[start:end].lower() in _FILLER_WORDS:
        return False
    if min_piece <= 2 and length >= min_piece:  # noqa: PLR2004 - both ends are alphanumeric
        return True
    count = 0
    for index in range(start, end):
        if text[index].isalnum():
            count += 1
            if count >= min_piece:
                return True
    return False


#: What is left of a losing span that is not worth a label of its own.
_FILLER_WORDS = frozenset("and or of the a an in on at to for with by from".split())
_LONGEST_FILLER = max(len(word) for word in _FILLER_WORDS)

#: Types that make up one postal address when they stand next to each other.
_ADDRESS_PARTS = frozenset({"STREET_ADDRESS", "LOCATION", "ZIP_CODE"})


def _merge_adjacent(
    entities: list[DetectedEntity], text: str, fixed: Collection[tuple[int, int]] = ()
) -> list[DetectedEntity]:
    """Join the parts of one address split only by spaces, line breaks or commas.

    "<LOCATION>, <LOCATION>" ("Abington, MA") becomes one LOCATION, and a street address next
    to a city, region or postal code one STREET_ADDRESS. Other neighbours stay apart: two
    names side by side are two people, each with a pseudonym of their own, unless only a
    space parts them ("Rodriguez" + "Domingo" is one name). Numbers are not names: two digit
    runs of one type with a space between ("4111... 4012...") are two values, and a
    validated finding (its bounds in ``fixed``) is exactly one value, never joined.
    """
    merged: list[DetectedEntity] = []
    for entity in entities:
        if merged:
            last = merged[-1]
            gap = text[last.end : entity.start]
            parts = {last.entity_type, entity.entity_type} <= _ADDRESS_PARTS
            if (
                fixed
                and not parts  # a validated postal code still joins its address
                and ((last.start, last.end) in fixed or (entity.start, entity.end) in fixed)
            ):
                merged.append(entity)
                continue
            same = last.entity_type == entity.entity_type and (
                entity.entity_type in _ADDRESS_PARTS
                or (
                    gap
                    and not gap.strip(" \t")
                    and (
                        entity.entity_type in _JOINED_BY_A_SPACE
                        or not _digits_meet(text, last.end, entity.start)
                    )
                )
            )
            address = {
                last.entity_type,
                entity.entity_type,
            } <= _ADDRESS_PARTS and "STREET_ADDRESS" in (last.entity_type, entity.entity_type)
            # "Lom" + "-" + "Ali", "O" + "'" + "Neil": one name that the NER read as two
            hyphenated = (
                last.entity_type == entity.entity_type
                and entity.entity_type in _NAME_TYPES
                and gap in _WORD_JOINERS
            )
            if hyphenated or (
                (same or address)
                and (
                    not gap.strip(" \t\n\r,")
                    or (address and _abbreviation_dot(text, last.end, gap))
                )
            ):
                kind = "STREET_ADDRESS" if address else last.entity_type
                merged[-1] = DetectedEntity(
                    last.start, entity.end, kind, max(last.score, entity.score)
                )
                continue
        merged.append(entity)
    return merged


#: Types of names, whose parts a hyphen or an apostrophe inside one word joins.
_NAME_TYPES = frozenset({"PERSON", "LOCATION", "ORGANIZATION"})
_WORD_JOINERS = frozenset({"-", "'", "\u2019"})
#: Types whose parts a space joins into one value even digit to digit: a date and its time
#: ("2011-10-24 06:30:25") are one moment.
_JOINED_BY_A_SPACE = frozenset({"DATE_TIME"})


def _abbreviation_dot(text: str, end: int, gap: str) -> bool:
    """Whether ``gap`` is the dot of an abbreviation that ends the entity before it.

    "Apt. 434", "Str. 20": the dot belongs to the address on both sides of it.
    """
    return gap.startswith(".") and not gap[1:].strip(" \t") and end > 0 and text[end - 1].isalpha()


def _digits_meet(text: str, end: int, start: int) -> bool:
    """Whether the entity ending at ``end`` ends with a digit and the next begins with one."""
    return end > 0 and start < len(text) and text[end - 1].isdigit() and text[start].isdigit()
