from __future__ import annotations

import pickle
import stat
from typing import TYPE_CHECKING

import pytest

from guard.crypto.audit_keys import (
    PUBLIC_KEY_FILENAME,
    SIGNING_KEY_FILENAME,
    AuditKeys,
    load_signing_key,
)
from guard.crypto.errors import KeyConfigurationError
from guard.crypto.keys import MasterKey

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings


@pytest.fixture
def own_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"keys_dir": tmp_path / "keys"})


def test_when_signing_key_is_first_used_then_it_is_created_private_with_its_public_key(
    own_settings: Settings,
) -> None:
    load_signing_key(own_settings)
    private = own_settings.keys_dir / SIGNING_KEY_FILENAME
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (
        (own_settings.keys_dir / PUBLIC_KEY_FILENAME)
        .read_bytes()
        .startswith(b"-----BEGIN PUBLIC KEY-----")
    )


def test_when_loaded_twice_then_the_same_signing_key_is_reused(own_settings: Settings) -> None:
    first = AuditKeys.from_settings(own_settings)
    second = AuditKeys.from_settings(own_settings)
    signature = first.sign_checkpoint(b"payload")
    assert second.checkpoint_signature_ok(b"payload", signature)
    assert first.signing_key_id == second.key_id


def test_when_production_has_no_signing_key_then_loading_fails_closed(
    own_settings: Settings,
) -> None:
    production = own_settings.model_copy(update={"env": "production"})
    with pytest.raises(KeyConfigurationError, match="required in production"):
        load_signing_key(production)


def test_when_signature_or_payload_is_altered_then_verification_fails(
    own_settings: Settings,
) -> None:
    keys = AuditKeys.from_settings(own_settings)
    signature = keys.sign_checkpoint(b"seq=5")
    assert keys.checkpoint_signature_ok(b"seq=5", signature)
    assert not keys.checkpoint_signature_ok(b"seq=6", signature)
    assert not keys.checkpoint_signature_ok(b"seq=5", bytes(64))


def test_when_master_keys_differ_then_chain_macs_and_identifier_hashes_differ() -> None:
    one = AuditKeys(MasterKey(b"\x01" * 32))
    two = AuditKeys(MasterKey(b"\x02" * 32))
    assert one.chain_mac("ab" * 32) != two.chain_mac("ab" * 32)
    assert one.identifier_hash("customer", "C-1") != two.identifier_hash("customer", "C-1")
    assert one.chain_mac_ok("ab" * 32, one.chain_mac("ab" * 32))
    assert not one.chain_mac_ok("ab" * 32, two.chain_mac("ab" * 32))


def test_when_identifier_kinds_differ_then_hashes_differ() -> None:
    keys = AuditKeys(MasterKey(b"\x01" * 32))
    assert keys.identifier_hash("customer", "42") != keys.identifier_hash("account", "42")


def test_when_printed_or_pickled_then_no_key_material_leaks() -> None:
    keys = AuditKeys(MasterKey(b"\x01" * 32))
    assert "redacted" in repr(keys)
    assert "\\x01" not in repr(keys)
    with pytest.raises(TypeError):
        pickle.dumps(keys)
