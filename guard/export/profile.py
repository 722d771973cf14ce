"""Export profiles (``policies/exports/*.yaml``): what happens to each column before it leaves.

A profile names a purpose (pseudonyms are keyed per tenant *and* purpose), an action per
column, what to do with the columns it does not name, how those are classified, and the
quasi-identifiers that must be k-anonymous after transformation. Everything is validated when
the profile is loaded; an error names the profile and the column.

Actions:
    keep        the value as it is
    drop        the column does not leave
    pseudonym   ``<ENTITY_abcdef012345>``: keyed HMAC of the normalised value, per purpose
    token       reversible (AES-SIV under the purpose key); only where ``tokens: true``
    mask        all but the last ``keep_last`` characters replaced by ``*``
    generalize  exactly one of ``date`` (month, quarter, year), ``band`` (ages: width, with an
                optional ``top`` for "90+"), ``truncate`` (keep the first N characters of a
                postcode) or ``bucket`` (numbers to ranges of that width)
    scan        free text through detection and the ``export`` channel's redaction
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guard.errors import PolicyError
from guard.policyfiles import describe_validation_error, read_policy_yaml

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

EXPORTS_DIRNAME = "exports"
Action = Literal["keep", "drop", "pseudonym", "token", "mask", "generalize", "scan"]
#: Actions whose output is a string whatever the input type.
STRING_ACTIONS = frozenset({"pseudonym", "token", "mask", "generalize", "scan"})
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_ENTITY = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_GENERALIZERS = ("date", "band", "truncate", "bucket")


class ProfileError(PolicyError):
    """An export profile that cannot be used; the message names the profile and the column."""


class ColumnRule(BaseModel):
    """What happens to one column; a bare string is shorthand for ``{action: <string>}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    #: The entity type a pseudonym, token or mask stands for (``<EMAIL_ADDRESS_...>``); it
    #: also picks the normalisation (digits only for phones and cards), so the same customer
    #: joins with the pseudonyms found in free text.
    entity: str | None = None
    length: int = Field(default=12, ge=4, le=64)
    keep_last: int | None = Field(default=None, ge=0, le=64)
    date: Literal["month", "quarter", "year"] | None = None
    band: int | None = Field(default=None, ge=1, le=1000)
    top: int | None = Field(default=None, ge=1)
    truncate: int | None = Field(default=None, ge=0, le=64)
    bucket: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return {"action": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _parameters_fit_action(self) -> ColumnRule:
        chosen = [name for name in _GENERALIZERS if getattr(self, name) is not None]
        if self.action == "generalize":
            if len(chosen) != 1:
                raise ValueError(
                    "generalize needs exactly one of date, band, truncate or bucket"
                    + (f" (got {', '.join(chosen)})" if chosen else "")
                )
            if self.top is not None and self.band is None:
                raise ValueError("top applies to band only")
        elif chosen or self.top is not None:
            raise ValueError(f"{', '.join(chosen or ['top'])} applies to generalize only")
        if self.keep_last is not None and self.action != "mask":
            raise ValueError("keep_last applies to mask only")
        if self.entity is not None:
            if self.action not in {"pseudonym", "token", "mask"}:
                raise ValueError("entity applies to pseudonym, token and mask only")
            if not _ENTITY.fullmatch(self.entity):
                raise ValueError("entity must be an entity type such as EMAIL_ADDRESS")
        return self

    def parameters(self) -> dict[str, object]:
        """The rule's parameters that are set, for reports and the manifest."""
        return {
            key: value
            for key, value in self.model_dump(exclude={"action"}).items()
            if value is not None and not (key == "length" and self.action != "pseudonym")
        }


class Classification(BaseModel):
    """How columns the profile does not name are classified from a sample."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Non-empty cells sampled per column (the first ones, so every engine decides alike).
    sample_rows: int = Field(default=200, ge=1, le=100_000)
    #: Share of the sampled cells that must hold one entity type for the column to take it.
    threshold: float = Field(default=0.6, gt=0, le=1)


class KAnonymity(BaseModel):
    """Quasi-identifiers that must be shared by at least ``k`` rows after transformation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quasi_identifiers: list[str] = Field(min_length=1)
    k: int = Field(ge=2, le=1_000_000)
    on_violation: Literal["suppress", "fail"] = "suppress"


class ProfileSpec(BaseModel):
    """One export profile file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    description: str = ""
    #: Pseudonyms and tokens are keyed per tenant and purpose: the same customer joins within
    #: a purpose, and cannot be linked across purposes.
    purpose: str
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    #: Columns the profile does not name: classified, then ``scan`` (whole-cell operator for
    #: a classified column, detection on free text otherwise), ``drop``, or ``fail``.
    unknown_columns: Literal["scan", "drop", "fail"] = "scan"
    classification: Classification = Field(default_factory=Classification)
    #: Whether ``token`` (reversible) columns are allowed at all.
    tokens: bool = False
    k_anonymity: KAnonymity | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ProfileSpec:
        if not _NAME.fullmatch(self.purpose):
            raise ValueError("purpose must be 1-64 of a-z, 0-9, '_' and '-'")
        for column, rule in self.columns.items():
            if not column:
                raise ValueError("a column name must not be empty")
            if rule.action == "token" and not self.tokens:
                raise ValueError(
                    f"column {column!r}: token is reversible; the profile must allow it "
                    "with 'tokens: true'"
                )
        if self.k_anonymity is not None:
            for column in self.k_anonymity.quasi_identifiers:
                named = self.columns.get(column)
                if named is None:
                    raise ValueError(
                        f"quasi-identifier {column!r} must be a column the profile names"
                    )
                if named.action not in {"keep", "generalize", "mask"}:
                    raise ValueError(
                        f"quasi-identifier {column!r} must be kept, generalized or masked "
                        f"(it is {named.action}, which leaves nothing to group on)"
                    )
        return self


@dataclass(frozen=True, slots=True)
class ExportProfile:
    """A validated profile, with its name and the hash of its canonical form."""

    name: str
    spec: ProfileSpec
    source: str
    sha256: str

    @classmethod
    def of(cls, name: str, spec: ProfileSpec, *, source: str) -> ExportProfile:
        """Wrap a validated spec, hashing its canonical JSON form."""
        canonical = json.dumps(
            {"name": name, **spec.model_dump(mode="json")}, sort_keys=True, separators=(",", ":")
        )
        return cls(name, spec, source, hashlib.sha256(canonical.encode("utf-8")).hexdigest())

    @property
    def purpose(self) -> str:
        """The export purpose its pseudonyms are keyed to."""
        return self.spec.purpose

    def rule(self, column: str) -> ColumnRule | None:
        """The rule the profile gives ``column``, if it names it."""
        return self.spec.columns.get(column)


def _where(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("function-")]
    if len(parts) >= 2 and parts[0] == "columns":  # noqa: PLR2004 - columns.<name>.<field>
        rest = ".".join(parts[2:])
        return f"column {parts[1]!r}" + (f": {rest}" if rest else "")
    return ".".join(parts)


def parse_profile(name: str, data: object, *, source: str) -> ExportProfile:
    """Validate parsed YAML into a profile; errors name the profile and the column."""
    if not _NAME.fullmatch(name):
        raise ProfileError(f"export profile {name!r}: names are 1-64 of a-z, 0-9, '_' and '-'")
    try:
        spec = ProfileSpec.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(
            describe_validation_error(
                f"export profile {name!r} ({source})",
                exc,
                where=_where,
            )
        ) from None
    return ExportProfile.of(name, spec, source=source)


def profile_path(policies_dir: Path, name: str) -> Path:
    """Where profile ``name`` lives."""
    return policies_dir / EXPORTS_DIRNAME / f"{name}.yaml"


def load_profile(policies_dir: Path, name: str) -> ExportProfile:
    """Read and validate ``policies/exports/<name>.yaml``."""
    if not _NAME.fullmatch(name):
        raise ProfileError(f"export profile {name!r}: names are 1-64 of a-z, 0-9, '_' and '-'")
    path = profile_path(policies_dir, name)
    if not path.is_file():
        known = ", ".join(profile_names(policies_dir)) or "none"
        raise ProfileError(f"no export profile {name!r} (known: {known})")
    return parse_profile(name, read_policy_yaml(path), source=str(path))


def profile_names(policies_dir: Path) -> list[str]:
    """The profiles under ``policies/exports``, sorted."""
    folder = policies_dir / EXPORTS_DIRNAME
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if _NAME.fullmatch(p.stem))


def load_profiles(policies_dir: Path) -> dict[str, ExportProfile]:
    """Every profile, validated (start-up checks them all, so a bad one fails early)."""
    return {name: load_profile(policies_dir, name) for name in profile_names(policies_dir)}
