"""JWT bearer tokens: verify signature, issuer, audience and expiry; map claims to a principal.

Threat: forged or replayed tokens. The classic JWT attacks are closed here: ``alg: none`` and
any algorithm not configured are refused before a key is chosen; the key is chosen by the
algorithm's family (the HS256 secret is never tried as an RSA/EC key and vice versa, so a
public key cannot be used as an HMAC secret); JWKS keys are chosen by ``kid`` from a local
file (no network); ``exp``, ``iss``, ``aud`` and ``sub`` are required and checked; the role
claim must name a known role. Errors say what was wrong, never the token's content.

The subject is often an identifier of a person (an email address, an employee number), and it is
chosen by the identity provider, not by guard: it is never stored. The principal's id is
``jwt:`` + a keyed hash of issuer and subject (the audit identifier key), so the trail can
follow one subject without holding it; a subject with control characters (a forged log line)
is refused. The ``role`` and ``tenant`` claims are trusted as issued: whoever holds the signing
key can act in any tenant, unless ``GUARD_JWT_ISSUER_TENANTS`` pins the issuer to its tenants.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from guard.access.errors import AuthenticationError, IssuerTenantError
from guard.access.principals import Principal, validate_tenant
from guard.errors import ConfigurationError, InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from guard.config import Settings

SUPPORTED_ALGORITHMS: Final = frozenset({"HS256", "RS256", "ES256"})
_MAX_TOKEN_LENGTH: Final = 8192
_LEEWAY_SECONDS: Final = 30
_REQUIRED_CLAIMS: Final = ("exp", "iss", "aud", "sub")
_MIN_HS256_SECRET_BYTES: Final = 32
#: Prefix of the principal id of a token's subject: ``jwt:<keyed hash>``.
JWT_PRINCIPAL_PREFIX: Final = "jwt:"
SUBJECT_HASH_KIND: Final = "jwt_subject"


@dataclass(frozen=True)
class _Keys:
    """Verification keys by algorithm; JWKS keys by (kid, algorithm)."""

    secret: bytes | None
    pem: dict[str, Any]
    jwks: dict[tuple[str, str], Any]


def _load_pem(path: Path) -> dict[str, Any]:
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"GUARD_JWT_PUBLIC_KEY_FILE {path}: not a readable PEM public key "
            f"({type(exc).__name__})"
        ) from None
    if isinstance(key, rsa.RSAPublicKey):
        return {"RS256": key}
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return {"ES256": key}
    raise ConfigurationError(
        f"GUARD_JWT_PUBLIC_KEY_FILE {path}: expected an RSA or P-256 EC public key"
    )


def _load_jwks(path: Path) -> dict[tuple[str, str], Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"GUARD_JWT_JWKS_FILE {path}: not a readable JSON file ({type(exc).__name__})"
        ) from None
    raw_keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(raw_keys, list):
        raise ConfigurationError(f'GUARD_JWT_JWKS_FILE {path}: expected {{"keys": [...]}}')
    keys: dict[tuple[str, str], Any] = {}
    for index, raw in enumerate(raw_keys):
        where = f"GUARD_JWT_JWKS_FILE {path}, key {index}"
        if not isinstance(raw, dict) or not isinstance(raw.get("kid"), str) or not raw["kid"]:
            raise ConfigurationError(f"{where}: every key needs a 'kid'")
        if raw.get("kty") not in ("RSA", "EC"):
            raise ConfigurationError(f"{where}: only RSA and EC public keys are accepted")
        try:
            jwk = jwt.PyJWK.from_dict(raw)
        except jwt.PyJWTError as exc:
            # PyJWT's message may quote the key material; name the problem only
            raise ConfigurationError(f"{where}: unusable key ({type(exc).__name__})") from None
        if jwk.algorithm_name not in ("RS256", "ES256"):
            raise ConfigurationError(f"{where}: algorithm must be RS256 or ES256")
        keys[(raw["kid"], jwk.algorithm_name)] = jwk.key
    return keys


class JwtAuthenticator:
    """Turns a bearer JWT into a Principal, or refuses it with AuthenticationError."""

    def __init__(
        self, settings: Settings, *, subject_hash: Callable[[str, str], str] | None = None
    ) -> None:
        """``subject_hash(issuer, sub)``: the keyed hash of a subject (default: audit keys)."""
        algorithms = [a for a in settings.jwt_algorithms if a in SUPPORTED_ALGORITHMS]
        if not algorithms or len(algorithms) != len(settings.jwt_algorithms):
            raise ConfigurationError("GUARD_JWT_ALGORITHMS: choose from HS256, RS256, ES256")
        if not settings.jwt_issuer or not settings.jwt_audience:
            raise ConfigurationError(
                "GUARD_JWT_ISSUER and GUARD_JWT_AUDIENCE must be set to accept JWTs"
            )
        secret = None
        if settings.jwt_secret is not None and "HS256" in algorithms:
            secret = settings.jwt_secret.get_secret_value().encode("utf-8")
            if len(secret) < _MIN_HS256_SECRET_BYTES:
                raise ConfigurationError("GUARD_JWT_SECRET: must be at least 32 bytes for HS256")
        pem = _load_pem(settings.jwt_public_key_file) if settings.jwt_public_key_file else {}
        jwks = _load_jwks(settings.jwt_jwks_file) if settings.jwt_jwks_file else {}
        self._keys = _Keys(secret=secret, pem=pem, jwks=jwks)
        self._algorithms = frozenset(algorithms)
        if not any(self._has_key_for(a) for a in self._algorithms):
            raise ConfigurationError(
                "no JWT verification key for the configured algorithms: set GUARD_JWT_SECRET "
                "(HS256), GUARD_JWT_PUBLIC_KEY_FILE or GUARD_JWT_JWKS_FILE"
            )
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._role_claim = settings.jwt_role_claim
        self._tenant_claim = settings.jwt_tenant_claim
        self._issuer_tenants = _issuer_tenants(settings)
        self._subject_hash = subject_hash or _audit_subject_hash(settings)

    def _has_key_for(self, algorithm: str) -> bool:
        if algorithm == "HS256":
            return self._keys.secret is not None
        return algorithm in self._keys.pem or any(a == algorithm for _, a in self._keys.jwks)

    def _key_for(self, header: dict[str, Any]) -> Any:  # noqa: ANN401 - a PyJWT key object
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise AuthenticationError("token algorithm is not accepted")
        if algorithm == "HS256":
            return self._keys.secret
        kid = header.get("kid")
        if kid is not None:
            if not isinstance(kid, str) or (kid, algorithm) not in self._keys.jwks:
                raise AuthenticationError("token key id is unknown")
            return self._keys.jwks[(kid, algorithm)]
        if algorithm not in self._keys.pem:
            raise AuthenticationError("token has no key id and no configured key matches it")
        return self._keys.pem[algorithm]

    def authenticate(self, token: str) -> Principal:
        """The principal a valid token names; AuthenticationError (without the token) otherwise."""
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH:
            raise AuthenticationError("token is missing or too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("token is malformed") from None
        key = self._key_for(header)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                issuer=self._issuer,
                audience=self._audience,
                leeway=_LEEWAY_SECONDS,
                options={"require": list(_REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationError("token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("token issuer is not accepted") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("token audience is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token lacks the required {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError("token signature is invalid") from None
        except jwt.PyJWTError:
            raise AuthenticationError("token is malformed or invalid") from None
        return self._principal(claims)

    def principal_id(self, subject: str) -> str:
        """The principal id under which a subject of the configured issuer is audited."""
        return JWT_PRINCIPAL_PREFIX + self._subject_hash(self._issuer, subject)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        subject, role, tenant = (
            claims.get("sub"),
            claims.get(self._role_claim),
            claims.get(self._tenant_claim),
        )
        if not isinstance(subject, str) or not subject.strip():
            raise AuthenticationError("token 'sub' claim must be a non-empty string")
        if not subject.isprintable():
            raise AuthenticationError("token 'sub' claim must not contain control characters")
        if not isinstance(role, str) or not isinstance(tenant, str):
            raise AuthenticationError(
                f"token must carry string {self._role_claim!r} and {self._tenant_claim!r} claims"
            )
        if self._issuer_tenants is not None:
            allowed = self._issuer_tenants.get(str(claims.get("iss")), frozenset())
            if tenant not in allowed:
                raise IssuerTenantError(
                    f"token {self._tenant_claim!r} claim names a tenant its issuer may not "
                    "act in (GUARD_JWT_ISSUER_TENANTS)"
                )
        principal_id = self.principal_id(subject)
        try:
            # the display name is the hash too: a subject is an identifier, never shown
            return Principal(
                id=principal_id, name=principal_id, role=role, tenant=tenant, kind="jwt"
            )
        except InvalidInputError:
            raise AuthenticationError(
                f"token {self._role_claim!r} or {self._tenant_claim!r} claim is not valid"
            ) from None


def _issuer_tenants(settings: Settings) -> dict[str, frozenset[str]] | None:
    """GUARD_JWT_ISSUER_TENANTS checked at start-up; None when issuers are not pinned."""
    pins = settings.jwt_issuer_tenants
    if not pins:
        return None
    if settings.jwt_issuer not in pins:
        raise ConfigurationError(
            "GUARD_JWT_ISSUER_TENANTS: does not list GUARD_JWT_ISSUER; no token would be accepted"
        )
    checked: dict[str, frozenset[str]] = {}
    for issuer, tenants in pins.items():
        try:
            checked[issuer] = frozenset(validate_tenant(t) for t in tenants)
        except InvalidInputError:
            raise ConfigurationError(
                "GUARD_JWT_ISSUER_TENANTS: a tenant name is malformed (lower-case letters, "
                "digits, '_', '.', '-', at most 63)"
            ) from None
    return checked


def _audit_subject_hash(settings: Settings) -> Callable[[str, str], str]:
    """Keyed hash of (issuer, subject) under the audit identifier key."""
    from guard.crypto.audit_keys import AuditKeys  # noqa: PLC0415 - loads the master key

    keys = AuditKeys.from_settings(settings)

    def subject_hash(issuer: str, subject: str) -> str:
        # JSON keeps issuer and subject apart whatever characters they hold
        return keys.identifier_hash(SUBJECT_HASH_KIND, json.dumps([issuer, subject]))

    return subject_hash
