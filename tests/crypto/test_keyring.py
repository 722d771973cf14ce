"""The local keyring: passphrase or master-key protection, tampering, rollback, processes."""

from __future__ import annotations

import json
import multiprocessing
import secrets
import shutil
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr

from guard.crypto.errors import IntegrityError, KeyConfigurationError, UnknownKeyVersionError
from guard.crypto.keyring import LocalKeyring
from guard.crypto.providers import initialise_key_provider, load_key_provider

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings

PASSPHRASE = "correct horse battery staple"
AAD = b"context"


@pytest.fixture
def dev(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"keys_dir": tmp_path / "keys"})


@pytest.fixture
def with_passphrase(dev: Settings) -> Settings:
    return dev.model_copy(update={"keyring_passphrase": SecretStr(PASSPHRASE)})


@pytest.fixture
def with_master(dev: Settings) -> Settings:
    return dev.model_copy(
        update={"master_key": SecretStr(secrets.token_urlsafe(32)), "env": "production"}
    )


def document(settings: Settings) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(settings.keyring_file.read_text())
    return loaded


def test_development_keyring_is_created_on_first_use_with_private_permissions(
    dev: Settings,
) -> None:
    provider = load_key_provider(dev)
    assert provider.current_version() == 1
    assert dev.keyring_file.stat().st_mode & 0o777 == 0o600
    assert document(dev)["protection"]["kind"] == "development"


def test_production_never_invents_a_keyring(with_master: Settings) -> None:
    with pytest.raises(KeyConfigurationError, match="guard keys init"):
        load_key_provider(with_master)
    initialise_key_provider(with_master)
    assert load_key_provider(with_master).current_version() == 1
    with pytest.raises(KeyConfigurationError, match="already exists"):
        initialise_key_provider(with_master)


def test_production_without_a_secret_is_refused(dev: Settings) -> None:
    production = dev.model_copy(update={"env": "production", "redaction_key": None})
    with pytest.raises(KeyConfigurationError, match="GUARD_MASTER_KEY or GUARD_KEYRING_PASSPHRASE"):
        load_key_provider(production, create=True)


def test_passphrase_keyring_opens_only_with_that_passphrase(with_passphrase: Settings) -> None:
    provider = load_key_provider(with_passphrase)
    wrapped = provider.wrap(1, b"k" * 32, AAD)
    block = document(with_passphrase)["protection"]
    assert block["kdf"] == "scrypt"
    assert block["n"] >= 2**17
    raw = with_passphrase.keyring_file.read_text()
    assert PASSPHRASE not in raw
    assert load_key_provider(with_passphrase).unwrap(1, wrapped, AAD) == b"k" * 32

    wrong = with_passphrase.model_copy(
        update={"keyring_passphrase": SecretStr("not the right passphrase")}
    )
    with pytest.raises(KeyConfigurationError, match="failed authentication") as caught:
        load_key_provider(wrong)
    assert "not the right" not in str(caught.value)


def test_short_passphrase_is_refused(dev: Settings) -> None:
    short = dev.model_copy(update={"keyring_passphrase": SecretStr("short")})
    with pytest.raises(KeyConfigurationError, match="at least 12"):
        load_key_provider(short)


def test_keyring_protected_by_one_secret_names_it_when_another_is_set(
    with_passphrase: Settings, with_master: Settings
) -> None:
    load_key_provider(with_passphrase)
    with pytest.raises(KeyConfigurationError, match="GUARD_KEYRING_PASSPHRASE"):
        load_key_provider(with_master)


def test_malformed_master_key_is_refused_without_echoing_it(dev: Settings) -> None:
    bad = dev.model_copy(update={"master_key": SecretStr("tooshort-secret-value")})
    with pytest.raises(KeyConfigurationError, match="GUARD_MASTER_KEY") as caught:
        load_key_provider(bad)
    assert "tooshort" not in str(caught.value)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(current=1),
        lambda d: d["versions"][0].update(state="active", material=d["versions"][1]["material"]),
        lambda d: d["versions"][1].update(created_at="2000-01-01T00:00:00+00:00"),
        lambda d: d["protection"].update(salt="AAAAAAAAAAAAAAAAAAAAAA=="),
        lambda d: d["versions"].pop(0),
    ],
    ids=["current-changed", "retired-revived", "date-changed", "salt-changed", "version-removed"],
)
def test_an_edited_keyring_is_refused(with_master: Settings, edit: Any) -> None:
    initialise_key_provider(with_master)
    provider = load_key_provider(with_master)
    provider.create_version()
    provider.retire(1)
    edited = document(with_master)
    edit(edited)
    with_master.keyring_file.write_text(json.dumps(edited))
    with pytest.raises(KeyConfigurationError, match="failed authentication"):
        load_key_provider(with_master)


