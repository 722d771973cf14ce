"""Signed evidence bundles: a range of the audit chain packed for a regulator or an auditor.

Threat: evidence that leaves guard is only worth something if whoever receives it can check it
without trusting guard's operator, database or code. A bundle therefore carries the stored rows
of a range of events with their chain hashes, the event before the range (so the first one
links), the signed checkpoints over the range, the Ed25519 public key that signs checkpoints,
and a text (``VERIFY.txt``) giving the recipe to recompute every hash and check every signature
by hand. An event edited, dropped, inserted or reordered in transit breaks a hash or a link; a
checkpoint re-signed or swapped fails its signature. Limits: the HMAC of each event needs
guard's key, so only guard's operator can check it (``guard audit verify``); events after the
last checkpoint inside the range are hash-linked but not signed; and a holder who swaps the
public key too can re-sign everything, so the key id must be compared with one obtained from
guard's operator by another channel. The manifest's checksums catch accidental damage and name
the file that changed; they are not a signature.

Retention may have pruned the oldest events under signed seals (:mod:`guard.audit.prune`): a
range reaching into the pruned prefix is refused with a clear message; a range that starts right
after it carries the seal (``prune-seal.json``) in place of the pruned previous event, and its
signature, under the same bundled key, vouches for the first event's ``prev_hash``.

:func:`verify_bundle` is the offline check (no database, no keys beyond the bundled public
key); it uses the chain's own hash and payload functions, so there is one recipe.
"""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, NoReturn

from cryptography.hazmat.primitives import serialization

from guard.audit.chain import (
    CHECKPOINT_TAG,
    CONTENT_FIELDS,
    EVENT_TAG,
    GENESIS_HASH,
    PRUNE_TAG,
    canonical_json,
    checkpoint_payload,
    event_hash,
    format_ts,
    prune_payload,
)
from guard.audit.errors import AuditInputError
from guard.audit.repository import AuditRepository
from guard.audit.schemas import AuditEventRead
from guard.audit.verify import chain_start
from guard.crypto.audit_keys import (
    PUBLIC_KEY_FILENAME,
    key_id_of,
    load_verify_key,
    public_key_from_pem,
    signature_ok,
)
from guard.crypto.errors import KeyConfigurationError
from guard.storage.engine import session_scope

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from pathlib import Path

    from sqlalchemy import Row
    from sqlalchemy.orm import Session, sessionmaker

    from guard.config import Settings
    from guard.crypto.audit_keys import AuditKeys

BUNDLE_FORMAT = "guard-evidence-bundle/v1"
#: The most events one bundle may hold.
MAX_BUNDLE_EVENTS = 1_000_000

EVENTS_FILE = "events.jsonl"
PREVIOUS_EVENT_FILE = "previous-event.json"
#: In place of the previous event when retention pruned it: the signed seal over it.
PRUNE_SEAL_FILE = "prune-seal.json"
CHECKPOINTS_FILE = "checkpoints.jsonl"
PUBLIC_KEY_FILE = PUBLIC_KEY_FILENAME
VERIFY_FILE = "VERIFY.txt"
MANIFEST_FILE = "manifest.json"
#: Files every bundle holds besides the manifest (plus, when first_seq > 1, the previous event
#: or, when retention pruned it, the prune seal over it).
_REQUIRED_FILES = frozenset({EVENTS_FILE, CHECKPOINTS_FILE, PUBLIC_KEY_FILE, VERIFY_FILE})
_KNOWN_FILES = _REQUIRED_FILES | {PREVIOUS_EVENT_FILE, PRUNE_SEAL_FILE}

#: The keys of one exported event (``guard audit export --format jsonl``).
EVENT_KEYS = frozenset(AuditEventRead.model_fields)
CHECKPOINT_KEYS = frozenset({"seq", "ts", "head_hash", "signature", "key_id"})
SEAL_KEYS = frozenset({"seq", "ts", "head_hash", "events_removed", "signature", "key_id"})
_NULLABLE_TEXT = frozenset({"principal", "role", "tenant", "request_id", "customer"})
_TEXT = frozenset({"action", "resource", "decision", "outcome", "prev_hash", "hash", "hmac"})
_HEX64 = frozenset("0123456789abcdef")

#: Caps on what the verifier reads from an untrusted ZIP: one line, one small file.
_MAX_LINE = 1 << 20
_MAX_SMALL_FILE = 1 << 20
_READ_CHUNK = 1 << 16
_BATCH_SIZE = 10_000


