"""Organisation-specific identifiers and per-tenant allow/deny lists, configured in YAML.

``policies/recognizers.yaml`` declares identifiers such as account ids, order ids, usernames
and member numbers (regex + context words + score) without code. ``policies/tenants.yaml``
holds each tenant's allow-list (the company's own name and support address are not PII) and
deny-list (values always redacted). Both are validated on load; an error names the entry.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from guard.detection.recognizers.base import RegexRecognizer
from guard.errors import PolicyError
from guard.policyfiles import read_policy_yaml

if TYPE_CHECKING:
    from pathlib import Path

ENTITY_NAME = r"^[A-Z][A-Z0-9_]{1,63}$"


class PatternSpec(BaseModel):
    """One regex of a custom recognizer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regex: str = Field(min_length=1, max_length=2000)
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    ignore_case: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if compiled.match(""):
            raise ValueError("the regular expression matches the empty string")
        return value


class RecognizerSpec(BaseModel):
    """A custom recognizer: one entity type, one or more patterns, optional context words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    entity: str = Field(pattern=ENTITY_NAME)
    patterns: list[PatternSpec] = Field(min_length=1)
    context: list[str] = Field(default_factory=list)
    description: str = ""


class RecognizersFile(BaseModel):
    """The whole of ``policies/recognizers.yaml``."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=1)
    recognizers: list[RecognizerSpec] = Field(default_factory=list)

    @field_validator("recognizers")
    @classmethod
    def _unique_names(cls, value: list[RecognizerSpec]) -> list[RecognizerSpec]:
        seen: set[str] = set()
        for spec in value:
            if spec.name in seen:
                raise ValueError(f"recognizer name {spec.name!r} is used twice")
            seen.add(spec.name)
        return value


class DenyEntry(BaseModel):
    """A value a tenant always redacts, and the entity type it is reported as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str = Field(min_length=1, max_length=500)
    entity: str = Field(default="DENY_LIST", pattern=ENTITY_NAME)


class TenantLists(BaseModel):
    """A tenant's allow-list and deny-list (matched case-insensitively, as whole words)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(default_factory=list)
    deny: list[DenyEntry | Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list
    )

    def deny_entries(self) -> list[DenyEntry]:
        """Deny entries with their entity types filled in."""
        return [e if isinstance(e, DenyEntry) else DenyEntry(value=e) for e in self.deny]

    def merged(self, other: TenantLists) -> TenantLists:
        """A new list: these entries and ``other``'s (defaults + tenant)."""
        return TenantLists(allow=[*self.allow, *other.allow], deny=[*self.deny, *other.deny])


class TenantsFile(BaseModel):
    """The whole of ``policies/tenants.yaml``."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=1)
    default: TenantLists = Field(default_factory=TenantLists)
    tenants: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")], TenantLists] = (
        Field(default_factory=dict)
    )

    def lists_for(self, tenant: str | None) -> TenantLists:
        """The default lists plus the tenant's own."""
        if tenant is None or tenant not in self.tenants:
            return self.default
        return self.default.merged(self.tenants[tenant])


def _describe(path: Path, data: Any, exc: ValidationError) -> str:  # noqa: ANN401
    """Name the bad entry by its index and, where it has one, its name."""
    problems = []
    for error in exc.errors():
        loc = error["loc"]
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "recognizers" and isinstance(loc[1], int):  # noqa: PLR2004
            try:
                name = data["recognizers"][loc[1]].get("name")
            except (KeyError, IndexError, TypeError, AttributeError):
                name = None
            if name:
                where = f"recognizer {name!r} ({where})"
        problems.append(f"{where}: {error['msg']}")
    return f"{path}: " + "; ".join(problems)


def load_recognizers_file(path: Path) -> RecognizersFile:
    """Read and validate ``recognizers.yaml``; a missing file means no custom recognizers."""
    if not path.exists():
        return RecognizersFile(version=1)
    data = read_policy_yaml(path)
    try:
        return RecognizersFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_describe(path, data, exc)) from None


def load_tenants_file(path: Path) -> TenantsFile:
    """Read and validate ``tenants.yaml``; a missing file means empty lists."""
    if not path.exists():
        return TenantsFile(version=1)
    data = read_policy_yaml(path)
    try:
        return TenantsFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_describe(path, data, exc)) from None


def build_custom_recognizers(spec_file: RecognizersFile) -> list[RegexRecognizer]:
    """One RegexRecognizer per pattern, named after its recognizer entry."""
    built = []
    for spec in spec_file.recognizers:
        for index, pattern in enumerate(spec.patterns):
            flags = re.IGNORECASE if pattern.ignore_case else 0
            built.append(
                RegexRecognizer(
                    entity=spec.entity,
                    name=f"custom:{spec.name}:{index}",
                    pattern=re.compile(pattern.regex, flags),
                    score=pattern.score,
                    group="value" if "value" in re.compile(pattern.regex).groupindex else 0,
                    context=spec.context,
                )
            )
    return built
