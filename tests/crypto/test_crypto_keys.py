from __future__ import annotations

import base64
import os
import pickle
import stat
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from guard.config import Settings
from guard.crypto.errors import IntegrityError, KeyConfigurationError
from guard.crypto.keys import (
    PSEUDONYM_PURPOSE,
    TOKEN_PURPOSE,
    MasterKey,
    RedactionKeys,
    load_master_key,
    parse_master_key,
)
from guard.crypto.primitives import hkdf_sha256
from guard.errors import InvalidInputError

if TYPE_CHECKING:
    from pathlib import Path

RAW = bytes(range(100, 132))


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARD_REDACTION_KEY", raising=False)
    monkeypatch.delenv("GUARD_ENV", raising=False)


def dev_settings(keys_dir: Path, **kw: object) -> Settings:
    return Settings(env="development", keys_dir=keys_dir, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "encoded",
    [
        RAW.hex(),
        RAW.hex().upper(),
        base64.urlsafe_b64encode(RAW).decode(),
        base64.urlsafe_b64encode(RAW).decode().rstrip("="),
        f"  {RAW.hex()}\n",
        base64.b64encode(RAW).decode(),  # `openssl rand -base64 32` output is accepted too
    ],
)
def test_when_key_encoded_as_hex_or_base64url_then_parsed(encoded: str) -> None:
    parsed = parse_master_key(encoded)
    assert parsed.derive(b"x", 32) == MasterKey(RAW).derive(b"x", 32)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "too-short",
        RAW[:31].hex(),
        base64.urlsafe_b64encode(RAW[:31]).decode(),
        "not base64 at all !!! " * 4,
    ],
)
def test_when_key_invalid_then_error_names_variable_not_value(encoded: str) -> None:
    with pytest.raises(KeyConfigurationError) as info:
        parse_master_key(encoded)
    message = str(info.value)
    assert "GUARD_REDACTION_KEY" in message
    if encoded.strip():
        assert encoded.strip() not in message


def test_when_key_set_in_settings_then_used_and_no_file_written(tmp_path: Path) -> None:
    settings = dev_settings(tmp_path, redaction_key=SecretStr(RAW.hex()))
    key = load_master_key(settings)
    assert key.derive(b"x", 16) == MasterKey(RAW).derive(b"x", 16)
    assert list(tmp_path.iterdir()) == []


def test_when_key_from_environment_then_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARD_REDACTION_KEY", RAW.hex())
    key = load_master_key(Settings(keys_dir=tmp_path))
    assert key.derive(b"x", 16) == MasterKey(RAW).derive(b"x", 16)


def test_when_dev_without_key_then_file_created_0600_and_reused(tmp_path: Path) -> None:
    keys_dir = tmp_path / "nested" / "keys"
    first = load_master_key(dev_settings(keys_dir))
    path = keys_dir / "redaction.key"
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert [p.name for p in keys_dir.iterdir()] == ["redaction.key"]  # no temp files left
    second = load_master_key(dev_settings(keys_dir))
    assert first.derive(b"x", 32) == second.derive(b"x", 32)


def test_when_umask_permissive_then_dev_key_still_0600(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_master_key(dev_settings(tmp_path))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "redaction.key").stat().st_mode) == 0o600


def test_when_two_dev_dirs_then_keys_differ(tmp_path: Path) -> None:
    a = load_master_key(dev_settings(tmp_path / "a"))
    b = load_master_key(dev_settings(tmp_path / "b"))
    assert a.derive(b"x", 32) != b.derive(b"x", 32)


def test_when_dev_key_file_too_short_then_error_names_path(tmp_path: Path) -> None:
    (tmp_path / "redaction.key").write_bytes(b"short")
    with pytest.raises(KeyConfigurationError, match="shorter than 32 bytes") as info:
        load_master_key(dev_settings(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_when_production_without_key_then_error_and_no_file(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigurationError, match="GUARD_REDACTION_KEY is not set"):
        load_master_key(Settings(env="production", keys_dir=tmp_path))
    assert not (tmp_path / "redaction.key").exists()


def test_when_production_with_dev_key_file_only_then_still_error(tmp_path: Path) -> None:
    load_master_key(dev_settings(tmp_path))
    with pytest.raises(KeyConfigurationError):
        load_master_key(Settings(env="production", keys_dir=tmp_path))


def test_when_master_key_shorter_than_32_bytes_then_refused() -> None:
    with pytest.raises(KeyConfigurationError):
        MasterKey(b"\x00" * 31)


def test_when_repr_then_secrets_masked() -> None:
    master = MasterKey(RAW)
    keys = RedactionKeys(master)
    keys.pseudonym_digest(tenant="acme", scope="", value="v")
    for text in (repr(master), repr(keys), str(master), f"{keys}"):
        assert "<redacted>" in text
        assert RAW.hex() not in text
        assert repr(RAW) not in text
        assert base64.urlsafe_b64encode(RAW).decode().rstrip("=") not in text


def test_when_pickled_then_refused() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(MasterKey(RAW))
    with pytest.raises(TypeError):
        pickle.dumps(RedactionKeys(MasterKey(RAW)))


def test_when_derived_then_purposes_and_tenants_get_distinct_keys() -> None:
    master = MasterKey(RAW)
    derived = {
        master.derive(purpose + tenant, 32)
        for purpose in (PSEUDONYM_PURPOSE, TOKEN_PURPOSE)
        for tenant in (b"acme", b"globex")
    }
    assert len(derived) == 4
    # The documented HKDF construction, so other implementations can interoperate.
    assert master.derive(PSEUDONYM_PURPOSE + b"acme", 32) == hkdf_sha256(
        RAW, info=b"guard/pseudonym/v1/acme", length=32
    )


def test_when_tokens_sealed_then_bound_to_tenant_and_context() -> None:
    keys = RedactionKeys(MasterKey(RAW))
    sealed = keys.seal_token(tenant="acme", plaintext=b"value", context=[b"EMAIL"])
    assert keys.open_token(tenant="acme", ciphertext=sealed, context=[b"EMAIL"]) == b"value"
    with pytest.raises(IntegrityError):
        keys.open_token(tenant="globex", ciphertext=sealed, context=[b"EMAIL"])
    with pytest.raises(IntegrityError):
        keys.open_token(tenant="acme", ciphertext=sealed, context=[b"PERSON"])


def test_when_pseudonym_digest_then_scope_and_value_are_not_ambiguous() -> None:
    keys = RedactionKeys(MasterKey(RAW))
    assert keys.pseudonym_digest(tenant="t", scope="ab", value="c") != keys.pseudonym_digest(
        tenant="t", scope="a", value="bc"
    )


def test_when_tenant_empty_then_invalid_input() -> None:
    keys = RedactionKeys(MasterKey(RAW))
    with pytest.raises(InvalidInputError):
        keys.pseudonym_digest(tenant="", scope="", value="v")
