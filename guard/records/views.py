"""Role views of a decrypted record, from ``policies/views.yaml`` (policy, not code).

For each role and field the policy says ``clear``, ``masked`` (keep the last N characters),
``pseudonym`` (keyed hash, stable per tenant: analysts can count and join without seeing),
``redacted`` (notes only: the copy redacted at write time) or ``hidden``. Every role must name
every field: an omission is a load error, never an implicit "clear". A role the policy does not
know sees nothing but the record's metadata (fail closed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guard.policyfiles import describe_validation_error, read_policy_yaml
from guard.records.errors import ViewPolicyError
from guard.redaction.operators import (
    MaskOperator,
    OperatorContext,
    PseudonymOperator,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from guard.crypto.keys import RedactionKeys

VIEWS_FILENAME = "views.yaml"

Mode = Literal["clear", "masked", "pseudonym", "redacted", "hidden"]

#: Viewable fields (``notes`` covers both the full note and its redacted copy).
VIEW_FIELDS: tuple[str, ...] = (
    "full_name",
    "email",
    "phone",
    "postal_address",
    "date_of_birth",
    "account",
    "notes",
    "extra",
)
_STRUCTURED = frozenset({"account", "extra"})
#: Entity type shown in a field's pseudonym, e.g. ``<EMAIL_ADDRESS_3f9a1c2b4d5e>``.
_PSEUDONYM_TYPES = {
    "full_name": "PERSON",
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "postal_address": "STREET_ADDRESS",
    "date_of_birth": "DATE_TIME",
    "account": "ACCOUNT",
    "extra": "ATTRIBUTE",
}


class MaskSpec(BaseModel):
    """``masked``: how many trailing characters stay visible."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_last: int = Field(ge=0, le=64)


class PseudonymSpec(BaseModel):
    """``pseudonym``: how many hex characters of the keyed hash to show."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    length: int = Field(default=12, ge=4, le=64)


class FieldRule(BaseModel):
    """How one role sees one field; a bare string is shorthand for ``{mode: <string>}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode
    mask: MaskSpec | None = None
    pseudonym: PseudonymSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return {"mode": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _parameters_match_mode(self) -> FieldRule:
        if self.mode == "masked" and self.mask is None:
            raise ValueError("mode 'masked' needs 'mask: {keep_last: N}'")
        if self.mode != "masked" and self.mask is not None:
            raise ValueError("'mask' is only allowed with mode 'masked'")
        if self.mode != "pseudonym" and self.pseudonym is not None:
            raise ValueError("'pseudonym' is only allowed with mode 'pseudonym'")
        return self


class RoleView(BaseModel):
    """One role's rule for every field; no field may be left out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    full_name: FieldRule
    email: FieldRule
    phone: FieldRule
    postal_address: FieldRule
    date_of_birth: FieldRule
    account: FieldRule
    notes: FieldRule
    extra: FieldRule

    @model_validator(mode="after")
    def _modes_fit_fields(self) -> RoleView:
        for name in VIEW_FIELDS:
            mode = self.rule(name).mode
            if name == "notes" and mode in {"masked", "pseudonym"}:
                raise ValueError(f"{name}: notes are 'clear', 'redacted' or 'hidden'")
            if name != "notes" and mode == "redacted":
                raise ValueError(f"{name}: only notes have a redacted copy")
            if name in _STRUCTURED and mode == "masked":
                raise ValueError(f"{name}: structured fields cannot be masked")
        return self

    def rule(self, field: str) -> FieldRule:
        """The rule for ``field``."""
        rule: FieldRule = getattr(self, field)
        return rule


class Roles(BaseModel):
    """A view for each of guard's roles; unknown roles are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: RoleView
    supervisor: RoleView
    compliance_officer: RoleView
    analyst: RoleView
    admin: RoleView


class ViewPolicySpec(BaseModel):
    """The content of ``views.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    roles: Roles


_HIDDEN_VIEW = RoleView.model_validate(dict.fromkeys(VIEW_FIELDS, "hidden"))


class ViewPolicy:
    """The loaded views: :meth:`view_for` a role, :meth:`apply` it to a decrypted record."""

    def __init__(self, spec: ViewPolicySpec) -> None:
        self._roles: dict[str, RoleView] = {
            name: getattr(spec.roles, name) for name in type(spec.roles).model_fields
        }

    def view_for(self, role: str) -> RoleView:
        """The role's view; an unknown role sees every field hidden."""
        return self._roles.get(role, _HIDDEN_VIEW)

    def stored_fields(self, role: str) -> frozenset[str]:
        """The stored fields ``role``'s view reads (``notes_redacted`` for redacted notes)."""
        needed = set()
        for name in VIEW_FIELDS:
            mode = self.view_for(role).rule(name).mode
            if mode == "redacted":
                needed.add("notes_redacted")
            elif mode != "hidden":
                needed.add(name)
        return frozenset(needed)

    def apply(
        self,
        role: str,
        fields: Mapping[str, Any],
        *,
        tenant: str,
        keys: RedactionKeys,
    ) -> dict[str, Any]:
        """The fields ``role`` may see, transformed; hidden and absent fields are left out."""
        view = self.view_for(role)
        shown: dict[str, Any] = {}
        for name in VIEW_FIELDS:
            rule = view.rule(name)
            if rule.mode == "hidden":
                continue
            source = "notes_redacted" if rule.mode == "redacted" else name
            value = fields.get(source)
            if value is None:
                continue
            shown[name] = _transform(name, rule, value, tenant=tenant, keys=keys)
        return shown


def _transform(name: str, rule: FieldRule, value: Any, *, tenant: str, keys: RedactionKeys) -> Any:  # noqa: ANN401 - decrypted JSON
    if rule.mode in {"clear", "redacted"}:
        return value
    if rule.mode == "masked":
        mask = rule.mask or MaskSpec(keep_last=0)
        operator: MaskOperator | PseudonymOperator = MaskOperator({"chars_to_keep": mask.keep_last})
        context = OperatorContext(entity_type=name, tenant=tenant, scope="", keys=None)
        return operator.operate(str(value), context)
    length = (rule.pseudonym or PseudonymSpec()).length
    pseudonym = PseudonymOperator({"length": length})
    entity_type = _PSEUDONYM_TYPES[name]

    def one(leaf: Any, leaf_type: str) -> Any:  # noqa: ANN401 - JSON leaf
        if isinstance(leaf, dict):
            return {
                k: one(v, "ACCOUNT_ID" if k == "account_id" else leaf_type) for k, v in leaf.items()
            }
        if isinstance(leaf, list):
            return [one(v, leaf_type) for v in leaf]
        if leaf is None:
            return None
        context = OperatorContext(entity_type=leaf_type, tenant=tenant, scope="records", keys=keys)
        return pseudonym.operate(str(leaf), context)

    return one(value, entity_type)


def parse_view_policy(data: object, *, source: Path) -> ViewPolicy:
    """Validate parsed YAML into a :class:`ViewPolicy`; errors name the entry."""
    try:
        return ViewPolicy(ViewPolicySpec.model_validate(data))
    except ValidationError as exc:
        raise ViewPolicyError(describe_validation_error(source, exc)) from None


def load_view_policy(path: Path) -> ViewPolicy:
    """Read and validate ``views.yaml``."""
    return parse_view_policy(read_policy_yaml(path), source=path)