# ---------------------------------------------------------------------------------- building


def check_range(first_seq: int, last_seq: int) -> None:
    """Refuse a range that is empty, reversed or larger than :data:`MAX_BUNDLE_EVENTS`."""
    if first_seq < 1:
        raise AuditInputError("an evidence bundle's range starts at seq 1 or later")
    if last_seq < first_seq:
        raise AuditInputError(
            f"evidence bundle range is reversed: seq {first_seq} comes after seq {last_seq}"
        )
    if last_seq - first_seq + 1 > MAX_BUNDLE_EVENTS:
        raise AuditInputError(
            f"an evidence bundle holds at most {MAX_BUNDLE_EVENTS:,} events; "
            f"seq {first_seq}..{last_seq} is {last_seq - first_seq + 1:,}"
        )


def _event_line(row: Row[Any]) -> bytes:
    """One stored row as ``guard audit export --format jsonl`` writes it."""
    fields = dict(row._mapping)  # noqa: SLF001 - Row._mapping is SQLAlchemy's public mapping view
    try:
        fields["entity_counts"] = json.loads(fields["entity_counts"])
        fields["details"] = json.loads(fields["details"])
        event = AuditEventRead.model_validate(fields)
    except ValueError:  # pydantic's ValidationError and json's JSONDecodeError are ValueErrors
        raise AuditInputError(
            f"event {row.seq} cannot be bundled: its stored fields are malformed "
            "(run `guard audit verify`)"
        ) from None
    return (event.model_dump_json() + "\n").encode("utf-8")


def _checkpoint_line(row: Row[Any]) -> bytes:
    record = {
        "seq": row.seq,
        "ts": format_ts(row.ts),
        "head_hash": row.head_hash,
        "signature": row.signature,
        "key_id": row.key_id,
    }
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")


def _seal_line(row: Row[Any]) -> bytes:
    record = {
        "seq": row.seq,
        "ts": format_ts(row.ts),
        "head_hash": row.head_hash,
        "events_removed": row.events_removed,
        "signature": row.signature,
        "key_id": row.key_id,
    }
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")


def _covering_checkpoint(repo: AuditRepository, last_seq: int, head_seq: int) -> Row[Any] | None:
    """The first checkpoint after ``last_seq`` (windows doubling up to the head), or None."""
    start, width = last_seq + 1, 1024
    while start <= head_seq:
        end = min(head_seq, start + width - 1)
        found = repo.checkpoints_between(start, end)
        if found:
            return found[0]
        start, width = end + 1, width * 2
    return None


def _public_key_pem(settings: Settings, keys: AuditKeys) -> tuple[bytes, str]:
    """(PEM, key id) of the checkpoint public key; it must be the key the trail verifies with."""
    public = load_verify_key(settings)
    key_id = key_id_of(public)
    if key_id != keys.key_id:
        raise KeyConfigurationError(
            f"{settings.keys_dir / PUBLIC_KEY_FILENAME}: not the key the audit trail verifies "
            "checkpoints with"
        )
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, key_id


class _ZipWriter:
    """Writes members with a fixed timestamp and mode, keeping each one's SHA-256."""

    def __init__(self, archive: zipfile.ZipFile, created_at: datetime) -> None:
        self._archive = archive
        self._date_time = created_at.astimezone(UTC).timetuple()[:6]
        self.checksums: dict[str, str] = {}

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self._date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    def write_lines(self, name: str, lines: Iterable[bytes]) -> int:
        """Stream ``lines`` into one member; return how many."""
        digest, count = hashlib.sha256(), 0
        with self._archive.open(self._info(name), "w", force_zip64=True) as member:
            for line in lines:
                member.write(line)
                digest.update(line)
                count += 1
        self.checksums[name] = digest.hexdigest()
        return count

    def write(self, name: str, data: bytes) -> None:
        """One small member."""
        self._archive.writestr(self._info(name), data)
        self.checksums[name] = hashlib.sha256(data).hexdigest()


