"""Signed evidence bundles: made from a range of the chain, checked offline, tampering shows."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from guard.audit.bundle import MAX_BUNDLE_EVENTS, verify_bundle
from guard.audit.chain import event_hash
from guard.audit.cli import audit
from guard.audit.errors import AuditInputError
from guard.audit.schemas import AuditFilters
from tests.audit.conftest import record_events

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from guard.audit.service import AuditTrail
    from guard.config import Settings

EVENTS = 23
FIRST, LAST = 3, 12  # checkpoints every 5 events: 5 and 10 inside, 15 covers the range's head


@pytest.fixture
def chain(trail: AuditTrail) -> AuditTrail:
    record_events(trail, EVENTS, customer="C-1", entity_counts={"EMAIL_ADDRESS": 2})
    return trail


@pytest.fixture
def bundle(chain: AuditTrail) -> bytes:
    return chain.evidence_bundle(first_seq=FIRST, last_seq=LAST)


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(members: dict[str, bytes], *, fix_checksums: bool = True) -> bytes:
    """Re-pack members; by default the manifest's checksums follow the edits (a careful forger)."""
    if fix_checksums:
        manifest = json.loads(members["manifest.json"])
        for name in manifest["files"]:
            manifest["files"][name] = hashlib.sha256(members[name]).hexdigest()
        members = {**members, "manifest.json": json.dumps(manifest).encode()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _lines(data: bytes) -> list[str]:
    """JSON lines end in \n only (str.splitlines would also split inside a U+2028)."""
    return data.decode().removesuffix("\n").split("\n")


def _events(members: dict[str, bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(members["events.jsonl"])]


def _with_events(members: dict[str, bytes], events: list[dict[str, Any]]) -> dict[str, bytes]:
    text = "".join(json.dumps(event) + "\n" for event in events)
    return {**members, "events.jsonl": text.encode()}


def _checkpoints(members: dict[str, bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(members["checkpoints.jsonl"])]


def _with_checkpoints(
    members: dict[str, bytes], checkpoints: list[dict[str, Any]]
) -> dict[str, bytes]:
    text = "".join(json.dumps(checkpoint) + "\n" for checkpoint in checkpoints)
    return {**members, "checkpoints.jsonl": text.encode()}


def _rehash(event: dict[str, Any]) -> None:
    """What a forger without guard's key can do: recompute the hash (not the HMAC)."""
    content = {
        **event,
        "ts": datetime.fromisoformat(event["ts"]),
        "entity_counts": json.dumps(event["entity_counts"], sort_keys=True, separators=(",", ":")),
        "details": json.dumps(event["details"], sort_keys=True, separators=(",", ":")),
    }
    event["hash"] = event_hash(event["seq"], event["prev_hash"], content)


# ------------------------------------------------------------------------------ good bundles


def test_when_a_bundle_is_untouched_then_it_verifies(bundle: bytes) -> None:
    report = verify_bundle(bundle)
    assert report.ok, report.summary()
    assert (report.first_seq, report.last_seq, report.events_checked) == (FIRST, LAST, 10)
    assert (report.checkpoints_checked, report.signed_through) == (3, 10)
    assert report.summary() == (
        "evidence bundle intact: events 3..12 (10 events, signed through seq 10), "
        "3 signed checkpoints verified; HMACs not checked (they need guard's key)"
    )


def test_when_a_bundle_is_made_then_its_events_are_exactly_the_range_as_exported(
    chain: AuditTrail, bundle: bytes
) -> None:
    members = _members(bundle)
    assert set(members) == {
        "events.jsonl",
        "previous-event.json",
        "checkpoints.jsonl",
        "audit-signing.pub",
        "VERIFY.txt",
        "manifest.json",
    }
    exported = io.StringIO()
    chain.export(AuditFilters(), "jsonl", exported)
    lines = [line + "\n" for line in exported.getvalue().removesuffix("\n").split("\n")]
    assert members["events.jsonl"].decode() == "".join(lines[FIRST - 1 : LAST])
    assert members["previous-event.json"].decode() == lines[FIRST - 2]
    assert [checkpoint["seq"] for checkpoint in _checkpoints(members)] == [5, 10, 15]
    manifest = json.loads(members["manifest.json"])
    assert {k: manifest[k] for k in ("first_seq", "last_seq", "events", "checkpoints")} == {
        "first_seq": FIRST,
        "last_seq": LAST,
        "events": 10,
        "checkpoints": 3,
    }
    assert manifest["key_id"] == chain.keys.key_id
    assert manifest["files"]["events.jsonl"] == hashlib.sha256(members["events.jsonl"]).hexdigest()
    assert "C-1" not in bundle.decode("latin-1")  # the customer is a keyed hash


def test_when_the_range_starts_at_one_and_ends_on_a_checkpoint_then_nothing_else_is_added(
    chain: AuditTrail,
) -> None:
    members = _members(chain.evidence_bundle(first_seq=1, last_seq=10))
    assert "previous-event.json" not in members
    assert [checkpoint["seq"] for checkpoint in _checkpoints(members)] == [5, 10]
    report = verify_bundle(_zip(members, fix_checksums=False))
    assert (report.ok, report.events_checked, report.signed_through) == (True, 10, 10)


def test_when_no_checkpoint_covers_the_range_yet_then_the_bundle_says_so(
    chain: AuditTrail,
) -> None:
    report = verify_bundle(chain.evidence_bundle(first_seq=21, last_seq=EVENTS))
    assert (report.ok, report.checkpoints_checked, report.signed_through) == (True, 0, None)
    assert "none of them under a signed checkpoint" in report.summary()


# ------------------------------------------------------------------------------- tampering


def test_when_an_event_is_edited_then_verification_fails_at_its_seq(bundle: bytes) -> None:
    members = _members(bundle)
    events = _events(members)
    events[7 - FIRST]["decision"] = "deny"
    report = verify_bundle(_zip(_with_events(members, events)))
    assert (report.ok, report.bad_seq, report.problem) == (False, 7, "hash mismatch")
    assert report.summary() == "evidence bundle broken at seq 7: hash mismatch"


def test_when_an_edit_is_rehashed_through_the_range_then_the_signed_checkpoint_catches_it(
    bundle: bytes,
) -> None:
    members = _members(bundle)
    events = _events(members)
    events[7 - FIRST]["principal"] = "somebody-else"
    for index in range(7 - FIRST, len(events)):
        if index > 7 - FIRST:
            events[index]["prev_hash"] = events[index - 1]["hash"]
        _rehash(events[index])
    report = verify_bundle(_zip(_with_events(members, events)))
    assert (report.bad_seq, report.problem) == (10, "event differs from signed checkpoint")


def test_when_an_event_is_removed_then_verification_names_the_missing_seq(bundle: bytes) -> None:
    members = _members(bundle)
    events = _events(members)
    report = verify_bundle(_zip(_with_events(members, events[:5] + events[6:])))
    assert (report.ok, report.bad_seq, report.problem) == (False, 8, "event 8 missing")
    report = verify_bundle(_zip(_with_events(members, events[:-1])))
    assert (report.bad_seq, report.problem) == (LAST, f"event {LAST} missing")


def test_when_events_are_swapped_then_the_links_break(bundle: bytes) -> None:
    members = _members(bundle)
    events = _events(members)
    events[1]["seq"], events[2]["seq"] = events[2]["seq"], events[1]["seq"]
    events[1], events[2] = events[2], events[1]
    report = verify_bundle(_zip(_with_events(members, events)))
    assert (report.ok, report.bad_seq, report.problem) == (False, FIRST + 1, "hash mismatch")


def test_when_checkpoint_signatures_are_swapped_then_verification_fails(bundle: bytes) -> None:
    members = _members(bundle)
    checkpoints = _checkpoints(members)
    first, second = checkpoints[0], checkpoints[1]
    first["signature"], second["signature"] = second["signature"], first["signature"]
    report = verify_bundle(_zip(_with_checkpoints(members, checkpoints)))
    assert (report.ok, report.bad_seq, report.problem) == (
        False,
        5,
        "checkpoint signature invalid",
    )


def test_when_a_checkpoint_is_re_signed_with_another_key_then_the_key_id_gives_it_away(
    bundle: bytes,
) -> None:
    members = _members(bundle)
    forged = Ed25519PrivateKey.generate()
    checkpoints = _checkpoints(members)
    for checkpoint in checkpoints:
        payload = json.dumps(
            [
                "guard-audit-checkpoint/v1",
                checkpoint["seq"],
                checkpoint["head_hash"],
                checkpoint["ts"],
            ],
            separators=(",", ":"),
        )
        checkpoint["signature"] = forged.sign(payload.encode()).hex()
    pem = forged.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    members = {**_with_checkpoints(members, checkpoints), "audit-signing.pub": pem}
    report = verify_bundle(_zip(members))
    assert (report.ok, report.problem) == (
        False,
        "the key id of audit-signing.pub is not the manifest's",
    )


@pytest.mark.parametrize("name", ["events.jsonl", "VERIFY.txt", "audit-signing.pub"])
def test_when_a_file_is_changed_without_its_checksum_then_verification_names_it(
    bundle: bytes, name: str
) -> None:
    members = _members(bundle)
    members[name] += b"\n"
    report = verify_bundle(_zip(members, fix_checksums=False))
    assert (report.ok, report.problem) == (False, f"{name} checksum mismatch")
    assert report.summary() == f"evidence bundle broken: {name} checksum mismatch"


def test_when_a_file_is_added_or_the_previous_event_removed_then_verification_fails(
    bundle: bytes,
) -> None:
    members = _members(bundle)
    report = verify_bundle(_zip({**members, "notes.txt": b"trust me"}, fix_checksums=False))
    assert report.problem == "the bundle's files differ from its manifest"
    without = {name: data for name, data in members.items() if name != "previous-event.json"}
    manifest = json.loads(without["manifest.json"])
    del manifest["files"]["previous-event.json"]
    without["manifest.json"] = json.dumps(manifest).encode()
    report = verify_bundle(_zip(without, fix_checksums=False))
    assert (report.bad_seq, report.problem) == (FIRST - 1, "previous-event.json missing")


def test_when_an_event_carries_a_key_twice_then_it_is_refused(bundle: bytes) -> None:
    members = _members(bundle)
    line = members["events.jsonl"].split(b"\n", 1)[0]
    twice = line[:-1] + b',"decision":"deny"}'  # a reader keeping the first value is misled
    members["events.jsonl"] = members["events.jsonl"].replace(line, twice, 1)
    report = verify_bundle(_zip(members))
    assert report.problem == "events.jsonl line 1 is not JSON"


def test_when_the_file_is_not_a_zip_then_verification_says_so() -> None:
    report = verify_bundle(b"PK\x03\x04 not really")
    assert (report.ok, report.problem) == (False, "not a readable ZIP file")


# -------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("first_seq", "last_seq", "message"),
    [
        (0, 5, "starts at seq 1 or later"),
        (9, 4, "reversed: seq 9 comes after seq 4"),
        (1, MAX_BUNDLE_EVENTS + 1, "at most 1,000,000 events"),
        (20, EVENTS + 1, f"beyond the head of the trail (seq {EVENTS})"),
    ],
)
def test_when_the_range_is_bad_then_the_bundle_is_refused(
    chain: AuditTrail, first_seq: int, last_seq: int, message: str
) -> None:
    with pytest.raises(AuditInputError, match=re.escape(message)):
        chain.evidence_bundle(first_seq=first_seq, last_seq=last_seq)


def test_when_the_trail_is_empty_then_the_bundle_is_refused(trail: AuditTrail) -> None:
    with pytest.raises(AuditInputError, match="no events yet"):
        trail.evidence_bundle(first_seq=1, last_seq=1)


# -------------------------------------------------------------------------------- commands


def _invoke(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(audit, list(args), obj=settings)


def test_when_cli_bundles_and_verifies_then_both_are_audited(
    audit_settings: Settings, chain: AuditTrail, tmp_path: Path
) -> None:
    output = tmp_path / "out" / "evidence.zip"
    result = _invoke(
        audit_settings, "bundle", "--from", str(FIRST), "--to", str(LAST), "--output", str(output)
    )
    assert result.exit_code == 0, result.output
    assert not [path for path in output.parent.iterdir() if path.name.startswith(".")]
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in result.output
    made = chain.search(AuditFilters(action="audit.bundle")).events
    assert [(e.principal, e.outcome) for e in made] == [("cli", "success")]
    assert made[0].details == {"first_seq": FIRST, "last_seq": LAST, "bundle_sha256": digest}

    result = _invoke(audit_settings, "verify-bundle", str(output))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("evidence bundle intact: events 3..12")
    checked = chain.search(AuditFilters(action="audit.verify_bundle")).events
    assert [(e.principal, e.outcome) for e in checked] == [("cli", "success")]
    assert checked[0].details == {
        "ok": True,
        "events": 10,
        "checkpoints": 3,
        "bundle_sha256": digest,
        "first_seq": FIRST,
        "last_seq": LAST,
    }
    assert chain.verify().ok


def test_when_cli_verifies_a_tampered_bundle_then_it_exits_one_with_the_seq(
    audit_settings: Settings, chain: AuditTrail, bundle: bytes, tmp_path: Path
) -> None:
    members = _members(bundle)
    events = _events(members)
    events[9 - FIRST]["outcome"] = "failure"
    path = tmp_path / "tampered.zip"
    path.write_bytes(_zip(_with_events(members, events)))
    result = _invoke(audit_settings, "verify-bundle", str(path))
    assert result.exit_code == 1
    assert result.output.strip() == "evidence bundle broken at seq 9: hash mismatch"
    checked = chain.search(AuditFilters(action="audit.verify_bundle")).events
    assert checked[0].outcome == "failure"
    assert checked[0].details["bad_seq"] == 9


def test_when_cli_is_given_a_bad_range_then_it_refuses_audits_and_writes_nothing(
    audit_settings: Settings, chain: AuditTrail, tmp_path: Path
) -> None:
    output = tmp_path / "evidence.zip"
    result = _invoke(audit_settings, "bundle", "--from", "9", "--to", "4", "--output", str(output))
    assert isinstance(result.exception, AuditInputError)
    assert not output.exists()
    refused = chain.search(AuditFilters(action="audit.bundle")).events
    assert [(e.outcome, e.details["reason"]) for e in refused] == [("failure", "invalid-range")]


# ------------------------------------------------------------- VERIFY.txt, followed by hand


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _canonical_time(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Recipe:
    """The hash and payload field lists, read out of VERIFY.txt itself."""

    def __init__(self, text: str) -> None:
        assert 'json.dumps(x, sort_keys=True, separators=(",", ":"), ensure_ascii=False)' in text
        assert "always six fractional digits" in text
        fields = re.search(r"fields = \[(.*?)\]", text, re.DOTALL)
        payload = re.search(r"payload = canonical\(\[(.*?)\]\)", text)
        assert fields is not None
        assert payload is not None
        self.fields = [name.strip() for name in fields.group(1).split(",")]
        self.payload = [name.strip() for name in payload.group(1).split(",")]

    @staticmethod
    def build(names: list[str], record: dict[str, Any], time: str) -> list[object]:
        out: list[object] = []
        for name in names:
            if name.startswith('"'):
                out.append(json.loads(name))
            elif name == "ts":
                out.append(time)
            elif name.startswith("canonical("):
                out.append(_canonical(record[name.removeprefix("canonical(")[:-1]]).decode())
            else:
                out.append(record[name])
        return out

    def event_ok(self, event: dict[str, Any]) -> bool:
        fields = self.build(self.fields, event, _canonical_time(event["ts"]))
        return hashlib.sha256(_canonical(fields)).hexdigest() == str(event["hash"])

    def checkpoint_payload(self, checkpoint: dict[str, Any]) -> bytes:
        return _canonical(self.build(self.payload, checkpoint, checkpoint["ts"]))


def _by_hand_files(files: dict[str, bytes]) -> str | None:
    manifest = json.loads(files["manifest.json"])
    if set(files) != {*manifest["files"], "manifest.json"}:
        return "files"
    bad = [name for name, digest in manifest["files"].items() if _sha256(files[name]) != digest]
    return f"checksum {bad[0]}" if bad else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _by_hand_events(files: dict[str, bytes], recipe: _Recipe) -> tuple[str | None, dict[int, str]]:
    manifest = json.loads(files["manifest.json"])
    prev_hash, hashes = "0" * 64, dict[int, str]()
    if manifest["first_seq"] > 1:
        previous = json.loads(files["previous-event.json"])
        if not recipe.event_ok(previous):
            return f"hash {previous['seq']}", hashes
        prev_hash = previous["hash"]
    events = [json.loads(line) for line in _lines(files["events.jsonl"])]
    for expected, event in enumerate(events, start=manifest["first_seq"]):
        problem = (
            "gap"
            if event["seq"] != expected
            else "hash"
            if not recipe.event_ok(event)
            else "link"
            if event["prev_hash"] != prev_hash
            else None
        )
        if problem:
            return f"{problem} {expected}", hashes
        prev_hash = hashes[expected] = event["hash"]
    if len(events) != manifest["last_seq"] - manifest["first_seq"] + 1:
        return "count", hashes
    return None, hashes


def _by_hand_checkpoints(
    files: dict[str, bytes], recipe: _Recipe, hashes: dict[int, str]
) -> str | None:
    public = serialization.load_pem_public_key(files["audit-signing.pub"])
    assert isinstance(public, Ed25519PublicKey)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = _sha256(raw)[:16]
    if key_id != json.loads(files["manifest.json"])["key_id"]:
        return "key id"
    for line in _lines(files["checkpoints.jsonl"]):
        checkpoint = json.loads(line)
        seq = checkpoint["seq"]
        try:
            public.verify(
                bytes.fromhex(checkpoint["signature"]), recipe.checkpoint_payload(checkpoint)
            )
        except InvalidSignature:
            return f"signature {seq}"
        if (
            checkpoint["key_id"] != key_id
            or hashes.get(seq, checkpoint["head_hash"]) != checkpoint["head_hash"]
        ):
            return f"checkpoint {seq}"
    return None


def _independent_check(data: bytes) -> str | None:
    """Follow VERIFY.txt with hashlib, json and cryptography only; None if the bundle holds."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    recipe = _Recipe(files["VERIFY.txt"].decode())
    problem = _by_hand_files(files)
    if problem is not None:
        return problem
    problem, hashes = _by_hand_events(files, recipe)
    return problem or _by_hand_checkpoints(files, recipe, hashes)


class _WholeSecond(datetime):
    """A clock on a whole second (ahead: ts never goes back along seq), so ts has no fraction."""

    @classmethod
    def now(cls, tz: Any = None) -> _WholeSecond:
        return cls(2099, 1, 31, 9, 15, 0, tzinfo=tz or UTC)


def test_when_verify_txt_is_followed_without_guard_then_it_agrees_with_guard(
    trail: AuditTrail, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_events(trail, 4, customer="C-9", entity_counts={"PERSON": 1, "EMAIL_ADDRESS": 3})
    with monkeypatch.context() as patched:
        patched.setattr("guard.audit.writer.datetime", _WholeSecond)
        trail.record(
            action="records.read",
            resource="record",
            decision="deny",
            outcome="failure",
            principal=None,
            details={"reason": 'r\u00e9sum\u00e9 \u2028 \x01 "quoted" \\ tab\t', "fields": 3},
        )
    record_events(trail, 8, role=None)
    data = trail.evidence_bundle(first_seq=2, last_seq=11)
    members = _members(data)
    assert '"ts":"2099-01-31T09:15:00Z"' in members["events.jsonl"].decode()
    assert verify_bundle(data).ok
    assert _independent_check(data) is None

    tampered: list[tuple[Callable[[dict[str, bytes]], dict[str, bytes]], str]] = []

    def edit(members: dict[str, bytes]) -> dict[str, bytes]:
        events = _events(members)
        events[3]["details"]["fields"] = 4
        return _with_events(members, events)

    def swap(members: dict[str, bytes]) -> dict[str, bytes]:
        checkpoints = _checkpoints(members)
        checkpoints[0]["signature"] = checkpoints[1]["signature"]
        return _with_checkpoints(members, checkpoints)

    tampered += [(edit, "hash 5"), (swap, "signature 5")]
    for change, problem in tampered:
        forged = _zip(change(_members(data)))
        assert _independent_check(forged) == problem
        report = verify_bundle(forged)
        assert (report.ok, report.bad_seq) == (False, int(problem.split()[1]))
