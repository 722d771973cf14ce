"""The outgoing-message guard: another customer's data or a secret blocks; the rest is redacted.

Threat: an agent (a person or an AI agent) pastes *another* customer's email, phone number,
account id or name into this customer's chat, or quotes back a password a customer shared. A
plain redactor cannot tell the two customers apart; this check can, because it knows who the
conversation is about and looks every identifier in the draft up through the tenant's blind
indexes (keyed hashes: the lookup reveals nothing to the database, see
:mod:`guard.crypto.blind_index`).

Identifiers are gathered generously, so a detector that mislabels a value does not hide it
from the lookup: detected entities of every type, plus every token that looks like an
identifier (digits, ``@``), every phone-like run of digits and every run of two or three
capitalised words. Each is normalised the way the index was built (case-folded email, E.164
phone, accent- and case-folded full name; account ids as written and in upper and lower case).

- A match with a record other than the conversation's customer is a ``block`` finding that
  names the kind of data only: never the other record's id or the value.
- A value that matches the conversation customer (also when another record shares it: a family
  phone) is theirs, and follows ``policies/messages.yaml`` for the channel; so does a detected
  name made only of their first/last name ("Hi Jane").
- A secret (``secrets`` in the policy) is a ``block`` in either channel.
- Everything else detected is redacted per ``policies/redaction.yaml`` for the channel.

Fail closed: if the lookup cannot run, the check raises :class:`LookupUnavailableError` (503);
it never answers ``allow`` unchecked. Tone advice (:mod:`guard.messages.tone`) is advisory.
"""

from __future__ import annotations

import bisect
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.exc import SQLAlchemyError

from guard.detection.entities import DetectedEntity
from guard.detection.executor import meanwhile
from guard.errors import InputTooLargeError, InvalidInputError
from guard.messages.errors import LookupUnavailableError
from guard.messages.policy import (
    CHANNELS,
    KIND_ENTITY,
    POLICY_FILENAME,
    MessagePolicy,
    load_message_policy,
)
from guard.messages.tone import TONE_FILENAME, ToneAdvice, ToneAdvisor, load_tone_policy
from guard.records.errors import RecordErasedError, RecordNotFoundError
from guard.records.service import normalise_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from guard.config import Settings
    from guard.detection.executor import Analyzer
    from guard.records.service import RecordService
    from guard.redaction.operators import Operator
    from guard.redaction.service import Redactor

VERDICTS = ("allow", "redact", "block")
#: Finding reasons: why a region of the draft was flagged.
OTHER_CUSTOMER = "other_customer"
SECRET = "secret"  # noqa: S105 - a reason name, not a secret
OWN_DATA = "own_data"
PII = "pii"
#: Values sent to the blind-index lookup per query (each kind's values are chunked).
LOOKUP_CHUNK = 400
#: Foreign records named (by keyed hash) in one audit event; the count is always exact.
AUDITED_FOREIGN = 10

_TOKEN = re.compile(r"\S+")
_EDGE_PUNCT = "\"'`.,;:!?()[]{}<>*\u00ab\u00bb\u2018\u2019\u201c\u201d"
#: A run that may be a phone number: digits with the separators people write (bounded, linear).
_PHONE_RUN = re.compile(r"(?<![\w+])\+?\(?\d[\d ().\-]{5,22}\d(?!\w)")
#: A capitalised word (a name part), for runs of two or three of them.
_CAPITALISED = re.compile("[A-Z\u00c0-\u00d6\u00d8-\u00de][\\w'\u2019\\-]*")
#: A possessive ending ("Jane Doe's", "James'"): not part of the name.
_POSSESSIVE = re.compile("['\u2019]s?$")
_MIN_PHONE_DIGITS = 7
_MAX_PHONE_DIGITS = 15
_MIN_ACCOUNT_CHARS = 3
_MAX_ACCOUNT_CHARS = 64
#: Entity types whose values are tried as account ids besides identifier-like tokens.
_ACCOUNT_TYPES = frozenset(
    {"ACCOUNT_ID", "MEMBER_NUMBER", "USERNAME", "US_BANK_NUMBER", "ORDER_ID", "IBAN_CODE"}
)


