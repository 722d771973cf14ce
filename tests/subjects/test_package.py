"""The access package: complete for its customer, nothing of anyone else, encrypted for delivery.

Built by the real service over an app's database (SQLite and PostgreSQL), with records made,
read and revealed through the API, an incident opened by the real scanner, and opened here
with pyzipper and the passphrase, as the customer would open it (7-Zip, WinZip, PeaZip and
Keka read the same AES format).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import zipfile
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
import pyzipper

from guard.incidents.sigma import RuleSet
from guard.records.models import ENCRYPTED_FIELDS
from guard.subjects.errors import PackageExpiredError, RequestConflictError
from guard.subjects.package import (
    FILES,
    PASSPHRASE_ALPHABET,
    PASSPHRASE_GROUP_SIZE,
    PASSPHRASE_GROUPS,
    new_passphrase,
)
from guard.subjects.policy import RetentionPolicy, RetentionSpec
from guard.subjects.service import Actor, SubjectService
from tests.incidents.helpers import SUPERVISOR_READS, scanner_for
from tests.subjects.conftest import ALICE, BOB, Customers, clear_values

if TYPE_CHECKING:
    from guard.subjects.service import NewPackage
    from tests.fixtures.api import Api

IDENTITY = "caller answered the security questions on file"


def package_of(
    subjects: SubjectService, officer: Actor, record_id: str, kind: str = "access"
) -> NewPackage:
    opened = subjects.open(actor=officer, kind=kind, record_id=record_id, identity_check=IDENTITY)
    return subjects.package(actor=officer, request_id=opened.id)


def unpack(made: NewPackage) -> dict[str, bytes]:
    """Every file of the archive, decrypted with the package's passphrase."""
    with pyzipper.AESZipFile(io.BytesIO(made.built.archive)) as archive:
        archive.setpassword(made.built.passphrase.encode())
        return {name: archive.read(name) for name in archive.namelist()}


def trail_seqs(api: Api, record_id: str) -> list[int]:
    """Every event about the customer in acme or by an operator (the trail's own search)."""
    found = api.services.audit.search_events(customer=record_id, limit=100_000)
    return [e["seq"] for e in found if e["tenant"] in ("acme", None)]


def test_when_a_package_is_made_then_it_holds_every_field_note_and_event_of_the_customer(
    api: Api, customers: Customers, subjects: SubjectService, officer: Actor
) -> None:
    opened = subjects.open(
        actor=officer, kind="access", record_id=customers.alice, identity_check=IDENTITY
    )
    before = trail_seqs(api, customers.alice)  # what the trail holds when the package is made
    made = subjects.package(actor=officer, request_id=opened.id)
    files = unpack(made)
    assert sorted(files) == sorted(FILES)

    record = json.loads(files["record.json"])
    assert record["id"] == customers.alice
    assert record["status"] == "active"
    assert set(record["fields"]) == set(ENCRYPTED_FIELDS)
    for name, value in ALICE.items():
        assert record["fields"][name] == value, name
    assert record["fields"]["notes_redacted"]  # guard's redacted copy of the notes, also held
    assert files["notes.txt"].decode() == ALICE["notes"]
    (row,) = list(csv.DictReader(io.StringIO(files["record.csv"].decode())))
    assert row["id"] == customers.alice
    assert row["full_name"] == ALICE["full_name"]
    assert row["phone"] == "'" + ALICE["phone"]  # a spreadsheet would run "+44 ..." as a formula
    assert json.loads(row["account"]) == ALICE["account"]

    events = json.loads(files["audit_events.json"])["audit_events"]
    assert [e["seq"] for e in events] == before
    assert made.built.audit_events == len(events)
    actions = [e["action"] for e in events]
    assert actions.count("records.read") == 3
    assert {"records.create", "records.reveal", "subjects.open"} <= set(actions)
    reveal = next(e for e in events if e["action"] == "records.reveal")
    assert reveal["role"] == "supervisor"
    assert reveal["reason"] == "refund dispute escalated by the team lead"
    assert reveal["what"] == "your full record was shown in clear, for a stated reason"
    assert all(
        set(e) == {"seq", "when", "action", "what", "decision", "outcome", "role", "reason"}
        for e in events
    )
    rows = list(csv.DictReader(io.StringIO(files["audit_events.csv"].decode())))
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in events]

    requests = json.loads(files["requests.json"])["requests"]
    assert [r["id"] for r in requests] == [made.request.id]
    assert "opened_by" not in requests[0]

    manifest = json.loads(files["manifest.json"])
    assert manifest["request_id"] == made.request.id
    assert manifest["kind"] == "access"
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == set(FILES) - {"manifest.json"}
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest(), name
        assert entry["size"] == len(files[name])
    assert files["cover_letter.txt"].strip()


