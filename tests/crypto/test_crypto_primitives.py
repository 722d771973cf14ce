from __future__ import annotations

import hashlib
import hmac

import pytest

from guard.crypto.errors import IntegrityError
from guard.crypto.primitives import hkdf_sha256, hmac_sha256, siv_decrypt, siv_encrypt

KEY64 = bytes(range(64))


def test_when_hkdf_rfc5869_vector_without_salt_then_matches() -> None:
    # RFC 5869 test case 3 (SHA-256, zero-length salt and info).
    ikm = bytes.fromhex("0b" * 22)
    okm = hkdf_sha256(ikm, info=b"", length=42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_when_hmac_then_matches_stdlib_over_length_prefixed_parts() -> None:
    key = b"k" * 32
    framed = len(b"ab").to_bytes(8, "big") + b"ab" + len(b"c").to_bytes(8, "big") + b"c"
    assert hmac_sha256(key, b"ab", b"c") == hmac.new(key, framed, hashlib.sha256).digest()
    assert hmac_sha256(key, b"ab", b"c") != hmac_sha256(key, b"a", b"bc")


def test_when_siv_round_trip_then_deterministic() -> None:
    first = siv_encrypt(KEY64, b"secret", [b"ad"])
    assert first == siv_encrypt(KEY64, b"secret", [b"ad"])
    assert siv_decrypt(KEY64, first, [b"ad"]) == b"secret"
    assert b"secret" not in first


@pytest.mark.parametrize(
    ("mutate", "ad"),
    [
        (lambda c: bytes([c[0] ^ 1]) + c[1:], [b"ad"]),
        (lambda c: c[:-1] + bytes([c[-1] ^ 0x80]), [b"ad"]),
        (lambda c: c[:-1], [b"ad"]),
        (lambda c: c[:8], [b"ad"]),
        (lambda _c: b"", [b"ad"]),
        (lambda c: c, [b"other"]),
        (lambda c: c, [b"ad", b"extra"]),
    ],
)
def test_when_ciphertext_or_ad_changed_then_integrity_error(
    mutate: object, ad: list[bytes]
) -> None:
    sealed = siv_encrypt(KEY64, b"secret", [b"ad"])
    assert callable(mutate)
    with pytest.raises(IntegrityError) as info:
        siv_decrypt(KEY64, mutate(sealed), ad)
    assert "secret" not in str(info.value)


def test_when_wrong_key_then_integrity_error() -> None:
    sealed = siv_encrypt(KEY64, b"secret", [])
    with pytest.raises(IntegrityError):
        siv_decrypt(bytes(64), sealed, [])