@dataclass(frozen=True, slots=True)
class MessageFinding:
    """A flagged region of the draft: offsets, type, why, and what happens to it; no value."""

    entity_type: str
    start: int
    end: int
    reason: str
    action: str

    def to_dict(self) -> dict[str, object]:
        """The finding as plain data."""
        return {
            "entity_type": self.entity_type,
            "start": self.start,
            "end": self.end,
            "reason": self.reason,
            "action": self.action,
        }


@dataclass(frozen=True)
class MessageCheck:
    """The outcome of one check. ``text`` is what to send (``None`` when blocked).

    ``foreign_records`` are the ids of other customers' records the draft matched: for the audit
    (stored as keyed hashes) and never for the caller. The repr shows neither text nor ids.
    """

    verdict: str
    text: str | None
    findings: tuple[MessageFinding, ...]
    advice: ToneAdvice
    foreign_records: tuple[str, ...] = field(default=())

    def reason_counts(self) -> dict[str, int]:
        """How many findings of each reason."""
        return dict(Counter(f.reason for f in self.findings))

    def entity_counts(self) -> dict[str, int]:
        """How many findings of each entity type."""
        return dict(Counter(f.entity_type for f in self.findings))

    def audit_details(self, customer_hash: Callable[[str], str]) -> dict[str, str | int | bool]:
        """What the audit event of this check records: counts and keyed hashes, no values.

        ``customer_hash`` is the audit trail's keyed hash of a record id (the one its
        ``customer`` field uses), so an incident can name who was nearly exposed.
        """
        reasons = self.reason_counts()
        details: dict[str, str | int | bool] = {
            "verdict": self.verdict,
            "other_customer_findings": reasons.get(OTHER_CUSTOMER, 0),
            "credential_findings": reasons.get(SECRET, 0),
            "own_data_findings": reasons.get(OWN_DATA, 0),
            "pii_findings": reasons.get(PII, 0),
            "tone_findings": len(self.advice.findings),
            "foreign_records": len(self.foreign_records),
        }
        if self.foreign_records:
            hashes = sorted(customer_hash(record_id) for record_id in self.foreign_records)
            details["foreign_customers"] = ",".join(hashes[:AUDITED_FOREIGN])
        return details

    def __repr__(self) -> str:
        return (
            f"MessageCheck(verdict={self.verdict!r}, findings={self.reason_counts()!r}, "
            f"foreign_records={len(self.foreign_records)})"
        )


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What :meth:`MessageGuard.check` works out while the NER runs."""

    own_name_parts: frozenset[str]
    #: What the text alone shows; the NER's values are added to it after the NER.
    candidates: _Candidates
    matches: dict[tuple[str, str], set[str]]
    looked_up: frozenset[tuple[str, str]]
    advice: ToneAdvice


class _Located(Protocol):
    """Anything with a start and an end offset."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    kind: str


class _Candidates:
    """Raw identifier values found in the draft, per kind, with where each occurs."""

    def __init__(self) -> None:
        # value -> its spans, as an insertion-ordered set: a value repeated 30,000 times in a
        # long note costs 30,000 constant-time inserts, not a quadratic scan
        self.by_kind: dict[str, dict[str, dict[tuple[int, int], None]]] = {
            k: {} for k in KIND_ENTITY
        }

    def add(self, kind: str, value: str, start: int, end: int) -> None:
        self.by_kind[kind].setdefault(value, {})[start, end] = None

    def spans(self, kind: str, value: str) -> list[tuple[int, int]]:
        return list(self.by_kind[kind].get(value, ()))

    def pairs(self) -> list[tuple[str, str]]:
        """Every (kind, value), in a stable order."""
        return [(kind, value) for kind, values in self.by_kind.items() for value in values]


