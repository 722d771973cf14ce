"""The answer to an access or portability request: a ZIP encrypted for delivery.

Threat: the package is everything guard holds about one person, in clear, on its way out of
the building. It is built in memory only (never a temporary file), each file written straight
into an AES-256 encrypted ZIP entry (WinZip AE-2, as pyzipper writes it: PBKDF2-derived key,
AES-CTR, HMAC-SHA1 over the ciphertext, and no CRC of the clear text, which for a short file
would give away its content). The passphrase is fresh random per package (``secrets``, 28
symbols of an alphabet without look-alikes: about 137 bits), shown to the officer once and
never stored, logged or audited: the officer gives it to the customer by another channel than
the archive, so intercepting one is not enough. File names inside a ZIP are not encrypted:
they are fixed (``record.json`` ...), never the customer's name.

What goes in (see :func:`write_package`): the record's fields in clear (``record.json``, and
``record.csv`` for a spreadsheet), the notes in full (``notes.txt``), every audit event about
the customer (``audit_events.json`` / ``.csv``: when, what, decision, outcome, the role that
acted and the reason stated, never the member of staff: CJEU C-579/21, Pankki S, gives the
person the dates and purposes of consultations, not who the employee was), the incidents that
affected them (``incidents.json``), their own requests (``requests.json``), the cover letter and
a manifest of every file's sha256 and size.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

import pyzipper
from pyzipper.zipfile_aes import WZ_AES_V2

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

#: Letters and digits that cannot be mistaken for one another read aloud or in print:
#: no 0/O, 1/I/L, and no U (V and U sound alike on a bad line). 30 symbols.
PASSPHRASE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # noqa: S105 - an alphabet, not a secret
PASSPHRASE_GROUPS = 7
PASSPHRASE_GROUP_SIZE = 4
AES_BITS = 256
#: Characters gathered before a write into an archive entry.
WRITE_BLOCK = 64 * 1024
MANIFEST_VERSION = 1

RECORD_JSON = "record.json"
RECORD_CSV = "record.csv"
NOTES_TXT = "notes.txt"
EVENTS_JSON = "audit_events.json"
EVENTS_CSV = "audit_events.csv"
INCIDENTS_JSON = "incidents.json"
REQUESTS_JSON = "requests.json"
COVER_LETTER = "cover_letter.txt"
MANIFEST = "manifest.json"
#: The files every package holds, in the order they are written (the manifest comes last).
FILES: tuple[str, ...] = (
    RECORD_JSON,
    RECORD_CSV,
    NOTES_TXT,
    EVENTS_JSON,
    EVENTS_CSV,
    INCIDENTS_JSON,
    REQUESTS_JSON,
    COVER_LETTER,
    MANIFEST,
)
#: The record fields ``record.csv`` has a column for (the notes are in ``notes.txt``).
CSV_FIELDS: tuple[str, ...] = (
    "full_name",
    "email",
    "phone",
    "postal_address",
    "date_of_birth",
    "account",
    "extra",
)
EVENT_COLUMNS: tuple[str, ...] = (
    "seq",
    "when",
    "action",
    "what",
    "decision",
    "outcome",
    "role",
    "reason",
)
#: Cells a spreadsheet would run as a formula start with one of these: such a cell of a CSV
#: file is prefixed with ``'`` (the JSON files keep every value exactly).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: What an action means, in words a customer understands (``what`` of an audit event).
ACTION_WORDS: dict[str, str] = {
    "records.create": "your record was created",
    "records.read": "your record was looked at (as the person's role may see it)",
    "records.search": "your record was found by a search",
    "records.update": "your record was changed",
    "records.reveal": "your full record was shown in clear, for a stated reason",
    "records.erase": "your record was erased",
    "records.list": "a list of records including yours was looked at",
    "message.check": "a message to you was checked before it was sent",
    "tool.call": "a support tool looked up your data",
    "token.reveal": "a protected value of yours was shown in clear, for a stated reason",
    "incidents.notice": "a notice to you about an incident was drafted",
    "incidents.resolve": "you were identified as affected by an incident",
    "subjects.open": "your request was registered",
    "subjects.read": "your request was looked at",
    "subjects.extend": "the deadline of your request was extended",
    "subjects.package": "this copy of your data was prepared",
    "subjects.download": "the encrypted copy of your data was downloaded for delivery",
    "subjects.erase": "your data was erased at your request",
    "subjects.close": "your request was closed",
}
#: Who acted, when no staff role did.
OPERATOR = "operator (command line)"
SYSTEM = "guard (automatic)"


def new_passphrase() -> str:
    """A fresh passphrase: 7 groups of 4 symbols (about 137 bits), e.g. ``K7QM-3XTB-...``."""
    symbols = [
        "".join(secrets.choice(PASSPHRASE_ALPHABET) for _ in range(PASSPHRASE_GROUP_SIZE))
        for _ in range(PASSPHRASE_GROUPS)
    ]
    return "-".join(symbols)


@dataclass(frozen=True)
class PackageFile:
    """One file of the package as the manifest lists it (sizes before compression)."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class AuditItem:
    """One audit event as the customer sees it: no principal, no resource, no hashes."""

    seq: int
    when: datetime
    action: str
    decision: str
    outcome: str
    role: str
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the action in plain words."""
        return {
            "seq": self.seq,
            "when": self.when.isoformat(),
            "action": self.action,
            "what": ACTION_WORDS.get(self.action, self.action),
            "decision": self.decision,
            "outcome": self.outcome,
            "role": self.role,
            "reason": self.reason,
        }


def audit_item(row: Any) -> AuditItem:  # noqa: ANN401 - a row of SubjectRepository.audit_events
    """An audit row as :class:`AuditItem`: the role that acted, never the principal."""
    if row.role is not None:
        role = str(row.role)
    elif row.principal == "cli":
        role = OPERATOR
    else:
        role = SYSTEM
    details = json.loads(row.details) if row.details else {}
    reason = details.get("reason")
    return AuditItem(
        seq=int(row.seq),
        when=row.ts,
        action=str(row.action),
        decision=str(row.decision),
        outcome=str(row.outcome),
        role=role,
        reason=str(reason) if reason is not None else None,
    )


@dataclass(frozen=True)
class PackageContents:
    """What one package holds; ``events`` is called once per file that lists them.

    ``events`` yields the same events each time (the caller bounds them by seq), so the JSON
    and CSV files agree while neither is ever held in memory whole.
    """

    request_id: str
    kind: str
    tenant: str
    generated_at: datetime
    record: Mapping[str, Any]
    notes: str | None
    events: Callable[[], Iterable[AuditItem]]
    incidents: Sequence[Mapping[str, Any]]
    requests: Sequence[Mapping[str, Any]]
    #: Writes the cover letter once the counts are known: (audit events, other files) -> text.
    letter: Callable[[int, tuple[str, ...]], str]


@dataclass(frozen=True)
class BuiltPackage:
    """The encrypted archive and what it holds; the repr shows neither bytes nor passphrase."""

    archive: bytes = field(repr=False)
    passphrase: str = field(repr=False)
    sha256: str
    size: int
    files: tuple[PackageFile, ...]
    audit_events: int
    incidents: int


class _HashingWriter(io.RawIOBase):
    """A binary sink that hashes and counts what goes through it into a ZIP entry."""

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__()
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        """Always."""
        return True

    def write(self, data: Any) -> int:  # noqa: ANN401 - bytes-like, as RawIOBase.write
        """Hash, count and pass on ``data``."""
        chunk = bytes(data)
        self.digest.update(chunk)
        self.size += len(chunk)
        self._target.write(chunk)
        return len(chunk)


class _Archive:
    """An AES-256 (AE-2) encrypted ZIP in memory, one entry at a time, each hashed."""

    def __init__(self, passphrase: str) -> None:
        self._buffer = io.BytesIO()
        self._zip = pyzipper.AESZipFile(
            self._buffer, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
        )
        self._zip.setpassword(passphrase.encode("ascii"))
        self._zip.setencryption(pyzipper.WZ_AES, nbits=AES_BITS, force_wz_aes_version=WZ_AES_V2)
        self.files: list[PackageFile] = []

    def text(self, name: str, chunks: Iterable[str]) -> PackageFile:
        """Write an entry from text chunks (UTF-8), streaming; its manifest line.

        Chunks (one per audit event) are gathered into blocks of ``WRITE_BLOCK`` characters: each
        write into an encrypted entry is a deflate and an AES-CTR call, whose fixed cost would
        otherwise dominate.
        """
        with self._zip.open(name, "w") as entry:
            sink = _HashingWriter(entry)
            pending: list[str] = []
            size = 0
            for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                if size >= WRITE_BLOCK:
                    sink.write("".join(pending).encode("utf-8"))
                    pending, size = [], 0
            if pending:
                sink.write("".join(pending).encode("utf-8"))
        written = PackageFile(name, sink.digest.hexdigest(), sink.size)
        self.files.append(written)
        return written

    def close(self) -> bytes:
        """Finish the archive (central directory) and return its bytes."""
        self._zip.close()
        return self._buffer.getvalue()


def write_package(contents: PackageContents) -> BuiltPackage:
    """Build the package and encrypt it under a fresh passphrase (in the result, once)."""
    secret = new_passphrase()
    archive = _Archive(secret)
    record = dict(contents.record)
    archive.text(RECORD_JSON, [_json(record)])
    archive.text(RECORD_CSV, [_record_csv(record)])
    archive.text(NOTES_TXT, [contents.notes or ""])
    counter = _Counter()
    archive.text(EVENTS_JSON, _events_json(counter.count(contents.events())))
    archive.text(EVENTS_CSV, _events_csv(contents.events()))
    archive.text(INCIDENTS_JSON, [_json({"incidents": list(contents.incidents)})])
    archive.text(REQUESTS_JSON, [_json({"requests": list(contents.requests)})])
    others = (*(f.name for f in archive.files), MANIFEST)
    archive.text(COVER_LETTER, [contents.letter(counter.total, others)])
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "request_id": contents.request_id,
        "kind": contents.kind,
        "generated_at": contents.generated_at.isoformat(),
        "encryption": "AES-256, WinZip AE-2 (ZIP)",
        "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in archive.files],
    }
    archive.text(MANIFEST, [_json(manifest)])
    data = archive.close()
    return BuiltPackage(
        archive=data,
        passphrase=secret,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        files=tuple(archive.files),
        audit_events=counter.total,
        incidents=len(contents.incidents),
    )


class _Counter:
    """Counts the items an iterable yields as it is consumed."""

    def __init__(self) -> None:
        self.total = 0

    def count(self, items: Iterable[AuditItem]) -> Iterator[AuditItem]:
        for item in items:
            self.total += 1
            yield item


def _json(document: Any) -> str:  # noqa: ANN401 - JSON-ready values
    return json.dumps(document, ensure_ascii=False, indent=2, default=_default) + "\n"


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _events_json(items: Iterable[AuditItem]) -> Iterator[str]:
    """``{"audit_events": [...]}``, one event at a time."""
    yield '{\n  "audit_events": ['
    separator = "\n    "
    for item in items:
        yield separator + json.dumps(item.as_dict(), ensure_ascii=False)
        separator = ",\n    "
    yield "\n  ]\n}\n"


def _events_csv(items: Iterable[AuditItem]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EVENT_COLUMNS)
    for item in items:
        row = item.as_dict()
        writer.writerow([_cell(row[column]) for column in EVENT_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _record_csv(record: Mapping[str, Any]) -> str:
    fields: Mapping[str, Any] = record.get("fields") or {}
    columns = ("id", "status", "created_at", "updated_at", *CSV_FIELDS)
    values = [record.get(name) for name in columns[:4]]
    for name in CSV_FIELDS:
        value = fields.get(name)
        values.append(json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerow([_cell(value) for value in values])
    return buffer.getvalue()


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text