def test_when_a_package_is_made_then_nothing_of_another_customer_or_of_staff_is_in_it(
    api: Api, customers: Customers, subjects: SubjectService, officer: Actor
) -> None:
    made = package_of(subjects, officer, customers.alice)
    everything = b"\n".join(unpack(made).values()).decode()
    for value in (
        *clear_values(BOB),
        customers.bob,
        api.services.audit.customer_hash(customers.bob),
    ):
        assert value not in everything, value
    # staff are named by role, never by principal (CJEU C-579/21)
    principals = set(_principal_ids(api))
    assert principals
    assert [p for p in principals if p in everything] == []
    assert officer.principal not in everything
    bob_seqs = set(trail_seqs(api, customers.bob))
    events = json.loads(unpack(made)["audit_events.json"])["audit_events"]
    assert bob_seqs.isdisjoint(e["seq"] for e in events)


def _principal_ids(api: Api) -> list[str]:
    return [key.id for key in api.services.api_keys.list()]


def test_when_an_incident_affected_the_customer_then_it_is_listed_without_the_others(
    api: Api, customers: Customers, subjects: SubjectService, officer: Actor
) -> None:
    for record_id in (customers.alice, customers.bob):
        read = api.client.get(f"/v1/records/{record_id}", headers=api.headers("supervisor"))
        assert read.status_code == 200
    report = scanner_for(api, RuleSet.from_yaml(SUPERVISOR_READS)).scan()
    assert report.opened == 1
    made = package_of(subjects, officer, customers.alice)
    (incident,) = json.loads(unpack(made)["incidents.json"])["incidents"]
    assert set(incident) == {
        "id",
        "reference",
        "title",
        "opened_at",
        "status",
        "customers_notified_at",
        "closed_at",
    }
    assert incident["reference"] == "INC-0001"
    assert incident["status"] == "open"
    assert made.built.incidents == 1
    assert customers.bob not in json.dumps(incident)


def test_when_the_archive_is_opened_then_only_the_passphrase_opens_it(
    customers: Customers, subjects: SubjectService, officer: Actor
) -> None:
    made = package_of(subjects, officer, customers.alice, kind="portability")
    data = made.built.archive
    assert hashlib.sha256(data).hexdigest() == made.built.sha256 == made.info.sha256
    # the bytes hold no clear value: not the customer's, not the notes, not the record id
    for value in (*clear_values(ALICE), ALICE["notes"], customers.alice, "Philippa"):
        assert value.encode() not in data, value
    with pyzipper.AESZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            assert info.flag_bits & 0x1, info.filename  # encrypted
            assert info.wz_aes_strength == 3, info.filename  # AES-256
            assert info.wz_aes_version == 2, info.filename  # AE-2: no CRC of the clear text
            assert info.CRC == 0
        archive.setpassword(b"K7QM-3XTB-WRONG-PASS-PHRA-SE22-2222")
        with pytest.raises(RuntimeError, match="Bad password"):
            archive.read("record.json")
    with zipfile.ZipFile(io.BytesIO(data)) as plain, pytest.raises(RuntimeError, match="password"):
        plain.read("record.json")  # a ZIP reader without the password gets nothing
    # the stored archive is the same bytes, and what the API downloads
    stored = subjects.download(actor=officer, request_id=made.request.id)
    assert stored.archive == data
    assert stored.filename == f"subject-request-{made.request.id}.zip"