def build_bundle(
    factory: sessionmaker[Session],
    keys: AuditKeys,
    settings: Settings,
    *,
    first_seq: int,
    last_seq: int,
    batch_size: int = _BATCH_SIZE,
) -> bytes:
    """The evidence bundle (a ZIP) of events ``first_seq``..``last_seq``.

    Raises :class:`AuditInputError` for a range that is empty, reversed, larger than
    :data:`MAX_BUNDLE_EVENTS` or beyond the head of the trail.
    """
    check_range(first_seq, last_seq)
    pem, key_id = _public_key_pem(settings, keys)
    created_at = datetime.now(UTC)
    buffer = io.BytesIO()
    with session_scope(factory) as session:
        repo = AuditRepository(session)
        head = repo.head()
        if head is None:
            raise AuditInputError("the audit trail has no events yet: there is nothing to bundle")
        if last_seq > head[0]:
            raise AuditInputError(
                f"evidence bundle range ends at seq {last_seq}, beyond the head of the trail "
                f"(seq {head[0]})"
            )
        start = chain_start(repo, keys)  # every prune seal checked
        pruned = start.pruned_through or 0
        if first_seq <= pruned:
            when = "" if start.pruned_at is None else f" on {start.pruned_at:%Y-%m-%d}"
            raise AuditInputError(
                f"events 1..{pruned} were removed by retention{when} under a signed seal; "
                f"an evidence bundle can start at seq {pruned + 1} at the earliest"
            )
        checkpoints = list(repo.checkpoints_between(first_seq, last_seq))
        if not checkpoints or checkpoints[-1].seq != last_seq:
            covering = _covering_checkpoint(repo, last_seq, head[0])
            if covering is not None:
                checkpoints.append(covering)
        sealed = first_seq > 1 and first_seq - 1 == pruned
        previous = repo.events_between(first_seq - 1, first_seq - 1) if first_seq > 1 else ()
        seal = repo.last_prune() if sealed else None
        with zipfile.ZipFile(buffer, "w") as archive:
            writer = _ZipWriter(archive, created_at)
            rows = repo.stream_events(
                batch_size=batch_size, after_seq=first_seq - 1, until_seq=last_seq
            )
            events = writer.write_lines(EVENTS_FILE, (_event_line(row) for row in rows))
            for row in previous:
                writer.write(PREVIOUS_EVENT_FILE, _event_line(row))
            if seal is not None:
                writer.write(PRUNE_SEAL_FILE, _seal_line(seal))
            writer.write_lines(CHECKPOINTS_FILE, (_checkpoint_line(row) for row in checkpoints))
            writer.write(PUBLIC_KEY_FILE, pem)
            text = verify_text(first_seq, last_seq, key_id, sealed=seal is not None)
            writer.write(VERIFY_FILE, text.encode("utf-8"))
            manifest = {
                "format": BUNDLE_FORMAT,
                "first_seq": first_seq,
                "last_seq": last_seq,
                "events": events,
                "checkpoints": len(checkpoints),
                "created_at": format_ts(created_at),
                "key_id": key_id,
                "files": writer.checksums,
            }
            text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
            writer.write(MANIFEST_FILE, text.encode("utf-8"))
    return buffer.getvalue()


def _hash_fields_text(indent: str) -> str:
    """The event hash's field list, written from :data:`CONTENT_FIELDS` (cannot drift)."""
    names = [
        f'"{EVENT_TAG}"',
        "seq",
        *(
            f"canonical({name})" if name in {"entity_counts", "details"} else name
            for name in CONTENT_FIELDS
        ),
        "prev_hash",
    ]
    wrapped = textwrap.wrap(", ".join(names), width=88 - len(indent))
    return f"{indent}fields = [" + f"\n{indent}          ".join(wrapped) + "]"


def _file_table(first_seq: int, *, sealed: bool = False) -> str:
    previous = (
        f"the event before the range (seq {first_seq - 1}), so that the first one links"
        if first_seq > 1
        else "absent: the range starts at the first event of the trail"
    )
    before = (
        (PRUNE_SEAL_FILE, f"the signed seal over seq {first_seq - 1}: retention removed events")
        if sealed
        else (PREVIOUS_EVENT_FILE, previous)
    )
    rows = [
        (EVENTS_FILE, "the events, one JSON object per line in seq order, as"),
        ("", "`guard audit export --format jsonl` writes them; lines end in \\n"),
        ("", "(split on \\n only: text may hold other Unicode line separators)"),
        before,
        *((("", f"1..{first_seq - 1} (step 6); the first event links to it"),) if sealed else ()),
        (CHECKPOINTS_FILE, "signed checkpoints: those inside the range, and the first one"),
        ("", "after the range's last event (when one exists yet)"),
        (PUBLIC_KEY_FILE, "the Ed25519 public key that signs checkpoints (PEM)"),
        (MANIFEST_FILE, "range, counts, creation time, key id, SHA-256 of every other file"),
        (VERIFY_FILE, "this text"),
    ]
    width = max(len(name) for name, _ in rows) + 2
    return "\n".join(f"  {name.ljust(width)}{text}" for name, text in rows)