def _tokens(text: str) -> Iterable[tuple[int, int]]:
    """Whitespace-separated tokens with punctuation trimmed off both ends."""
    for match in _TOKEN.finditer(text):
        start, end = match.span()
        while start < end and text[start] in _EDGE_PUNCT:
            start += 1
        while end > start and text[end - 1] in _EDGE_PUNCT:
            end -= 1
        if start < end:
            yield start, end


def _digit_count(value: str) -> int:
    return sum(ch.isdigit() for ch in value)


def gather_candidates(text: str, entities: Sequence[DetectedEntity] = ()) -> _Candidates:
    """Every value in ``text`` worth looking up, per identifier kind (see the module doc).

    Without ``entities``: what the text alone shows (tokens, digit runs, capitalised runs),
    which :meth:`MessageGuard.check` looks up while the NER runs.
    """
    found = _Candidates()
    _from_tokens(found, text)
    _from_capitalised_runs(found, text)
    _from_entities(found, text, entities)
    return found


def _from_entities(found: _Candidates, text: str, entities: Sequence[DetectedEntity]) -> None:
    """Detected values, whatever their label: a mislabelled phone is still looked up."""
    for entity in entities:
        value = text[entity.start : entity.end]
        if entity.entity_type == "EMAIL_ADDRESS":
            found.add("email", value, entity.start, entity.end)
        elif entity.entity_type == "PERSON":
            _add_name(found, value, entity.start, entity.end)
        if _MIN_PHONE_DIGITS <= _digit_count(value) <= _MAX_PHONE_DIGITS:
            found.add("phone", value, entity.start, entity.end)
        if entity.entity_type in _ACCOUNT_TYPES:
            _add_account(found, value, entity.start, entity.end)


def _from_tokens(found: _Candidates, text: str) -> None:
    """Tokens with ``@`` (emails) or a digit (account ids), and phone-like digit runs."""
    for start, end in _tokens(text):
        token = text[start:end]
        if "@" in token:
            found.add("email", token, start, end)
        elif any(ch.isdigit() for ch in token):
            _add_account(found, token, start, end)
    for match in _PHONE_RUN.finditer(text):
        if _MIN_PHONE_DIGITS <= _digit_count(match.group()) <= _MAX_PHONE_DIGITS:
            found.add("phone", match.group(), *match.span())


def _from_capitalised_runs(found: _Candidates, text: str) -> None:
    """Runs of two or three capitalised words one space apart: names the NER may miss."""
    words = [m.span() for m in _CAPITALISED.finditer(text)]
    for index, (start, _) in enumerate(words):
        for size in (2, 3):
            last = index + size - 1
            if last >= len(words):
                break
            gap = text[words[last - 1][1] : words[last][0]]
            if not (gap.isspace() and len(gap) <= 2):  # noqa: PLR2004 - "Jane  Doe" at most
                break
            _add_name(found, text[start : words[last][1]], start, words[last][1])


def _add_name(found: _Candidates, value: str, start: int, end: int) -> None:
    found.add("full_name", value, start, end)
    bare = _POSSESSIVE.sub("", value)
    if bare != value:
        found.add("full_name", bare, start, end)


def name_parts(value: str) -> frozenset[str]:
    """The words of a name as the index compares them, without a possessive ending."""
    return frozenset(normalise_name(_POSSESSIVE.sub("", value)).split())


def _add_account(found: _Candidates, value: str, start: int, end: int) -> None:
    if not _MIN_ACCOUNT_CHARS <= len(value) <= _MAX_ACCOUNT_CHARS:
        return
    for variant in {value, value.upper(), value.lower()}:
        found.add("account_id", variant, start, end)


