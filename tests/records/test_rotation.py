"""KEK rotation and retirement on a real database: nothing lost, everything resumable, audited."""

from __future__ import annotations

import random
import shutil
import threading
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from guard.audit.service import AuditTrail
from guard.cli import main
from guard.crypto.blind_index import BlindIndexer
from guard.crypto.envelope import EnvelopeCipher, rewrap_all
from guard.crypto.providers import load_key_provider
from guard.records.errors import RecordIntegrityError
from guard.records.models import ENCRYPTED_FIELDS
from guard.records.repository import SqlDataKeyStore
from guard.records.schemas import RecordCreate, RecordUpdate
from guard.records.service import RecordService
from guard.redaction.service import Redactor

if TYPE_CHECKING:
    from pathlib import Path

    from click.testing import Result
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from guard.config import Settings
    from guard.detection.engine import Detector


@pytest.fixture
def own_keys(db_settings: Settings, tmp_path: Path) -> Settings:
    """A keyring of this test's own: rotation must not disturb other tests' keys."""
    return db_settings.model_copy(update={"keys_dir": tmp_path / "keys"})


@pytest.fixture
def service(
    own_keys: Settings, session_factory: sessionmaker[Session], detector: Detector
) -> RecordService:
    return _service(own_keys, session_factory, detector)


def _service(
    settings: Settings, factory: sessionmaker[Session], detector: Detector
) -> RecordService:
    return RecordService(
        settings,
        factory,
        EnvelopeCipher(load_key_provider(settings)),
        BlindIndexer.from_settings(settings),
        detector,
        Redactor(settings=settings),
    )


@pytest.fixture
def store(session_factory: sessionmaker[Session]) -> SqlDataKeyStore:
    return SqlDataKeyStore(session_factory)


def keys_cli(settings: Settings, *args: str) -> Result:
    env = {
        "GUARD_KEYS_DIR": str(settings.keys_dir),
        "GUARD_VAR_DIR": str(settings.var_dir),
        "GUARD_DATABASE_URL": settings.sqlalchemy_url,
        "GUARD_LOG_LEVEL": "error",
    }
    return CliRunner().invoke(main, ["keys", *args], env=env)


def make(service: RecordService, i: int) -> str:
    data = RecordCreate(
        full_name=f"Customer {i}",
        email=f"c{i}@example.org",
        phone=f"+44 20 7946 {i:04d}",
        account={"account_id": f"AC-{i:06d}"},
    )
    return service.create(tenant="acme", data=data).id


def columns(engine: Engine, record_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT * FROM customer_records WHERE id = :id"), {"id": record_id}
        ).one()
    return {k: bytes(v) if isinstance(v, memoryview) else v for k, v in row._mapping.items()}


def test_rotation_rewraps_data_keys_and_leaves_every_field_ciphertext_alone(
    service: RecordService, store: SqlDataKeyStore, engine: Engine, own_keys: Settings
) -> None:
    ids = [make(service, i) for i in range(12)]
    before = {record_id: columns(engine, record_id) for record_id in ids}

    result = keys_cli(own_keys, "rotate", "--no-progress", "--batch-size", "5")

    assert result.exit_code == 0, result.output
    assert "re-wrapped 12 data key(s)" in result.output
    assert store.count_by_version() == {2: 12}
    for record_id in ids:
        after = columns(engine, record_id)
        assert after["kek_version"] == 2
        assert after["field_key_version"] == before[record_id]["field_key_version"] == 1
        assert after["wrapped_key"] != before[record_id]["wrapped_key"]
        for name in ENCRYPTED_FIELDS:
            assert after[name] == before[record_id][name], name
    retired = keys_cli(own_keys, "retire", "1")
    assert retired.exit_code == 0, retired.output
    assert service.read(tenant="acme", record_id=ids[3]).fields["email"] == "c3@example.org"
    assert service.search(tenant="acme", phone="+442079460007")[0].id == ids[7]


class Workload:
    """Writers (create + update their own share of records) and readers, each with its own
    service and keyring instance, as separate API workers would have."""

    def __init__(
        self, settings: Settings, factory: sessionmaker[Session], detector: Detector
    ) -> None:
        self.settings, self.factory, self.detector = settings, factory, detector
        self.expected: dict[str, str] = {}
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def _note(self, record_id: str, email: str) -> None:
        with self._lock:
            self.expected[record_id] = email

    def writer(self, offset: int, mine: list[str]) -> None:
        worker = _service(self.settings, self.factory, self.detector)
        try:
            for n, target in enumerate(mine):
                i = offset + n
                self._note(make(worker, i), f"c{i}@example.org")
                email = f"updated{i}@example.org"
                worker.update(tenant="acme", record_id=target, changes=RecordUpdate(email=email))
                self._note(target, email)
        except BaseException as exc:  # noqa: BLE001 - reported by the test's assertion
            self.errors.append(exc)

    def reader(self, ids: list[str]) -> None:
        worker = _service(self.settings, self.factory, self.detector)
        try:
            while not self.stop.is_set():
                worker.read(tenant="acme", record_id=random.choice(ids))  # noqa: S311
        except BaseException as exc:  # noqa: BLE001
            self.errors.append(exc)