def verify_text(first_seq: int, last_seq: int, key_id: str, *, sealed: bool = False) -> str:
    """``VERIFY.txt``: how to check the bundle by hand, without guard.

    ``sealed``: the event before the range was pruned; the bundle holds the seal over it.
    """
    first_link = (
        f'the "head_hash" of {PRUNE_SEAL_FILE}'
        if sealed
        else f"the previous event's hash, or\n   64 zeros (\"{GENESIS_HASH[:4]}..."
        f'{GENESIS_HASH[-4:]}") when the range starts at seq 1'
    )
    seal_step = (
        f"""6. Prune seal. Retention removed events 1..{first_seq - 1}; with "ts" as written:
     payload = canonical(["{PRUNE_TAG}", seq, head_hash, ts, events_removed])
   "signature" (hex) is a valid Ed25519 signature of payload under {PUBLIC_KEY_FILE}, "key_id"
   is the key id of step 2 and "seq" is {first_seq - 1}.
"""
        if sealed
        else ""
    )
    return f"""\
How to verify this guard evidence bundle without guard
======================================================

This bundle holds audit events {first_seq}..{last_seq} of a guard audit trail. Files:

{_file_table(first_seq, sealed=sealed)}

Definitions
-----------
canonical(x) = JSON text of x with object keys sorted, no whitespace, and non-ASCII characters
  written as themselves, encoded as UTF-8; in Python:
  json.dumps(x, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
  (Elsewhere: strings escape only '"' as \\", '\\' as \\\\, \\n \\r \\t \\b \\f, and the other
  characters below U+0020 as \\u00XX with lower-case hex; integers in decimal; null, true, false.)
canonical time = the UTC time as YYYY-MM-DDTHH:MM:SS.ffffffZ, always six fractional digits.
  The export leaves out a zero fraction ("2025-01-31T09:15:00Z" is "2025-01-31T09:15:00.000000Z").

Steps
-----
1. Checksums. For each file listed under "files" in {MANIFEST_FILE}, the SHA-256 (hex) of its
   bytes equals the listed value, and the ZIP holds no other file. The manifest itself is not
   signed: it finds accidental damage; the signatures in step 5 are the evidence.
2. Key. key id = the first 16 hex digits of SHA-256 of the 32 raw bytes of the public key.
   It equals "key_id" in {MANIFEST_FILE} and in every checkpoint: {key_id}. Confirm it
   with guard's operator by another channel: whoever can change the key can re-sign it all.
3. Event hashes. For each event (and the previous event), with ts its canonical time:
{_hash_fields_text("     ")}
     hash = hex(SHA-256(canonical(fields)))
   where entity_counts and details enter as the text canonical(...) of their JSON objects and
   absent values are null. The result equals the event's "hash".
4. Links. The events run seq {first_seq}..{last_seq} with no gap. Each event's "prev_hash" equals
   the "hash" of the event before it; the first one's equals {first_link}.
5. Checkpoints. For each line of {CHECKPOINTS_FILE} ("ts" is already a canonical time):
     payload = canonical(["{CHECKPOINT_TAG}", seq, head_hash, ts])
   "signature" (hex) is a valid Ed25519 signature of payload under {PUBLIC_KEY_FILE}. When
   the checkpoint's seq is an event in this bundle, its head_hash equals that event's "hash".
{seal_step}
What it proves
--------------
Each hash covers all of its event's fields and the previous event's hash. A valid checkpoint at
seq N whose head_hash is event N's hash therefore fixes event N and every event of the bundle
before it: editing, removing, inserting or reordering any of them changes the hashes up to N.
Events after the last checkpoint inside the range are linked but not signed. The checkpoint
after the range (if any) signs the chain's head at a later seq; linking it to this range needs
the events in between, which guard's operator can give as a further bundle.

"hmac" is HMAC-SHA256 of the event's hash under a key guard derives from its master key, which
neither the database nor this bundle holds. It shows guard's operator that guard wrote the row
(`guard audit verify` checks it); it cannot be checked outside guard. "customer" and details
ending in _id are keyed hashes of identifiers: the bundle holds no raw customer id.

With guard installed: guard audit verify-bundle THIS-FILE.zip
"""


