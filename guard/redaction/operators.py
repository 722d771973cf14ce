"""Redaction operators: an abstract base plus a name-keyed registry, like Presidio's.

Built-in operators: ``redact`` (remove), ``tag`` (``<EMAIL_ADDRESS>``), ``mask`` (keep the last N
characters), ``pseudonym`` (stable keyed hash per tenant and scope, ``<PERSON_3f9a1c>``) and
``token`` (reversible AES-SIV, ``<EMAIL_ADDRESS:tok_v1_...>``). Parameters are validated when an
operator is created, i.e. when the policy is loaded. Error messages never quote the value.
"""

from __future__ import annotations

import base64
import binascii
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guard.crypto.errors import IntegrityError
from guard.errors import GuardError, TokenError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from guard.crypto.keys import RedactionKeys

#: Entity types whose pseudonyms are computed over digits only ("+1 (555) 010" == "1555010").
DIGIT_ENTITY_TYPES = frozenset(
    {"PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "US_BANK_NUMBER", "PIN", "ZIP_CODE"}
)
#: Entity types whose pseudonyms are computed over letters and digits only.
ALNUM_ENTITY_TYPES = frozenset({"IBAN_CODE"})

TOKEN_PREFIX = "tok_v1_"  # noqa: S105 - a format marker, not a secret
#: A reversible token inside text: ``<ENTITY_TYPE:tok_v1_BASE64URL>``.
TOKEN_PATTERN = re.compile(r"<([A-Z][A-Z0-9_]*):" + TOKEN_PREFIX + r"([A-Za-z0-9_-]*)>")
_ENTITY_TYPE = re.compile(r"[A-Z][A-Z0-9_]*")
_WHITESPACE = re.compile(r"\s+")


class OperatorParamsError(GuardError):
    """An operator's parameters are invalid; the policy loader adds where they came from."""


@dataclass(frozen=True, slots=True)
class OperatorContext:
    """What an operator may know besides the value: type, tenant, scope and key material."""

    entity_type: str
    tenant: str
    scope: str
    keys: RedactionKeys | None = None

    def require_keys(self, operator: str) -> RedactionKeys:
        """Return the key material, or fail clearly when none was configured."""
        if self.keys is None:
            raise GuardError(f"operator {operator!r} needs redaction keys; none configured")
        return self.keys


class NoParams(BaseModel):
    """Parameters of operators that take none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Operator(ABC):
    """A way of replacing one detected value; subclasses declare ``name`` and ``Params``."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        try:
            self.params = self.Params.model_validate(dict(params or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
                for err in exc.errors()
            )
            raise OperatorParamsError(f"invalid params for {self.name!r}: {problems}") from None

    @abstractmethod
    def operate(self, value: str, context: OperatorContext) -> str:
        """Return the replacement for ``value``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


class RedactOperator(Operator):
    """Remove the value entirely."""

    name = "redact"

    def operate(self, value: str, context: OperatorContext) -> str:  # noqa: ARG002 - interface
        """Return the empty string."""
        return ""


class TagOperator(Operator):
    """Replace the value by its entity type, e.g. ``<EMAIL_ADDRESS>``."""

    name = "tag"

    def operate(self, value: str, context: OperatorContext) -> str:  # noqa: ARG002 - interface
        """Return ``<ENTITY_TYPE>``."""
        return f"<{context.entity_type}>"


class MaskParams(BaseModel):
    """``mask``: how many trailing characters stay visible, and the masking character."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chars_to_keep: int = Field(default=4, ge=0, le=64)
    masking_char: str = Field(default="*", min_length=1, max_length=1)


class MaskOperator(Operator):
    """Mask every character but the last ``chars_to_keep``; short values are masked whole."""

    name = "mask"
    Params = MaskParams

    def operate(self, value: str, context: OperatorContext) -> str:  # noqa: ARG002 - interface
        """Return the value with all but its last characters replaced by ``masking_char``."""
        params = cast("MaskParams", self.params)
        # Never show a whole value: a value no longer than chars_to_keep is masked entirely.
        keep = params.chars_to_keep if len(value) > params.chars_to_keep else 0
        hidden = len(value) - keep
        return params.masking_char * hidden + value[hidden:]


def normalise_for_pseudonym(value: str, entity_type: str) -> str:
    """Casefold and collapse whitespace; digits only for phones/cards, alnum only for IBANs."""
    if entity_type in DIGIT_ENTITY_TYPES:
        digits = "".join(ch for ch in value if ch.isdigit())
        if digits:
            return digits
    if entity_type in ALNUM_ENTITY_TYPES:
        alnum = "".join(ch for ch in value if ch.isalnum()).casefold()
        if alnum:
            return alnum
    return _WHITESPACE.sub(" ", value).strip().casefold()


class PseudonymParams(BaseModel):
    """``pseudonym``: how many hex characters of the keyed hash to show."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    length: int = Field(default=6, ge=4, le=64)


class PseudonymOperator(Operator):
    """Replace by ``<TYPE_hex>``: HMAC of the normalised value under tenant key and scope."""

    name = "pseudonym"
    Params = PseudonymParams

    def operate(self, value: str, context: OperatorContext) -> str:
        """Return the stable pseudonym of ``value`` for this tenant and scope."""
        params = cast("PseudonymParams", self.params)
        keys = context.require_keys(self.name)
        digest = keys.pseudonym_digest(
            tenant=context.tenant,
            scope=context.scope,
            value=normalise_for_pseudonym(value, context.entity_type),
        )
        return f"<{context.entity_type}_{digest.hex()[: params.length]}>"


def _token_context(entity_type: str) -> list[bytes]:
    return [b"entity_type", entity_type.encode("ascii")]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    # Only the canonical encoding is accepted: no second spelling of one token.
    return data if _b64encode(data) == text else None


class TokenOperator(Operator):
    """Replace by a reversible token: AES-SIV under the tenant's token key, type as context."""

    name = "token"

    def operate(self, value: str, context: OperatorContext) -> str:
        """Return ``<TYPE:tok_v1_...>`` that :func:`reveal_token` turns back into ``value``."""
        if not _ENTITY_TYPE.fullmatch(context.entity_type):
            raise GuardError("entity type cannot be used in a token (expected A-Z, 0-9, _)")
        keys = context.require_keys(self.name)
        sealed = keys.seal_token(
            tenant=context.tenant,
            plaintext=value.encode("utf-8"),
            context=_token_context(context.entity_type),
        )
        return f"<{context.entity_type}:{TOKEN_PREFIX}{_b64encode(sealed)}>"


def _reveal_match(match: re.Match[str], keys: RedactionKeys, tenant: str, where: str) -> str:
    entity_type, encoded = match.group(1), match.group(2)
    sealed = _b64decode(encoded)
    if sealed is None:
        raise TokenError(f"{where}: {entity_type} token is not valid base64url")
    try:
        plaintext = keys.open_token(
            tenant=tenant, ciphertext=sealed, context=_token_context(entity_type)
        )
    except IntegrityError:
        raise TokenError(
            f"{where}: {entity_type} token failed authentication "
            "(tampered, truncated, or issued for another tenant or type)"
        ) from None
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:  # pragma: no cover - authenticated data is what we sealed
        raise TokenError(f"{where}: {entity_type} token does not decode as text") from None


def reveal_token(token: str, *, tenant: str, keys: RedactionKeys) -> str:
    """Return the value behind one ``<TYPE:tok_v1_...>`` token, or raise TokenError."""
    match = TOKEN_PATTERN.fullmatch(token.strip())
    if match is None:
        raise TokenError("not a guard token (expected <ENTITY_TYPE:tok_v1_...>)")
    return _reveal_match(match, keys, tenant, "token")


def reveal_text(text: str, *, tenant: str, keys: RedactionKeys) -> str:
    """Return ``text`` with every guard token replaced by its value; any bad token fails all."""
    return TOKEN_PATTERN.sub(
        lambda m: _reveal_match(m, keys, tenant, f"token at offset {m.start()}"), text
    )


class OperatorRegistry:
    """Name-keyed factory of operators; register your own subclasses to extend policies."""

    def __init__(self, operators: Iterable[type[Operator]] = ()) -> None:
        self._operators: dict[str, type[Operator]] = {}
        for operator in operators:
            self.register(operator)

    def register(self, operator: type[Operator]) -> None:
        """Make ``operator`` available under its ``name``."""
        if operator.name in self._operators:
            raise GuardError(f"operator {operator.name!r} is already registered")
        self._operators[operator.name] = operator

    def names(self) -> list[str]:
        """Return the registered operator names, sorted."""
        return sorted(self._operators)

    def create(self, name: str, params: Mapping[str, object] | None = None) -> Operator:
        """Build operator ``name`` with validated ``params``."""
        operator = self._operators.get(name)
        if operator is None:
            raise OperatorParamsError(
                f"unknown operator {name!r} (known: {', '.join(self.names())})"
            )
        return operator(params)


BUILTIN_OPERATORS: tuple[type[Operator], ...] = (
    RedactOperator,
    TagOperator,
    MaskOperator,
    PseudonymOperator,
    TokenOperator,
)


def default_registry() -> OperatorRegistry:
    """Build a registry holding the built-in operators."""
    return OperatorRegistry(BUILTIN_OPERATORS)