@pytest.mark.parametrize("content", ["", "{", "[]", '{"format": "other"}', "\u00ff"])
def test_a_file_that_is_not_a_keyring_is_refused(dev: Settings, content: str) -> None:
    dev.keyring_file.parent.mkdir(parents=True)
    dev.keyring_file.write_text(content, encoding="latin-1")
    with pytest.raises(KeyConfigurationError, match="keyring"):
        load_key_provider(dev)


def test_rotation_by_another_instance_is_seen_and_old_versions_keep_working(dev: Settings) -> None:
    service = load_key_provider(dev)
    old = service.wrap(1, b"a" * 32, AAD)
    operator = load_key_provider(dev)
    assert operator.create_version() == 2
    assert service.current_version() == 2  # noticed without a restart
    new = service.wrap(2, b"b" * 32, AAD)
    assert operator.unwrap(2, new, AAD) == b"b" * 32
    assert service.unwrap(1, old, AAD) == b"a" * 32


def test_retired_version_is_destroyed_and_current_cannot_be_retired(dev: Settings) -> None:
    provider = load_key_provider(dev)
    old = provider.wrap(1, b"a" * 32, AAD)
    provider.create_version()
    with pytest.raises(KeyConfigurationError, match="current"):
        provider.retire(2)
    provider.retire(1)
    entry = document(dev)["versions"][0]
    assert entry["state"] == "retired"
    assert entry["material"] is None
    with pytest.raises(UnknownKeyVersionError, match="version 1"):
        provider.unwrap(1, old, AAD)
    with pytest.raises(UnknownKeyVersionError):
        provider.retire(1)
    assert [(v.version, v.state) for v in provider.versions()] == [(1, "retired"), (2, "active")]


def test_a_rolled_back_keyring_fails_closed_on_newer_keys(dev: Settings, tmp_path: Path) -> None:
    provider = load_key_provider(dev)
    backup = tmp_path / "keyring-backup.json"
    shutil.copy(dev.keyring_file, backup)
    provider.create_version()
    wrapped = provider.wrap(2, b"n" * 32, AAD)
    shutil.copy(backup, dev.keyring_file)  # an old copy restored over the current keyring
    restored = load_key_provider(dev)
    with pytest.raises(UnknownKeyVersionError, match="older copy"):
        restored.unwrap(2, wrapped, AAD)


def test_wrong_associated_data_or_bytes_fail(dev: Settings) -> None:
    provider = load_key_provider(dev)
    wrapped = provider.wrap(1, b"a" * 32, AAD)
    for bad in (wrapped[:-1], b"\x02" + wrapped[1:], b"", wrapped[:1] + bytes(28)):
        with pytest.raises(IntegrityError):
            provider.unwrap(1, bad, AAD)
    with pytest.raises(IntegrityError):
        provider.unwrap(1, wrapped, b"other context")


def test_a_deleted_keyring_is_a_clear_error(dev: Settings) -> None:
    provider = load_key_provider(dev)
    dev.keyring_file.unlink()
    with pytest.raises(KeyConfigurationError, match="missing"):
        provider.current_version()


def _create_version(settings_json: str) -> int:
    from guard.config import Settings  # noqa: PLC0415

    return load_key_provider(Settings.model_validate_json(settings_json)).create_version()


def test_versions_created_by_concurrent_processes_are_distinct(dev: Settings) -> None:
    load_key_provider(dev)
    payload = dev.model_dump_json()
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        created = pool.map(_create_version, [payload] * 8)
    assert sorted(created) == list(range(2, 10))
    assert isinstance(load_key_provider(dev), LocalKeyring)
    assert load_key_provider(dev).current_version() == 9
