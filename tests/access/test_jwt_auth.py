"""JWT bearer tokens with real HS256, RS256 and ES256 keys; every forgery fails closed."""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr

from guard.access.errors import AuthenticationError, IssuerTenantError
from guard.access.jwt_auth import JwtAuthenticator
from guard.errors import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings

ISSUER = "https://idp.example"
AUDIENCE = "guard"
SECRET = "s" * 48


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "user-42",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "role": "supervisor",
        "tenant": "acme",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def configured(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update={"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, **update})


@pytest.fixture
def hs256(settings: Settings) -> JwtAuthenticator:
    return JwtAuthenticator(
        configured(settings, jwt_algorithms=["HS256"], jwt_secret=SecretStr(SECRET))
    )


@pytest.fixture
def rs256(settings: Settings, rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> JwtAuthenticator:
    return JwtAuthenticator(
        configured(settings, jwt_public_key_file=pem(rsa_key, tmp_path / "rsa.pem"))
    )


@pytest.fixture
def es256(
    settings: Settings, ec_key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> JwtAuthenticator:
    return JwtAuthenticator(
        configured(settings, jwt_public_key_file=pem(ec_key, tmp_path / "ec.pem"))
    )


def test_when_an_hs256_token_is_valid_then_its_claims_become_the_principal(
    hs256: JwtAuthenticator,
) -> None:
    principal = hs256.authenticate(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert (principal.role, principal.tenant, principal.kind) == ("supervisor", "acme", "jwt")
    # the subject is an identifier chosen by the identity provider: only its keyed hash is kept
    assert principal.id == hs256.principal_id("user-42")
    assert principal.id.startswith("jwt:")
    assert len(principal.id) == len("jwt:") + 64
    assert "user-42" not in principal.id
    assert principal.name == principal.id


@pytest.mark.parametrize(
    "subject",
    ["joe@example.org", "x" * 300, "Zoë Ω 名前", "a" * 5000],
    ids=["email", "300-chars", "unicode", "5000-chars"],
)
def test_when_a_subject_is_an_identifier_or_long_then_only_its_keyed_hash_is_the_principal(
    hs256: JwtAuthenticator, subject: str
) -> None:
    principal = hs256.authenticate(jwt.encode(claims(sub=subject), SECRET, algorithm="HS256"))
    assert principal.id == hs256.principal_id(subject)
    assert len(principal.id) == len("jwt:") + 64
    assert subject not in repr(principal)


def test_when_two_subjects_differ_then_their_principals_differ_and_one_is_stable(
    hs256: JwtAuthenticator, settings: Settings
) -> None:
    again = JwtAuthenticator(
        configured(settings, jwt_algorithms=["HS256"], jwt_secret=SecretStr(SECRET))
    )
    assert hs256.principal_id("a") == again.principal_id("a")
    assert hs256.principal_id("a") != hs256.principal_id("b")


@pytest.mark.parametrize(
    "subject", ["a\nforged log line", "tab\there", "nul\x00", "del\x7f", "\u2028sep", "\ud800"]
)
def test_when_a_subject_holds_control_characters_then_the_token_is_refused(
    hs256: JwtAuthenticator, subject: str
) -> None:
    token = jwt.encode(claims(sub=subject), SECRET, algorithm="HS256")
    with pytest.raises(AuthenticationError, match="control characters") as caught:
        hs256.authenticate(token)
    assert subject not in str(caught.value)


def test_when_issuers_are_pinned_then_a_token_for_another_tenant_is_refused(
    settings: Settings,
) -> None:
    pinned = JwtAuthenticator(
        configured(
            settings,
            jwt_algorithms=["HS256"],
            jwt_secret=SecretStr(SECRET),
            jwt_issuer_tenants={ISSUER: ["acme"], "https://other.example": ["globex"]},
        )
    )
    assert pinned.authenticate(jwt.encode(claims(), SECRET, algorithm="HS256")).tenant == "acme"
    foreign = jwt.encode(claims(tenant="globex"), SECRET, algorithm="HS256")
    with pytest.raises(IssuerTenantError, match="GUARD_JWT_ISSUER_TENANTS") as caught:
        pinned.authenticate(foreign)
    assert caught.value.status_code == 401
    assert caught.value.audit_reason == "tenant-not-allowed"


@pytest.mark.parametrize(
    ("pins", "message"),
    [
        ({"https://other.example": ["acme"]}, "does not list GUARD_JWT_ISSUER"),
        ({ISSUER: ["ACME!"]}, "malformed"),
    ],
)
def test_when_issuer_pins_are_wrong_then_configuration_fails(
    settings: Settings, pins: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        JwtAuthenticator(
            configured(
                settings,
                jwt_algorithms=["HS256"],
                jwt_secret=SecretStr(SECRET),
                jwt_issuer_tenants=pins,
            )
        )


def test_when_an_rs256_token_is_valid_then_it_authenticates(
    rs256: JwtAuthenticator, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(role="agent"), rsa_key, algorithm="RS256")
    assert rs256.authenticate(token).role == "agent"


def test_when_an_es256_token_is_valid_then_it_authenticates(
    es256: JwtAuthenticator, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    token = jwt.encode(claims(tenant="globex"), ec_key, algorithm="ES256")
    assert es256.authenticate(token).tenant == "globex"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"aud": "someone-else"}, "audience"),
        ({"exp": None}, "'exp'"),
        ({"iss": None}, "'iss'"),
        ({"aud": None}, "'aud'"),
        ({"sub": None}, "'sub'"),
        ({"role": "root"}, "not valid"),
        ({"role": None}, "'role'"),
        ({"tenant": "*"}, "not valid"),
        ({"tenant": 7}, "'tenant'"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
    ],
    ids=[
        "expired",
        "wrong-issuer",
        "wrong-audience",
        "no-exp",
        "no-iss",
        "no-aud",
        "no-sub",
        "unknown-role",
        "no-role",
        "wildcard-tenant",
        "non-string-tenant",
        "not-yet-valid",
    ],
)
def test_when_claims_are_wrong_then_the_token_is_rejected(
    hs256: JwtAuthenticator, overrides: dict[str, Any], message: str
) -> None:
    token = jwt.encode(claims(**overrides), SECRET, algorithm="HS256")
    with pytest.raises(AuthenticationError, match=message) as caught:
        hs256.authenticate(token)
    assert token not in str(caught.value)
    assert caught.value.status_code == 401


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_when_a_token_uses_alg_none_then_it_is_rejected(
    hs256: JwtAuthenticator, rs256: JwtAuthenticator
) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims())}."
    for authenticator in (hs256, rs256):
        with pytest.raises(AuthenticationError, match="algorithm is not accepted"):
            authenticator.authenticate(token)


def test_when_a_signature_is_tampered_then_the_token_is_rejected(
    rs256: JwtAuthenticator, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(role="agent"), rsa_key, algorithm="RS256")
    header, _, signature = token.split(".")
    # escalate the role in the payload but keep the old signature
    forged = f"{header}.{_b64(claims(role='admin'))}.{signature}"
    with pytest.raises(AuthenticationError, match="signature is invalid"):
        rs256.authenticate(forged)
    flipped = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationError):
        rs256.authenticate(f"{header}.{token.split('.')[1]}.{flipped}")


def test_when_a_token_is_signed_by_another_key_then_it_is_rejected(
    es256: JwtAuthenticator, hs256: JwtAuthenticator
) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(AuthenticationError, match="signature is invalid"):
        es256.authenticate(jwt.encode(claims(), stranger, algorithm="ES256"))
    with pytest.raises(AuthenticationError, match="signature is invalid"):
        hs256.authenticate(jwt.encode(claims(), "x" * 48, algorithm="HS256"))


def test_when_the_public_key_is_used_as_an_hmac_secret_then_the_token_is_rejected(
    settings: Settings, rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    public_pem = pem(rsa_key, tmp_path / "rsa.pem")
    authenticator = JwtAuthenticator(
        configured(settings, jwt_algorithms=["RS256"], jwt_public_key_file=public_pem)
    )
    header = _b64({"alg": "HS256", "typ": "JWT"})
    body = _b64(claims(role="admin"))
    import hashlib  # noqa: PLC0415 - only this attack needs raw HMAC
    import hmac  # noqa: PLC0415

    mac = hmac.new(public_pem.read_bytes(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(AuthenticationError, match="algorithm is not accepted"):
        authenticator.authenticate(forged)


def test_when_an_algorithm_is_not_configured_then_a_valid_signature_is_still_rejected(
    rs256: JwtAuthenticator, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    # rs256 accepts RS256 and ES256 by default but holds only an RSA key
    with pytest.raises(AuthenticationError, match="no configured key"):
        rs256.authenticate(jwt.encode(claims(), ec_key, algorithm="ES256"))


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 10_000])
def test_when_a_token_is_malformed_then_it_is_rejected(hs256: JwtAuthenticator, token: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        hs256.authenticate(token)
    assert token not in caught.value.message or not token


def test_when_a_jwks_file_is_configured_then_the_key_is_chosen_by_kid(
    settings: Settings,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    tmp_path: Path,
) -> None:
    jwks = tmp_path / "jwks.json"
    keys = [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "rsa-1"},
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec-1"},
    ]
    jwks.write_text(json.dumps({"keys": keys}), encoding="utf-8")
    authenticator = JwtAuthenticator(configured(settings, jwt_jwks_file=jwks))
    rsa_token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    ec_token = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert authenticator.authenticate(rsa_token).id == authenticator.principal_id("user-42")
    assert authenticator.authenticate(ec_token).id == authenticator.principal_id("user-42")
    # a kid naming a key of another type, or no key at all, is refused
    wrong_kid = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "ec-1"})
    unknown_kid = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-2"})
    for token in (wrong_kid, unknown_kid):
        with pytest.raises(AuthenticationError, match="key id is unknown"):
            authenticator.authenticate(token)


def test_when_a_jwks_file_holds_a_symmetric_key_then_configuration_fails(
    settings: Settings, tmp_path: Path
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(
        json.dumps({"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}), encoding="utf-8"
    )
    with pytest.raises(ConfigurationError, match="only RSA and EC") as caught:
        JwtAuthenticator(configured(settings, jwt_jwks_file=jwks))
    assert "c2VjcmV0" not in caught.value.message


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"jwt_issuer": None}, "GUARD_JWT_ISSUER"),
        ({"jwt_audience": None}, "GUARD_JWT_AUDIENCE"),
        ({"jwt_secret": SecretStr("short")}, "at least 32 bytes"),
        ({"jwt_secret": None}, "no JWT verification key"),
    ],
    ids=["no-issuer", "no-audience", "short-secret", "no-key"],
)
def test_when_jwt_settings_are_incomplete_then_configuration_fails(
    settings: Settings, update: dict[str, Any], message: str
) -> None:
    base = configured(settings, jwt_algorithms=["HS256"], jwt_secret=SecretStr(SECRET))
    with pytest.raises(ConfigurationError, match=message):
        JwtAuthenticator(base.model_copy(update=update))