def _merge(spans: Iterable[_Span]) -> list[_Span]:
    """Non-overlapping spans: of two that overlap, the longer (then the earlier) is kept.

    O(n log n): the kept spans never overlap, so a new one can only touch its two neighbours
    in start order (a note that repeats a name 30,000 times must not take n squared steps).
    """
    starts: list[int] = []
    kept: list[_Span] = []
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        at = bisect.bisect_right(starts, span.start)
        if at > 0 and kept[at - 1].end > span.start:
            continue
        if at < len(kept) and kept[at].start < span.end:
            continue
        starts.insert(at, span.start)
        kept.insert(at, span)
    return kept


def _union(spans: Iterable[_Span]) -> list[_Span]:
    """The regions the spans cover, as sorted, non-overlapping spans (kinds dropped)."""
    out: list[_Span] = []
    for span in sorted(spans, key=lambda s: s.start):
        if out and span.start < out[-1].end:
            if span.end > out[-1].end:
                out[-1] = _Span(out[-1].start, span.end, "")
        else:
            out.append(_Span(span.start, span.end, ""))
    return out


def _overlapping(ends: Sequence[int], items: Sequence[_Located], start: int, end: int) -> range:
    """Indexes of the ``items`` (sorted, non-overlapping; ``ends`` theirs) overlapping a span."""
    first = bisect.bisect_right(ends, start)
    last = first
    while last < len(items) and items[last].start < end:
        last += 1
    return range(first, last)