def test_passphrases_are_fresh_long_and_readable_aloud() -> None:
    phrases = {new_passphrase() for _ in range(200)}
    assert len(phrases) == 200
    for phrase in phrases:
        groups = phrase.split("-")
        assert len(groups) == PASSPHRASE_GROUPS
        assert all(len(g) == PASSPHRASE_GROUP_SIZE for g in groups)
        assert set("".join(groups)) <= set(PASSPHRASE_ALPHABET)
    assert not set("01ILOU") & set(PASSPHRASE_ALPHABET)
    bits = PASSPHRASE_GROUPS * PASSPHRASE_GROUP_SIZE * math.log2(len(PASSPHRASE_ALPHABET))
    assert bits >= 128


def test_when_a_package_is_made_again_then_it_replaces_the_old_one_with_a_new_passphrase(
    api: Api, customers: Customers, subjects: SubjectService, officer: Actor
) -> None:
    first = package_of(subjects, officer, customers.alice)
    second = subjects.package(actor=officer, request_id=first.request.id)
    assert second.built.passphrase != first.built.passphrase
    stored = subjects.download(actor=officer, request_id=first.request.id)
    assert stored.sha256 == second.built.sha256
    with pyzipper.AESZipFile(io.BytesIO(stored.archive)) as archive:
        archive.setpassword(first.built.passphrase.encode())
        with pytest.raises(RuntimeError):
            archive.read("record.json")
    # the second package lists the first one's audit event
    events = json.loads(unpack(second)["audit_events.json"])["audit_events"]
    assert "subjects.package" in [e["action"] for e in events]
    del api


def test_when_events_span_several_batches_then_every_one_is_in_the_package(
    api: Api,
    customers: Customers,
    subjects: SubjectService,
    officer: Actor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("guard.subjects.service.EVENT_BATCH", 2)
    made = package_of(subjects, officer, customers.alice)
    events = json.loads(unpack(made)["audit_events.json"])["audit_events"]
    assert len(events) > 2 * 2
    assert [e["seq"] for e in events] == trail_seqs(api, customers.alice)[: len(events)]


def test_when_the_package_expires_then_the_retention_period_says_when_and_download_is_refused(
    api: Api, customers: Customers, subjects: SubjectService, officer: Actor
) -> None:
    made = package_of(subjects, officer, customers.alice)
    assert made.info.expires_at - made.info.created_at == timedelta(days=30)  # retention.yaml
    later = made.info.expires_at + timedelta(seconds=1)
    with pytest.raises(PackageExpiredError):
        subjects.download(actor=officer, request_id=made.request.id, now=later)
    expired = [
        e
        for e in api.services.audit.search_events(action="subjects.download")
        if e["outcome"] == "failure"
    ]
    assert [e["details"]["reason"] for e in expired] == ["package-expired"]
    spec = RetentionSpec.model_validate(
        {"version": 1, "tenants": {"acme": {"subject_packages": {"keep_days": 7}}}}
    )
    short = SubjectService(
        settings=api.settings,
        session_factory=api.services.session_factory,
        records=subjects._records,
        audit=api.services.audit,
        redact=subjects._redact,
        retention=RetentionPolicy(spec, sha256="test"),
    )
    again = short.package(actor=officer, request_id=made.request.id)
    assert again.info.expires_at - again.info.created_at == timedelta(days=7)


def test_when_the_request_is_an_erasure_then_no_package_is_made(
    api: Api, customers: Customers, subjects: SubjectService, officer: Actor
) -> None:
    opened = subjects.open(
        actor=officer, kind="erasure", record_id=customers.alice, identity_check=IDENTITY
    )
    with pytest.raises(RequestConflictError):
        subjects.package(actor=officer, request_id=opened.id)
    assert subjects.get(tenant="acme", request_id=opened.id).package is None
    del api