# ------------------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class BundleReport:
    """Outcome of verifying a bundle: the first problem found, if any."""

    ok: bool
    first_seq: int | None = None
    last_seq: int | None = None
    events_checked: int = 0
    checkpoints_checked: int = 0
    #: The last event of the range fixed by a signed checkpoint inside the bundle.
    signed_through: int | None = None
    bad_seq: int | None = None
    problem: str | None = None

    def summary(self) -> str:
        """One line for people: what was verified, or the first problem and its seq."""
        if not self.ok:
            where = "" if self.bad_seq is None else f" at seq {self.bad_seq}"
            return f"evidence bundle broken{where}: {self.problem}"
        signed = (
            "none of them under a signed checkpoint inside the bundle"
            if self.signed_through is None
            else f"signed through seq {self.signed_through}"
        )
        return (
            f"evidence bundle intact: events {self.first_seq}..{self.last_seq} "
            f"({self.events_checked} events, {signed}), "
            f"{self.checkpoints_checked} signed checkpoints verified; "
            "HMACs not checked (they need guard's key)"
        )


class _Problem(Exception):  # noqa: N818 - control flow inside this module, not an error type
    def __init__(self, problem: str, seq: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.seq = seq


def _fail(problem: str, seq: int | None = None) -> NoReturn:
    raise _Problem(problem, seq)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON objects with a key twice are refused: readers would disagree on its value."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _loads(text: str) -> Any:  # noqa: ANN401 - untrusted JSON, checked by the caller
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX64  # noqa: PLR2004 - SHA-256 hex


def _aware(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _lines(archive: zipfile.ZipFile, name: str) -> Iterator[str]:
    """Non-empty lines of a member, each at most :data:`_MAX_LINE` characters."""
    with archive.open(name) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as text:
        while line := text.readline(_MAX_LINE + 1):
            if len(line) > _MAX_LINE:
                _fail(f"{name} has a line that is too long")
            yield line.rstrip("\n")


def _small(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as member:
        data = member.read(_MAX_SMALL_FILE + 1)
    if len(data) > _MAX_SMALL_FILE:
        _fail(f"{name} is too large")
    return data


@dataclass(frozen=True, slots=True)
class _Manifest:
    first_seq: int
    last_seq: int
    events: int
    checkpoints: int
    key_id: str
    files: dict[str, str]


def _read_manifest(archive: zipfile.ZipFile) -> _Manifest:
    names = archive.namelist()
    if len(set(names)) != len(names):
        _fail("the bundle holds a file name twice")
    if MANIFEST_FILE not in names:
        _fail(f"{MANIFEST_FILE} missing")
    try:
        data = _loads(_small(archive, MANIFEST_FILE).decode("utf-8"))
    except ValueError:
        _fail(f"{MANIFEST_FILE} is not JSON")
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        _fail(f"{MANIFEST_FILE} is not a {BUNDLE_FORMAT} manifest")
    files = data.get("files")
    if (
        not all(
            _is_int(data.get(key)) for key in ("first_seq", "last_seq", "events", "checkpoints")
        )
        or not isinstance(data.get("key_id"), str)
        or not isinstance(files, dict)
        or not all(_is_hex64(value) for value in files.values())
    ):
        _fail(f"{MANIFEST_FILE} is malformed")
    manifest = _Manifest(
        first_seq=data["first_seq"],
        last_seq=data["last_seq"],
        events=data["events"],
        checkpoints=data["checkpoints"],
        key_id=data["key_id"],
        files=files,
    )
    if manifest.first_seq < 1 or manifest.last_seq < manifest.first_seq:
        _fail(f"{MANIFEST_FILE} names an invalid range")
    # before a range that does not start the trail: the previous event, or the seal over it
    before = PRUNE_SEAL_FILE if PRUNE_SEAL_FILE in files else PREVIOUS_EVENT_FILE
    expected = _REQUIRED_FILES | ({before} if manifest.first_seq > 1 else set())
    listed, held = set(files), set(names) - {MANIFEST_FILE}
    if not listed <= _KNOWN_FILES or held != listed or not listed <= expected:
        _fail("the bundle's files differ from its manifest")
    for name in sorted(expected - listed):
        seq = manifest.first_seq - 1 if name == before else None
        _fail(f"{name} missing", seq)
    return manifest


def _check_checksums(archive: zipfile.ZipFile, files: Mapping[str, str]) -> None:
    for name in sorted(files):
        digest = hashlib.sha256()
        with archive.open(name) as member:
            while chunk := member.read(_READ_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != files[name]:
            _fail(f"{name} checksum mismatch")


@dataclass(frozen=True, slots=True)
class _BundledKey:
    key_id: str
    #: (payload, signature) -> whether the signature is valid.
    signature_ok: Callable[[bytes, bytes], bool]


def _load_bundled_key(pem: bytes) -> _BundledKey:
    """The bundled public key, loaded through guard.crypto (the one Ed25519 choke point)."""
    try:
        public = public_key_from_pem(pem, source=PUBLIC_KEY_FILE)
    except KeyConfigurationError:
        _fail(f"{PUBLIC_KEY_FILE} is not an Ed25519 public key")
    return _BundledKey(
        key_id=key_id_of(public),
        signature_ok=lambda payload, signature: signature_ok(public, payload, signature),
    )


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    seq: int
    head_hash: str


def _check_checkpoints(
    archive: zipfile.ZipFile, manifest: _Manifest, key: _BundledKey
) -> list[_Checkpoint]:
    checkpoints: list[_Checkpoint] = []
    for line in _lines(archive, CHECKPOINTS_FILE):
        try:
            record = _loads(line)
        except ValueError:
            _fail(f"{CHECKPOINTS_FILE} has a line that is not JSON")
        if not isinstance(record, dict) or set(record) != CHECKPOINT_KEYS:
            _fail(f"{CHECKPOINTS_FILE} has a malformed checkpoint")
        seq, ts = record["seq"], _aware(record["ts"])
        if not _is_int(seq) or ts is None or not _is_hex64(record["head_hash"]):
            _fail(f"{CHECKPOINTS_FILE} has a malformed checkpoint")
        if checkpoints and seq <= checkpoints[-1].seq:
            _fail("checkpoints out of order", seq)
        if seq < manifest.first_seq or (checkpoints and checkpoints[-1].seq > manifest.last_seq):
            _fail("checkpoint outside the bundle's range", seq)
        if record["key_id"] != key.key_id:
            _fail("checkpoint signed with another key", seq)
        try:
            signature = bytes.fromhex(record["signature"])
        except (TypeError, ValueError):
            signature = b""
        if not key.signature_ok(checkpoint_payload(seq, record["head_hash"], ts), signature):
            _fail("checkpoint signature invalid", seq)
        checkpoints.append(_Checkpoint(seq, record["head_hash"]))
    return checkpoints


def _event(line: str, where: str) -> dict[str, Any]:
    """One exported event, its types checked; ``where`` names it in a problem."""
    try:
        event = _loads(line)
    except ValueError:
        _fail(f"{where} is not JSON")
    if not isinstance(event, dict) or set(event) != EVENT_KEYS:
        _fail(f"{where} is a malformed event")
    ts = _aware(event["ts"])
    if (
        not _is_int(event["seq"])
        or ts is None
        or not all(isinstance(event[name], str) for name in _TEXT)
        or not all(event[name] is None or isinstance(event[name], str) for name in _NULLABLE_TEXT)
        or not isinstance(event["entity_counts"], dict)
        or not isinstance(event["details"], dict)
    ):
        _fail(f"{where} is a malformed event", event["seq"] if _is_int(event["seq"]) else None)
    return {
        **event,
        "ts": ts,
        "entity_counts": canonical_json(event["entity_counts"]),
        "details": canonical_json(event["details"]),
    }


def _check_hash(event: Mapping[str, Any]) -> None:
    if event_hash(event["seq"], event["prev_hash"], event) != event["hash"]:
        _fail("hash mismatch", event["seq"])


def _check_seal(text: str, manifest: _Manifest, key: _BundledKey) -> str:
    """The head hash of the bundled prune seal, once its fields and signature check out."""
    seq = manifest.first_seq - 1
    try:
        record = _loads(text)
    except ValueError:
        _fail(f"{PRUNE_SEAL_FILE} is not JSON", seq)
    if not isinstance(record, dict) or set(record) != SEAL_KEYS:
        _fail(f"{PRUNE_SEAL_FILE} is a malformed seal", seq)
    ts = _aware(record["ts"])
    if (
        not _is_int(record["seq"])
        or not _is_int(record["events_removed"])
        or ts is None
        or not _is_hex64(record["head_hash"])
    ):
        _fail(f"{PRUNE_SEAL_FILE} is a malformed seal", seq)
    if record["seq"] != seq:
        _fail(f"{PRUNE_SEAL_FILE} is not the seal before the range", seq)
    if record["key_id"] != key.key_id:
        _fail("prune seal signed with another key", seq)
    try:
        signature = bytes.fromhex(record["signature"])
    except (TypeError, ValueError):
        signature = b""
    payload = prune_payload(seq, record["head_hash"], ts, record["events_removed"])
    if not key.signature_ok(payload, signature):
        _fail("prune seal signature invalid", seq)
    return str(record["head_hash"])


class _EventWalk:
    """Walks the previous event (or the seal over it) and the range; counts what it checked."""

    def __init__(
        self, manifest: _Manifest, checkpoints: list[_Checkpoint], key: _BundledKey
    ) -> None:
        self.manifest = manifest
        self.key = key
        self.heads = {checkpoint.seq: checkpoint.head_hash for checkpoint in checkpoints}
        self.events = 0
        self.checkpoints = 0
        self.signed_through: int | None = None

    def _previous_hash(self, archive: zipfile.ZipFile) -> str:
        first = self.manifest.first_seq
        if first == 1:
            return GENESIS_HASH
        if PRUNE_SEAL_FILE in self.manifest.files:
            seal = _small(archive, PRUNE_SEAL_FILE).decode("utf-8", "replace").strip()
            return _check_seal(seal, self.manifest, self.key)
        text = _small(archive, PREVIOUS_EVENT_FILE).decode("utf-8", "replace").strip()
        previous = _event(text, PREVIOUS_EVENT_FILE)
        if previous["seq"] != first - 1:
            _fail(f"{PREVIOUS_EVENT_FILE} is not the event before the range", first - 1)
        _check_hash(previous)
        return str(previous["hash"])

    def run(self, archive: zipfile.ZipFile) -> None:
        prev_hash = self._previous_hash(archive)
        expected = self.manifest.first_seq
        for number, line in enumerate(_lines(archive, EVENTS_FILE), start=1):
            event = _event(line, f"{EVENTS_FILE} line {number}")
            seq = event["seq"]
            if seq > self.manifest.last_seq or seq < expected:
                _fail("event outside the range or out of order", seq)
            if seq > expected:
                _fail(f"event {expected} missing", expected)
            _check_hash(event)
            if event["prev_hash"] != prev_hash:
                _fail("event does not link to its predecessor", seq)
            signed = self.heads.get(seq)
            if signed is not None:
                if signed != event["hash"]:
                    _fail("event differs from signed checkpoint", seq)
                self.signed_through = seq
            prev_hash, expected = event["hash"], expected + 1
            self.events += 1
        if expected <= self.manifest.last_seq:
            _fail(f"event {expected} missing", expected)


def _verify(archive: zipfile.ZipFile) -> BundleReport:
    manifest = _read_manifest(archive)
    _check_checksums(archive, manifest.files)
    key = _load_bundled_key(_small(archive, PUBLIC_KEY_FILE))
    if key.key_id != manifest.key_id:
        _fail(f"the key id of {PUBLIC_KEY_FILE} is not the manifest's")
    checkpoints = _check_checkpoints(archive, manifest, key)
    walk = _EventWalk(manifest, checkpoints, key)
    walk.run(archive)
    if (walk.events, len(checkpoints)) != (manifest.events, manifest.checkpoints):
        _fail(f"the counts in {MANIFEST_FILE} do not match the bundle")
    return BundleReport(
        ok=True,
        first_seq=manifest.first_seq,
        last_seq=manifest.last_seq,
        events_checked=walk.events,
        checkpoints_checked=len(checkpoints),
        signed_through=walk.signed_through,
    )


def verify_bundle(source: bytes | Path | IO[bytes]) -> BundleReport:
    """Verify an evidence bundle offline: checksums, hashes, links and checkpoint signatures.

    Needs no database and no key but the bundled public key; reports the first problem.
    """
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with zipfile.ZipFile(data) as archive:
            return _verify(archive)
    except _Problem as problem:
        return BundleReport(ok=False, bad_seq=problem.seq, problem=problem.problem)
    except UnicodeDecodeError:
        return BundleReport(ok=False, problem="a file of the bundle is not UTF-8 text")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError):
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression
        return BundleReport(ok=False, problem="not a readable ZIP file")