class MessageGuard:
    """Check outgoing messages and notes; one instance serves every tenant of a process."""

    def __init__(
        self,
        settings: Settings,
        *,
        records: RecordService,
        analyzer: Analyzer,
        redactor: Redactor,
        policy: MessagePolicy | None = None,
        advisor: ToneAdvisor | None = None,
    ) -> None:
        self.settings = settings
        self._records = records
        self._analyzer = analyzer
        self._redactor = redactor
        self.policy = policy or load_message_policy(settings.policies_dir / POLICY_FILENAME)
        self.advisor = advisor or ToneAdvisor(
            load_tone_policy(settings.policies_dir / TONE_FILENAME)
        )

    def check(
        self,
        text: str,
        *,
        tenant: str,
        channel: str = "message",
        customer_id: str | None = None,
        conversation_id: str = "",
        customer_last_message: str | None = None,
    ) -> MessageCheck:
        """Check one draft written in ``tenant`` about ``customer_id`` (if known).

        Raises RecordNotFoundError (404) for a customer id that names no record of the tenant,
        RecordErasedError (410) for an erased one, LookupUnavailableError (503) when the lookup
        cannot run, InvalidInputError / InputTooLargeError for bad input.
        """
        self._check_input(text, channel, customer_last_message)
        if customer_id is not None:
            _check_record_id(customer_id)
        entities, candidates, matches, prepared = self._analyse(
            text, tenant, channel, customer_id, customer_last_message
        )
        own_spans, foreign_spans, foreign_records = _attribute(
            text, entities, candidates, matches, customer_id, prepared.own_name_parts
        )

        findings: list[MessageFinding] = [
            MessageFinding(KIND_ENTITY[s.kind], s.start, s.end, OTHER_CUSTOMER, "block")
            for s in _merge(foreign_spans)
        ]
        findings.extend(
            MessageFinding(e.entity_type, e.start, e.end, SECRET, "block")
            for e in entities
            if e.entity_type in self.policy.secrets
        )
        redacted_text, redaction_findings = self._redact(
            text, entities, _merge(own_spans), channel, tenant, conversation_id
        )
        # a region that blocks is reported once, as what blocks it
        blocking = _union(_Span(f.start, f.end, "") for f in findings)
        blocking_ends = [b.end for b in blocking]
        findings.extend(
            f
            for f in redaction_findings
            if not _overlapping(blocking_ends, blocking, f.start, f.end)
        )
        findings.sort(key=lambda f: (f.start, f.end, f.reason))

        if any(f.action == "block" for f in findings):
            verdict, out = "block", None
        else:
            verdict = "allow" if redacted_text == text else "redact"
            out = redacted_text
        return MessageCheck(
            verdict=verdict,
            text=out,
            findings=tuple(findings),
            advice=prepared.advice,
            foreign_records=tuple(sorted(foreign_records)),
        )

    # ------------------------------------------------------------------------ steps

    def _check_input(self, text: str, channel: str, last_message: str | None) -> None:
        if channel not in CHANNELS:
            raise InvalidInputError(
                f"channel: unknown channel {channel!r} (expected one of: {', '.join(CHANNELS)})"
            )
        limit = self.settings.max_message_chars
        for name, value in (("text", text), ("customer_last_message", last_message)):
            if value is not None and len(value) > limit:
                raise InputTooLargeError(
                    f"{name}: over the limit of {limit} characters (GUARD_MAX_MESSAGE_CHARS)"
                )
        if not text.strip():
            raise InvalidInputError("text: must not be empty")

    def _analyse(
        self,
        text: str,
        tenant: str,
        channel: str,
        customer_id: str | None,
        customer_last_message: str | None,
    ) -> tuple[list[DetectedEntity], _Candidates, dict[tuple[str, str], set[str]], _Prepared]:
        """Entities, identifier candidates, their matches, and what ran beside the NER.

        What needs no NER (the lookup of what the text alone shows, the customer's name, the
        tone advice) runs while the text is in an analysis worker (``meanwhile``), so a check
        takes about as long as a redaction. Values only the NER found (a lower-case name, a
        mislabelled number) are looked up after it, in one more query when there are any.
        """
        outcome: list[_Prepared | Exception] = []

        def before_ner() -> None:
            try:
                outcome.append(
                    self._before_ner(text, tenant, channel, customer_id, customer_last_message)
                )
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the analysis
                outcome.append(exc)

        with meanwhile(before_ner):
            entities = list(self._analyzer.analyze(text, tenant=tenant))
        if not outcome:  # no job went to a worker (in-process analysis): run it now
            before_ner()
        prepared = outcome[0]
        if isinstance(prepared, Exception):
            raise prepared
        candidates = prepared.candidates
        _from_entities(candidates, text, entities)  # the text's own were gathered already
        matches = dict(prepared.matches)
        late = [pair for pair in candidates.pairs() if pair not in prepared.looked_up]
        if late:
            _, more = self._identify(tenant, late, None)
            matches.update(more)
        return entities, candidates, matches, prepared

    def _before_ner(
        self,
        text: str,
        tenant: str,
        channel: str,
        customer_id: str | None,
        customer_last_message: str | None,
    ) -> _Prepared:
        """The steps that need no NER: one lookup transaction, and the tone advice."""
        candidates = gather_candidates(text)
        pairs = candidates.pairs()
        own_name_parts, matches = self._identify(tenant, pairs, customer_id)
        advice = self.advisor.advise(
            text, tenant=tenant, channel=channel, customer_last_message=customer_last_message
        )
        return _Prepared(
            own_name_parts=own_name_parts,
            candidates=candidates,
            matches=matches,
            looked_up=frozenset(pairs),
            advice=advice,
        )

    def _identify(
        self, tenant: str, pairs: Sequence[tuple[str, str]], customer_id: str | None
    ) -> tuple[frozenset[str], dict[tuple[str, str], set[str]]]:
        """The customer's name parts, and (kind, raw value) -> ids of the records it matches.

        One transaction for a message's usual handful of values (and the customer's name);
        long texts take one more query per :data:`LOOKUP_CHUNK` values. Reading the customer
        also proves the record is in the tenant.
        """
        chunks = [pairs[i : i + LOOKUP_CHUNK] for i in range(0, len(pairs), LOOKUP_CHUNK)] or [[]]
        matched: dict[tuple[str, str], set[str]] = {}
        name: str | None = None
        try:
            for index, chunk in enumerate(chunks):
                values: dict[str, list[str]] = {}
                for kind, value in chunk:
                    values.setdefault(kind, []).append(value)
                found = self._records.identify(
                    tenant=tenant, values=values, customer_id=customer_id if index == 0 else None
                )
                if index == 0:
                    name = found.customer_name
                for hit in found.matches:
                    matched.setdefault((hit.kind, hit.value), set()).add(hit.record_id)
        except SQLAlchemyError:
            raise LookupUnavailableError(
                "the customer lookup could not run; the message was not checked"
            ) from None
        # the records service names the id it was given; these answers never echo input
        except RecordNotFoundError:
            raise RecordNotFoundError("no record with this id in this tenant") from None
        except RecordErasedError:
            raise RecordErasedError("this customer's record was erased") from None
        return (name_parts(name) if name else frozenset()), matched

    def _redact(
        self,
        text: str,
        entities: Sequence[DetectedEntity],
        own: Sequence[_Span],
        channel: str,
        tenant: str,
        scope: str,
    ) -> tuple[str, list[MessageFinding]]:
        """The draft redacted per the channel, own data per the message policy."""
        findings: list[MessageFinding] = []
        overrides: dict[tuple[int, int], Operator] = {}
        to_redact: list[DetectedEntity] = []
        ordered = sorted(entities, key=lambda e: e.start)  # the detector's never overlap
        ends = [e.end for e in ordered]
        covered: set[int] = set()  # detections that an own value covers: they are its own
        for span in own:
            operator = self.policy.own_rule(channel, span.kind)
            near = _overlapping(ends, ordered, span.start, span.end)
            inside = [i for i in near if _inside(ordered[i], span)]
            # a detection straddling the own value's edge wins (the safe side)
            if operator is not None and len(inside) < len(near):
                continue
            covered.update(inside)
            action = "keep" if operator is None else operator.name
            findings.append(
                MessageFinding(KIND_ENTITY[span.kind], span.start, span.end, OWN_DATA, action)
            )
            if operator is not None:
                to_redact.append(DetectedEntity(span.start, span.end, KIND_ENTITY[span.kind], 1.0))
                overrides[(span.start, span.end)] = operator
        to_redact.extend(e for i, e in enumerate(ordered) if i not in covered)
        result = self._redactor.redact_text(
            text, to_redact, channel=channel, tenant=tenant, scope=scope, overrides=overrides
        )
        findings.extend(
            MessageFinding(item.entity_type, item.start, item.end, PII, item.operator)
            for item in result.items
            if (item.start, item.end) not in overrides
            and item.entity_type not in self.policy.secrets
        )
        return result.text, findings


