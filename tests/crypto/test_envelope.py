"""Envelope encryption: round trips for any text, and every context mismatch fails closed."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from guard.crypto.blind_index import BlindIndexer
from guard.crypto.envelope import DATA_KEY_BYTES, FORMAT_VERSION, EnvelopeCipher, WrappedKey
from guard.crypto.errors import IntegrityError, UnknownKeyVersionError
from guard.crypto.keys import RedactionKeys, load_master_key
from guard.crypto.providers import load_key_provider

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings

CONTEXT = {"tenant": "acme", "customer": "c-1", "field": "email", "kek_version": 1}


@pytest.fixture
def local(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"keys_dir": tmp_path / "keys"})


@pytest.fixture
def cipher(local: Settings) -> EnvelopeCipher:
    return EnvelopeCipher(load_key_provider(local))


@pytest.fixture
def data_key(cipher: EnvelopeCipher) -> bytes:
    key, _ = cipher.new_data_key(tenant="acme", customer="c-1")
    return key


@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=5000), field=st.text(min_size=1, max_size=40))
def test_any_unicode_text_round_trips(
    cipher: EnvelopeCipher, data_key: bytes, text: str, field: str
) -> None:
    context = {**CONTEXT, "field": field}
    blob = cipher.encrypt_field(data_key, text, **context)  # type: ignore[arg-type]
    assert blob[0] == FORMAT_VERSION
    assert cipher.decrypt_field(data_key, blob, **context) == text  # type: ignore[arg-type]


@hsettings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(size=st.integers(min_value=0, max_value=2_000_000))
def test_large_values_round_trip(cipher: EnvelopeCipher, data_key: bytes, size: int) -> None:
    text = "é" * (size // 2)
    blob = cipher.encrypt_field(data_key, text, **CONTEXT)  # type: ignore[arg-type]
    assert cipher.decrypt_field(data_key, blob, **CONTEXT) == text  # type: ignore[arg-type]


def test_same_value_encrypts_differently_each_time(cipher: EnvelopeCipher, data_key: bytes) -> None:
    first = cipher.encrypt_field(data_key, "alice@example.org", **CONTEXT)  # type: ignore[arg-type]
    second = cipher.encrypt_field(data_key, "alice@example.org", **CONTEXT)  # type: ignore[arg-type]
    assert first != second
    assert b"alice" not in first


@pytest.mark.parametrize(
    "change",
    [
        {"tenant": "globex"},
        {"customer": "c-2"},
        {"field": "phone"},
        {"kek_version": 2},
    ],
)
def test_when_any_context_differs_then_decryption_fails(
    cipher: EnvelopeCipher, data_key: bytes, change: dict[str, object]
) -> None:
    blob = cipher.encrypt_field(data_key, "secret", **CONTEXT)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        cipher.decrypt_field(data_key, blob, **{**CONTEXT, **change})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[:-1],
        lambda b: b[:13],
        lambda b: b[:0],
        lambda b: b"\x02" + b[1:],
        lambda b: b[:5] + bytes([b[5] ^ 1]) + b[6:],
        lambda b: b[:-1] + bytes([b[-1] ^ 0x80]),
        lambda b: b + b"\x00",
    ],
    ids=["truncated-tag", "truncated-nonce", "empty", "format", "nonce-bit", "tag-bit", "extended"],
)
def test_when_ciphertext_is_mangled_then_decryption_fails(
    cipher: EnvelopeCipher, data_key: bytes, mangle: object
) -> None:
    blob = cipher.encrypt_field(data_key, "secret", **CONTEXT)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        cipher.decrypt_field(data_key, mangle(blob), **CONTEXT)  # type: ignore[arg-type,operator]


def test_another_customers_data_key_cannot_decrypt(cipher: EnvelopeCipher, data_key: bytes) -> None:
    other, _ = cipher.new_data_key(tenant="acme", customer="c-1")
    blob = cipher.encrypt_field(data_key, "secret", **CONTEXT)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        cipher.decrypt_field(other, blob, **CONTEXT)  # type: ignore[arg-type]


def test_wrapped_key_is_bound_to_tenant_customer_and_version(cipher: EnvelopeCipher) -> None:
    key, wrapped = cipher.new_data_key(tenant="acme", customer="c-1")
    assert len(key) == DATA_KEY_BYTES
    assert cipher.unwrap_data_key(wrapped, tenant="acme", customer="c-1") == key
    assert key not in wrapped.wrapped
    for tenant, customer in (("globex", "c-1"), ("acme", "c-2")):
        with pytest.raises(IntegrityError):
            cipher.unwrap_data_key(wrapped, tenant=tenant, customer=customer)
    flipped = bytearray(wrapped.wrapped)
    flipped[-3] ^= 0x10
    with pytest.raises(IntegrityError):
        cipher.unwrap_data_key(
            WrappedKey(wrapped.kek_version, bytes(flipped)), tenant="acme", customer="c-1"
        )
    with pytest.raises(IntegrityError):
        cipher.unwrap_data_key(
            WrappedKey(wrapped.kek_version, wrapped.wrapped[:20]), tenant="acme", customer="c-1"
        )
    with pytest.raises(UnknownKeyVersionError, match="version 7"):
        cipher.unwrap_data_key(WrappedKey(7, wrapped.wrapped), tenant="acme", customer="c-1")
    with pytest.raises(IntegrityError):
        cipher.unwrap_data_key(WrappedKey(0, wrapped.wrapped), tenant="acme", customer="c-1")


def test_rewrap_keeps_the_data_key_and_changes_the_version(cipher: EnvelopeCipher) -> None:
    key, old = cipher.new_data_key(tenant="acme", customer="c-1")
    version = cipher.provider.create_version()
    new = cipher.rewrap(old, tenant="acme", customer="c-1")
    assert new.kek_version == version == old.kek_version + 1
    assert cipher.unwrap_data_key(new, tenant="acme", customer="c-1") == key
    # the old wrapping under the new version's number is not accepted: versions are bound
    with pytest.raises(IntegrityError):
        cipher.unwrap_data_key(WrappedKey(version, old.wrapped), tenant="acme", customer="c-1")


def test_nothing_secret_is_printed(cipher: EnvelopeCipher) -> None:
    key, wrapped = cipher.new_data_key(tenant="acme", customer="c-1")
    shown = repr(cipher) + repr(wrapped) + repr(cipher.provider)
    assert key.hex() not in shown
    assert repr(wrapped.wrapped) not in shown
    with pytest.raises(TypeError):
        pickle.dumps(cipher.provider)


def test_every_purpose_has_its_own_key(local: Settings) -> None:
    """Blind indexes, pseudonyms, tokens and the audit MAC never share a key."""
    from guard.crypto.audit_keys import AuditKeys  # noqa: PLC0415

    master = load_master_key(local)
    indexer = BlindIndexer(master)
    keys = RedactionKeys(master)
    audit = AuditKeys(master)
    derived = {
        indexer._key("acme"),
        indexer._key("globex"),
        keys._key(b"guard/pseudonym/v1/", "acme", 32),
        keys._key(b"guard/token/v1/", "acme", 64)[:32],
        audit._chain_key,
        audit._identifier_key,
    }
    assert len(derived) == 6
    same = indexer.index(tenant="acme", field="email", value="a@example.org")
    assert same == indexer.index(tenant="acme", field="email", value="a@example.org")
    assert same != indexer.index(tenant="globex", field="email", value="a@example.org")
    assert same != indexer.index(tenant="acme", field="phone", value="a@example.org")
    assert len(same) == 64