def test_rotation_in_the_middle_of_concurrent_reads_and_writes_loses_nothing(
    own_keys: Settings,
    session_factory: sessionmaker[Session],
    detector: Detector,
    store: SqlDataKeyStore,
) -> None:
    rotator = _service(own_keys, session_factory, detector)
    ids = [make(rotator, i) for i in range(40)]
    work = Workload(own_keys, session_factory, detector)
    work.expected.update({record_id: f"c{i}@example.org" for i, record_id in enumerate(ids)})
    writers = [
        threading.Thread(target=work.writer, args=(1000 + 100 * n, ids[n * 15 : n * 15 + 15]))
        for n in range(2)
    ]
    readers = [threading.Thread(target=work.reader, args=(ids,)) for _ in range(2)]
    for thread in writers + readers:
        thread.start()
    cipher = EnvelopeCipher(load_key_provider(own_keys))
    target = cipher.provider.create_version()
    report = rewrap_all(cipher, store, target_version=target, batch_size=7)
    for thread in writers:
        thread.join()
    work.stop.set()
    for thread in readers:
        thread.join()
    final = rewrap_all(cipher, store, target_version=target)  # the writers' last v1 keys, if any

    assert work.errors == []
    assert report.failed == final.failed == []
    assert store.count_by_version() == {target: len(work.expected)}
    for record_id, email in work.expected.items():
        assert rotator.read(tenant="acme", record_id=record_id).fields["email"] == email


def test_a_rotation_interrupted_by_a_crash_is_finished_by_resume(
    service: RecordService, store: SqlDataKeyStore, own_keys: Settings
) -> None:
    for i in range(20):
        make(service, i)
    cipher = EnvelopeCipher(load_key_provider(own_keys))
    target = cipher.provider.create_version()
    done = 0

    def crash_after_seven(_: int) -> None:
        nonlocal done
        done += 1
        if done == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rewrap_all(cipher, store, target_version=target, progress=crash_after_seven)
    assert store.count_by_version() == {1: 13, 2: 7}

    status = keys_cli(own_keys, "status")
    assert "rotation is unfinished" in status.output
    refused = keys_cli(own_keys, "retire", "1")
    assert refused.exit_code == 1
    assert "still wraps 13 data key(s)" in refused.output

    resumed = keys_cli(own_keys, "rotate", "--resume", "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert "re-wrapped 13" in resumed.output
    assert store.count_by_version() == {2: 20}
    assert keys_cli(own_keys, "retire", "1").exit_code == 0


def test_key_events_are_audited(
    service: RecordService, session_factory: sessionmaker[Session], own_keys: Settings
) -> None:
    make(service, 1)
    assert keys_cli(own_keys, "rotate", "--no-progress").exit_code == 0
    assert keys_cli(own_keys, "retire", "2").exit_code == 1
    assert keys_cli(own_keys, "retire", "1").exit_code == 0
    trail = AuditTrail(own_keys, session_factory)
    events = [
        (e["action"], e["decision"], e["outcome"], e["details"].get("version"))
        for e in trail.search_events()
        if e["action"].startswith("keys.")
    ]
    assert events == [
        ("keys.create_version", "allow", "success", 2),
        ("keys.rotate", "allow", "success", 2),
        ("keys.retire", "deny", "failure", 2),
        ("keys.retire", "allow", "success", 1),
    ]
    assert trail.verify().ok


def test_a_rolled_back_wrapped_key_fails_closed_once_its_version_is_retired(
    service: RecordService, engine: Engine, own_keys: Settings
) -> None:
    record_id = make(service, 1)
    old = columns(engine, record_id)
    assert keys_cli(own_keys, "rotate", "--no-progress").exit_code == 0
    assert keys_cli(own_keys, "retire", "1").exit_code == 0

    def restore(wrapped: bytes, version: int) -> None:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE customer_records SET wrapped_key = :w, kek_version = :v WHERE id = :id"
                ),
                {"w": wrapped, "v": version, "id": record_id},
            )

    restore(old["wrapped_key"], 1)  # a backup's copy of the row's key, from before rotation
    with pytest.raises(RecordIntegrityError, match="KEK version 1 is not in the keyring"):
        service.read(tenant="acme", record_id=record_id)
    restore(old["wrapped_key"], 2)  # ... relabelled with the new version
    with pytest.raises(RecordIntegrityError, match="data key failed authentication"):
        service.read(tenant="acme", record_id=record_id)


def test_a_rolled_back_keyring_fails_closed_and_status_says_why(
    service: RecordService, own_keys: Settings, tmp_path: Path
) -> None:
    make(service, 1)
    backup = tmp_path / "keyring.json.bak"
    shutil.copy(own_keys.keyring_file, backup)
    assert keys_cli(own_keys, "rotate", "--no-progress").exit_code == 0
    newer = make(service, 2)  # written under version 2
    shutil.copy(backup, own_keys.keyring_file)

    with pytest.raises(RecordIntegrityError, match="older copy"):
        service.read(tenant="acme", record_id=newer)
    status = keys_cli(own_keys, "status")
    assert status.exit_code == 1
    assert "KEK version(s) 2 that the key provider does not have" in status.output