def _attribute(
    text: str,
    entities: Sequence[DetectedEntity],
    candidates: _Candidates,
    matches: dict[tuple[str, str], set[str]],
    customer_id: str | None,
    own_name_parts: frozenset[str],
) -> tuple[list[_Span], list[_Span], set[str]]:
    """Whose each matched region is: the conversation customer's, or another record's.

    A value that matches the customer is theirs even when another record shares it; a detected
    name made only of their name's words is theirs. Returns own spans, foreign spans, and the
    ids of the foreign records.
    """
    own: list[_Span] = []
    foreign: list[_Span] = []
    foreign_records: set[str] = set()
    for (kind, value), record_ids in matches.items():
        spans = [_Span(s, e, kind) for s, e in candidates.spans(kind, value)]
        if customer_id is not None and customer_id in record_ids:
            own.extend(spans)
        else:
            foreign.extend(spans)
            foreign_records.update(record_ids)
    if own_name_parts:
        for entity in entities:
            if entity.entity_type != "PERSON":
                continue
            parts = name_parts(text[entity.start : entity.end])
            if parts and parts <= own_name_parts:
                own.append(_Span(entity.start, entity.end, "full_name"))
    return own, foreign, foreign_records


def _check_record_id(customer_id: str) -> None:
    """Record ids are UUIDs: anything else names no record (and never reaches a query)."""
    try:
        uuid.UUID(customer_id)
    except ValueError:
        raise RecordNotFoundError("no record with this id in this tenant") from None


def _inside(entity: DetectedEntity, span: _Span) -> bool:
    return span.start <= entity.start and entity.end <= span.end
