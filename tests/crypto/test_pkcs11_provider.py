"""The PKCS#11 key provider against a real SoftHSM2 token (no mocks).

One token for the session, in a temporary SoftHSM2 store; every test uses its own key label
prefix so that tests never see each other's KEKs.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, MechanismFlag
from pydantic import SecretStr

from guard.config import Settings
from guard.crypto import pkcs11_provider
from guard.crypto.blind_index import BlindIndexer
from guard.crypto.envelope import EnvelopeCipher, retire_version, rewrap_all
from guard.crypto.errors import IntegrityError, KeyConfigurationError, UnknownKeyVersionError
from guard.crypto.pkcs11_provider import Pkcs11Provider
from guard.crypto.providers import KeyVersionInfo, initialise_key_provider, load_key_provider
from guard.records.repository import SqlDataKeyStore
from guard.records.schemas import RecordCreate
from guard.records.service import RecordService
from guard.redaction.service import Redactor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.orm import Session, sessionmaker

    from guard.detection.engine import Detector

SOFTHSM_LIBRARY = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "1234"
SO_PIN = "5678"
DATA_KEY = bytes(range(32))
AAD = b"guard/test/record-42"


@pytest.fixture(scope="session")
def token_label(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh SoftHSM2 token in a temporary store (SOFTHSM2_CONF set before the first load)."""
    if not SOFTHSM_LIBRARY.is_file():  # a failure, not a skip: `make test` installs it
        pytest.fail(f"{SOFTHSM_LIBRARY} not found: run `make test` or apt-get install softhsm2")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n",
        encoding="utf-8",
    )
    label = f"guard-test-{uuid.uuid4().hex[:8]}"
    tool = shutil.which("softhsm2-util") or "softhsm2-util"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        subprocess.run(  # noqa: S603 - fixed arguments
            [tool, "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN],
            check=True,
            capture_output=True,
        )
        yield label


def hsm_settings(token_label: str, tmp_path: Path, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "key_provider": "pkcs11",
        "pkcs11_library": SOFTHSM_LIBRARY,
        "pkcs11_token_label": token_label,
        "pkcs11_pin": SecretStr(PIN),
        "pkcs11_key_label": f"t-{uuid.uuid4().hex[:12]}",
        "keys_dir": tmp_path,
        "var_dir": tmp_path,
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def open_provider(token_label: str, tmp_path: Path) -> Iterator[Callable[..., Pkcs11Provider]]:
    """Open providers on the session's token (a fresh label prefix unless given); all closed."""
    opened: list[Pkcs11Provider] = []

    def open_(**overrides: object) -> Pkcs11Provider:
        provider = load_key_provider(hsm_settings(token_label, tmp_path, **overrides))
        assert isinstance(provider, Pkcs11Provider)
        opened.append(provider)
        return provider

    yield open_
    for provider in opened:
        provider.close()


@pytest.fixture
def provider(open_provider: Callable[..., Pkcs11Provider]) -> Pkcs11Provider:
    return open_provider()


# ---------------------------------------------------------------------------- versions


def test_when_no_kek_on_token_then_current_version_says_run_keys_init(
    provider: Pkcs11Provider,
) -> None:
    with pytest.raises(KeyConfigurationError, match="guard keys init"):
        provider.current_version()
    assert provider.versions() == []


def test_when_version_created_then_current_and_round_trip(provider: Pkcs11Provider) -> None:
    assert provider.name == "pkcs11"
    assert provider.create_version() == 1
    assert provider.current_version() == 1
    assert provider.versions() == [KeyVersionInfo(version=1, state="active")]
    wrapped = provider.wrap(1, DATA_KEY, AAD)
    assert wrapped[0] == 1
    assert len(wrapped) == 1 + 12 + len(DATA_KEY) + 16
    assert DATA_KEY not in wrapped
    assert provider.unwrap(1, wrapped, AAD) == DATA_KEY
    assert provider.wrap(1, DATA_KEY, AAD) != wrapped  # a fresh IV every time


@pytest.mark.parametrize(
    ("mutate", "aad"),
    [
        pytest.param(lambda w: w, b"guard/test/record-43", id="other-aad"),
        pytest.param(lambda w: w, b"", id="no-aad"),
        pytest.param(lambda w: w[:5] + bytes([w[5] ^ 1]) + w[6:], AAD, id="flipped-iv"),
        pytest.param(lambda w: w[:20] + bytes([w[20] ^ 1]) + w[21:], AAD, id="flipped-ct"),
        pytest.param(lambda w: w[:-1] + bytes([w[-1] ^ 0x80]), AAD, id="flipped-tag"),
        pytest.param(lambda w: b"\x02" + w[1:], AAD, id="format-byte"),
        pytest.param(lambda w: w[:-1], AAD, id="truncated-tag"),
        pytest.param(lambda w: w[:29], AAD, id="shorter-than-iv-and-tag"),
        pytest.param(lambda w: w[:13], AAD, id="iv-only"),
        pytest.param(lambda _w: b"", AAD, id="empty"),
        pytest.param(lambda w: w + b"\x00", AAD, id="extended"),
    ],
)
def test_when_wrapped_key_or_aad_changed_then_integrity_error(
    provider: Pkcs11Provider, mutate: Callable[[bytes], bytes], aad: bytes
) -> None:
    provider.create_version()
    wrapped = provider.wrap(1, DATA_KEY, AAD)
    with pytest.raises(IntegrityError) as info:
        provider.unwrap(1, mutate(wrapped), aad)
    assert info.type is IntegrityError
    assert str(info.value) == "wrapped key failed authentication"
    assert provider.unwrap(1, wrapped, AAD) == DATA_KEY  # the session is still usable


def test_when_version_unknown_then_unknown_key_version_error(provider: Pkcs11Provider) -> None:
    provider.create_version()
    wrapped = provider.wrap(1, DATA_KEY, AAD)
    with pytest.raises(UnknownKeyVersionError, match="KEK version 7"):
        provider.unwrap(7, wrapped, AAD)
    with pytest.raises(UnknownKeyVersionError, match="KEK version 2"):
        provider.wrap(2, DATA_KEY, AAD)


def test_when_rotated_then_both_versions_unwrap_and_not_each_others(
    provider: Pkcs11Provider,
) -> None:
    provider.create_version()
    old = provider.wrap(1, DATA_KEY, AAD)
    assert provider.create_version() == 2
    assert provider.current_version() == 2
    assert [v.version for v in provider.versions()] == [1, 2]
    new = provider.wrap(2, DATA_KEY, AAD)
    assert provider.unwrap(1, old, AAD) == DATA_KEY
    assert provider.unwrap(2, new, AAD) == DATA_KEY
    with pytest.raises(IntegrityError) as info:
        provider.unwrap(2, old, AAD)
    assert info.type is IntegrityError


def test_when_retiring_then_current_refused_and_old_destroyed(provider: Pkcs11Provider) -> None:
    provider.create_version()
    old = provider.wrap(1, DATA_KEY, AAD)
    provider.create_version()
    new = provider.wrap(2, DATA_KEY, AAD)
    with pytest.raises(KeyConfigurationError, match="current"):
        provider.retire(2)
    with pytest.raises(UnknownKeyVersionError):
        provider.retire(5)
    provider.retire(1)
    assert provider.versions() == [KeyVersionInfo(version=2, state="active")]
    with pytest.raises(UnknownKeyVersionError, match="KEK version 1"):
        provider.unwrap(1, old, AAD)
    with pytest.raises(UnknownKeyVersionError):
        provider.retire(1)
    assert provider.unwrap(2, new, AAD) == DATA_KEY
    assert provider.create_version() == 3


def test_when_other_labels_on_token_then_ignored(provider: Pkcs11Provider) -> None:
    provider.create_version()
    session = provider._open()
    prefix = provider.key_label
    for label in (f"{prefix}-v01", f"{prefix}-vx", f"{prefix}-v", f"{prefix}x-v9", "other-v8"):
        session.generate_key(KeyType.AES, 256, label=label, store=True)
    assert [v.version for v in provider.versions()] == [1]
    assert provider.current_version() == 1


# ---------------------------------------------------------------------------- other processes


def test_when_another_instance_rotates_then_this_one_sees_it(
    open_provider: Callable[..., Pkcs11Provider],
) -> None:
    first = open_provider()
    second = open_provider(pkcs11_key_label=first.key_label)
    assert first.create_version() == 1
    wrapped_1 = first.wrap(1, DATA_KEY, AAD)
    assert second.unwrap(1, wrapped_1, AAD) == DATA_KEY  # second now caches version 1 only
    assert first.create_version() == 2
    wrapped_2 = first.wrap(2, DATA_KEY, AAD)
    assert second.unwrap(2, wrapped_2, AAD) == DATA_KEY  # unknown version: looked up again
    assert second.current_version() == 2
    first.retire(1)
    with pytest.raises(UnknownKeyVersionError):  # its cached handle went stale
        second.unwrap(1, wrapped_1, AAD)


def test_when_one_instance_closes_then_others_stay_logged_in(
    open_provider: Callable[..., Pkcs11Provider],
) -> None:
    first = open_provider()
    second = open_provider(pkcs11_key_label=first.key_label)
    first.create_version()
    wrapped = second.wrap(1, DATA_KEY, AAD)
    first.close()
    first.close()  # closing twice is harmless
    assert second.current_version() == 1
    assert second.unwrap(1, wrapped, AAD) == DATA_KEY
    assert first.unwrap(1, wrapped, AAD) == DATA_KEY  # reopens on use


def test_when_two_objects_share_a_version_label_then_both_unwrap(
    provider: Pkcs11Provider,
) -> None:
    # Two processes rotating at the same moment can both create -v1.
    provider.create_version()
    before = provider.wrap(1, DATA_KEY, AAD)
    provider._open().generate_key(
        KeyType.AES,
        256,
        id=b"\x00" * 16,  # the smallest CKA_ID: new wraps go under this one
        label=f"{provider.key_label}-v1",
        store=True,
        capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
    )
    assert provider.versions() == [KeyVersionInfo(version=1, state="active")]
    after = provider.wrap(1, DATA_KEY, AAD)
    assert provider.unwrap(1, before, AAD) == DATA_KEY
    assert provider.unwrap(1, after, AAD) == DATA_KEY
    assert provider._keys[1][0][Attribute.ID] == b"\x00" * 16


def test_when_session_lost_then_reopened(provider: Pkcs11Provider) -> None:
    provider.create_version()
    wrapped = provider.wrap(1, DATA_KEY, AAD)
    session = provider._session
    assert session is not None
    session.close()  # as if the HSM dropped the connection
    assert provider.unwrap(1, wrapped, AAD) == DATA_KEY
    assert provider._session is not session


def test_when_used_from_threads_then_every_call_succeeds(provider: Pkcs11Provider) -> None:
    provider.create_version()
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(20):
                aad = f"record-{i}".encode()
                key = os.urandom(32)
                assert provider.unwrap(1, provider.wrap(1, key, aad), aad) == key
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# ---------------------------------------------------------------------------- the key object


def test_when_kek_created_then_sensitive_non_extractable_token_object(
    provider: Pkcs11Provider,
) -> None:
    provider.create_version()
    key = provider._open().get_key(label=f"{provider.key_label}-v1")
    assert key.key_type == KeyType.AES
    assert key[Attribute.VALUE_LEN] == 32
    assert key[Attribute.TOKEN] is True
    assert key[Attribute.PRIVATE] is True
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.ALWAYS_SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert key[Attribute.ENCRYPT] is True
    assert key[Attribute.DECRYPT] is True
    for capability in (Attribute.WRAP, Attribute.UNWRAP, Attribute.SIGN, Attribute.DERIVE):
        assert key[capability] is False
    assert len(key[Attribute.ID]) == 16
    with pytest.raises(pkcs11.AttributeSensitive):
        key[Attribute.VALUE]


def test_when_repr_or_pickle_then_no_secrets(provider: Pkcs11Provider) -> None:
    provider.create_version()
    provider.wrap(1, DATA_KEY, AAD)
    text = repr(provider)
    assert text == (
        f"Pkcs11Provider(token={provider.token_label!r}, key_label={provider.key_label!r})"
    )
    assert PIN not in text
    assert str(SOFTHSM_LIBRARY) not in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(provider)


# ---------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("wrong_pin", ["987654", "12345"])
@pytest.mark.parametrize("already_logged_in", [False, True], ids=["fresh", "logged-in"])
def test_when_pin_wrong_then_configuration_error_without_the_pin(
    open_provider: Callable[..., Pkcs11Provider],
    token_label: str,
    wrong_pin: str,
    already_logged_in: bool,
) -> None:
    if already_logged_in:
        open_provider().versions()
    else:
        assert (str(SOFTHSM_LIBRARY), token_label) not in pkcs11_provider._LOGINS
    provider = open_provider(pkcs11_pin=SecretStr(wrong_pin))
    with pytest.raises(KeyConfigurationError, match="GUARD_PKCS11_PIN") as info:
        provider.current_version()
    assert wrong_pin not in str(info.value)
    assert wrong_pin not in repr(info.value)
    assert info.value.__cause__ is None
    assert wrong_pin not in repr(provider)
    # The right PIN still works afterwards (SoftHSM2 does not lock the PIN).
    assert open_provider().versions() == []


def test_when_library_or_pin_unset_then_error_names_the_setting(
    token_label: str, tmp_path: Path
) -> None:
    with pytest.raises(KeyConfigurationError, match="GUARD_PKCS11_LIBRARY"):
        load_key_provider(hsm_settings(token_label, tmp_path, pkcs11_library=None))
    with pytest.raises(KeyConfigurationError, match="GUARD_PKCS11_PIN"):
        load_key_provider(hsm_settings(token_label, tmp_path, pkcs11_pin=None))


def test_when_library_missing_or_not_pkcs11_then_configuration_error(
    token_label: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-module.so"
    with pytest.raises(KeyConfigurationError, match="GUARD_PKCS11_LIBRARY") as info:
        load_key_provider(hsm_settings(token_label, tmp_path, pkcs11_library=missing))
    assert str(missing) in str(info.value)
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not a shared object")
    provider = load_key_provider(hsm_settings(token_label, tmp_path, pkcs11_library=junk))
    with pytest.raises(KeyConfigurationError, match="GUARD_PKCS11_LIBRARY"):
        provider.current_version()


def test_when_token_label_unknown_then_configuration_error(
    open_provider: Callable[..., Pkcs11Provider],
) -> None:
    provider = open_provider(pkcs11_token_label="no-such-token")
    with pytest.raises(KeyConfigurationError, match="GUARD_PKCS11_TOKEN_LABEL"):
        provider.create_version()


# ------------------------------------------------------------------ records on the HSM


def test_records_encrypted_under_hsm_keys_survive_rotation_and_retirement(
    token_label: str,
    db_settings: Settings,
    session_factory: sessionmaker[Session],
    detector: Detector,
    tmp_path: Path,
) -> None:
    hsm = hsm_settings(token_label, tmp_path).model_copy(
        update={"database_url": db_settings.database_url, "keys_dir": db_settings.keys_dir}
    )
    provider = initialise_key_provider(hsm)
    assert isinstance(provider, Pkcs11Provider)
    try:
        cipher = EnvelopeCipher(provider)
        records = RecordService(
            hsm,
            session_factory,
            cipher,
            BlindIndexer.from_settings(hsm),
            detector,
            Redactor(settings=hsm),
        )
        ids = [
            records.create(
                tenant="acme", data=RecordCreate(email=f"h{i}@example.org", phone=f"0770090{i:04d}")
            ).id
            for i in range(6)
        ]
        store = SqlDataKeyStore(session_factory)
        assert store.count_by_version() == {1: 6}
        target = provider.create_version()
        report = rewrap_all(cipher, store, target_version=target)
        assert report.complete
        assert report.rewrapped == 6
        retire_version(provider, store, 1)
        assert [v.version for v in provider.versions()] == [2]
        for i, record_id in enumerate(ids):
            assert records.read(tenant="acme", record_id=record_id).fields["email"] == (
                f"h{i}@example.org"
            )
    finally:
        provider.close()
